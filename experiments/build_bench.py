"""Benchmark: building a road graph with ``graph_builders.osm.road_graph`` vs the OSMnx path.

For each OSM extract in the data folder, both paths build the simplified, directed ``drive``
network (largest weakly connected component) from the same data:

* **stgraph**: ``osm.road_graph(file)`` on the original file (``.osm.pbf`` / ``.osm.bz2``): pyosmium
  parse (expat for XML up to 1 MiB), topology, simplification, POI/land-use context features,
  STGraph assembly (everything a user gets). ``stgraph_noctx_s`` is the same without the
  context features (the work OSMnx does).
* **stgraph, same file** (``stgraph_same_s``): ``osm.road_graph(xml)`` on the very XML file OSMnx
  reads below -- equal input, equal output, so the one like-for-like figure (``speedup_same``).
* **osmnx**: ``osmnx.graph_from_xml(xml, simplify=True, retain_all=False)`` on an OSM XML file that
  holds only the ways of the drive network (OSMnx's own filter, evaluated by
  ``osm.in_network``) and their nodes. ``graph_from_xml`` turns *every* way into edges, so the
  XML must be filtered first; that preparation (writing the XML) is NOT counted in ``osmnx_s``,
  which is the favourable case for OSMnx. Ways are split where they reference nodes missing
  from the extract (as ``road_graph`` does), so both start from the same ways.

Each (extract, path) runs in its own child process: 3 timed runs, the median reported; peak memory
is, per run, the kernel's peak resident size (``VmHWM``, reset through ``/proc/self/clear_refs``
before the run) minus the resident size at its start — the build's own peak extra memory,
C/C++ allocations included — median of the runs. Node and edge counts of both results are reported
and compared. Writes ``experiments/results/build-bench.json`` and ``build-bench.md``.

Run: ``.venv/bin/python experiments/build_bench.py [--data DIR] [--runs 3]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import quoteattr

REPO = Path(__file__).resolve().parents[1]
EXTRACTS = (
    "osm-helsinki/Helsinki.osm.pbf",
    "osm-monaco/monaco.osm.pbf",
    "osm-andorra/andorra.osm.pbf",
    "osm-baltimore/baltimore.osm.pbf",
    "osm-west-oakland/West-Oakland.osm.bz2",
)
NETWORK = "drive"


def _memory_mb() -> tuple[float, float]:
    """``(current, peak)`` resident memory of this process in MiB (Linux ``/proc``)."""
    text = Path("/proc/self/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", text).group(1)) / 1024
    hwm = int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024
    return rss, hwm


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS mark (``VmHWM``) so the next peak is the build's alone."""
    Path("/proc/self/clear_refs").write_text("5")


def _child(kind: str, path: str, runs: int) -> dict:
    """Run one path ``runs`` times in this process; return times, peak memory and counts."""
    if kind == "osmnx":
        import osmnx as ox

        def build():
            g = ox.graph_from_xml(
                path, bidirectional=NETWORK == "walk", simplify=True, retain_all=False
            )
            return len(g), len(g.edges)
    else:
        from graph_builders import osm

        def build():
            g = osm.road_graph(path, network=NETWORK, context=kind == "stgraph")
            return g.num_nodes, int(g.edge_index.size(1))

    times, cpu, peaks = [], [], []
    counts = None
    for _ in range(runs):
        _reset_peak()
        base, _ = _memory_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        counts = build()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        peaks.append(_memory_mb()[1] - base)
    return {
        "times": times,
        "median_s": statistics.median(times),
        "cpu_s": statistics.median(cpu),
        "peak_mb": statistics.median(peaks),
        "nodes": counts[0],
        "edges": counts[1],
    }


def write_network_xml(src: Path, dst: Path) -> dict:
    """Write the drive-network ways of ``src`` (and their nodes) as OSM XML for graph_from_xml."""
    import numpy as np

    from graph_builders.osm.reader import read_osm

    ways = read_osm(src, network=NETWORK, context=False).ways
    node_ids, first = np.unique(ways.refs, return_index=True)
    seen: set[int] = set()
    synthetic = -1
    with open(dst, "w", encoding="utf-8") as fh:
        fh.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6" generator="build_bench">\n'
        )
        for i, j in zip(node_ids.tolist(), first.tolist(), strict=True):
            fh.write(f' <node id="{i}" lat="{ways.lat[j]:.7f}" lon="{ways.lon[j]:.7f}"/>\n')
        for k in range(len(ways.way_ids)):
            wid = int(ways.way_ids[k])
            if wid in seen:  # a further part of a way split at a missing node
                wid, synthetic = synthetic, synthetic - 1
            seen.add(wid)
            fh.write(f' <way id="{wid}">\n')
            for r in ways.refs[ways.ptr[k] : ways.ptr[k + 1]].tolist():
                fh.write(f'  <nd ref="{r}"/>\n')
            for key, val in ways.tags[k].items():
                fh.write(f"  <tag k={quoteattr(key)} v={quoteattr(val)}/>\n")
            fh.write(" </way>\n")
        fh.write("</osm>\n")
    return {"xml_nodes": len(node_ids), "xml_ways": len(ways.way_ids)}


def _run_child(kind: str, path: Path, runs: int) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        str(path),
        "--runs",
        str(runs),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _markdown(rows: list[dict], info: dict) -> str:
    lines = [
        "# Road-graph build: stgraph (`osm.road_graph`) vs OSMnx (`graph_from_xml`)",
        "",
        f"Network `{NETWORK}`, simplified, largest weakly connected component. Median of "
        f"{info['runs']} runs per path, each path in its own process; peak = extra resident memory "
        "of the build (peak RSS during the run, reset before it, minus the RSS at its start). `stgraph_s` includes the POI/land-use "
        "context features; `stgraph_noctx_s` is the same build without them. Times are wall-clock; "
        "the CPU-time speed-up (process time, all threads) is less sensitive to other jobs. `osmnx_s` is "
        "`graph_from_xml` on an XML holding only the drive ways (filtering the extract into that "
        "XML is not counted). Speed-up = osmnx_s / stgraph_s. `stgraph_same_s` is `road_graph` on "
        "that same filtered XML file (equal input and output: the like-for-like comparison); "
        "speed-up (same file) = osmnx_s / stgraph_same_s.",
        "",
        f"Machine: {info['machine']}; load average (1, 5, 15 min) {info['loadavg']} at start, "
        f"{info.get('loadavg_end', '?')} at the end (the benchmark's own processes included); "
        "both paths ran under the same conditions, one after the other for each extract.",
        "",
        "| file | nodes | edges | OSMnx nodes | OSMnx edges | stgraph_s | stgraph_noctx_s "
        "| stgraph_same_s | osmnx_s | speed-up | speed-up (no ctx) | speed-up (same file) "
        "| speed-up (CPU time) | stgraph_peak_mb | osmnx_peak_mb |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['file']} | {r['nodes']:,} | {r['edges']:,} | {r['osmnx_nodes']:,} | "
            f"{r['osmnx_edges']:,} | {r['stgraph_s']:.3f} | {r['stgraph_noctx_s']:.3f} | "
            f"{r['stgraph_same_s']:.3f} | {r['osmnx_s']:.3f} | {r['speedup']:.1f}× | "
            f"{r['speedup_noctx']:.1f}× | {r['speedup_same']:.1f}× | "
            f"{r['speedup_cpu']:.1f}× | "
            f"{r['stgraph_peak_mb']:.1f} | {r['osmnx_peak_mb']:.1f} |"
        )
    lines += [
        "",
        "Counts: "
        + (
            "equal on every extract."
            if all(r["counts_equal"] for r in rows)
            else "see `counts_equal` in the JSON; differences are explained there."
        ),
        "",
        f"Versions: {info['versions']}. Generated {info['date']} by `experiments/build_bench.py`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("STGRAPH_DATA", REPO.parent / "shared" / "data")),
    )
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--only",
        nargs="*",
        default=None,
        metavar="NAME",
        help="extracts whose path contains one of these (default: all five)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "experiments" / "results")
    ap.add_argument("--child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child[0], args.child[1], args.runs)))
        return 0

    import osmium.version
    import osmnx

    from stgraph.utils.atomic import atomic_write_text

    info = {
        "runs": args.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
        "loadavg": " ".join(f"{x:.1f}" for x in os.getloadavg()),
        "versions": f"osmnx {osmnx.__version__}, pyosmium {osmium.version.pyosmium_release}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="build-bench-") as tmp:
        for rel in EXTRACTS:
            if args.only and not any(o.lower() in rel.lower() for o in args.only):
                continue
            src = args.data / rel
            if not src.is_file():
                print(f"skip {rel}: not found under {args.data}", file=sys.stderr)
                continue
            xml = Path(tmp) / (src.name.split(".")[0] + ".drive.osm")
            t0 = time.perf_counter()
            prep = write_network_xml(src, xml)
            prep_s = time.perf_counter() - t0
            ours = _run_child("stgraph", src, args.runs)
            ref = _run_child("osmnx", xml, args.runs)
            noctx = _run_child("stgraph_noctx", src, args.runs)
            same = _run_child("stgraph", xml, args.runs)
            equal = len({(r["nodes"], r["edges"]) for r in (ours, ref, same)}) == 1
            row = {
                "file": rel,
                "nodes": ours["nodes"],
                "edges": ours["edges"],
                "stgraph_s": round(ours["median_s"], 4),
                "osmnx_s": round(ref["median_s"], 4),
                "stgraph_peak_mb": round(ours["peak_mb"], 1),
                "osmnx_peak_mb": round(ref["peak_mb"], 1),
                "stgraph_noctx_s": round(noctx["median_s"], 4),
                "stgraph_noctx_peak_mb": round(noctx["peak_mb"], 1),
                "stgraph_same_s": round(same["median_s"], 4),
                "stgraph_same_peak_mb": round(same["peak_mb"], 1),
                "speedup_same": round(ref["median_s"] / same["median_s"], 2),
                "osmnx_nodes": ref["nodes"],
                "osmnx_edges": ref["edges"],
                "counts_equal": equal,
                "speedup": round(ref["median_s"] / ours["median_s"], 2),
                "speedup_noctx": round(ref["median_s"] / noctx["median_s"], 2),
                "stgraph_cpu_s": round(ours["cpu_s"], 4),
                "stgraph_noctx_cpu_s": round(noctx["cpu_s"], 4),
                "osmnx_cpu_s": round(ref["cpu_s"], 4),
                "speedup_cpu": round(ref["cpu_s"] / ours["cpu_s"], 2),
                "runs_s": {
                    "stgraph": ours["times"],
                    "stgraph_noctx": noctx["times"],
                    "stgraph_same": same["times"],
                    "osmnx": ref["times"],
                },
                "osmnx_xml": {**prep, "prep_s_not_counted": round(prep_s, 3)},
            }
            rows.append(row)
            print(
                f"{rel}: {row['nodes']} nodes {row['edges']} edges | osmnx {ref['nodes']}/{ref['edges']} | "
                f"stgraph {row['stgraph_s']:.3f}s (no ctx {row['stgraph_noctx_s']:.3f}s) "
                f"osmnx {row['osmnx_s']:.3f}s -> {row['speedup']:.1f}x; same XML "
                f"{row['stgraph_same_s']:.3f}s -> {row['speedup_same']:.1f}x",
                flush=True,
            )
    info["loadavg_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    doc = {"benchmark": "road-graph build", "network": NETWORK, **info, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "build-bench.json", json.dumps(doc, indent=1) + "\n")
    atomic_write_text(args.out / "build-bench.md", _markdown(rows, info))
    print(f"wrote {args.out / 'build-bench.json'} and {args.out / 'build-bench.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
