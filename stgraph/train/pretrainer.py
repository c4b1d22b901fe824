"""Foundation pretraining: one set of weights on many graphs (``stgraph pretrain``).

``pretrain(cfg)`` builds a :class:`~stgraph.tasks.corpus.Corpus` from the config, an
:class:`~stgraph.nn.STFM` with a reconstruction readout, and runs AdamW for ``train.steps``
steps; each step draws one batch of one graph and one objective
(:func:`~stgraph.tasks.pretrain.pretrain_loss`). The run directory holds::

    config.yaml          the validated pretraining config
    model.yaml           the STFM options (what from_pretrained builds)
    model.safetensors    the weights (their moving average, with train.ema_decay)
    log.csv              one row per logged step: source, objective, losses, lr
    sources.json         per source: nodes, steps, variables, interval, loss scale, batches drawn
    loss_curves.png      the training losses per source
    resume/              last weights, their average, optimizer + RNG states, the sampler state

Every ``train.checkpoint_every`` steps ``resume/`` is replaced in one atomic swap, and a run
started again with the same config continues from there and reaches the same weights as an
uninterrupted one (the corpus and mask draws come from one generator whose state is saved).
"""

from __future__ import annotations

import csv
import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from tqdm.auto import tqdm

from stgraph.errors import ConfigError
from stgraph.tasks.corpus import Corpus, WindowRange, parse_source
from stgraph.tasks.pretrain import DEFAULT_MASKS, ObjectiveMix, pretrain_loss
from stgraph.train import checkpoint as ckpt
from stgraph.utils.atomic import atomic_path, atomic_write_text
from stgraph.utils.seed import seed_everything

MODEL_OPTIONS_FILE = "model.yaml"
SAMPLER_FILE = "sampler.pt"
LOG_FIELDS = [
    "step",
    "source",
    "objective",
    "ratio",
    "loss",
    "reconstruction",
    "forecast",
    "lr",
    "seconds",
]


@dataclass
class CorpusSection:
    sources: list[Any] = field(
        metadata={"help": "entries {dataset: NAME | graph: DIR, weight, nodes, split, options}"}
    )
    held_out: list[Any] = field(default_factory=list, metadata={"help": "entries never drawn from"})


@dataclass
class WindowSection:
    input_steps: list[int] = field(
        default_factory=lambda: [12, 24],
        metadata={"help": "[min, max] input steps drawn per batch"},
    )
    horizon: list[int] = field(
        default_factory=lambda: [1, 12], metadata={"help": "[min, max] lead steps drawn per batch"}
    )
    batch_size: int = field(default=32, metadata={"help": "most windows per batch"})
    node_budget: int = field(
        default=4096, metadata={"help": "windows per batch = min(batch_size, node_budget // N)"}
    )


@dataclass
class ObjectiveSection:
    masks: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_MASKS),
        metadata={"help": "weight of each masking strategy (none: forecasting only)"},
    )
    mask_ratio: list[float] = field(
        default_factory=lambda: [0.15, 0.5], metadata={"help": "[min, max] share hidden"}
    )
    reconstruction_weight: float = field(
        default=1.0, metadata={"help": "weight of the masked-reconstruction loss"}
    )
    forecast_weight: float = field(default=1.0, metadata={"help": "weight of the forecast loss"})
    huber_delta: float = field(
        default=1.0, metadata={"help": "Huber threshold in per-variable std units"}
    )


@dataclass
class PretrainModel:
    config: str | None = field(
        default="configs/model/small.yaml", metadata={"help": "YAML of STFM options"}
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "STFM options over the file's"}
    )


@dataclass
class PretrainSettings:
    steps: int = field(default=2000, metadata={"help": "optimiser steps"})
    lr: float = field(default=1e-3, metadata={"help": "peak AdamW learning rate"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_steps: int = field(
        default=100, metadata={"help": "linear warm-up, then cosine decay to lr/10"}
    )
    grad_clip: float | None = field(default=1.0, metadata={"help": "max gradient norm (null: off)"})
    ema_decay: float | None = field(
        default=0.995, metadata={"help": "per-step decay of the weight average (null: off)"}
    )
    checkpoint_every: int = field(default=100, metadata={"help": "steps between resume states"})
    log_every: int = field(default=10, metadata={"help": "steps between log rows"})
    num_threads: int | None = field(default=None, metadata={"help": "torch CPU threads"})


@dataclass
class PretrainOutput:
    dir: str = field(default="runs/pretrain", metadata={"help": "run directory"})
    tensorboard: bool = field(default=True, metadata={"help": "TensorBoard scalars per source"})
    progress: bool = field(default=True, metadata={"help": "progress bar"})


@dataclass
class PretrainConfig:
    corpus: CorpusSection
    model: PretrainModel = field(default_factory=PretrainModel)
    windows: WindowSection = field(default_factory=WindowSection)
    objectives: ObjectiveSection = field(default_factory=ObjectiveSection)
    train: PretrainSettings = field(default_factory=PretrainSettings)
    output: PretrainOutput = field(default_factory=PretrainOutput)
    seed: int = field(
        default=0, metadata={"help": "seed of the weights, the corpus draws and the masks"}
    )


def load_pretrain_config(
    path: str | Path | None = None,
    *,
    overrides: list[str] | None = None,
    raw: dict[str, Any] | None = None,
) -> PretrainConfig:
    """Read and validate a pretraining config (YAML file or mapping) with ``--set`` overrides."""
    from stgraph.utils.config import read_config

    cfg, source = read_config(PretrainConfig, path, raw=raw, overrides=overrides)
    try:
        specs(cfg)
        mix_of(cfg)
        windows_of(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    for name in ("steps", "checkpoint_every", "log_every"):
        if getattr(cfg.train, name) < 1:
            raise ConfigError(f"{source}: train.{name} = {getattr(cfg.train, name)}: expected >= 1")
    if not cfg.train.lr > 0 or cfg.train.warmup_steps < 0 or cfg.train.weight_decay < 0:
        raise ConfigError(f"{source}: train.lr must be > 0, warmup_steps and weight_decay >= 0")
    if cfg.train.grad_clip is not None and not cfg.train.grad_clip > 0:
        raise ConfigError(
            f"{source}: train.grad_clip = {cfg.train.grad_clip}: expected > 0 or null"
        )
    if cfg.train.ema_decay is not None and not 0.0 < cfg.train.ema_decay < 1.0:
        raise ConfigError(
            f"{source}: train.ema_decay = {cfg.train.ema_decay}: expected (0, 1) or null"
        )
    if cfg.train.num_threads is not None and cfg.train.num_threads < 1:
        raise ConfigError(f"{source}: train.num_threads = {cfg.train.num_threads}: expected >= 1")
    cfg.model.options = model_options(cfg, None if path is None else Path(path))
    return cfg


def specs(cfg: PretrainConfig):
    """The corpus entries of ``cfg`` as :class:`~stgraph.tasks.corpus.SourceSpec` lists."""
    sources = [parse_source(s, f"corpus.sources[{i}]") for i, s in enumerate(cfg.corpus.sources)]
    held = [parse_source(s, f"corpus.held_out[{i}]") for i, s in enumerate(cfg.corpus.held_out)]
    return sources, held


def mix_of(cfg: PretrainConfig) -> ObjectiveMix:
    o = cfg.objectives
    if len(o.mask_ratio) != 2:
        raise ConfigError(f"objectives.mask_ratio: expected [min, max], got {o.mask_ratio}")
    return ObjectiveMix(
        dict(o.masks),
        tuple(o.mask_ratio),
        o.reconstruction_weight,
        o.forecast_weight,
        o.huber_delta,
    )


def windows_of(cfg: PretrainConfig) -> WindowRange:
    w = cfg.windows
    for name in ("input_steps", "horizon"):
        pair = getattr(w, name)
        if len(pair) != 2 or not 1 <= pair[0] <= pair[1]:
            raise ConfigError(
                f"windows.{name}: expected [min, max] with 1 <= min <= max, got {pair}"
            )
    if w.batch_size < 1 or w.node_budget < 1:
        raise ConfigError("windows.batch_size and windows.node_budget must be >= 1")
    return WindowRange(tuple(w.input_steps), tuple(w.horizon))


def model_options(cfg: PretrainConfig, config_path: Path | None) -> dict[str, Any]:
    """STFM options: the model file's (found as given, or beside the config) under the inline ones,
    with the reconstruction readout that pretraining trains."""
    from stgraph.utils.yamlio import read_yaml_mapping

    opts: dict[str, Any] = {}
    if cfg.model.config:
        mp = Path(cfg.model.config)
        if not mp.is_file() and config_path is not None and not mp.is_absolute():
            mp = config_path.parent / mp
        if not mp.is_file():
            raise ConfigError(f"model.config {cfg.model.config!r} not found")
        opts = dict(read_yaml_mapping(mp))
    opts.update(cfg.model.options)
    tasks = list(opts.get("tasks") or [])
    if "reconstruction" not in tasks:
        tasks.append("reconstruction")
    opts["tasks"] = tasks
    opts.pop("name", None)
    return opts


def lr_at(step: int, cfg: PretrainSettings) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then cosine decay to ``lr / 10``."""
    if cfg.warmup_steps and step <= cfg.warmup_steps:
        return cfg.lr * step / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    frac = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


@dataclass
class PretrainResult:
    """What a finished pretraining run produced."""

    run_dir: Path
    steps: int
    seconds: float
    model: torch.nn.Module
    sources: list[dict[str, Any]]


def build_backbone(options: dict[str, Any]) -> torch.nn.Module:
    """An :class:`~stgraph.nn.STFM` from its options; a bad option is a :class:`ConfigError`."""
    from stgraph.nn import STFM

    try:
        return STFM(**options)
    except TypeError as exc:
        raise ConfigError(f"model options: {exc}") from None


def _save_resume(run_dir: Path, model, opt, ema, gen: torch.Generator, state: dict) -> None:
    buf = io.BytesIO()
    torch.save({"generator": gen.get_state()}, buf)
    averaged = None if ema is None else ema.model
    ckpt.save_resume(run_dir, model, opt, state, averaged, extra={SAMPLER_FILE: buf.getvalue()})


def _load_resume(run_dir: Path, model, opt, ema, gen: torch.Generator) -> dict[str, Any]:
    d = run_dir / ckpt.RESUME_DIR
    ckpt.load_resume(run_dir, model, opt, None if ema is None else ema.model)
    payload = torch.load(d / SAMPLER_FILE, weights_only=True, map_location="cpu")
    gen.set_state(payload["generator"])
    state = ckpt.read_state(run_dir) or {}
    if ema is not None:
        ema.steps = int(state.get("ema_steps", 0))
    return state


def _write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS)
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def _read_log(path: Path, upto: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    with path.open(encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if int(r["step"]) <= upto]


def _source_facts(corpus: Corpus, drawn: list[int]) -> list[dict[str, Any]]:
    out = []
    for i, cg in enumerate(corpus.graphs):
        g = cg.graph
        out.append(
            {
                "name": cg.spec.name,
                "weight": cg.spec.weight,
                "nodes": g.num_nodes,
                "train_steps": cg.train_steps,
                "variables": g.variables,
                "units": g.units,
                "interval_s": g.interval,
                "loss_scale": [round(float(s), 6) for s in cg.loss_scale],
                "batches": drawn[i],
                "domain": (g.meta or {}).get("domain"),
            }
        )
    return out


def pretrain(cfg: PretrainConfig, *, graphs: dict | None = None) -> PretrainResult:
    """Run the pretraining config end to end (resuming an unfinished run in ``output.dir``).

    Args:
        cfg: a validated :class:`PretrainConfig` (:func:`load_pretrain_config`).
        graphs: already loaded graphs by source name (skips loading those sources).

    Raises:
        RunLockedError: another live process writes ``output.dir`` (one writer per run).
    """
    with ckpt.open_run(cfg.output.dir, "stgraph pretrain"):
        return _pretrain(cfg, graphs)


def _pretrain(cfg: PretrainConfig, graphs: dict | None) -> PretrainResult:
    start = time.perf_counter()
    run_dir = Path(cfg.output.dir)
    config_text = yaml.safe_dump(_asdict(cfg), sort_keys=False)
    state = ckpt.read_state(run_dir)
    if state is not None:
        old = run_dir / ckpt.CONFIG_FILE
        if not old.is_file() or old.read_text(encoding="utf-8") != config_text:
            raise ConfigError(
                f"{run_dir} already holds a run with a different config; choose another "
                "output.dir (--set output.dir=...) or delete it"
            )
    if cfg.train.num_threads:
        torch.set_num_threads(cfg.train.num_threads)
    seed_everything(cfg.seed)
    sources, held = specs(cfg)
    model = build_backbone(cfg.model.options)
    corpus = Corpus(
        sources,
        held_out=held,
        windows=windows_of(cfg),
        node_budget=cfg.windows.node_budget,
        batch_size=cfg.windows.batch_size,
        graphs=graphs,
        transform=model.transform,
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / ckpt.CONFIG_FILE, config_text)
    atomic_write_text(
        run_dir / MODEL_OPTIONS_FILE, yaml.safe_dump(cfg.model.options, sort_keys=False)
    )
    steps, drawn = _run_steps(cfg, corpus, model, run_dir, state)
    kept = model
    ema_path = run_dir / ckpt.RESUME_DIR / ckpt.EMA_FILE
    if cfg.train.ema_decay and ema_path.is_file():
        kept = build_backbone(cfg.model.options)
        ckpt.load_weights(kept, ema_path)
    ckpt.save_weights(kept, run_dir / ckpt.MODEL_FILE)
    facts = _source_facts(corpus, drawn)
    ckpt.write_json(run_dir / "sources.json", facts)
    rows = _read_log(run_dir / "log.csv", steps)
    plot_loss_curves(rows, run_dir / "loss_curves.png")
    return PretrainResult(run_dir, steps, time.perf_counter() - start, kept.eval(), facts)


def _asdict(cfg: PretrainConfig) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(cfg)


def _run_steps(
    cfg: PretrainConfig, corpus: Corpus, model, run_dir: Path, state: dict[str, Any] | None
) -> tuple[int, list[int]]:
    from stgraph.train.trainer import WeightAverage, optimizer_step

    ts = cfg.train
    opt = torch.optim.AdamW(model.parameters(), lr=ts.lr, weight_decay=ts.weight_decay)
    ema = WeightAverage(model, ts.ema_decay) if ts.ema_decay else None
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + 17)
    mix = mix_of(cfg)
    first, drawn = 0, [0] * len(corpus.graphs)
    if state is not None:
        state = _load_resume(run_dir, model, opt, ema, gen)
        first, drawn = int(state["step"]), list(state.get("drawn", drawn))
        print(f"resuming {run_dir} from step {first}")
        if state.get("finished"):
            return first, drawn
    else:
        print(f"starting fresh: no resume state in {run_dir}")
    _check_step_memory(cfg, corpus, model, mix)
    rows = _read_log(run_dir / "log.csv", first)
    writer = _tensorboard(cfg, run_dir)
    bar = tqdm(
        range(first + 1, ts.steps + 1),
        initial=first,
        total=ts.steps,
        desc="pretrain",
        disable=not cfg.output.progress or None,
    )
    model.train()
    t0 = time.perf_counter()
    try:
        for step in bar:
            lr = lr_at(step, ts)
            for group in opt.param_groups:
                group["lr"] = lr
            i, batch = corpus.sample(gen)
            drawn[i] += 1
            opt.zero_grad(set_to_none=True)
            loss, parts = pretrain_loss(model, batch, corpus.graphs[i].loss_scale, mix, gen)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"step {step} ({corpus.names[i]}, {parts['kind']}): loss is {float(loss)}"
                )
            optimizer_step(model, loss, opt, ts.grad_clip, ema)
            value = float(loss.detach())
            if step % ts.log_every == 0 or step == ts.steps:
                row = _log_row(step, corpus.names[i], parts, value, lr, time.perf_counter() - t0)
                rows.append(row)
                _write_log(run_dir / "log.csv", rows)
                bar.set_postfix(loss=f"{value:.3f}", src=corpus.names[i])
                if writer is not None:
                    writer.add_scalar(f"loss/{corpus.names[i]}", value, step)
                    writer.add_scalar("lr", lr, step)
            if step % ts.checkpoint_every == 0 or step == ts.steps:
                st = {"step": step, "drawn": drawn, "finished": step == ts.steps}
                if ema is not None:
                    st["ema_steps"] = ema.steps
                _save_resume(run_dir, model, opt, ema, gen, st)
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: {run_dir} holds the state of the last checkpoint; run the same "
            "command to resume"
        )
        raise
    finally:
        if writer is not None:
            writer.close()
    return ts.steps, drawn


def _check_step_memory(cfg: PretrainConfig, corpus: Corpus, model, mix: ObjectiveMix) -> None:
    """Refuse, before the first step, a corpus whose largest batch (the longest window of each
    graph at its windows per batch) would not fit in the memory budget; the probes change no
    weight and no random state (:mod:`stgraph.train.step_memory`)."""
    from stgraph.train.step_memory import check_step_memory, estimate_step

    worst, name = None, ""
    for i, cg in enumerate(corpus.graphs):
        probe, windows = corpus.largest_batch(i)
        gen = torch.Generator().manual_seed(0)

        def loss(b, cg=cg, gen=gen):
            return pretrain_loss(model, b, cg.loss_scale, mix, gen)[0]

        est = estimate_step(model, loss, probe, windows, average=bool(cfg.train.ema_decay))
        if worst is None or est.total > worst.total:
            worst, name = est, corpus.names[i]
    if worst is None:
        return
    check_step_memory(
        worst,
        f"pretraining ({name}, the largest batch of the corpus)",
        hint=f"lower windows.node_budget (now {cfg.windows.node_budget}), windows.batch_size "
        f"(now {cfg.windows.batch_size}) or the longest input_steps, or raise the budget",
    )
    if cfg.output.progress:
        print(f"largest pretraining step ({name}): about {worst.describe()}")


def _log_row(step: int, source: str, parts: dict, loss: float, lr: float, seconds: float) -> dict:
    def fmt(v):
        return "" if v is None else f"{v:.6f}"

    return {
        "step": step,
        "source": source,
        "objective": parts["kind"],
        "ratio": f"{parts['ratio']:.3f}",
        "loss": fmt(loss),
        "reconstruction": fmt(parts.get("reconstruction")),
        "forecast": fmt(parts.get("forecast")),
        "lr": f"{lr:.6g}",
        "seconds": f"{seconds:.1f}",
    }


def _tensorboard(cfg: PretrainConfig, run_dir: Path):
    if not cfg.output.tensorboard:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def plot_loss_curves(rows: list[dict[str, Any]], path: Path, *, window: int = 10) -> Path | None:
    """Training loss per source against the step (a running mean over ``window`` rows)."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by: dict[str, tuple[list[int], list[float]]] = {}
    for r in rows:
        s, v = by.setdefault(r["source"], ([], []))
        s.append(int(r["step"]))
        v.append(float(r["loss"]))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, (s, v) in sorted(by.items()):
        t = torch.tensor(v)
        k = min(window, len(v))
        smooth = torch.nn.functional.avg_pool1d(t.view(1, 1, -1), k, 1).view(-1).tolist()
        ax.plot(s[k - 1 :], smooth, label=name, linewidth=1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (per-variable std units)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("pretraining loss per source")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


__all__ = [
    "PretrainConfig",
    "PretrainResult",
    "load_pretrain_config",
    "plot_loss_curves",
    "pretrain",
]
