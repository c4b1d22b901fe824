"""What a training config assembles: the data set, the protocol, the task and the model.

Shared by the trainer (:mod:`stgraph.train.trainer`) and checkpoint evaluation
(:mod:`stgraph.train.evaluate`), so both build a run's parts the same way.
"""

from __future__ import annotations

import inspect

from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError
from stgraph.tasks.forecaster import MODELS, Forecaster
from stgraph.tasks.registry import build_model, get_task
from stgraph.tasks.task import Task
from stgraph.train.config import TrainConfig
from stgraph.train.protocols import Protocol, get_protocol


def load_graph(cfg: TrainConfig) -> STGraph:
    """The data set of the config: a registry name, or a saved graph directory."""
    if cfg.dataset.graph is not None:
        from stgraph.data.io import load

        return load(cfg.dataset.graph)
    from stgraph import datasets

    return datasets.load(cfg.dataset.name, **cfg.dataset.options)


def make_protocol(cfg: TrainConfig) -> Protocol:
    """The configured protocol with its overrides.

    Raises:
        ConfigError: for an unknown protocol or an unknown override field.
    """
    try:
        return get_protocol(cfg.protocol.name, **cfg.protocol.overrides)
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"protocol: {exc}") from exc


def make_task(cfg: TrainConfig, protocol: Protocol) -> Task:
    """The configured task, with the protocol's horizon and null value and the train loss.

    Raises:
        ConfigError: for an unknown task or a loss the task does not take.
    """
    try:
        return get_task(
            cfg.task,
            horizon=protocol.horizon,
            null_value=protocol.null_value,
            loss=cfg.train.loss,
            loss_delta=cfg.train.loss_delta,
        )
    except KeyError as exc:
        raise ConfigError(f"task: {exc.args[0]}") from exc
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"task {cfg.task!r}: {exc}") from exc


def make_model(cfg: TrainConfig, graph: STGraph, protocol: Protocol) -> Forecaster:
    """Build the configured model; a model with a ``scaler`` option gets the protocol's scaler
    unless the config sets one, so the scaler written next to every metric is the one used.

    Raises:
        ConfigError: for an unknown model name or options the model does not take.
    """
    if cfg.finetune is not None:
        return pretrained_forecaster(cfg.finetune.checkpoint, protocol, graph)
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


def pretrained_forecaster(checkpoint: str, protocol: Protocol, graph: STGraph) -> Forecaster:
    """The STFM forecaster of a pretrained checkpoint (its options and weights) for ``protocol``.

    Raises:
        CheckpointError: the checkpoint is missing or its tensors do not match its options.
    """
    from stgraph.pretrained import from_pretrained, read_options, resolve_pretrained
    from stgraph.tasks.stfm_forecaster import STFMForecaster

    directory = resolve_pretrained(checkpoint)
    model = STFMForecaster(
        protocol.input_steps, protocol.horizon, graph.num_variables, **read_options(directory)
    )
    model.backbone.load_state_dict(from_pretrained(directory).state_dict())
    return model


def prepare_finetune(cfg: TrainConfig, model: Forecaster) -> None:
    """Freeze ``model`` for the config's fine-tuning mode (adapters attached in ``adapter`` mode),
    before any weights of the run are loaded into it. Nothing without a ``finetune`` section."""
    if cfg.finetune is None:
        return
    from stgraph.tasks.finetune import configure_finetune

    try:
        configure_finetune(
            model, cfg.finetune.mode, rank=cfg.finetune.rank, alpha=cfg.finetune.alpha
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"finetune: {exc}") from exc


def budget_windows(cfg: TrainConfig, graph: STGraph, protocol: Protocol, split, windows: dict):
    """``windows`` with the training part cut to the config's few-shot budget (``finetune.budget``
    or, for a model trained from scratch on the same data, ``train.budget``; unchanged without
    one), and the number of optimiser steps the budget allows (``None``: the schedule's)."""
    fine = cfg.finetune is not None and cfg.finetune.budget is not None
    key, text = (
        ("finetune.budget", cfg.finetune.budget) if fine else ("train.budget", cfg.train.budget)
    )
    if text is None:
        return windows, None, None
    from stgraph.data.windows import SlidingWindows
    from stgraph.tasks.finetune import parse_budget

    span = protocol.input_steps + protocol.horizon
    try:
        budget = parse_budget(text, graph, split.train, window=span)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from exc
    a, b = budget.train_range(split.train)
    out = dict(windows)
    out["train"] = SlidingWindows(
        graph, protocol.input_steps, protocol.horizon, stride=protocol.stride, start=a, stop=b
    )
    return out, budget.max_steps, budget.description


def windows_for_model(windows: dict, model: Forecaster) -> dict:
    """``windows`` (a split's :class:`SlidingWindows`, in place) with the reference only where
    ``model`` reads it (:attr:`~stgraph.tasks.Forecaster.reads_reference`): most of the cost
    of an item, for nothing, in a model that ignores it."""
    for w in windows.values():
        if w is not None:
            w.reference = model.reads_reference
    return windows
