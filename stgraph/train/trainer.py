"""The training loop: data set + protocol + task + model from a config, Adam, early stopping,
checkpoints.

``train(cfg)`` is the whole run: load the data set through the registry, split and window it by the
protocol, build the task (:mod:`stgraph.tasks`; it gives the loss and the validation metrics) and
the model by name, fit the model's statistics on the training steps, run Adam with early stopping
on the validation part (when the protocol has one), keep the best weights, evaluate on the test
part and write everything into the run directory (see :mod:`stgraph.train.checkpoint`).
An interrupted run resumes from its last finished epoch when started again with the same config.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from stgraph.data.stgraph import STGraph
from stgraph.data.windows import SlidingWindows
from stgraph.errors import ConfigError
from stgraph.tasks.forecaster import Forecaster
from stgraph.tasks.task import Task
from stgraph.train import checkpoint as ckpt
from stgraph.train.assemble import (
    budget_windows,
    load_graph,
    make_model,
    make_protocol,
    make_task,
    prepare_finetune,
    windows_for_model,
)
from stgraph.train.config import TrainConfig, TrainSettings, dump_config
from stgraph.train.evaluate import evaluate_model
from stgraph.train.reports import plot_training_curve, write_metrics
from stgraph.utils.atomic import atomic_path, atomic_write_text
from stgraph.utils.seed import seed_everything

#: Columns of ``log.csv``, one row per finished epoch.
LOG_FIELDS = ("epoch", "train_loss", "val_mae", "val_rmse", "lr", "seconds")


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    metrics: dict[str, Any]
    epochs: int
    seconds: float
    model: Forecaster


class WeightAverage:
    """Exponential moving average of a model's weights (Polyak & Juditsky 1992; the "model EMA"
    of timm and DeiT).

    After every optimiser step, ``θ̄ ← d·θ̄ + (1 − d)·θ`` with ``d = min(decay, (1 + s) / (10 + s))``
    at step ``s`` (the warm-up keeps the first steps from being dominated by the random start).
    Floating-point parameters are averaged; buffers (fitted statistics, caches) are copied from the
    trained model by :meth:`sync`, so the averaged copy is a complete model of the same class.
    """

    def __init__(self, model: torch.nn.Module, decay: float, steps: int = 0) -> None:
        self.decay = float(decay)
        self.steps = int(steps)
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        d = min(self.decay, (1 + self.steps) / (10 + self.steps))
        avg = [p for p in self.model.parameters() if p.is_floating_point()]
        cur = [p.detach() for p in model.parameters() if p.is_floating_point()]
        torch._foreach_lerp_(avg, cur, 1.0 - d)

    @torch.no_grad()
    def sync(self, model: torch.nn.Module) -> torch.nn.Module:
        """Copy the buffers of ``model`` into the averaged copy and return that copy."""
        mine = dict(self.model.named_buffers())
        for name, buf in model.named_buffers():
            if mine[name].shape == buf.shape:
                mine[name].copy_(buf)
            else:
                mine[name].data = buf.detach().clone()
        return self.model


def optimizer_step(
    model: torch.nn.Module,
    loss: torch.Tensor,
    opt: torch.optim.Optimizer,
    grad_clip: float | None,
    ema: WeightAverage | None,
) -> None:
    """Backward, clip the gradient norm, step, update the weight average (trainer and pretrainer)."""
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    if ema is not None:
        ema.update(model)


def train(cfg: TrainConfig, *, resume: bool = True, graph: STGraph | None = None) -> RunResult:
    """Run the config end to end and return the test metrics; see the module docstring.

    The run holds ``cfg.output.dir`` alone from start to end (see
    :func:`stgraph.train.checkpoint.open_run`): a second run on it while this one lives is
    refused.

    Args:
        cfg: a validated :class:`TrainConfig`.
        resume: continue an unfinished run found in ``cfg.output.dir`` (same config required).
        graph: use this series instead of loading ``cfg.dataset`` (e.g. a graph built by a user).

    Raises:
        ConfigError: if ``cfg.output.dir`` holds a run of another config (or of this one with
            ``resume=False``), or the protocol leaves the training or test part empty.
        RunLockedError: another live process writes ``cfg.output.dir``.
    """
    command = "stgraph finetune" if cfg.finetune is not None else "stgraph train"
    with ckpt.open_run(cfg.output.dir, command):
        return _train(cfg, resume=resume, graph=graph)


def _train(cfg: TrainConfig, *, resume: bool, graph: STGraph | None) -> RunResult:
    start = time.perf_counter()
    run_dir = Path(cfg.output.dir)
    config_text = dump_config(cfg)
    state = _previous_state(run_dir, config_text, resume)
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    seed_everything(cfg.seed)

    graph = graph if graph is not None else load_graph(cfg)
    protocol = make_protocol(cfg)
    split, windows = protocol.windows(graph)
    if windows["train"] is None or windows["test"] is None:
        raise ConfigError(f"protocol {protocol.name}: train and test parts must be non-empty")
    task = make_task(cfg, protocol)
    model = make_model(cfg, graph, protocol)
    model.fit(graph, split.train)
    prepare_finetune(cfg, model)
    windows, max_steps, budget_text = budget_windows(cfg, graph, protocol, split, windows)
    windows = windows_for_model(windows, model)
    if max_steps is not None:  # the budget's optimiser steps, spread over the epochs
        per_epoch = math.ceil(max_steps / cfg.train.epochs)
        cfg = dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train, max_batches_per_epoch=per_epoch)
        )

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / ckpt.CONFIG_FILE, config_text)

    epochs_done = 0
    if model.trainable and any(p.requires_grad for p in model.parameters()):
        epochs_done = _fit(model, task, cfg, windows, run_dir, state)
    else:
        ckpt.save_weights(model, run_dir / ckpt.MODEL_FILE)
        _write_state(
            run_dir, model, None, {"epoch": 0, "best_val": None, "bad_epochs": 0, "finished": True}
        )

    ckpt.load_weights(model, run_dir / ckpt.MODEL_FILE)
    result = evaluate_model(
        model,
        windows["test"],
        protocol,
        task=task,
        batch_size=cfg.train.eval_batch_size,
        progress=cfg.output.progress,
        node_errors=True,
        dataset=cfg.dataset.label,
    )
    result.update(
        dataset=cfg.dataset.label,
        model=cfg.model.name if cfg.finetune is None else f"stfm-{cfg.finetune.mode}",
        split=split.as_dict(),
        epochs=epochs_done,
        train_seconds=round(time.perf_counter() - start, 2),
        num_parameters=sum(p.numel() for p in model.parameters()),
    )
    if budget_text is not None and cfg.finetune is None:
        result["budget"] = budget_text
    if cfg.finetune is not None:
        result["finetune"] = {
            "checkpoint": cfg.finetune.checkpoint,
            "mode": cfg.finetune.mode,
            "budget": budget_text or "the whole training part",
            "trained_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        }
    write_metrics(run_dir, result, graph=graph)
    if (run_dir / "log.csv").is_file():  # the training curve beside the metrics
        plot_training_curve(run_dir / "log.csv")
    return RunResult(run_dir, result, epochs_done, time.perf_counter() - start, model)


def _previous_state(run_dir: Path, config_text: str, resume: bool) -> dict[str, Any] | None:
    """The resume state of a run already in ``run_dir`` (``None``: none), refused if its config
    differs from ``config_text`` or ``resume`` is off."""
    state = ckpt.read_state(run_dir)
    if state is None:
        return None
    config_file = run_dir / ckpt.CONFIG_FILE
    old = config_file.read_text(encoding="utf-8") if config_file.is_file() else ""
    if not resume or old != config_text:
        raise ConfigError(
            f"{run_dir} already holds a run with {'a different' if old != config_text else 'this'} "
            "config; choose another output.dir (--set output.dir=...) or delete it"
        )
    return state


def _write_state(
    run_dir: Path,
    model: Forecaster,
    opt: torch.optim.Optimizer | None,
    state: dict[str, Any],
    ema: WeightAverage | None = None,
) -> None:
    if ema is not None:
        state = {**state, "ema_steps": ema.steps}
    ckpt.save_resume(run_dir, model, opt, state, ema.model if ema is not None else None)


@dataclass
class _Progress:
    """Where the epochs stand: the last finished one, the best validation score, the epochs
    without improvement since it, and the rows of ``log.csv``."""

    epoch: int = 0
    best: float = math.inf
    bad: int = 0
    rows: list[dict[str, Any]] | None = None

    def state(self, finished: bool) -> dict[str, Any]:
        """The resume state (``trainer_state.json``)."""
        return {
            "epoch": self.epoch,
            "best_val": self.best if math.isfinite(self.best) else None,
            "bad_epochs": self.bad,
            "finished": finished,
        }


def _restore(
    run_dir: Path,
    model: Forecaster,
    opt: torch.optim.Optimizer,
    ema: WeightAverage | None,
    state: dict[str, Any] | None,
) -> _Progress:
    """Progress of a new run, or of the interrupted one in ``run_dir`` with its weights,
    optimizer and RNG state loaded back."""
    log_path = run_dir / "log.csv"
    if state is None:
        print(f"starting fresh: no resume state in {run_dir}")
        return _Progress(rows=[])
    if state.get("finished"):
        print(f"resuming {run_dir} from epoch {int(state['epoch'])}: the run had finished")
        return _Progress(epoch=int(state["epoch"]))
    ckpt.load_resume(run_dir, model, opt, ema.model if ema is not None else None)
    if ema is not None:
        ema.steps = int(state.get("ema_steps", 0))
    done = int(state["epoch"])
    rows: list[dict[str, Any]] = []
    if log_path.is_file():
        with log_path.open() as fh:  # rows of epochs after the resume point were never finished
            rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= done]
    print(f"resuming {run_dir} from epoch {done} (the last finished one)")
    best = state["best_val"] if state["best_val"] is not None else math.inf
    return _Progress(epoch=done, best=best, bad=int(state["bad_epochs"]), rows=rows)


def _fit(
    model: Forecaster,
    task: Task,
    cfg: TrainConfig,
    windows: dict[str, SlidingWindows | None],
    run_dir: Path,
    state: dict[str, Any] | None,
) -> int:
    """Train ``model`` on ``windows["train"]`` for the configured epochs with early stopping on
    ``windows["val"]``; returns the last epoch run."""
    ts = cfg.train
    opt = torch.optim.Adam(model.parameters(), lr=ts.lr, weight_decay=ts.weight_decay)
    ema = WeightAverage(model, ts.ema_decay) if ts.ema_decay else None
    progress = _restore(run_dir, model, opt, ema, state)
    if progress.rows is None:  # the run had finished
        return progress.epoch
    _check_step_memory(model, task, cfg, windows["train"])
    if cfg.finetune is not None and state is None:
        _validate_start(model, task, cfg, windows, run_dir, progress)

    writer = None
    if cfg.output.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
    try:
        for epoch in range(progress.epoch + 1, ts.epochs + 1):
            if _run_epoch(model, task, cfg, windows, run_dir, opt, ema, progress, writer, epoch):
                break
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: {run_dir} holds the last finished epoch; run the same command to resume"
        )
        raise
    finally:
        if writer is not None:
            writer.close()
    _write_state(run_dir, model, opt, progress.state(finished=True), ema)
    return progress.epoch


def _check_step_memory(
    model: Forecaster, task: Task, cfg: TrainConfig, train_windows: SlidingWindows
) -> None:
    """Refuse, before the first step, a step that would not fit in the memory budget
    (:mod:`stgraph.train.step_memory`; the probe changes no weight and no random state)."""
    from stgraph.train.step_memory import check_step_memory, estimate_step

    ts = cfg.train
    windows = min(ts.batch_size, len(train_windows))
    probe = Batch.from_data_list([train_windows[0]])  # no loader: it would draw a random seed
    est = estimate_step(
        model, lambda b: task.loss(model, b), probe, windows, average=bool(ts.ema_decay)
    )
    check_step_memory(
        est,
        f"{cfg.dataset.label}: {cfg.model.name}",
        hint=f"lower train.batch_size (now {ts.batch_size}) or the input length, or raise the "
        "budget",
    )
    if cfg.output.progress:
        print(f"one training step: about {est.describe()}")


def _validate_start(
    model: Forecaster,
    task: Task,
    cfg: TrainConfig,
    windows: dict[str, SlidingWindows | None],
    run_dir: Path,
    progress: _Progress,
) -> None:
    """Score the pretrained starting weights on the validation part (epoch 0) and keep them as
    the best so far: fine-tuning keeps an epoch's weights only if they beat where it started."""
    if windows["val"] is None:
        return
    val = _val_scores(model, task, windows["val"], cfg.train.eval_batch_size)[cfg.train.monitor]
    if math.isfinite(val):
        progress.best = val
        ckpt.save_weights(model, run_dir / ckpt.MODEL_FILE)
        if cfg.output.progress:
            print(f"epoch 0 (pretrained): val {cfg.train.monitor.upper()} {val:.4f}")


def _run_epoch(
    model: Forecaster,
    task: Task,
    cfg: TrainConfig,
    windows: dict[str, SlidingWindows | None],
    run_dir: Path,
    opt: torch.optim.Optimizer,
    ema: WeightAverage | None,
    progress: _Progress,
    writer: Any,
    epoch: int,
) -> bool:
    """One epoch: train, validate, keep the weights if they improved, log, save the resume
    state. Returns whether training stops early after it."""
    ts = cfg.train
    t0 = time.perf_counter()
    lr = ts.lr * ts.lr_gamma ** sum(1 for m in ts.lr_milestones if epoch > m)
    for group in opt.param_groups:
        group["lr"] = lr
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    loader = DataLoader(windows["train"], batch_size=ts.batch_size, shuffle=True, generator=gen)
    bar = tqdm(
        loader,
        desc=f"epoch {epoch}/{ts.epochs}",
        leave=False,
        disable=not cfg.output.progress or None,
    )
    train_loss = _train_batches(model, task, ts, opt, ema, bar, epoch)
    kept = ema.sync(model) if ema is not None else model  # the weights validated and saved
    has_val = windows["val"] is not None
    scores = _val_scores(kept, task, windows["val"], ts.eval_batch_size)
    val = scores[ts.monitor]
    if has_val and math.isnan(val):
        raise ValueError(
            f"epoch {epoch}: validation {ts.monitor.upper()} is NaN: the validation part "
            f"{cfg.protocol.name} gives has no observed targets; change protocol ratios"
        )
    improved = (val < progress.best) if has_val else True
    if improved:
        progress.best, progress.bad = (val if has_val else progress.best), 0
        ckpt.save_weights(kept, run_dir / ckpt.MODEL_FILE)
    else:
        progress.bad += 1
    progress.epoch = epoch
    seconds = time.perf_counter() - t0
    _log_epoch(run_dir, progress, writer, train_loss, scores, lr, seconds, has_val)
    stop = has_val and progress.bad >= ts.patience
    _write_state(run_dir, model, opt, progress.state(finished=stop or epoch == ts.epochs), ema)
    if cfg.output.progress:
        vtxt = (
            f", val MAE {scores['mae']:.4f} RMSE {scores['rmse']:.4f}" + (" *" if improved else "")
            if has_val
            else ""
        )
        print(f"epoch {epoch}: train {ts.loss} {train_loss:.4f}{vtxt} ({seconds:.1f} s)")
    return stop


def _train_batches(
    model: Forecaster,
    task: Task,
    ts: TrainSettings,
    opt: torch.optim.Optimizer,
    ema: WeightAverage | None,
    bar: Any,
    epoch: int,
) -> float:
    """Gradient steps on the batches of one epoch; the mean loss per window."""
    model.train()
    total, count = 0.0, 0
    for i, batch in enumerate(bar):
        if ts.max_batches_per_epoch and i >= ts.max_batches_per_epoch:
            break
        opt.zero_grad(set_to_none=True)
        loss = task.loss(model, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"epoch {epoch}, batch {i}: loss is {float(loss)}")
        optimizer_step(model, loss, opt, ts.grad_clip, ema)
        total += float(loss.detach()) * batch.num_graphs
        count += batch.num_graphs
        bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
    return total / max(count, 1)


def _val_scores(
    model: torch.nn.Module, task: Task, windows: SlidingWindows | None, batch_size: int
) -> dict[str, float]:
    """The task's validation metrics over all windows (MAE and RMSE NaN without windows)."""
    if windows is None:
        return {"mae": math.nan, "rmse": math.nan}
    loader = DataLoader(windows, batch_size=batch_size, shuffle=False)
    return task.score(model, loader).summary()


def _log_epoch(
    run_dir: Path,
    progress: _Progress,
    writer: Any,
    train_loss: float,
    scores: dict[str, float],
    lr: float,
    seconds: float,
    has_val: bool,
) -> None:
    """Append the epoch to ``log.csv`` (rewritten atomically) and to TensorBoard."""
    rows = progress.rows if progress.rows is not None else []
    rows.append(
        {
            "epoch": progress.epoch,
            "train_loss": f"{train_loss:.6f}",
            "val_mae": f"{scores['mae']:.6f}",
            "val_rmse": f"{scores['rmse']:.6f}",
            "lr": lr,
            "seconds": f"{seconds:.2f}",
        }
    )
    _write_log(run_dir / "log.csv", rows)
    if writer is not None:
        writer.add_scalar("loss/train", train_loss, progress.epoch)
        if has_val:
            writer.add_scalar("mae/val", scores["mae"], progress.epoch)
            writer.add_scalar("rmse/val", scores["rmse"], progress.epoch)
        writer.flush()


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(LOG_FIELDS))
    w.writeheader()
    w.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
