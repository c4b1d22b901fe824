"""Training and inference throughput of our small STFM against tsl's Graph WaveNet, same run.

    pip install -e .[bench]     # torch-spatiotemporal (tsl); see the error message below
    python experiments/peer_speed.py

Setting (the issue's): N = 207 nodes (the METR-LA / Los-loop sensor graph when the data folder
is available, else an 8-NN graph on 207 random points), batch 64, 12 -> 12 steps, 2 input
features. Graph WaveNet (Wu et al., IJCAI 2019; ``tsl.nn.models.GraphWaveNetModel``, tsl's
defaults) gets the features as channels ``[b, t, n, 2]`` and predicts 1; STFM gets them as two
named variables and predicts both (strictly more output work). Both train with Adam on MAE.
``*_train_samples_s`` = windows per second of forward + backward + optimiser step;
``*_infer_samples_s`` = windows per second of ``no_grad`` forward. Median over ``--steps`` after
``--warmup`` steps, models interleaved so that load from other processes hits both alike.

Writes ``experiments/results/peer-speed.json`` (peer, ours_params, peer_params,
ours_train_samples_s, peer_train_samples_s, ours_infer_samples_s, peer_infer_samples_s, ...)
and ``peer-speed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]

TSL_MISSING = """experiments/peer_speed.py needs tsl (torch-spatiotemporal), which needs torch-scatter
and torch-sparse compiled against the installed torch:

    PIP_CONSTRAINT=.venv/torch-constraint.txt .venv/bin/pip install --no-build-isolation torch-scatter torch-sparse
    PIP_CONSTRAINT=.venv/torch-constraint.txt .venv/bin/pip install torch-spatiotemporal

(or `pip install -e .[bench]` after the first line). Import error: {err}"""


def _graph(num_nodes: int, data_dir: Path | None):
    """Edge index/weight and positions of the benchmark graph (real METR-LA sensors if present)."""
    import pandas as pd
    from scipy.spatial import cKDTree

    loc_file = data_dir / "metr-la-graph" / "graph_sensor_locations.csv" if data_dir else None
    if loc_file is not None and loc_file.is_file() and num_nodes == 207:
        loc = pd.read_csv(loc_file)
        pos = loc[["longitude", "latitude"]].to_numpy()
        source = "METR-LA sensor locations, 8-NN"
    else:
        pos = np.random.default_rng(0).random((num_nodes, 2)) * [0.5, 0.3] + [-118.5, 34.0]
        source = "random coordinates, 8-NN"
    dist, nb = cKDTree(pos).query(pos, k=9)
    src, dst = nb[:, 1:].reshape(-1), np.repeat(np.arange(num_nodes), 8)
    d = dist[:, 1:].reshape(-1)
    w = np.exp(-((d / d.std()) ** 2))
    return (
        torch.tensor(np.stack([src, dst])),
        torch.tensor(w, dtype=torch.float32),
        torch.tensor(pos, dtype=torch.float32),
        source,
    )


def _ours_batch(edge_index, edge_weight, pos, n: int, batch: int, steps: int, horizon: int):
    from torch_geometric.loader import DataLoader

    from stgraph.data import SlidingWindows, STGraph

    t = batch + steps + horizon
    g = torch.Generator().manual_seed(0)
    x = 50 + 10 * torch.randn(n, t, 2, generator=g)
    graph = STGraph(
        x=x,
        time=1330560000 + 300 * torch.arange(t),
        pos=pos.double(),
        edge_index=edge_index,
        edge_weight=edge_weight,
        meta={
            "variables": [{"name": "speed", "unit": "mph"}, {"name": "time_of_day", "unit": ""}],
            "interval": 300,
        },
    )
    return next(iter(DataLoader(SlidingWindows(graph, steps, horizon), batch_size=batch)))


def _time(fn, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(steps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def _versions() -> str:
    import torch_geometric
    import tsl

    return f"torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, tsl {tsl.__version__}"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "model" / "small.yaml")
    ap.add_argument("--nodes", type=int, default=207)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument(
        "--ours-only",
        action="store_true",
        help="measure STFM alone (no tsl needed); prints, writes nothing",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for both models (default: torch's choice)",
    )
    ap.add_argument(
        "--out", type=Path, default=REPO / "experiments" / "results" / "peer-speed.json"
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    gwn_cls = None
    if not args.ours_only:
        try:
            from tsl.nn.models import GraphWaveNetModel as gwn_cls
        except ImportError as err:
            raise SystemExit(TSL_MISSING.format(err=err)) from err

    from stgraph.tasks import build_model

    if args.threads:
        torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    torch.manual_seed(0)
    env = os.environ.get("STGRAPH_DATA")
    data_dir = Path(env) if env else (REPO.parent / "shared" / "data")
    ei, ew, pos, source = _graph(args.nodes, data_dir if data_dir.is_dir() else None)
    steps, horizon, n, bsz = 12, 12, args.nodes, args.batch

    opts = yaml.safe_load(args.config.read_text())
    ours = build_model("stfm", input_steps=steps, horizon=horizon, num_variables=2, **opts)
    batch = ours.backbone.with_structure(_ours_batch(ei, ew, pos, n, bsz, steps, horizon))
    opt = torch.optim.Adam(ours.parameters(), lr=1e-3)

    def ours_train():
        ours.train()
        loss = (ours(batch) - batch.y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    def ours_infer():
        ours.eval()
        with torch.no_grad():
            ours(batch)

    rows = {"ours_params": sum(p.numel() for p in ours.parameters())}
    peer_fns = None
    if gwn_cls is not None:
        peer = gwn_cls(input_size=2, output_size=1, horizon=horizon, n_nodes=n)
        popt = torch.optim.Adam(peer.parameters(), lr=1e-3)
        px = batch.x.view(bsz, n, steps, 2).transpose(1, 2).contiguous()  # [b, t, n, f]
        py = batch.y[..., :1].view(bsz, n, horizon, 1).transpose(1, 2).contiguous()
        pei, pew = ei, ew

        def peer_train():
            peer.train()
            loss = (peer(px, pei, pew) - py).abs().mean()
            popt.zero_grad()
            loss.backward()
            popt.step()

        def peer_infer():
            peer.eval()
            with torch.no_grad():
                peer(px, pei, pew)

        peer_fns = (peer_train, peer_infer)
        rows["peer_params"] = sum(p.numel() for p in peer.parameters())

    # interleave the measurements so that background load affects both models alike
    ours_tr, ours_inf, peer_tr, peer_inf = [], [], [], []
    for _ in range(args.steps):
        ours_tr.append(_time(ours_train, args.warmup if not ours_tr else 0, 1))
        ours_inf.append(_time(ours_infer, args.warmup if not ours_inf else 0, 1))
        if peer_fns:
            peer_tr.append(_time(peer_fns[0], args.warmup if not peer_tr else 0, 1))
            peer_inf.append(_time(peer_fns[1], args.warmup if not peer_inf else 0, 1))
    rows["ours_train_samples_s"] = bsz / statistics.median(ours_tr)
    rows["ours_infer_samples_s"] = bsz / statistics.median(ours_inf)
    if not peer_fns:
        print(json.dumps(rows, indent=2))
        return 0
    rows["peer_train_samples_s"] = bsz / statistics.median(peer_tr)
    rows["peer_infer_samples_s"] = bsz / statistics.median(peer_inf)
    result = {
        "peer": "tsl GraphWaveNetModel (defaults)",
        **rows,
        "train_speedup": rows["ours_train_samples_s"] / rows["peer_train_samples_s"],
        "setting": f"N={n} ({source}), batch {bsz}, {steps} -> {horizon} steps, 2 input features, "
        f"Adam + MAE, median of {args.steps} steps after {args.warmup} warm-up, CPU "
        f"({os.cpu_count()} cores)",
        "config": str(args.config),
        "threads": torch.get_num_threads(),
        "loadavg_start": round(load_start, 2),
        "loadavg_end": round(os.getloadavg()[0], 2),
        "versions": _versions(),
    }
    _write_report(args, rows, result)
    print(json.dumps(result, indent=2))
    return 0


def _write_report(args: argparse.Namespace, rows: dict, result: dict) -> None:
    """``--out`` (JSON) and the Markdown table beside it."""
    from stgraph.utils.atomic import atomic_write_text

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    md = [
        "# Throughput: STFM small vs tsl Graph WaveNet",
        "",
        result["setting"],
        "",
        "| model | parameters | train samples/s | inference samples/s |",
        "|---|---|---|---|",
        f"| STFM ({args.config.name}) | {rows['ours_params']:,} | {rows['ours_train_samples_s']:.1f} "
        f"| {rows['ours_infer_samples_s']:.1f} |",
        f"| Graph WaveNet (tsl) | {rows['peer_params']:,} | {rows['peer_train_samples_s']:.1f} "
        f"| {rows['peer_infer_samples_s']:.1f} |",
        "",
        f"Training speed-up: {result['train_speedup']:.2f}x. Torch threads {result['threads']}, "
        f"load average {result['loadavg_start']} at start, {result['loadavg_end']} at end; "
        f"{result['versions']}.",
        "",
        "Command: `python experiments/peer_speed.py"
        + (f" --threads {args.threads}" if args.threads else "")
        + f" --steps {args.steps}`.",
    ]
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(md) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
