"""What a build reports: the summary of a graph, the printed summary, and the map."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from stgraph.data.stgraph import STGraph

__all__ = ["format_summary", "graph_summary", "source_reports", "write_map"]

#: ``meta`` entries of a source graph copied into its row of ``summary.json``.
REPORT_KEYS = (
    "matching",
    "moving",
    "fusion",
    "summary",
    "snap",
    "counts",
    "defaulted",
    "grid_extent",
)


def graph_summary(g: STGraph) -> dict[str, Any]:
    """Nodes, edges, dynamic edges, steps, variables, interval, time span, observed share."""
    meta = g.meta or {}
    out: dict[str, Any] = {
        "nodes": int(g.num_nodes),
        "edges": int(g.edge_index.size(1)) if g.edge_index is not None else 0,
        "dyn_edges": int(g.dyn_edge_index.size(1)) if g.dyn_edge_index is not None else 0,
        "steps": int(g.num_steps),
        "variables": [
            {k: v for k, v in var.items() if k in ("name", "unit", "agg", "source")}
            for var in meta.get("variables", [])
        ],
        "interval_s": meta.get("interval"),
    }
    if g.time is not None and g.time.numel():
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        out["time_start"] = datetime.fromtimestamp(int(g.time[0]), timezone.utc).strftime(fmt)
        out["time_end"] = datetime.fromtimestamp(int(g.time[-1]), timezone.utc).strftime(fmt)
    if g.mask is not None and g.mask.numel():
        out["observed_share"] = float(g.mask.float().mean())
    return out


def source_reports(g: STGraph) -> dict[str, Any]:
    """The builder's reports kept in ``g.meta`` (map matching, snapping, fusion, ...)."""
    meta = g.meta or {}
    return {k: meta[k] for k in REPORT_KEYS if k in meta}


def write_map(graph: STGraph, path: Path, color_by: str | None) -> None:
    """The PNG map of ``graph`` coloured by ``color_by`` (written atomically)."""
    from graph_builders.plot import plot_graph

    plot_graph(graph, path, color_by=color_by)


def _source_lines(row: Mapping[str, Any]) -> list[str]:
    lines = [
        f"  source {row['name']} ({row['kind']}): {row['nodes']:,} nodes, {row['steps']:,} steps, "
        f"{row['seconds']:.2f} s"
    ]
    match = (row.get("report") or {}).get("matching")
    if match:
        d = match["distance_m"]
        lines.append(
            f"    matched {match['points_matched']:,} of {match['points_in']:,} points "
            f"({100 * match['share_matched']:.1f} %), distance median {d['median']:.1f} m, "
            f"p90 {d['p90']:.1f} m, max {d['max']:.1f} m"
        )
    extent = (row.get("report") or {}).get("grid_extent")
    if extent:
        w, s, e, n = extent["bbox"]
        reason = "outside_regions" if row["kind"] == "events" else "outside the grid"
        lines.append(
            f"    grid: {extent['rule']} ({w:.5f}, {s:.5f}, {e:.5f}, {n:.5f}); "
            f"{extent['outside']:,} of {extent['points']:,} points outside, dropped ({reason}); "
            "--bbox or options bbox to choose it"
        )
    dups = ((row.get("report") or {}).get("summary") or {}).get("duplicates")
    if dups:
        kept = not (row.get("dropped") or {}).get("duplicate")
        lines.append(
            f"    duplicates: {dups:,} rows repeat an earlier row exactly "
            + ("(counted as events; options duplicates: drop drops them)" if kept else "(dropped)")
        )
    return lines


def format_summary(summary: Mapping[str, Any]) -> str:
    """The printed summary of a build."""
    lines = [
        f"stgraph build {summary['name']}"
        + (f" ({summary['city']})" if summary.get("city") else ""),
        f"  nodes {summary['nodes']:,}  edges {summary['edges']:,}  dynamic edges {summary['dyn_edges']:,}"
        f"  steps {summary['steps']:,}"
        + (f" x {summary['interval_s']} s" if summary.get("interval_s") else ""),
    ]
    if summary.get("time_start"):
        lines.append(f"  time {summary['time_start']} .. {summary['time_end']}")
    if summary["variables"]:
        lines.append(
            "  variables "
            + ", ".join(f"{v['name']} [{v.get('unit') or '-'}]" for v in summary["variables"])
        )
    for row in summary["sources"]:
        lines += _source_lines(row)
    nonzero = {k: v for k, v in summary["dropped"].items() if v}
    lines.append(f"  dropped {summary['dropped_total']:,} records" + (":" if nonzero else ""))
    for k, v in sorted(nonzero.items()):
        lines.append(f"    {k}: {v:,}")
    files = summary["files"]
    lines.append(f"  graph {files['graph']}\n  map {files['map']}\n  summary {files['summary']}")
    return "\n".join(lines)
