"""Forward + backward time and peak memory of an STFM config against the number of nodes.

    python experiments/scaling.py                      # N = 1k, 10k, 50k, 100k, small config
    python experiments/scaling.py --nodes 1000 10000 --config configs/model/tiny.yaml

Each size runs in its own subprocess (so its peak RSS is its own), one after the other: random
coordinates in a square of constant density, an 8-nearest-neighbour proximity graph (Gaussian
kernel weights on distance, directed src -> dst), ``T = 12`` input steps, 12 predicted, batch 1,
one variable. The per-graph structure (random-walk encodings, KD coarsening) is computed once and
cached, as in training, and timed separately (``preprocess_seconds``). ``seconds`` is the median
forward + backward time over ``--repeats`` runs after one warm-up.

Allocator: with glibc's defaults every tensor above the (at most 32 MB) mmap threshold is a
fresh mapping, returned to the OS when freed and page-faulted in again, zero-filled, by the next
step. On this machine (small config before ``decoder_hops``) that took the 100k-node step from
13 s to 21-22 s (every operator slower by about the same factor) and the fitted exponent from
1.08 to 1.17-1.19. ``--allocator keep`` (the default) runs each size with
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` raised, so freed memory is reused, the
effect PyTorch's CPU performance guide gets from jemalloc or tcmalloc; export the same two
variables to train on large graphs. ``--allocator default`` measures glibc as it comes.

Writes ``experiments/results/scaling.json`` (``nodes``, ``seconds``, ``peak_mb``, ``exponent``
-- the slope of log time against log N -- plus the settings) and ``scaling.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: glibc malloc settings of ``--allocator keep``: no per-tensor mmap, no trimming of freed memory.
KEEP_FREED_MEMORY = {"MALLOC_MMAP_THRESHOLD_": str(2**34), "MALLOC_TRIM_THRESHOLD_": str(2**36)}


def _graph(n: int, seed: int = 0):
    import numpy as np
    import torch
    from scipy.spatial import cKDTree

    from stgraph.data import STGraph

    rng = np.random.default_rng(seed)
    side = np.sqrt(n) * 500.0  # metres: one node per 500 m x 500 m on average
    xy = rng.random((n, 2)) * side
    dist, nb = cKDTree(xy).query(xy, k=9)
    src, dst = nb[:, 1:].reshape(-1), np.repeat(np.arange(n), 8)
    d = dist[:, 1:].reshape(-1)
    w = np.exp(-((d / d.std()) ** 2))
    steps = 24
    t = np.arange(steps)
    x = 50 + 10 * np.sin(2 * np.pi * t / 288)[None, :, None] + rng.normal(size=(n, steps, 1))
    return STGraph(
        x=torch.tensor(x, dtype=torch.float32),
        time=1330560000 + 300 * torch.arange(steps),
        pos=torch.tensor(xy, dtype=torch.float32),
        edge_index=torch.tensor(np.stack([src, dst])),
        edge_weight=torch.tensor(w, dtype=torch.float32),
        meta={"variables": [{"name": "speed", "unit": "mph"}], "interval": 300, "crs": "EPSG:3857"},
    )


def measure(n: int, config: Path, repeats: int) -> dict:
    """Time one size in this process; returns its row."""
    import torch
    import yaml

    from stgraph.data import SlidingWindows
    from stgraph.tasks import build_model

    torch.manual_seed(0)
    g = _graph(n)
    opts = yaml.safe_load(config.read_text())
    model = build_model("stfm", input_steps=12, horizon=12, num_variables=1, **opts)
    t = time.perf_counter()
    g = model.backbone.transform(g)  # the structure, once per graph (meta crs EPSG:3857)
    pre = time.perf_counter() - t
    from torch_geometric.loader import DataLoader

    batch = next(iter(DataLoader(SlidingWindows(g, 12, 12), batch_size=1)))
    times = []
    for i in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        t = time.perf_counter()
        pred = model(batch)
        loss = (pred - batch.y).abs().mean()
        loss.backward()
        if i:  # the first run warms caches (batch structure, allocator)
            times.append(time.perf_counter() - t)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "nodes": n,
        "seconds": statistics.median(times),
        "all_seconds": times,
        "peak_mb": peak_kb / 1024,
        "preprocess_seconds": pre,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def _fit_exponent(nodes: list[int], seconds: list[float]) -> float:
    import numpy as np

    return float(np.polyfit(np.log(nodes), np.log(seconds), 1)[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, nargs="+", default=[1000, 10000, 50000, 100000])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "model" / "small.yaml")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "experiments" / "results" / "scaling.json")
    ap.add_argument(
        "--allocator",
        choices=["keep", "default"],
        default="keep",
        help="keep: glibc reuses freed memory (see the module docstring); default: as it comes",
    )
    ap.add_argument("--single", type=int, help=argparse.SUPPRESS)  # child mode: one size
    args = ap.parse_args(argv)
    if args.single:
        print(json.dumps(measure(args.single, args.config, args.repeats)))
        return 0
    rows = []
    for n in sorted(args.nodes):
        cmd = [
            sys.executable,
            __file__,
            "--single",
            str(n),
            "--config",
            str(args.config),
            "--repeats",
            str(args.repeats),
        ]
        env = {**os.environ, **(KEEP_FREED_MEMORY if args.allocator == "keep" else {})}
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"scaling: the run with N = {n} failed (exit {proc.returncode})")
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"N={n}: {row['seconds']:.2f} s forward+backward, peak RSS {row['peak_mb']:.0f} MB, "
            f"structure {row['preprocess_seconds']:.1f} s",
            flush=True,
        )
        rows.append(row)
    nodes = [r["nodes"] for r in rows]
    seconds = [r["seconds"] for r in rows]
    result = {
        "nodes": nodes,
        "seconds": seconds,
        "peak_mb": [r["peak_mb"] for r in rows],
        "exponent": _fit_exponent(nodes, seconds) if len(rows) > 1 else None,
        "preprocess_seconds": [r["preprocess_seconds"] for r in rows],
        "config": str(
            args.config.relative_to(REPO) if args.config.is_relative_to(REPO) else args.config
        ),
        "parameters": rows[0]["parameters"] if rows else None,
        "setup": "T=12 in, 12 out, batch 1, 1 variable, 8-NN proximity graph on random coordinates; "
        "seconds = median forward+backward after one warm-up; peak_mb = peak RSS of a "
        "fresh process per size (includes Python, torch and the data)",
        "allocator": (
            f"glibc malloc with {KEEP_FREED_MEMORY}"
            if args.allocator == "keep"
            else "glibc malloc defaults"
        ),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.2f} at the end, torch threads default",
    }
    from stgraph.utils.atomic import atomic_write_text

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    md = [
        "# STFM scaling (forward + backward, CPU)",
        "",
        result["setup"],
        "",
        f"Config `{result['config']}` ({result['parameters']} parameters); fitted exponent "
        f"of time vs N: **{result['exponent']:.3f}**"
        if result["exponent"] is not None
        else "",
        "",
        "| nodes | seconds | peak RSS (MB) | structure precompute (s, once per graph) |",
        "|---|---|---|---|",
    ]
    md += [
        f"| {r['nodes']:,} | {r['seconds']:.2f} | {r['peak_mb']:.0f} | {r['preprocess_seconds']:.1f} |"
        for r in rows
    ]
    md += ["", f"Machine: {result['machine']}. Allocator: {result['allocator']}."]
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(md) + "\n")
    print(json.dumps({k: result[k] for k in ("nodes", "seconds", "peak_mb", "exponent")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
