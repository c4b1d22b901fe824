"""Training configuration: YAML validated by dataclasses; unknown keys are errors.

A config names the data set, the protocol, the model and the optimisation settings::

    seed: 0
    dataset: {name: los-loop}
    protocol: {name: tgcn-val}
    model: {name: dcrnn, options: {hidden: 64}}
    train: {epochs: 30, batch_size: 64, lr: 0.001}
    output: {dir: runs/los-loop-dcrnn}

``--set train.lr=0.01`` style overrides are applied to the raw mapping before validation, so they
are checked exactly like the file.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stgraph.errors import ConfigError
from stgraph.tasks.forecast import LOSSES
from stgraph.tasks.registry import task_names
from stgraph.utils.config import apply_overrides, read_config  # noqa: F401 (re-exported)
from stgraph.utils.config import from_dict as _from_dict  # noqa: F401 (the old private name)
from stgraph.utils.yamlio import read_yaml_mapping

#: Validation metrics that can select the kept weights (``train.monitor``).
MONITORS = ("mae", "rmse")


@dataclass
class DatasetConfig:
    name: str | None = field(
        default=None, metadata={"help": "registered data set name (stgraph datasets list)"}
    )
    graph: str | None = field(
        default=None,
        metadata={
            "help": "a saved graph directory (stgraph build / STGraph.save) instead of a name"
        },
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "loader keyword options"}
    )

    @property
    def label(self) -> str:
        """The data set's name in results: the registry name or the graph directory's name."""
        if self.name is not None:
            return self.name
        from pathlib import Path as _Path

        p = _Path(str(self.graph))
        return p.parent.name if p.name == "graph" else p.name


@dataclass
class FinetuneConfig:
    checkpoint: str | None = field(
        default=None,
        metadata={"help": "pretrained checkpoint (directory or shipped name) to start from"},
    )
    mode: str = field(default="full", metadata={"help": "full, head or adapter"})
    budget: str | None = field(
        default=None,
        metadata={"help": "few-shot budget: 1d, 12h, 1w, 10%, '500 steps' (null: all)"},
    )
    rank: int = field(default=8, metadata={"help": "adapter rank (mode adapter)"})
    alpha: float = field(default=16.0, metadata={"help": "adapter scale alpha (mode adapter)"})


@dataclass
class ProtocolConfig:
    name: str = field(
        default="default", metadata={"help": "registered protocol (tgcn, tgcn-val, pgt, ...)"}
    )
    overrides: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "protocol fields to change"}
    )


@dataclass
class ModelConfig:
    name: str = field(
        metadata={
            "help": "registered model (historical_average, last_value, var, dcrnn, stfm, ...)"
        }
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "model keyword options"}
    )
    config: str | None = field(
        default=None,
        metadata={"help": "YAML file of model options (e.g. configs/model/small.yaml)"},
    )


@dataclass
class TrainSettings:
    epochs: int = field(default=30, metadata={"help": "maximum epochs"})
    batch_size: int = field(default=64, metadata={"help": "windows per batch"})
    lr: float = field(default=1e-3, metadata={"help": "Adam learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "Adam weight decay"})
    lr_milestones: list[int] = field(
        default_factory=list, metadata={"help": "epochs after which lr is multiplied by lr_gamma"}
    )
    lr_gamma: float = field(default=0.3, metadata={"help": "lr decay factor at each milestone"})
    patience: int = field(
        default=5, metadata={"help": "epochs without validation improvement before stopping"}
    )
    monitor: str = field(
        default="mae",
        metadata={
            "help": "validation metric that selects the kept weights and stops early: mae or rmse (averaged over the horizon)"
        },
    )
    grad_clip: float | None = field(default=5.0, metadata={"help": "max gradient norm (null: off)"})
    loss: str = field(
        default="mae",
        metadata={"help": "mae, mse, huber or berhu (reverse Huber), masked, in original units"},
    )
    loss_delta: float = field(
        default=1.0,
        metadata={"help": "threshold of the huber and berhu losses, in the target's units"},
    )
    ema_decay: float | None = field(
        default=None,
        metadata={
            "help": "per-step decay of an exponential moving average of the weights (e.g. 0.99; null: off); validation, the kept checkpoint and the test use the averaged weights"
        },
    )
    max_batches_per_epoch: int | None = field(
        default=None, metadata={"help": "cap batches per epoch (null: all)"}
    )
    budget: str | None = field(
        default=None,
        metadata={
            "help": "train on the first part of the training part only: 1d, 12h, 10%, "
            "'500 steps' (null: all; finetune.budget for fine-tuning)"
        },
    )
    eval_batch_size: int = field(default=256, metadata={"help": "windows per evaluation batch"})
    num_threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads (null: torch default)"}
    )


@dataclass
class OutputConfig:
    dir: str = field(default="runs/run", metadata={"help": "checkpoint directory"})
    tensorboard: bool = field(default=True, metadata={"help": "write TensorBoard event files"})
    progress: bool = field(default=True, metadata={"help": "show progress bars"})


@dataclass
class TrainConfig:
    dataset: DatasetConfig
    model: ModelConfig
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    task: str = field(
        default="forecast",
        metadata={
            "help": "registered task (stgraph.tasks.TASKS): the model's inputs, loss, metrics"
        },
    )
    train: TrainSettings = field(default_factory=TrainSettings)
    output: OutputConfig = field(default_factory=OutputConfig)
    seed: int = field(default=0, metadata={"help": "seed for Python, NumPy and torch"})
    finetune: FinetuneConfig | None = field(
        default=None, metadata={"help": "start from a pretrained checkpoint (stgraph finetune)"}
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(
    path: str | os.PathLike | None = None,
    *,
    overrides: list[str] | None = None,
    raw: dict[str, Any] | None = None,
) -> TrainConfig:
    """Read and validate a training config (a YAML file or a mapping) with ``--set`` overrides."""
    cfg, source = read_config(TrainConfig, path, raw=raw, overrides=overrides)
    if cfg.model.config:
        mp = Path(cfg.model.config)
        if not mp.is_absolute() and path is not None and not mp.exists():
            mp = Path(path).parent / mp
        if not mp.is_file():
            raise ConfigError(f"{source}: model.config {cfg.model.config!r} not found")
        opts = read_yaml_mapping(mp)
        cfg.model.options = {**opts, **cfg.model.options}
    if cfg.task not in task_names():
        raise ConfigError(
            f"{source}: task = {cfg.task!r}: expected one of {', '.join(task_names())}"
        )
    if cfg.train.loss not in LOSSES:
        raise ConfigError(
            f"{source}: train.loss = {cfg.train.loss!r}: expected one of {', '.join(LOSSES)}"
        )
    if cfg.train.monitor not in MONITORS:
        raise ConfigError(
            f"{source}: train.monitor = {cfg.train.monitor!r}: expected one of {', '.join(MONITORS)}"
        )
    if cfg.train.loss_delta <= 0:
        raise ConfigError(f"{source}: train.loss_delta = {cfg.train.loss_delta}: expected > 0")
    if cfg.train.ema_decay is not None and not 0.0 < cfg.train.ema_decay < 1.0:
        raise ConfigError(
            f"{source}: train.ema_decay = {cfg.train.ema_decay}: expected 0 < decay < 1 (or null)"
        )
    for name in ("epochs", "batch_size", "eval_batch_size"):
        if getattr(cfg.train, name) < 1:
            raise ConfigError(f"{source}: train.{name} must be >= 1")
    _check_ranges(cfg, source)
    _check_dataset_and_finetune(cfg, source)
    return cfg


def _check_ranges(cfg: TrainConfig, source: str) -> None:
    """Numeric fields whose values outside their range would train quietly wrong."""
    ts = cfg.train
    checks = [
        ("lr", ts.lr > 0, "> 0"),
        ("weight_decay", ts.weight_decay >= 0, ">= 0"),
        ("lr_gamma", 0 < ts.lr_gamma <= 1, "in (0, 1]"),
        ("patience", ts.patience >= 1, ">= 1"),
        ("grad_clip", ts.grad_clip is None or ts.grad_clip > 0, "> 0 or null"),
        (
            "max_batches_per_epoch",
            ts.max_batches_per_epoch is None or ts.max_batches_per_epoch >= 1,
            ">= 1 or null",
        ),
        ("num_threads", ts.num_threads is None or ts.num_threads >= 1, ">= 1 or null"),
        ("lr_milestones", all(m >= 0 for m in ts.lr_milestones), "epochs >= 0"),
    ]
    for name, ok, expected in checks:
        if not ok:
            raise ConfigError(
                f"{source}: train.{name} = {getattr(ts, name)!r}: expected {expected}"
            )


def _check_dataset_and_finetune(cfg: TrainConfig, source: str) -> None:
    if (cfg.dataset.name is None) == (cfg.dataset.graph is None):
        raise ConfigError(
            f"{source}: dataset: give exactly one of name (a registry data set) or graph "
            "(a saved graph directory)"
        )
    ft = cfg.finetune
    if ft is not None and ft.budget is not None and cfg.train.budget is not None:
        raise ConfigError(f"{source}: give train.budget or finetune.budget, not both")
    if ft is None:
        return
    if ft.mode not in ("full", "head", "adapter"):
        raise ConfigError(f"{source}: finetune.mode = {ft.mode!r}: expected full, head or adapter")
    if ft.checkpoint is None:
        raise ConfigError(f"{source}: finetune.checkpoint: the pretrained checkpoint is required")
    if cfg.model.name != "stfm":
        raise ConfigError(
            f"{source}: finetune needs model.name stfm (the pretrained backbone), got "
            f"{cfg.model.name!r}"
        )
    if ft.rank < 1 or not ft.alpha > 0:
        raise ConfigError(f"{source}: finetune.rank must be >= 1 and finetune.alpha > 0")


def dump_config(cfg: TrainConfig) -> str:
    """The config as YAML text (written into every checkpoint)."""
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
