"""Evaluation reports: the per-horizon Markdown table, the metrics files and their plots.

:func:`write_metrics` writes what every run and every re-evaluation leaves beside its checkpoint:
``<name>.json`` (the result of :func:`stgraph.train.evaluate.evaluate_model`), ``<name>.md``
(:func:`metrics_table`), ``<name>-horizon.png`` (error per horizon step) and, when the graph has
coordinates, ``<name>-node-map.png`` (per-node test MAE on the map).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from stgraph.data.stgraph import STGraph
from stgraph.train import checkpoint as ckpt
from stgraph.utils.atomic import atomic_path, atomic_write_text


def _minutes(step: int, interval: int | None) -> str:
    if not interval:
        return f"step {step}"
    m = step * interval / 60
    if m < 120:
        return f"{m:g} min"
    if m < 48 * 60:
        return f"{m / 60:g} h"
    return f"{m / 1440:g} d"


def metrics_table(rows: list[dict[str, Any]]) -> str:
    """A Markdown table of results dicts (each with model, horizons, average, protocol)."""
    if not rows:
        return ""
    p = rows[0]["protocol"]
    interval = rows[0].get("interval_s")
    steps = list(rows[0]["horizons"])
    head = ["model"] + [
        f"{m.upper()} @{_minutes(int(s), interval)}" for s in steps for m in ("mae", "rmse")
    ]
    head += ["MAE avg", "RMSE avg", "MAPE avg %", "MSE avg"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.get("model", "?")]
        for s in steps:
            cells += [_fmt(r["horizons"][s]["mae"]), _fmt(r["horizons"][s]["rmse"])]
        a = r["average"]
        cells += [_fmt(a["mae"]), _fmt(a["rmse"]), _fmt(a["mape"]), _fmt(a["mse"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Protocol `{p['name']}`: {p['description']}. Split ratios {p['ratios']} (on {p['split_on']}), "
        f"{p['input_steps']} steps in, {p['horizon']} out, null value {p['null_value']}, scaler "
        f"{p['scaler']}, metrics in {p['units']}; MAPE leaves out targets with |y| < 1e-4."
    )
    for k, v in (p.get("reference") or {}).items():
        lines.append(f"Reference: {k} = {v}.")
    if p.get("reference") and all("pooled" in r for r in rows):
        lines += _pooled_table(rows, steps, interval)
    return "\n".join(lines) + "\n"


def _pooled_table(rows: list[dict[str, Any]], steps: list[str], interval: int | None) -> list[str]:
    """RMSE pooled over steps 1..s beside RMSE at step s: a published reference such as T-GCN's
    pools its outputs, so it compares with the pooled column."""
    head = ["model"] + [f"RMSE 1..{s} / @{_minutes(int(s), interval)}" for s in steps]
    out = ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.get("model", "?")] + [
            f"{_fmt(r['pooled'][s]['rmse'])} / {_fmt(r['horizons'][s]['rmse'])}" for s in steps
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _fmt(v: float | None) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"


def write_metrics(
    run_dir: str | Path,
    result: dict[str, Any],
    *,
    graph: STGraph | None = None,
    name: str = "metrics",
) -> dict[str, Path]:
    """Write ``<name>.json``, ``<name>.md`` and plots (horizon curve, per-node error map)."""
    run_dir = Path(run_dir)
    paths = {"json": ckpt.write_json(run_dir / f"{name}.json", result)}
    paths["md"] = atomic_write_text(run_dir / f"{name}.md", metrics_table([result]))
    try:
        paths.update(plot_metrics(run_dir, result, graph=graph, name=name))
    except ImportError:  # matplotlib is a core dependency; keep evaluation alive without it
        pass
    return paths


def plot_metrics(
    run_dir: Path, result: dict[str, Any], *, graph: STGraph | None, name: str
) -> dict[str, Path]:
    """A per-horizon error curve and, when the graph has coordinates, a per-node MAE map."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stgraph.utils.plotting import lead_times, map_figsize, style_map_axes

    out: dict[str, Path] = {}
    per = result["per_step"]
    steps, xlabel = lead_times(len(per["mae"]), result.get("interval_s"))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, per["mae"], marker="o", label="MAE")
    ax.plot(steps, per["rmse"], marker="s", label="RMSE")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(result["protocol"]["units"])
    ax.set_title(f"{result.get('model', '')} on {result.get('dataset', '')}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_path(run_dir / f"{name}-horizon.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    out["horizon_png"] = run_dir / f"{name}-horizon.png"
    node_mae = result.get("node_mae")
    if graph is not None and graph.pos is not None and node_mae is not None:
        pos = graph.pos.double().numpy()
        fig, ax = plt.subplots(figsize=map_figsize(pos[:, 0], pos[:, 1], width=4.5))
        sc = ax.scatter(pos[:, 0], pos[:, 1], c=node_mae, s=18, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=f"MAE ({result['protocol']['units']})")
        style_map_axes(ax, pos[:, 0], pos[:, 1])
        ax.set_title(f"per-node test MAE, {result.get('model', '')}")
        fig.tight_layout()
        with atomic_path(run_dir / f"{name}-node-map.png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        out["node_map_png"] = run_dir / f"{name}-node-map.png"
    return out


def plot_training_curve(log_path: str | Path, path: str | Path | None = None) -> Path | None:
    """The training curve of a run from its ``log.csv``: training loss and validation MAE/RMSE
    per epoch (the loss on the left axis, the validation errors in the data's units on the
    right), written to ``path`` (default ``training-curve.png`` beside the log).

    Returns:
        The path written, or ``None`` when the log has no finished epoch.
    """
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    log_path = Path(log_path)
    with log_path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None

    def column(name: str) -> list[float]:
        return [float(r[name]) if r.get(name) not in (None, "") else math.nan for r in rows]

    epochs = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(epochs, column("train_loss"), marker="o", markersize=3, color="tab:blue")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss", color="tab:blue")
    right = ax.twinx()
    for name, style in (("val_mae", "-"), ("val_rmse", "--")):
        right.plot(epochs, column(name), style, marker="s", markersize=3, color="tab:orange")
    right.set_ylabel("validation MAE (—) / RMSE (--)", color="tab:orange")
    ax.grid(alpha=0.3)
    ax.set_title(f"training curve: {log_path.parent.name}")
    fig.tight_layout()
    target = Path(path) if path is not None else log_path.with_name("training-curve.png")
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return target


__all__ = ["metrics_table", "plot_metrics", "plot_training_curve", "write_metrics"]
