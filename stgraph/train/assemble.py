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
    """The data set named by the config, through the registry."""
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
