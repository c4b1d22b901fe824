"""Speed of ``graph_builders.events.from_points`` on the 321,876 Chicago crimes (2016–2017).

    python experiments/events_bench.py            # $STGRAPH_DATA or ../shared/data

Cases (median of 3 runs each, the STGraph construction included):

* grid: the STHSL 3 km grid (14 x 12 cells), daily bins, 4 types — from a table whose times are
  already datetimes (no parsing), from the raw strings (time parsing inside), and from the zip
  file (CSV reading + time parsing + counting).
* road nodes: there is no Chicago OSM extract, so (a) synthetic lattices over Chicago's bbox at
  100 m (141,792 nodes, weekly bins: daily bins would make x 1.6 GB) and 250 m (22,950 nodes,
  daily bins) stand in for intersections, events taken to the nearest node within 200 m; and
  (b) the real Baltimore road graph (2,212 intersections) with the crimes moved by a fixed offset
  onto Baltimore, nearest node within 1 km.
* H3 resolution 8 (for reference).

Writes ``experiments/results/events-bench.json`` and ``events-bench.md``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from graph_builders import events
from stgraph.data import STGraph
from stgraph.utils.atomic import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results"
FORMAT = "%m/%d/%Y %I:%M:%S %p"
TYPES = ["THEFT", "BATTERY", "ASSAULT", "CRIMINAL DAMAGE"]
NAMES = ["time", "type", "latitude", "longitude"]


def _data_dir() -> Path:
    env = os.environ.get("STGRAPH_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def _median_time(fn, repeats: int = 3) -> tuple[float, list[float], object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, out


def _lattice(df: pd.DataFrame, spacing_m: float) -> STGraph:
    lat0, lat1 = df.latitude.min(), df.latitude.max()
    lon0, lon1 = df.longitude.min(), df.longitude.max()
    dlat = spacing_m / 111_195.0
    dlon = dlat / np.cos(np.radians((lat0 + lat1) / 2))
    la, lo = np.meshgrid(
        np.arange(lat0, lat1 + dlat, dlat), np.arange(lon0, lon1 + dlon, dlon), indexing="ij"
    )
    pos = np.stack([lo.ravel(), la.ravel()], 1)
    return STGraph(
        x=torch.zeros(len(pos), 0, 0),
        pos=torch.from_numpy(pos),
        meta={"city": f"lattice {spacing_m:g} m"},
    )


def main() -> None:
    data = _data_dir()
    path = data / "chicago-crime" / "CHI_Crime.zip"
    rows = []

    def record(case: str, fn, **extra) -> None:
        med, runs, g = _median_time(fn)
        rows.append(
            {
                "case": case,
                "events": int(g.meta["summary"]["events_in"]),
                "counted": int(g.meta["summary"]["counted"]),
                "nodes": g.num_nodes,
                "steps": g.num_steps,
                "median_s": round(med, 3),
                "runs_s": [round(r, 3) for r in runs],
                **extra,
            }
        )
        print(rows[-1], flush=True)

    raw = events.read_events(path, names=NAMES, header=0)  # the STHSL reading (321,876 events)
    parsed = raw.assign(time=pd.to_datetime(raw["time"], format=FORMAT))
    grid = events.Grid.sthsl(raw, km=3)
    kw = dict(types="type", categories=TYPES)
    record(
        "grid 3 km, parsed times",
        lambda: events.from_points(parsed, regions=grid, **kw),
        parsing="none",
    )
    record(
        "grid 3 km, time strings",
        lambda: events.from_points(raw, regions=grid, time_format=FORMAT, **kw),
        parsing="times",
    )
    record(
        "grid 3 km, from the zip",
        lambda: events.from_points(path, regions=grid, names=NAMES, time_format=FORMAT, **kw),
        parsing="csv + times",
    )
    for spacing, interval in ((100.0, "7D"), (250.0, "1D")):
        lattice = _lattice(raw, spacing)
        record(
            f"lattice {spacing:g} m, {interval}",
            lambda lattice=lattice, interval=interval: events.from_points(
                parsed, regions=lattice, interval=interval, max_dist_m=200.0, **kw
            ),
            parsing="none",
        )
        record(
            f"lattice {spacing:g} m, {interval}, time strings",
            lambda lattice=lattice, interval=interval: events.from_points(
                raw,
                regions=lattice,
                interval=interval,
                max_dist_m=200.0,
                time_format=FORMAT,
                **kw,
            ),
            parsing="times",
        )
        del lattice
    from graph_builders import osm

    road = osm.road_graph(data / "osm-baltimore" / "baltimore.osm.pbf", context=False)
    pos = road.pos.double().numpy()
    moved = parsed.assign(
        longitude=parsed.longitude + np.median(pos[:, 0]) - parsed.longitude.median(),
        latitude=parsed.latitude + np.median(pos[:, 1]) - parsed.latitude.median(),
    )
    record(
        "Baltimore road nodes (crimes moved), 1D",
        lambda: events.from_points(moved, regions=road, max_dist_m=1000.0, **kw),
        parsing="none",
    )
    record(
        "H3 resolution 8, 1D",
        lambda: events.from_points(parsed, regions=events.H3Cells(8), **kw),
        parsing="none",
    )

    doc = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared)",
        "torch_threads": torch.get_num_threads(),
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "events-bench.json", json.dumps(doc, indent=1))
    lines = [
        "# events.from_points speed (Chicago crimes 2016-17)",
        "",
        f"Machine: {doc['machine']}. Median of 3 runs; STGraph construction included.",
        "",
        "| case | parsing | events | counted | nodes | steps | median s |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['case']} | {r['parsing']} | {r['events']} | {r['counted']} | {r['nodes']} | "
        f"{r['steps']} | {r['median_s']:.2f} |"
        for r in rows
    ]
    atomic_write_text(RESULTS / "events-bench.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
