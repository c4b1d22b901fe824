"""Evaluation: a model's masked metrics per horizon step on a protocol's windows, and the
re-evaluation of a checkpoint directory (tables and plots: :mod:`stgraph.train.reports`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from stgraph.data.windows import SlidingWindows
from stgraph.tasks.forecast import ForecastTask
from stgraph.tasks.forecaster import Forecaster
from stgraph.tasks.task import Task
from stgraph.train import checkpoint as ckpt
from stgraph.train.assemble import (
    load_graph,
    make_model,
    make_protocol,
    make_task,
    prepare_finetune,
    windows_for_model,
)
from stgraph.train.config import load_config
from stgraph.train.protocols import Protocol
from stgraph.train.reports import write_metrics


def evaluate_model(
    model: Forecaster,
    windows: SlidingWindows,
    protocol: Protocol,
    *,
    task: Task | None = None,
    batch_size: int = 256,
    progress: bool = True,
    node_errors: bool = False,
    dataset: str | None = None,
) -> dict[str, Any]:
    """Masked MAE/RMSE/MAPE/MSE of ``model`` on ``windows``, per horizon step and averaged.

    Args:
        model: the forecaster, run without gradients in eval mode.
        windows: the windows to score (e.g. a protocol's test part).
        protocol: the protocol the windows come from (report steps, description).
        task: the task that feeds the model and scores it, a forecasting one (default: the
            protocol's horizon and null value).
        batch_size: windows per batch.
        progress: show a progress bar.
        node_errors: also keep each node's MAE.
        dataset: the evaluated data set's name: references of the protocol are reported only on
            their own data set; units always come from ``windows.graph``.

    Raises:
        TypeError: if ``task`` is not a forecasting task (this report is per horizon step).

    Returns:
        A JSON-ready dict with ``protocol`` (the full protocol), ``per_step`` (every step),
        ``horizons`` (the protocol's report steps), ``average`` and ``num_windows``/``num_values``;
        with ``node_errors`` also ``node_mae`` (one value per node, for error maps).
    """
    if task is None:
        task = ForecastTask(protocol.horizon, null_value=protocol.null_value)
    if not isinstance(task, ForecastTask):
        raise TypeError(
            f"evaluate_model reports forecasts per horizon step; task {task.name!r} is not one"
        )
    loader = DataLoader(windows, batch_size=batch_size, shuffle=False)
    batches = tqdm(loader, desc="evaluate", leave=False, disable=not progress or None)
    acc = task.metrics(windows.graph.num_nodes if node_errors else None)
    task.score(model, batches, acc)
    out: dict[str, Any] = {
        "protocol": protocol.for_graph(windows.graph, dataset).describe(),
        "horizons": {str(s): v for s, v in acc.at(protocol.report_steps).items()},
        "average": acc.summary(),
        "pooled": {str(s): v for s, v in acc.steps.pooled(protocol.report_steps).items()},
        "per_step": acc.steps.per_step(),
        "num_windows": len(windows),
        "num_values": acc.steps.count,
        "interval_s": windows.graph.interval,
    }
    if node_errors:
        out["node_mae"] = acc.node_mae()
    return out


def evaluate_checkpoint(
    run_dir: str | Path, *, dataset: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """Re-evaluate a run directory on its test part, or on another data set's test part.

    The model is rebuilt from ``config.yaml``, its data statistics fitted on the (new) data set's
    training steps, then the saved weights are loaded. Writes ``metrics.json`` (or
    ``metrics-<dataset>.json`` for another data set) with the per-horizon table beside it.
    """
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
        as_dir = Path(dataset).is_dir()
        cfg.dataset.name = None if as_dir else dataset
        cfg.dataset.graph = dataset if as_dir else None
        cfg.dataset.options = {}
    graph = load_graph(cfg)
    protocol = make_protocol(cfg)
    split, windows = protocol.windows(graph)
    model = make_model(cfg, graph, protocol)
    model.fit(graph, split.train)
    prepare_finetune(cfg, model)
    windows = windows_for_model(windows, model)
    # On another data set the statistics fitted just now (scalers, tables) are that data set's;
    # only the learned parameters come from the checkpoint.
    ckpt.load_weights(model, weights, params_only=dataset is not None)
    result = evaluate_model(
        model,
        windows["test"],
        protocol,
        task=make_task(cfg, protocol),
        batch_size=cfg.train.eval_batch_size,
        progress=progress,
        node_errors=True,
        dataset=cfg.dataset.label,
    )
    result.update(
        dataset=cfg.dataset.label,
        model=cfg.model.name,
        split=split.as_dict(),
        checkpoint=str(run_dir),
    )
    name = "metrics" if dataset is None else f"metrics-{cfg.dataset.label}"
    result["files"] = {
        k: str(v) for k, v in write_metrics(run_dir, result, graph=graph, name=name).items()
    }
    return result


__all__ = ["evaluate_checkpoint", "evaluate_model"]
