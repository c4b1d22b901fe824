"""``stgraph quickstart``: the mission in one run, on a city the shipped model never saw.

Steps, each the library call behind one CLI command (printed as it runs):

1. **build** the sensor graph of Melbourne's pedestrian counters from the raw UCTB file
   (``stgraph build --config configs/build/melbourne-pedestrian.yaml``; installed without the
   repository's configs, the registry's graph of the same file is saved instead);
2. **zero-shot**: load the shipped checkpoint (``stgraph-small``, whose card holds Melbourne out)
   and score it on the graph's test part with no gradient step, beside historical average and
   last value (``stgraph evaluate --checkpoint stgraph-small --graph DIR``);
3. **fine-tune** it briefly on the first day of the training part, and train the same
   architecture **from scratch** on the same day with the same schedule
   (``stgraph finetune --checkpoint stgraph-small --graph DIR --budget 1d``);
4. **predict** the 12 hours after the last observation to a parquet file
   (``stgraph predict --checkpoint RUN --graph DIR -o forecasts.parquet``);
5. print the table (zero-shot, fine-tuned, from scratch, historical average, last value) with the
   paths of the maps, the report and the parquet.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from stgraph.errors import DatasetNotFoundError
from stgraph.utils.atomic import atomic_write_text

DATASET = "melbourne-pedestrian"
CHECKPOINT = "stgraph-small"
BUILD_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "build" / f"{DATASET}.yaml"
BUDGET = "1d"
INPUT_STEPS, HORIZON = 12, 12
#: The short schedule of the fine-tuning and from-scratch runs (optimiser steps at most).
SCHEDULE = {"epochs": 4, "max_batches_per_epoch": 10, "patience": 2}


def run_quickstart(output: str | Path = "quickstart-output", *, epochs: int | None = None) -> int:
    """Run the quickstart into ``output``; returns the process exit code."""
    from stgraph import datasets

    output = Path(output)
    t0 = time.perf_counter()
    try:
        datasets.fetch(DATASET)
    except DatasetNotFoundError as exc:
        print(
            "stgraph quickstart: the real data set it builds on is not reachable.\n",
            file=sys.stderr,
        )
        print(str(exc), file=sys.stderr)
        return 1
    schedule = dict(SCHEDULE, epochs=max(1, epochs)) if epochs is not None else dict(SCHEDULE)
    graph_dir = _build(output)
    rows, maps = _zero_shot(graph_dir, output)
    tuned, scratch = _few_shot(graph_dir, output, schedule)
    rows = [rows[0], tuned, scratch, *rows[1:]]
    parquet = _predict(graph_dir, output, tuned["run_dir"])

    from stgraph.train import metrics_table

    table = metrics_table(rows)
    report = output / "report.md"
    text = [
        "# stgraph quickstart",
        "",
        f"Graph `{graph_dir}` (built from the raw Melbourne file), checkpoint `{CHECKPOINT}` "
        f"(never trained on Melbourne). Test part of a 70/10/20 chronological split, "
        f"{INPUT_STEPS} h in, {HORIZON} h out. Fine-tuned and from scratch: {tuned['budget']}, "
        f"at most {schedule['epochs']} x {schedule['max_batches_per_epoch']} batches.",
        "",
        table,
        "",
        "Maps: " + ", ".join(f"`{p}`" for p in maps),
        "",
        f"Forecasts: `{parquet}`",
    ]
    atomic_write_text(report, "\n".join(text) + "\n")
    print("\n" + table)
    for p in maps:
        print(f"map:       {p}")
    print(f"forecasts: {parquet}")
    print(f"report:    {report}")
    print(f"quickstart finished in {time.perf_counter() - t0:.0f} s")
    return 0


def _say(command: str) -> None:
    print(f"\n$ {command}", flush=True)


def _build(output: Path) -> Path:
    """The Melbourne sensor graph from the raw file (or the registry's, without the configs)."""
    out = output / "melbourne"
    if BUILD_CONFIG.is_file():
        try:
            from graph_builders.build import run_build
        except ImportError:
            run_build = None
        if run_build is not None:
            _say(
                f"stgraph build --config {BUILD_CONFIG.relative_to(BUILD_CONFIG.parents[2])} -o {out}"
            )
            return run_build(BUILD_CONFIG, output=out).graph_dir
    from stgraph import datasets

    print(
        f"\n(building needs the repository's configs and graph_builders: saving the registry's "
        f"{DATASET} graph instead)"
    )
    graph = datasets.load(DATASET)
    return graph.save(out / "graph")


def _zero_shot(graph_dir: Path, output: Path) -> tuple[list[dict[str, Any]], list[Path]]:
    from stgraph.data.io import load
    from stgraph.train.transfer import transfer_protocol, zero_shot

    _say(
        f"stgraph evaluate --checkpoint {CHECKPOINT} --graph {graph_dir} -o {output / 'zero-shot'}"
    )
    protocol = transfer_protocol(input_steps=INPUT_STEPS, horizon=HORIZON)
    out = output / "zero-shot"
    results = zero_shot(CHECKPOINT, load(graph_dir), dataset=DATASET, protocol=protocol, output=out)
    return results, sorted(out.glob("*.png"))


def _few_shot(graph_dir: Path, output: Path, schedule: dict) -> tuple[dict, dict]:
    from stgraph.pretrained import architecture_options
    from stgraph.train import load_config, train
    from stgraph.train.transfer import finetune_raw

    runs = {}
    _say(
        f"stgraph finetune --checkpoint {CHECKPOINT} --graph {graph_dir} --mode full "
        f"--budget {BUDGET} -o {output / 'finetuned'}"
    )
    raw = finetune_raw(
        CHECKPOINT,
        {"graph": str(graph_dir)},
        mode="full",
        budget=BUDGET,
        input_steps=INPUT_STEPS,
        horizon=HORIZON,
        output=str(output / "finetuned"),
    )
    raw["train"].update(schedule)
    raw["output"].update(tensorboard=False, progress=False)
    runs["finetuned"] = train(load_config(raw=raw))
    options = architecture_options(CHECKPOINT)
    _say(
        f"stgraph train --graph {graph_dir} (the same architecture from scratch, "
        f"train.budget={BUDGET}) -o {output / 'scratch'}"
    )
    scratch = {
        **raw,
        "model": {"name": "stfm", "options": options},
        "train": {**raw["train"], "budget": BUDGET, "lr": 1e-3},
        "output": {**raw["output"], "dir": str(output / "scratch")},
    }
    del scratch["finetune"]
    runs["scratch"] = train(load_config(raw=scratch))
    tuned = dict(runs["finetuned"].metrics, model="stfm fine-tuned (1 day)")
    tuned["run_dir"] = runs["finetuned"].run_dir
    tuned["budget"] = runs["finetuned"].metrics["finetune"]["budget"]
    return tuned, dict(runs["scratch"].metrics, model="stfm from scratch (1 day)")


def _predict(graph_dir: Path, output: Path, run_dir: Path) -> Path:
    from stgraph.data.io import load
    from stgraph.tasks.predict import forecast_table, write_forecasts
    from stgraph.train.transfer import load_forecaster

    path = output / "forecasts.parquet"
    _say(f"stgraph predict --checkpoint {run_dir} --graph {graph_dir} -o {path}")
    graph = load(graph_dir)
    model = load_forecaster(run_dir, graph, input_steps=INPUT_STEPS, horizon=HORIZON)
    table = forecast_table(model, graph, input_steps=INPUT_STEPS, horizon=HORIZON)
    write_forecasts(table, path)
    print(
        f"{len(table)} rows: {table['node'].nunique()} sensors x {HORIZON} steps, "
        f"{table['time'].min()} .. {table['time'].max()}"
    )
    return path
