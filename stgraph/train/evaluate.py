"""Evaluation: masked metrics per horizon step with the protocol, tables, and plots."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from stgraph.data.stgraph import STGraph
from stgraph.data.windows import SlidingWindows
from stgraph.tasks.forecaster import Forecaster
from stgraph.train import checkpoint as ckpt
from stgraph.train.metrics import METRICS, MetricAccumulator
from stgraph.train.protocols import Protocol
from stgraph.utils.atomic import atomic_path, atomic_write_text


@torch.no_grad()
def evaluate_model(
    model: Forecaster,
    windows: SlidingWindows,
    protocol: Protocol,
    *,
    batch_size: int = 256,
    progress: bool = True,
    node_errors: bool = False,
) -> dict[str, Any]:
    """Masked MAE/RMSE/MAPE/MSE of ``model`` on ``windows``, per horizon step and averaged.

    Returns a JSON-ready dict with ``protocol`` (the full protocol), ``per_step`` (every step),
    ``horizons`` (the protocol's report steps), ``average`` and ``num_windows``/``num_values``.
    With ``node_errors`` also ``node_mae`` (one value per node, for error maps).
    """
    model.eval()
    acc = MetricAccumulator(protocol.horizon, null_value=protocol.null_value)
    n = windows.graph.num_nodes
    node_abs = torch.zeros(n, dtype=torch.float64)
    node_cnt = torch.zeros(n, dtype=torch.float64)
    loader = DataLoader(windows, batch_size=batch_size, shuffle=False)
    for batch in tqdm(loader, desc="evaluate", leave=False, disable=not progress or None):
        pred = model(batch)
        if pred.shape != batch.y.shape:
            raise ValueError(
                f"{type(model).__name__} returned {tuple(pred.shape)}, expected {tuple(batch.y.shape)}"
            )
        acc.update(pred, batch.y, batch.y_mask)
        if node_errors:
            from stgraph.train.metrics import valid_mask

            v = valid_mask(batch.y, batch.y_mask, protocol.null_value)
            err = torch.where(v, (pred - batch.y).abs(), torch.zeros(())).double().sum((1, 2))
            local = torch.arange(batch.num_nodes) - batch.ptr[batch.batch]
            node_abs.index_add_(0, local, err)
            node_cnt.index_add_(0, local, v.double().sum((1, 2)))
    per = acc.per_step()
    out: dict[str, Any] = {
        "protocol": protocol.describe(),
        "horizons": {str(s): v for s, v in acc.at(protocol.report_steps).items()},
        "average": acc.average(),
        "per_step": per,
        "num_windows": len(windows),
        "num_values": acc.count,
        "interval_s": windows.graph.interval,
    }
    if node_errors:
        out["node_mae"] = torch.where(
            node_cnt > 0, node_abs / node_cnt.clamp_min(1), torch.full_like(node_abs, float("nan"))
        ).tolist()
    return out


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
    return "\n".join(lines) + "\n"


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

    out: dict[str, Path] = {}
    per = result["per_step"]
    steps = list(range(1, len(per["mae"]) + 1))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, per["mae"], marker="o", label="MAE")
    ax.plot(steps, per["rmse"], marker="s", label="RMSE")
    ax.set_xlabel("horizon step")
    ax.set_ylabel(result["protocol"]["units"])
    ax.set_title(f"{result.get('model', '')} on {result.get('dataset', '')}")
    ax.legend()
    fig.tight_layout()
    with atomic_path(run_dir / f"{name}-horizon.png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    out["horizon_png"] = run_dir / f"{name}-horizon.png"
    node_mae = result.get("node_mae")
    if graph is not None and graph.pos is not None and node_mae is not None:
        fig, ax = plt.subplots(figsize=(5, 4.5))
        pos = graph.pos.numpy()
        sc = ax.scatter(pos[:, 0], pos[:, 1], c=node_mae, s=18, cmap="viridis")
        fig.colorbar(sc, ax=ax, label=f"MAE ({result['protocol']['units']})")
        ax.set_xlabel("longitude")
        ax.set_ylabel("latitude")
        ax.set_title(f"per-node test MAE, {result.get('model', '')}")
        ax.set_aspect(1 / max(math.cos(math.radians(float(pos[:, 1].mean()))), 0.1))
        fig.tight_layout()
        with atomic_path(run_dir / f"{name}-node-map.png") as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        out["node_map_png"] = run_dir / f"{name}-node-map.png"
    return out


def evaluate_checkpoint(
    run_dir: str | Path, *, dataset: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """Re-evaluate a run directory on its test part, or on another data set's test part.

    The model is rebuilt from ``config.yaml``, its data statistics fitted on the (new) data set's
    training steps, then the saved weights are loaded. Writes ``metrics.json`` (or
    ``metrics-<dataset>.json`` for another data set) with the per-horizon table beside it.
    """
    from stgraph.train.config import load_config
    from stgraph.train.trainer import load_graph, make_model, make_protocol

    run_dir = Path(run_dir)
    cfg_path = run_dir / ckpt.CONFIG_FILE
    weights = run_dir / ckpt.MODEL_FILE
    for f in (cfg_path, weights):
        if not f.is_file():
            raise FileNotFoundError(
                f"{f}: missing; is {run_dir} a checkpoint directory written by `stgraph train`?"
            )
    cfg = load_config(cfg_path)
    if dataset is not None:
        cfg.dataset.name, cfg.dataset.options = dataset, {}
    graph = load_graph(cfg)
    protocol = make_protocol(cfg)
    split, windows = protocol.windows(graph)
    model = make_model(cfg, graph, protocol)
    model.fit(graph, split.train)
    # On another data set the statistics fitted just now (scalers, tables) are that data set's;
    # only the learned parameters come from the checkpoint.
    ckpt.load_weights(model, weights, params_only=dataset is not None)
    result = evaluate_model(
        model,
        windows["test"],
        protocol,
        batch_size=cfg.train.eval_batch_size,
        progress=progress,
        node_errors=True,
    )
    result.update(
        dataset=cfg.dataset.name,
        model=cfg.model.name,
        split=split.as_dict(),
        checkpoint=str(run_dir),
    )
    name = "metrics" if dataset is None else f"metrics-{dataset}"
    result["files"] = {
        k: str(v) for k, v in write_metrics(run_dir, result, graph=graph, name=name).items()
    }
    return result


__all__ = ["METRICS", "evaluate_checkpoint", "evaluate_model", "metrics_table", "write_metrics"]
