"""The training loop: data set + protocol + model from a config, Adam, early stopping, checkpoints.

``train(cfg)`` is the whole run: load the data set through the registry, split and window it by the
protocol, build the model by name, fit its statistics on the training steps, run Adam with early
stopping on the validation part (when the protocol has one), keep the best weights, evaluate on the
test part and write everything into the run directory (see :mod:`stgraph.train.checkpoint`).
An interrupted run resumes from its last finished epoch when started again with the same config.
"""

from __future__ import annotations

import copy
import csv
import inspect
import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch_geometric.loader import DataLoader
from tqdm.auto import tqdm

from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError
from stgraph.tasks.forecaster import Forecaster, build_model
from stgraph.train import checkpoint as ckpt
from stgraph.train.config import TrainConfig, dump_config
from stgraph.train.evaluate import evaluate_model, write_metrics
from stgraph.train.metrics import masked_berhu, masked_huber, masked_mae, masked_mse
from stgraph.train.protocols import Protocol, get_protocol
from stgraph.utils.atomic import atomic_path, atomic_write_text
from stgraph.utils.seed import seed_everything


@dataclass
class RunResult:
    """What a finished run produced."""

    run_dir: Path
    metrics: dict[str, Any]
    epochs: int
    seconds: float
    model: Forecaster


def load_graph(cfg: TrainConfig) -> STGraph:
    """The data set named by the config, through the registry."""
    from stgraph import datasets

    return datasets.load(cfg.dataset.name, **cfg.dataset.options)


def make_protocol(cfg: TrainConfig) -> Protocol:
    try:
        return get_protocol(cfg.protocol.name, **cfg.protocol.overrides)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"protocol: {exc}") from exc


def make_model(cfg: TrainConfig, graph: STGraph, protocol: Protocol) -> Forecaster:
    """Build the configured model; a model with a ``scaler`` option gets the protocol's scaler
    unless the config sets one, so the scaler written next to every metric is the one used."""
    from stgraph.tasks.forecaster import MODELS

    options = dict(cfg.model.options)
    cls = MODELS.get(cfg.model.name)
    if cls is not None and "scaler" in inspect.signature(cls.__init__).parameters:
        options.setdefault("scaler", protocol.scaler)
    try:
        return build_model(
            cfg.model.name,
            input_steps=protocol.input_steps,
            horizon=protocol.horizon,
            num_variables=graph.num_variables,
            **options,
        )
    except KeyError as exc:
        raise ConfigError(f"model.name: {exc}") from exc
    except TypeError as exc:
        raise ConfigError(f"model.options for {cfg.model.name!r}: {exc}") from exc


def _loss(
    pred: torch.Tensor, batch: STGraph, kind: str, null_value: float | None, delta: float = 1.0
) -> torch.Tensor:
    if kind in ("huber", "berhu"):
        fn = masked_huber if kind == "huber" else masked_berhu
        return fn(pred, batch.y, batch.y_mask, null_value, delta=delta)
    fn = masked_mae if kind == "mae" else masked_mse
    return fn(pred, batch.y, batch.y_mask, null_value)


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


def _val_scores(
    model: Forecaster, windows, protocol: Protocol, batch_size: int
) -> dict[str, float]:
    """Validation MAE and RMSE, averaged over the horizon (NaN without validation windows)."""
    if windows is None:
        return {"mae": math.nan, "rmse": math.nan}
    res = evaluate_model(model, windows, protocol, batch_size=batch_size, progress=False)
    return {k: float(res["average"][k]) for k in ("mae", "rmse")}


def train(cfg: TrainConfig, *, resume: bool = True, graph: STGraph | None = None) -> RunResult:
    """Run the config end to end and return the test metrics; see the module docstring.

    Args:
        cfg: a validated :class:`TrainConfig`.
        resume: continue an unfinished run found in ``cfg.output.dir`` (same config required).
        graph: use this series instead of loading ``cfg.dataset`` (e.g. a graph built by a user).
    """
    start = time.perf_counter()
    run_dir = Path(cfg.output.dir)
    config_text = dump_config(cfg)
    state = ckpt.read_state(run_dir)
    if state is not None:
        old = (
            (run_dir / ckpt.CONFIG_FILE).read_text(encoding="utf-8")
            if (run_dir / ckpt.CONFIG_FILE).is_file()
            else ""
        )
        if not resume or old != config_text:
            raise ConfigError(
                f"{run_dir} already holds a run with {'a different' if old != config_text else 'this'} "
                "config; choose another output.dir (--set output.dir=...) or delete it"
            )
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    seed_everything(cfg.seed)

    graph = graph if graph is not None else load_graph(cfg)
    protocol = make_protocol(cfg)
    split, windows = protocol.windows(graph)
    if windows["train"] is None or windows["test"] is None:
        raise ConfigError(f"protocol {protocol.name}: train and test parts must be non-empty")
    model = make_model(cfg, graph, protocol)
    model.fit(graph, split.train)

    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / ckpt.CONFIG_FILE, config_text)

    epochs_done = 0
    if model.trainable and any(p.requires_grad for p in model.parameters()):
        epochs_done = _fit(model, cfg, protocol, windows, run_dir, state)
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
        batch_size=cfg.train.eval_batch_size,
        progress=cfg.output.progress,
        node_errors=True,
    )
    result.update(
        dataset=cfg.dataset.name,
        model=cfg.model.name,
        split=split.as_dict(),
        epochs=epochs_done,
        train_seconds=round(time.perf_counter() - start, 2),
        num_parameters=sum(p.numel() for p in model.parameters()),
    )
    write_metrics(run_dir, result, graph=graph)
    return RunResult(run_dir, result, epochs_done, time.perf_counter() - start, model)


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


def _fit(
    model: Forecaster,
    cfg: TrainConfig,
    protocol: Protocol,
    windows: dict,
    run_dir: Path,
    state: dict[str, Any] | None,
) -> int:
    ts = cfg.train
    opt = torch.optim.Adam(model.parameters(), lr=ts.lr, weight_decay=ts.weight_decay)
    ema = WeightAverage(model, ts.ema_decay) if ts.ema_decay else None
    first_epoch, best, bad = 0, math.inf, 0
    if state is not None:
        if state.get("finished"):
            return int(state["epoch"])
        ckpt.load_resume(run_dir, model, opt, ema.model if ema is not None else None)
        if ema is not None:
            ema.steps = int(state.get("ema_steps", 0))
        first_epoch = int(state["epoch"])
        best = state["best_val"] if state["best_val"] is not None else math.inf
        bad = int(state["bad_epochs"])
        print(f"resuming {run_dir} after epoch {first_epoch}")

    writer = None
    if cfg.output.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
    log_path = run_dir / "log.csv"
    rows: list[dict[str, Any]] = []
    if log_path.is_file() and state is not None:
        with log_path.open() as fh:  # rows of epochs after the resume point were never finished
            rows = [r for r in csv.DictReader(fh) if int(r["epoch"]) <= first_epoch]
    has_val = windows["val"] is not None
    epoch = first_epoch
    try:
        for epoch in range(first_epoch + 1, ts.epochs + 1):
            t0 = time.perf_counter()
            lr = ts.lr * ts.lr_gamma ** sum(1 for m in ts.lr_milestones if epoch > m)
            for group in opt.param_groups:
                group["lr"] = lr
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            loader = DataLoader(
                windows["train"], batch_size=ts.batch_size, shuffle=True, generator=gen
            )
            model.train()
            total, count = 0.0, 0
            bar = tqdm(
                loader,
                desc=f"epoch {epoch}/{ts.epochs}",
                leave=False,
                disable=not cfg.output.progress or None,
            )
            for i, batch in enumerate(bar):
                if ts.max_batches_per_epoch and i >= ts.max_batches_per_epoch:
                    break
                opt.zero_grad(set_to_none=True)
                loss = _loss(model(batch), batch, ts.loss, protocol.null_value, ts.loss_delta)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"epoch {epoch}, batch {i}: loss is {float(loss)}")
                loss.backward()
                if ts.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), ts.grad_clip)
                opt.step()
                if ema is not None:
                    ema.update(model)
                total += float(loss.detach()) * batch.num_graphs
                count += batch.num_graphs
                bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
            train_loss = total / max(count, 1)
            kept = ema.sync(model) if ema is not None else model  # the weights validated and saved
            scores = _val_scores(kept, windows["val"], protocol, ts.eval_batch_size)
            val = scores[ts.monitor]
            if has_val and math.isnan(val):
                raise ValueError(
                    f"epoch {epoch}: validation {ts.monitor.upper()} is NaN: the validation part "
                    f"{protocol.name} gives has no observed targets; change protocol ratios"
                )
            improved = (val < best) if has_val else True
            if improved:
                best, bad = (val if has_val else best), 0
                ckpt.save_weights(kept, run_dir / ckpt.MODEL_FILE)
            else:
                bad += 1
            seconds = time.perf_counter() - t0
            rows.append(
                {
                    "epoch": epoch,
                    "train_loss": f"{train_loss:.6f}",
                    "val_mae": f"{scores['mae']:.6f}",
                    "val_rmse": f"{scores['rmse']:.6f}",
                    "lr": lr,
                    "seconds": f"{seconds:.2f}",
                }
            )
            _write_log(log_path, rows)
            if writer is not None:
                writer.add_scalar("loss/train", train_loss, epoch)
                if has_val:
                    writer.add_scalar("mae/val", scores["mae"], epoch)
                    writer.add_scalar("rmse/val", scores["rmse"], epoch)
                writer.flush()
            stop = has_val and bad >= ts.patience
            _write_state(
                run_dir,
                model,
                opt,
                {
                    "epoch": epoch,
                    "best_val": best if math.isfinite(best) else None,
                    "bad_epochs": bad,
                    "finished": stop or epoch == ts.epochs,
                },
                ema,
            )
            if cfg.output.progress:
                vtxt = (
                    f", val MAE {scores['mae']:.4f} RMSE {scores['rmse']:.4f}"
                    + (" *" if improved else "")
                    if has_val
                    else ""
                )
                print(f"epoch {epoch}: train {ts.loss} {train_loss:.4f}{vtxt} ({seconds:.1f} s)")
            if stop:
                break
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: {run_dir} holds the last finished epoch; run the same command to resume"
        )
        raise
    finally:
        if writer is not None:
            writer.close()
    _write_state(
        run_dir,
        model,
        opt,
        {
            "epoch": epoch,
            "best_val": best if math.isfinite(best) else None,
            "bad_epochs": bad,
            "finished": True,
        },
        ema,
    )
    return epoch


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(
        buf, fieldnames=["epoch", "train_loss", "val_mae", "val_rmse", "lr", "seconds"]
    )
    w.writeheader()
    w.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())
