"""The generalization report: zero-shot, few-shot, domain, temporal and scale transfer, measured.

    python experiments/generalization.py --fold-a runs/fold-a --fold-b runs/fold-b \
        --sections zero_shot few_shot temporal scale domain los_loop

Every cell comes with its protocol and the baselines of the same run (historical average and last
value fitted on each target's training part, on the same windows). The folds are pretraining runs
of ``stgraph pretrain`` (``configs/pretrain/small.yaml`` is fold A and the shipped checkpoint,
``configs/pretrain/fold-b.yaml`` fold B); their held-out cases are read from the run's own
``config.yaml``, so a case can only be scored by a checkpoint that never drew from it.

Sections (each cached in ``<workdir>/<section>.json``; the report is assembled from what is there):

* ``zero_shot``: every held-out case of both folds, no gradient step; ``supervised_mae`` is the
  same architecture trained from scratch on the case's whole training part, and
  ``reference_persistence_mae`` the parameter-free forecast the model starts from
  (:class:`~stgraph.baselines.ReferencePersistence`).
* ``few_shot``: fine-tuning on the first day of the training part (a span that holds the
  windows for coarser data: 4 weeks of daily data, 30 weeks of weekly data) and on its first 10%,
  against the same architecture trained from scratch on the same steps only.
* ``temporal``: Melbourne trained through 2021 and tested on 2022, Chicago 2016 -> 2017, with
  errors by local hour of day and weekday vs weekend.
* ``scale``: the same weights on Los-loop (west) averaged to 5, 15 and 60 minutes, and on the
  ERA5 and Chicago crime grids coarsened by 1, 2 and 4 cells a side.
* ``domain``: short pretraining runs of fold A's corpus without one domain at a time (see
  ``--domain-runs``) against the full corpus at the same schedule, on every set.
* ``los_loop``: Los-loop, ``tgcn-val``: fold A fine-tuned on the whole training part against the
  from-scratch STFM, in the same run.

Writes ``experiments/results/generalization.json`` (one list of rows per section) and
``experiments/results/generalization.md``; per-node error maps (zero-shot against supervised)
under ``experiments/results/generalization/``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch_geometric.loader import DataLoader

from stgraph.data.stgraph import STGraph
from stgraph.pretrained import architecture_options
from stgraph.tasks.corpus import SourceSpec, node_half, parse_source
from stgraph.tasks.registry import build_model
from stgraph.train import load_config, train
from stgraph.train.transfer import (
    TRANSFER_BASELINES,
    finetune_raw,
    plot_node_maps,
    transfer_protocol,
    zero_shot,
)
from stgraph.utils.atomic import atomic_write_text
from stgraph.utils.grid import grid_edges

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"
SECTIONS = ("supervised", "zero_shot", "few_shot", "temporal", "scale", "domain", "los_loop")
#: Horizons of the default protocol's table (12 steps in, 12 out).
REPORT_STEPS = (3, 6, 12)
#: Every DOMAIN_STRIDE-th test window in the domain ablations (13 sets x 4 runs).
DOMAIN_STRIDE = 6
#: Schedules, in optimiser steps at most: stated in the report.
SUPERVISED = {"epochs": 10, "max_batches_per_epoch": 50, "lr": 1e-3, "patience": 3}
FEW_SHOT = {"epochs": 4, "max_batches_per_epoch": 20, "lr": 5e-4, "patience": 2}


# ------------------------------------------------------------------ cases
def case_label(spec: SourceSpec) -> str:
    return spec.name


def load_case(spec: SourceSpec) -> STGraph:
    from stgraph import datasets

    graph = datasets.load(spec.dataset, **spec.options) if spec.dataset else None
    if graph is None:
        from stgraph.data.io import load

        graph = load(spec.graph)
    if spec.nodes is not None:
        graph = graph.select_nodes(torch.nonzero(node_half(graph, spec.nodes)).view(-1))
    return graph


def held_out(run_dir: Path) -> list[SourceSpec]:
    """The held-out entries of a pretraining run (its ``config.yaml``)."""
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    return [
        parse_source(s, f"corpus.held_out[{i}]")
        for i, s in enumerate(cfg["corpus"].get("held_out") or [])
    ]


def corpus_sources(run_dir: Path) -> list[SourceSpec]:
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    return [parse_source(s, f"corpus.sources[{i}]") for i, s in enumerate(cfg["corpus"]["sources"])]


def graph_dir(workdir: Path, label: str, graph: STGraph) -> Path:
    """The case saved as a graph directory (what ``stgraph build`` writes), once."""
    d = workdir / "graphs" / label.replace("[", "-").replace("]", "")
    if not (d / "meta.json").is_file():
        graph.save(d)
    return d


def short_budget(graph: STGraph) -> str:
    """One day of sub-daily data; 4 weeks of daily data; 30 weeks of weekly data (a day of those
    holds no 12 + 12 window)."""
    interval = graph.interval or 0
    if interval and interval < 86_400:
        return "1d"
    return "4w" if interval <= 86_400 else "30w"


def lengths(graph: STGraph) -> tuple[int, int]:
    """12 steps in, 12 out; 4 in and 2 out for a series too short for that (PedalMe: 35 weeks,
    whose 3-week validation part holds no longer horizon)."""
    return (12, 12) if graph.num_steps >= 120 else (4, 2)


def case_protocol(graph: STGraph):
    length, horizon = lengths(graph)
    return transfer_protocol(input_steps=length, horizon=horizon)


def protocol_overrides(graph: STGraph) -> dict:
    p = case_protocol(graph)
    return {
        "input_steps": p.input_steps,
        "horizon": p.horizon,
        "report_steps": list(p.report_steps),
    }


def horizon_rows(results: list[dict], label: str, extra: dict | None = None) -> list[dict]:
    rows = []
    for r in results:
        for s, v in r["horizons"].items():
            rows.append(
                {
                    "dataset": label,
                    "model": r["model"],
                    "horizon_steps": int(s),
                    **v,
                    **(extra or {}),
                }
            )
    return rows


def mae_at(result: dict, step: int) -> float:
    return float(result["horizons"][str(step)]["mae"])


# ------------------------------------------------------------------ training runs
def scratch_options(checkpoint: Path) -> dict[str, Any]:
    """The pretrained architecture's options, without the pretraining-only readout."""
    return architecture_options(checkpoint)


def run_training(raw: dict, out: Path, schedule: dict, threads: int) -> dict:
    raw = dict(raw)
    raw["train"] = {
        **raw.get("train", {}),
        **schedule,
        "batch_size": 32,
        "loss": "huber",
        "ema_decay": None,
        "num_threads": threads,
    }
    raw["output"] = {"dir": str(out), "tensorboard": False, "progress": False}
    cfg = load_config(raw=raw)
    return train(cfg).metrics


def supervised(
    graph: STGraph,
    graph_path: Path,
    checkpoint: Path,
    out: Path,
    threads: int,
    budget: str | None = None,
    overrides: dict | None = None,
) -> dict:
    """The same architecture trained from scratch (on the budget's steps only, with one)."""
    raw = {
        "seed": 0,
        "dataset": {"graph": str(graph_path)},
        "model": {"name": "stfm", "options": scratch_options(checkpoint)},
        "protocol": {"name": "default", "overrides": overrides or protocol_overrides(graph)},
        "train": {"budget": budget} if budget else {},
    }
    return run_training(raw, out, SUPERVISED if budget is None else FEW_SHOT, threads)


def finetuned(
    graph: STGraph,
    graph_path: Path,
    checkpoint: Path,
    out: Path,
    threads: int,
    *,
    mode: str,
    budget: str | None,
) -> dict:
    length, horizon = lengths(graph)
    raw = finetune_raw(
        str(checkpoint),
        {"graph": str(graph_path)},
        mode=mode,
        budget=budget,
        output=str(out),
        input_steps=length,
        horizon=horizon,
    )
    return run_training(raw, out, FEW_SHOT if budget else SUPERVISED, threads)


def section_supervised(args, folds: dict[str, Path]) -> dict:
    """The from-scratch models of every held-out case (cached for the other sections)."""
    rows = []
    for fold, run in folds.items():
        for spec in held_out(run):
            label = case_label(spec)
            graph = load_case(spec)
            gdir = graph_dir(args.workdir, label, graph)
            sup = supervised(graph, gdir, run, args.workdir / "supervised" / label, args.threads)
            rows += horizon_rows([sup], label, {"fold": fold, "epochs": sup.get("epochs")})
            print(f"supervised {label}: done", flush=True)
    return {"rows": rows}


# ------------------------------------------------------------------ sections
def section_zero_shot(args, folds: dict[str, Path]) -> dict:
    rows, maps = [], {}
    for fold, run in folds.items():
        for spec in held_out(run):
            label = case_label(spec)
            graph = load_case(spec)
            protocol = case_protocol(graph)
            out = args.workdir / "zero_shot" / fold / label
            results = zero_shot(
                run,
                graph,
                dataset=label,
                protocol=protocol,
                output=out,
                baselines=(*TRANSFER_BASELINES, "reference_persistence"),
            )
            gdir = graph_dir(args.workdir, label, graph)
            sup = supervised(graph, gdir, run, args.workdir / "supervised" / label, args.threads)
            sup["model"] = "stfm supervised"
            by = {r["model"]: r for r in results}
            for step in sorted(int(k) for k in sup["horizons"]):
                rows.append(
                    {
                        "fold": fold,
                        "dataset": label,
                        "nodes": graph.num_nodes,
                        "units": sup["protocol"]["units"],
                        "horizon_steps": step,
                        "model_mae": mae_at(by["stfm zero-shot"], step),
                        "model_rmse": float(by["stfm zero-shot"]["horizons"][str(step)]["rmse"]),
                        "historical_average_mae": mae_at(by["historical_average"], step),
                        "last_value_mae": mae_at(by["last_value"], step),
                        "reference_persistence_mae": mae_at(by["reference_persistence"], step),
                        "supervised_mae": mae_at(sup, step),
                    }
                )
            map_dir = RESULTS / "generalization" / label.replace("[", "-").replace("]", "")
            map_dir.mkdir(parents=True, exist_ok=True)
            maps[label] = [
                str(p.relative_to(REPO))
                for p in plot_node_maps([by["stfm zero-shot"], sup], graph, map_dir)
            ]
            print(f"zero-shot {fold} {label}: done", flush=True)
    return {"rows": rows, "maps": maps, "protocol": transfer_protocol().description}


def section_few_shot(args, folds: dict[str, Path]) -> dict:
    rows = []
    sup_rows = _load_section(args, "zero_shot").get("rows", [])
    for fold, run in folds.items():
        for spec in held_out(run):
            label = case_label(spec)
            graph = load_case(spec)
            gdir = graph_dir(args.workdir, label, graph)
            sup = {
                r["horizon_steps"]: r["supervised_mae"] for r in sup_rows if r["dataset"] == label
            }
            for budget in [short_budget(graph) if b == "short" else b for b in args.budgets]:
                tag = budget.replace("%", "pct")
                try:
                    ft = finetuned(
                        graph,
                        gdir,
                        run,
                        args.workdir / "few_shot" / fold / label / f"full-{tag}",
                        args.threads,
                        mode="full",
                        budget=budget,
                    )
                    sc = supervised(
                        graph,
                        gdir,
                        run,
                        args.workdir / "few_shot" / label / f"scratch-{tag}",
                        args.threads,
                        budget=budget,
                    )
                except Exception as exc:  # a budget too short for this set: say so in the report
                    rows.append(
                        {"fold": fold, "dataset": label, "budget": budget, "error": str(exc)}
                    )
                    continue
                for step in sorted(int(k) for k in ft["horizons"]):
                    rows.append(
                        {
                            "fold": fold,
                            "dataset": label,
                            "budget": budget,
                            "budget_words": ft["finetune"]["budget"],
                            "mode": "full",
                            "horizon_steps": step,
                            "finetuned_mae": mae_at(ft, step),
                            "scratch_mae": mae_at(sc, step),
                            "supervised_mae": sup.get(step),
                        }
                    )
                print(f"few-shot {label} {budget}: done", flush=True)
    return {"rows": rows}


def errors_by_time(model, windows, tz: str | None) -> dict[str, list]:
    """MAE of ``model`` over ``windows`` by local hour of day of the target and weekday/weekend."""
    from stgraph.tasks.forecast import ForecastTask

    task = ForecastTask(windows.horizon)
    err_h, cnt_h = np.zeros(24), np.zeros(24)
    err_w, cnt_w = np.zeros(2), np.zeros(2)
    model.eval()
    with torch.no_grad():
        for batch in DataLoader(windows, batch_size=64):
            pred = task.predict(model, batch)
            e = ((pred - batch.y).abs() * batch.y_mask).sum(-1)  # [B*N, H]
            c = batch.y_mask.sum(-1).double()
            t = batch.y_time.view(batch.num_graphs, -1)[batch.batch]  # [B*N, H]
            stamps = pd.to_datetime(t.reshape(-1).numpy(), unit="s", utc=True)
            if tz:
                stamps = stamps.tz_convert(tz)
            hour = np.asarray(stamps.hour).reshape(t.shape)
            weekend = (np.asarray(stamps.dayofweek) >= 5).reshape(t.shape).astype(int)
            np.add.at(err_h, hour, e.double().numpy())
            np.add.at(cnt_h, hour, c.numpy())
            np.add.at(err_w, weekend, e.double().numpy())
            np.add.at(cnt_w, weekend, c.numpy())
    by_hour = [float(a / b) if b else None for a, b in zip(err_h, cnt_h, strict=True)]
    week = [float(a / b) if b else None for a, b in zip(err_w, cnt_w, strict=True)]
    return {"by_hour": by_hour, "weekday": week[0], "weekend": week[1]}


def section_temporal(args, folds: dict[str, Path]) -> dict:
    from stgraph.train.transfer import load_forecaster

    run = folds["A"]
    rows = []
    cases = [("melbourne-pedestrian", "2022-01-01"), ("chicago-crime", "2017-01-01")]
    for name, test_from in cases:
        graph = load_case(parse_source({"dataset": name}, "case"))
        start = pd.Timestamp(test_from).value // 10**9
        t_test = int(torch.searchsorted(graph.time, torch.tensor(start)))
        t_val = int(0.9 * t_test)
        r = (t_val / graph.num_steps, (t_test - t_val) / graph.num_steps)
        ratios = (r[0], r[1], 1 - r[0] - r[1])
        protocol = transfer_protocol(ratios=ratios)
        label = f"{name} {pd.Timestamp(int(graph.time[0]), unit='s'):%Y}->{test_from[:4]}"
        out = args.workdir / "temporal" / name
        results = zero_shot(run, graph, dataset=label, protocol=protocol, output=out)
        gdir = graph_dir(args.workdir, name, graph)
        sup = supervised(
            graph,
            gdir,
            run,
            out / "supervised",
            args.threads,
            overrides={**protocol_overrides(graph), "ratios": list(ratios)},
        )
        split, windows = protocol.windows(graph)
        tz = (graph.meta or {}).get("timezone")
        models = {"stfm zero-shot": load_forecaster(run, graph, input_steps=12, horizon=12)}
        for b in ("historical_average", "last_value"):
            models[b] = build_model(
                b, input_steps=12, horizon=12, num_variables=graph.num_variables
            ).fit(graph, split.train)
        models["stfm supervised"] = load_forecaster(
            out / "supervised", graph, input_steps=12, horizon=12
        )
        by = {r["model"]: r for r in results}
        by["stfm supervised"] = sup
        for mname, m in models.items():
            prof = errors_by_time(m, windows["test"], tz)
            rows.append(
                {
                    "dataset": label,
                    "model": mname,
                    "train_through": f"{pd.Timestamp(int(graph.time[t_val - 1]), unit='s'):%Y-%m-%d}",
                    "test_from": test_from,
                    "mae_avg": float(by[mname]["average"]["mae"]) if mname in by else None,
                    **{f"mae@{s}": mae_at(by[mname], s) for s in REPORT_STEPS if mname in by},
                    **prof,
                }
            )
        print(f"temporal {label}: done", flush=True)
    return {"rows": rows}


def resample(graph: STGraph, factor: int) -> STGraph:
    """``factor`` consecutive steps averaged into one (observed values only)."""
    if factor == 1:
        return graph
    t = graph.num_steps // factor * factor
    x = graph.x[:, :t].reshape(graph.num_nodes, -1, factor, graph.num_variables)
    m = graph.mask[:, :t].reshape(graph.num_nodes, -1, factor, graph.num_variables)
    count = m.sum(2)
    mean = (x * m).sum(2) / count.clamp_min(1)
    meta = dict(graph.meta)
    meta["interval"] = int(graph.interval) * factor
    return STGraph(
        x=mean,
        mask=count > 0,
        time=graph.time[:t:factor],
        pos=graph.pos,
        edge_index=graph.edge_index,
        edge_weight=graph.edge_weight,
        meta=meta,
    )


def coarsen(graph: STGraph, factor: int, *, total: bool) -> STGraph:
    """Grid cells merged ``factor x factor`` (sum of counts with ``total``, else mean)."""
    if factor == 1:
        return graph
    lon, lat = graph.pos[:, 0].double(), graph.pos[:, 1].double()
    col = torch.unique(lon.round(decimals=5), return_inverse=True)[1]
    row = torch.unique(lat.round(decimals=5), return_inverse=True)[1]
    rr, cc = row // factor, col // factor
    cols = int(cc.max()) + 1
    rows = int(rr.max()) + 1
    cell = rr * cols + cc
    present, group = torch.unique(cell, return_inverse=True)
    k = present.numel()
    x, m = graph.x * graph.mask, graph.mask.float()
    xs = torch.zeros(k, *x.shape[1:]).index_add_(0, group, x)
    ms = torch.zeros(k, *m.shape[1:]).index_add_(0, group, m)
    values = xs if total else xs / ms.clamp_min(1)
    pos = torch.zeros(k, 2, dtype=torch.float64).index_add_(0, group, graph.pos.double())
    pos = (pos / torch.bincount(group, minlength=k).view(-1, 1)).float()
    keep = np.zeros(rows * cols, dtype=bool)
    keep[present.numpy()] = True
    edges = torch.from_numpy(grid_edges(rows, cols, keep=keep))
    meta = dict(graph.meta)
    meta["graph"] = {"kind": f"grid 4-neighbour, {factor}x{factor} coarsened", "directed": False}
    return STGraph(x=values, mask=ms > 0, time=graph.time, pos=pos, edge_index=edges, meta=meta)


def section_scale(args, folds: dict[str, Path]) -> dict:
    run = folds["A"]
    rows = []
    los = load_case(parse_source({"dataset": "los-loop", "nodes": "west"}, "case"))
    cases = [(f"los-loop[west] {5 * f} min", resample(los, f)) for f in (1, 3, 12)]
    for name, total in (("era5-uk-t2m", False), ("chicago-crime", True)):
        g = load_case(parse_source({"dataset": name}, "case"))
        cases += [(f"{name} {f}x{f}", coarsen(g, f, total=total)) for f in (1, 2, 4)]
    protocol = transfer_protocol()
    for label, graph in cases:
        out = args.workdir / "scale" / label.replace(" ", "_")
        results = zero_shot(run, graph, dataset=label, protocol=protocol, output=out)
        rows += horizon_rows(
            results, label, {"nodes": graph.num_nodes, "interval_s": graph.interval}
        )
        print(f"scale {label}: done", flush=True)
    return {
        "rows": rows,
        "held_in": ["era5-uk-t2m"],
        "held_out": ["los-loop[west]", "chicago-crime"],
    }


def section_domain(args, folds: dict[str, Path]) -> dict:
    rows = []
    sets = [("held-in", s) for s in corpus_sources(folds["A"])] + [
        ("held-out", s) for s in held_out(folds["A"])
    ]
    for name, run in args.domain_runs.items():
        for kind, spec in sets:
            label = case_label(spec)
            graph = load_case(spec)
            protocol = case_protocol(graph).with_overrides(stride=DOMAIN_STRIDE)
            out = args.workdir / "domain" / name / label
            results = zero_shot(run, graph, dataset=label, protocol=protocol, output=out)
            for r in results:
                rows.append(
                    {
                        "run": name,
                        "dataset": label,
                        "set": kind,
                        "model": r["model"],
                        "mae_avg": float(r["average"]["mae"]),
                        **{f"mae@{k}": float(v["mae"]) for k, v in r["horizons"].items()},
                    }
                )
        print(f"domain {name}: done", flush=True)
    return {"rows": rows}


def section_los_loop(args, folds: dict[str, Path]) -> dict:
    """Fold A fine-tuned on Los-loop's whole training part (``tgcn-val``) against the from-scratch
    STFM of ``experiments/baselines.py`` (configs/baselines.yaml's model and schedule), both here.
    The fine-tuning run uses the same schedule at a quarter of its learning rate."""
    from stgraph import datasets

    run = folds["A"]
    spec = yaml.safe_load((REPO / "configs" / "baselines.yaml").read_text())["models"]["stfm"]
    options = yaml.safe_load((REPO / spec["config"]).read_text())
    schedule = dict(spec["train"], num_threads=args.threads)
    gdir = graph_dir(args.workdir, "los-loop", datasets.load("los-loop"))
    out = args.workdir / "los_loop"
    proto = {"name": "tgcn-val", "overrides": {}}
    runs = {}
    for name in ("finetuned", "scratch"):
        raw = {
            "seed": 0,
            "dataset": {"graph": str(gdir)},
            "model": {"name": "stfm", "options": options if name == "scratch" else {}},
            "protocol": proto,
            "train": dict(schedule, lr=schedule["lr"] / (4 if name == "finetuned" else 1)),
            "output": {"dir": str(out / name), "tensorboard": False, "progress": False},
        }
        if name == "finetuned":
            raw["finetune"] = {"checkpoint": str(run), "mode": "full"}
        runs[name] = train(load_config(raw=raw)).metrics
        print(f"los-loop {name}: done", flush=True)
    rows = []
    ft, sc = runs["finetuned"], runs["scratch"]
    for step in (3, 6, 9, 12):
        rows.append(
            {
                "dataset": "los-loop",
                "protocol": "tgcn-val",
                "horizon_steps": step,
                "finetuned_mae": mae_at(ft, step),
                "finetuned_rmse": float(ft["horizons"][str(step)]["rmse"]),
                "scratch_mae": mae_at(sc, step),
                "scratch_rmse": float(sc["horizons"][str(step)]["rmse"]),
            }
        )
    return {"rows": rows, "schedule": spec["train"], "finetune_lr": schedule["lr"] / 4}


# ------------------------------------------------------------------ report
def _rel(path: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _load_section(args, name: str) -> dict:
    f = args.workdir / f"{name}.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _table(rows: list[dict], cols: list[str]) -> list[str]:
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return out + [""]


def report(args, sections: dict[str, dict], seconds: dict[str, float]) -> str:
    md = [
        "# Generalization report",
        "",
        "Command: `python experiments/generalization.py` (see its docstring); every figure is a "
        "test-part MAE in the data set's own units, 12 steps in, 12 out, with the baselines of "
        "the same run. Schedules: supervised (from scratch, whole training part) at most "
        f"{SUPERVISED['epochs']} epochs x {SUPERVISED['max_batches_per_epoch']} batches of 32, "
        f"few-shot at most {FEW_SHOT['epochs']} x {FEW_SHOT['max_batches_per_epoch']}, both with "
        "early stopping on the target's validation part; fine-tuning keeps the pretrained "
        "weights unless an epoch beats them on validation.",
        "",
        "Checkpoints each section ran on (a section is cached until it is run again):",
        "",
    ]
    for name, sec in sections.items():
        runs = sec.get("checkpoints")
        where = ", ".join(f"{k} = `{v}`" for k, v in runs.items()) if runs else "not recorded"
        md.append(f"- {name}: {where}")
    md.append("")
    zs = sections.get("zero_shot", {}).get("rows", [])
    if zs:
        for r in zs:
            r["beats_HA_and_LV"] = r["model_mae"] < min(
                r["historical_average_mae"], r["last_value_mae"]
            )
            r["vs_supervised"] = (
                r["model_mae"] / r["supervised_mae"] if r["supervised_mae"] else None
            )
            if r.get("reference_persistence_mae") is not None:
                r["vs_reference"] = r["model_mae"] / r["reference_persistence_mae"]
        md += [
            "## Zero-shot (no gradient step on the target)",
            "",
            "`reference_persistence` is the parameter-free forecast the model starts from (the "
            "window's adaptive reference plus the share of its last gap that persisted on the "
            "backtest before the window); `vs_reference` below 1 is what the pretrained weights "
            "add to it.",
            "",
        ]
        md += _table(
            zs,
            [
                "fold",
                "dataset",
                "units",
                "horizon_steps",
                "model_mae",
                "historical_average_mae",
                "last_value_mae",
                "reference_persistence_mae",
                "vs_reference",
                "supervised_mae",
                "vs_supervised",
                "beats_HA_and_LV",
            ],
        )
        maps = sections["zero_shot"].get("maps", {})
        md += ["Per-node error maps (zero-shot against supervised, one colour scale):", ""]
        md += [f"- {k}: " + ", ".join(f"`{p}`" for p in v) for k, v in maps.items()] + [""]
    fs = [r for r in sections.get("few_shot", {}).get("rows", []) if "error" not in r]
    sup = {(r["dataset"], r["horizon_steps"]): r["supervised_mae"] for r in zs}
    if fs:
        for r in fs:
            r["supervised_mae"] = r.get("supervised_mae") or sup.get(
                (r["dataset"], r["horizon_steps"])
            )
            r["beats_scratch"] = r["finetuned_mae"] < r["scratch_mae"]
            r["vs_supervised"] = (
                r["finetuned_mae"] / r["supervised_mae"] if r.get("supervised_mae") else None
            )
        md += ["## Few-shot (fine-tuned, mode full) against scratch on the same steps", ""]
        md += _table(
            fs,
            [
                "fold",
                "dataset",
                "budget",
                "horizon_steps",
                "finetuned_mae",
                "scratch_mae",
                "supervised_mae",
                "vs_supervised",
                "beats_scratch",
            ],
        )
        errs = [r for r in sections["few_shot"]["rows"] if "error" in r]
        md += [f"- {r['dataset']} {r['budget']}: not run: {r['error']}" for r in errs] + [""]
    tp = sections.get("temporal", {}).get("rows", [])
    if tp:
        md += ["## Temporal: later periods", ""]
        for r in tp:
            r["hour_worst"] = int(np.nanargmax([np.nan if v is None else v for v in r["by_hour"]]))
        md += _table(
            tp,
            [
                "dataset",
                "model",
                "train_through",
                "test_from",
                "mae@3",
                "mae@6",
                "mae@12",
                "mae_avg",
                "weekday",
                "weekend",
                "hour_worst",
            ],
        )
        md += ["Errors by local hour of day are in generalization.json (`by_hour`).", ""]
    sc = sections.get("scale", {}).get("rows", [])
    if sc:
        md += ["## Scale: one set of weights at other resolutions and sampling intervals", ""]
        wide: dict[tuple, dict] = {}
        for r in sc:
            key = (r["dataset"], r["horizon_steps"])
            wide.setdefault(
                key,
                {
                    "dataset": r["dataset"],
                    "nodes": r["nodes"],
                    "interval_s": r["interval_s"],
                    "horizon_steps": r["horizon_steps"],
                },
            )
            wide[key][r["model"]] = r["mae"]
        md += _table(
            list(wide.values()),
            [
                "dataset",
                "nodes",
                "interval_s",
                "horizon_steps",
                "stfm zero-shot",
                "historical_average",
                "last_value",
            ],
        )
    dm = sections.get("domain", {}).get("rows", [])
    if dm:
        md += ["## Domain ablations (short pretraining runs of fold A's corpus)", ""]
        md += [
            "Each run is fold A's corpus without one domain, at the schedule of "
            "`configs/pretrain/ablation-*.yaml` (600 steps); `full` is the whole corpus at the "
            f"same schedule. Test MAE averaged over the horizon, every {DOMAIN_STRIDE}th test "
            "window. A lower MAE without a domain is negative transfer from it.",
            "",
        ]
        wide = {}
        for r in dm:
            if r["model"] != "stfm zero-shot":
                continue
            wide.setdefault((r["dataset"], r["set"]), {"dataset": r["dataset"], "set": r["set"]})[
                r["run"]
            ] = r["mae_avg"]
        runs = list(dict.fromkeys(r["run"] for r in dm))
        md += _table(list(wide.values()), ["dataset", "set", *runs])
    ll = sections.get("los_loop", {}).get("rows", [])
    if ll:
        md += [
            "## Los-loop, tgcn-val: pretrained + fine-tuned against from scratch",
            "",
        ]
        md += _table(
            ll,
            ["horizon_steps", "finetuned_mae", "scratch_mae", "finetuned_rmse", "scratch_rmse"],
        )
        if sections["los_loop"].get("scratch"):
            md += [f"From scratch: {sections['los_loop']['scratch']}.", ""]
    missing = [name for name in SECTIONS if name not in sections and name != "supervised"]
    if missing:
        md += ["Not in this report (not run to the end): " + ", ".join(missing) + ".", ""]
    md += ["Section wall times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()), ""]
    return "\n".join(md)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--fold-a", type=Path, default=REPO / "runs" / "fold-a")
    ap.add_argument("--fold-b", type=Path, default=REPO / "runs" / "fold-b")
    ap.add_argument("--sections", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument(
        "--domain-runs",
        nargs="*",
        default=[],
        help="NAME=RUN_DIR pretraining runs for the domain section (e.g. full=runs/abl-full)",
    )
    ap.add_argument(
        "--budgets",
        nargs="*",
        default=["short", "10%"],
        help="few-shot budgets: 'short' (one day, see short_budget) and/or shares or spans",
    )
    ap.add_argument(
        "--folds",
        nargs="*",
        default=["A", "B"],
        choices=["A", "B"],
        help="folds to run the sections on (e.g. the supervised runs of one fold per process)",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=REPO / "runs" / "generalization")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    args.domain_runs = dict(s.split("=", 1) for s in args.domain_runs)
    args.domain_runs = {k: Path(v) for k, v in args.domain_runs.items()}
    torch.set_num_threads(args.threads)
    args.workdir.mkdir(parents=True, exist_ok=True)
    folds = {k: v for k, v in {"A": args.fold_a, "B": args.fold_b}.items() if k in args.folds}
    timing_file = args.workdir / "seconds.json"
    seconds = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    if not args.report_only:
        for name in args.sections:
            t0 = time.perf_counter()
            result = globals()[f"section_{name}"](args, folds)
            result["checkpoints"] = {k: _rel(v) for k, v in folds.items()}
            seconds[name] = time.perf_counter() - t0
            atomic_write_text(args.workdir / f"{name}.json", json.dumps(result, indent=1) + "\n")
            atomic_write_text(timing_file, json.dumps(seconds, indent=1) + "\n")
    sections = {name: _load_section(args, name) for name in SECTIONS}
    sections = {k: v for k, v in sections.items() if v}
    md = report(args, sections, seconds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "generalization.json", json.dumps(sections, indent=1) + "\n")
    atomic_write_text(RESULTS / "generalization.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
