"""The build pipeline: roads -> sources -> fusion -> graph directory, map and summary on disk."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graph_builders.build.config import BuildConfig, config_from_dict, load_config
from graph_builders.build.sources import build_source
from graph_builders.build.summary import format_summary, graph_summary, source_reports, write_map
from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError
from stgraph.utils.atomic import atomic_write_text

__all__ = ["BuildResult", "run_build"]


@dataclass
class BuildResult:
    """What a build produced."""

    graph: STGraph
    output_dir: Path
    graph_dir: Path
    map_path: Path | None
    summary_path: Path
    summary: dict[str, Any]


def _dropped_of(g: STGraph) -> dict[str, int]:
    return {k: int(v) for k, v in ((g.meta or {}).get("dropped") or {}).items()}


def _build_roads(config: BuildConfig) -> tuple[STGraph, dict[str, Any]]:
    """The OSM road graph of the config and its summary row."""
    from graph_builders import osm

    t = time.perf_counter()
    opts = dict(config.roads.options)
    if config.city and "city" not in opts:
        opts["city"] = config.city
    roads = osm.road_graph(config.roads.path, **opts)
    row = {"name": "roads", "kind": "roads", "file": config.roads.path, **graph_summary(roads)}
    row["seconds"] = round(time.perf_counter() - t, 3)
    row["dropped"] = _dropped_of(roads)
    return roads, row


def _build_sources(
    config: BuildConfig, roads: STGraph | None, where: str
) -> tuple[dict[str, STGraph], list[dict[str, Any]]]:
    """Each source's graph by name, and its summary row."""
    graphs: dict[str, STGraph] = {}
    rows = []
    for sc in config.sources:
        t = time.perf_counter()
        g = build_source(sc, roads=roads, interval=config.interval, city=config.city, where=where)
        graphs[sc.name] = g
        rows.append(
            {
                "name": sc.name,
                "kind": sc.kind,
                "file": sc.path or f"{sc.locations} : {sc.readings}",
                **graph_summary(g),
                "dropped": _dropped_of(g),
                "report": source_reports(g),
                "seconds": round(time.perf_counter() - t, 3),
            }
        )
    return graphs, rows


def _combine(
    config: BuildConfig, graphs: dict[str, STGraph], roads: STGraph | None
) -> tuple[STGraph, dict[str, int]]:
    """One graph: the sources fused (onto the roads when given), or the one source, or the roads.

    Returns the graph and the records it dropped by reason (a lone source's prefixed by its name).
    """
    if graphs and (roads is not None or len(graphs) > 1):
        from graph_builders.fusion import fuse

        fz = config.fuse
        graph = fuse(
            graphs,
            on=roads,
            how=fz.how,
            max_dist_m=fz.max_dist_m,
            interval=config.interval,
            times=fz.times,
            agg=fz.agg,
            city=config.city,
        )
        return graph, dict(graph.meta.get("dropped", {}))
    if graphs:
        name, graph = next(iter(graphs.items()))
        return graph, {f"{name}.{k}": v for k, v in _dropped_of(graph).items()}
    return roads, {}


def _stamp(graph: STGraph, config: BuildConfig, where: str) -> None:
    """City, provenance and build name into ``graph.meta``."""
    if config.city and not (graph.meta or {}).get("city"):
        graph.meta["city"] = config.city
    graph.meta["provenance"] = [
        *graph.meta.get("provenance", []),
        f"stgraph build {config.name} ({where})",
    ]
    graph.meta["build"] = config.name


def _as_config(
    config: BuildConfig | Mapping[str, Any] | str | os.PathLike, overrides: Sequence[str] | None
) -> BuildConfig:
    if isinstance(config, (str, os.PathLike)):
        return load_config(config, overrides=overrides)
    if isinstance(config, Mapping):
        return config_from_dict(dict(config), overrides=overrides)
    if overrides:
        raise ConfigError(
            "run_build: overrides apply to a YAML path or a mapping, not a BuildConfig"
        )
    return config


def run_build(
    config: BuildConfig | Mapping[str, Any] | str | os.PathLike,
    *,
    output: str | os.PathLike | None = None,
    color_by: str | None = None,
    overrides: Sequence[str] | None = None,
    verbose: bool = True,
) -> BuildResult:
    """Build the STGraph a config describes, and write it, its map and its summary.

    Args:
        config: a :class:`BuildConfig`, a mapping with the config schema, or a YAML path.
        output: output directory (overrides the config's ``output``).
        color_by: map colouring (overrides the config's ``color_by``).
        overrides: ``--set key.sub=value`` strings, for a YAML path or a mapping.
        verbose: print the summary.

    Returns:
        :class:`BuildResult` with the graph, the paths written and the summary.
    """
    config = _as_config(config, overrides)
    where = config.source_file or "<config>"
    out_dir = Path(output or config.output or Path("build-output") / config.name)
    started = time.perf_counter()
    roads, rows, dropped = None, [], {}
    if config.roads is not None:
        roads, row = _build_roads(config)
        rows.append(row)
        dropped.update({f"roads.{k}": v for k, v in row["dropped"].items()})
    graphs, source_rows = _build_sources(config, roads, where)
    graph, graph_dropped = _combine(config, graphs, roads)
    dropped.update(graph_dropped)
    _stamp(graph, config, where)

    graph_dir = out_dir / "graph"
    graph.save(graph_dir)
    color = color_by or config.color_by or (graph.variables[0] if graph.num_variables else None)
    map_path = out_dir / "map.png"
    write_map(graph, map_path, color)
    summary = {
        "name": config.name,
        "city": config.city or (graph.meta or {}).get("city"),
        "config": config.source_file,
        **graph_summary(graph),
        "dropped": dropped,
        "dropped_total": int(sum(dropped.values())),
        "sources": rows + source_rows,
        "color_by": color,
        "files": {
            "graph": str(graph_dir),
            "map": str(map_path),
            "summary": str(out_dir / "summary.json"),
        },
        "seconds": round(time.perf_counter() - started, 3),
    }
    summary_path = atomic_write_text(
        out_dir / "summary.json", json.dumps(summary, indent=1, default=str)
    )
    if verbose:
        print(format_summary(summary))
    return BuildResult(graph, out_dir, graph_dir, map_path, summary_path, summary)
