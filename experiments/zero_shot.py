"""Zero-shot figures of a pretrained checkpoint on its held-out cases (no gradient step).

    python experiments/zero_shot.py --checkpoint stgraph-small

Each case is a registry data set, or half of one (``los-loop:west``: the sensors west of the median
longitude, held out of the corpus). Runs :func:`stgraph.train.transfer.zero_shot` (the same as
``stgraph evaluate --checkpoint CKPT --dataset NAME``) with historical average and last value on
the same windows, and writes ``experiments/results/zero-shot-<checkpoint>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from stgraph import datasets
from stgraph.tasks.corpus import node_half
from stgraph.train.reports import metrics_table
from stgraph.train.transfer import transfer_protocol, zero_shot
from stgraph.utils.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--checkpoint", default="stgraph-small")
    ap.add_argument("--cases", nargs="*", default=["los-loop:west", "melbourne-pedestrian"])
    ap.add_argument("--input-steps", type=int, default=12)
    ap.add_argument("--horizon", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=REPO / "runs" / "zero-shot")
    ap.add_argument("--results", type=Path, default=REPO / "experiments" / "results")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    protocol = transfer_protocol(input_steps=args.input_steps, horizon=args.horizon)
    t0 = time.perf_counter()
    rows, md = [], []
    for case in args.cases:
        name, _, half = case.partition(":")
        graph = datasets.load(name)
        if half:
            graph = graph.select_nodes(torch.nonzero(node_half(graph, half)).view(-1))
        label = f"{name}[{half}]" if half else name
        results = zero_shot(
            args.checkpoint, graph, dataset=label, protocol=protocol, output=args.workdir / label
        )
        for r in results:
            rows += [
                {
                    "dataset": label,
                    "model": r["model"],
                    "horizon_steps": int(s),
                    "mae": v["mae"],
                    "rmse": v["rmse"],
                    "nodes": graph.num_nodes,
                }
                for s, v in r["horizons"].items()
            ]
        md += [f"## {label} ({graph.num_nodes} nodes)", "", metrics_table(results)]
    stem = f"zero-shot-{Path(args.checkpoint).name}"
    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results / f"{stem}.json", json.dumps(rows, indent=1) + "\n")
    command = " ".join(["python experiments/zero_shot.py", *(argv or sys.argv[1:])])
    head = [
        f"# Zero-shot: `{args.checkpoint}` on its held-out cases",
        "",
        f"Command: `{command}` ({time.perf_counter() - t0:.0f} s on this machine). No "
        "gradient step on any target; baselines fitted on each target's training part.",
        "",
    ]
    atomic_write_text(args.results / f"{stem}.md", "\n".join(head + md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
