"""Run every baseline model on one data set and protocol, in one run, on the same split.

    python experiments/baselines.py --dataset los-loop --protocol tgcn
    python experiments/baselines.py --dataset chickenpox --protocol pgt

Writes ``experiments/results/baselines-<dataset>-<protocol>.json`` (a list of rows: dataset,
protocol, model, horizon_steps, mae, rmse, mape, mse, plus minutes, epochs, parameters and
seconds) and a Markdown table beside it. Models and their options come from
``configs/baselines.yaml``; ``--models`` picks a subset, ``--set MODEL.train.epochs=5`` changes one.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from stgraph import datasets
from stgraph.train import get_protocol, load_config, metrics_table, train
from stgraph.utils.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(a)
    for k, v in (b or {}).items():
        out[k] = (
            _merge(out.get(k, {}), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
        )
    return out


def model_specs(
    config: Path, dataset: str, names: list[str] | None, overrides: list[str]
) -> dict[str, dict]:
    raw = yaml.safe_load(config.read_text()) or {}
    specs = {m: (s or {}) for m, s in raw.get("models", {}).items()}
    for m, s in (raw.get("datasets", {}).get(dataset) or {}).items():
        specs[m] = _merge(specs.get(m, {}), s)
    for item in overrides:
        key, value = item.split("=", 1)
        model, *path = key.split(".")
        node = specs.setdefault(model, {})
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = yaml.safe_load(value)
    if names:
        unknown = [n for n in names if n not in specs]
        if unknown:
            raise SystemExit(f"--models: {unknown} not in {config} (have {sorted(specs)})")
        specs = {n: specs[n] for n in names}
    return specs


def rows_of(result: dict[str, Any], dataset: str, protocol: str) -> list[dict[str, Any]]:
    interval = result.get("interval_s")
    rows = []
    for step, m in result["horizons"].items():
        rows.append(
            {
                "dataset": dataset,
                "protocol": protocol,
                "model": result["model"],
                "horizon_steps": int(step),
                "minutes": int(step) * interval / 60 if interval else None,
                **{k: m[k] for k in ("mae", "rmse", "mape", "mse")},
                "epochs": result.get("epochs"),
                "parameters": result.get("num_parameters"),
                "seconds": result.get("train_seconds"),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--protocol", required=True)
    ap.add_argument("--models", nargs="*", default=None, help="subset of the models in the config")
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "baselines.yaml")
    ap.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="MODEL.KEY=VALUE"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    ap.add_argument("--workdir", type=Path, default=REPO / "runs" / "baselines")
    ap.add_argument("--results", type=Path, default=REPO / "experiments" / "results")
    args = ap.parse_args(argv)

    protocol = get_protocol(args.protocol)
    graph = datasets.load(args.dataset)
    specs = model_specs(args.config, args.dataset, args.models, args.overrides)
    stem = f"baselines-{args.dataset}-{args.protocol}"
    all_rows: list[dict[str, Any]] = []
    results = []
    t0 = time.perf_counter()
    for name, spec in specs.items():
        run_dir = args.workdir / f"{args.dataset}-{args.protocol}-{name}"
        raw = {
            "seed": args.seed,
            "dataset": {"name": args.dataset},
            "protocol": {"name": args.protocol},
            "model": {
                "name": name,
                "options": spec.get("options", {}),
                **({"config": str(REPO / spec["config"])} if spec.get("config") else {}),
            },
            "train": {
                **spec.get("train", {}),
                **({"num_threads": args.threads} if args.threads else {}),
            },
            "output": {"dir": str(run_dir), "tensorboard": False, "progress": sys.stderr.isatty()},
        }
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        print(f"== {name}", flush=True)
        result = train(load_config(raw=raw), graph=graph).metrics
        results.append(result)
        all_rows += rows_of(result, args.dataset, args.protocol)
        print(metrics_table([result]).splitlines()[2], flush=True)

    args.results.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.results / f"{stem}.json", json.dumps(all_rows, indent=1) + "\n")
    command = " ".join(
        ["python experiments/baselines.py", *(argv if argv is not None else sys.argv[1:])]
    )
    md = [
        f"# Baselines on `{args.dataset}`, protocol `{args.protocol}`",
        "",
        f"Command: `{command}`"
        f" (seed {args.seed}, one run, {time.perf_counter() - t0:.0f} s on this machine).",
        "",
        metrics_table(results),
        "| model | parameters | epochs | seconds |",
        "|---|---|---|---|",
    ]
    md += [
        f"| {r['model']} | {r.get('num_parameters', 0)} | {r.get('epochs')} | {r.get('train_seconds')} |"
        for r in results
    ]
    atomic_write_text(args.results / f"{stem}.md", "\n".join(md) + "\n")
    print("\n" + metrics_table(results))
    print(f"wrote {args.results / (stem + '.json')} and .md")
    print(f"protocol: {json.dumps(protocol.describe())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
