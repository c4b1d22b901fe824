"""Build tasks and models by the names configs give them.

The registries are filled by subclassing: :data:`~stgraph.tasks.task.TASKS` by
:class:`~stgraph.tasks.task.Task`, :data:`~stgraph.tasks.forecaster.MODELS` by
:class:`~stgraph.tasks.forecaster.Forecaster`. This module imports every built-in task and model
(the forecasting task, the baselines of :mod:`stgraph.baselines`, the STFM forecaster), so the
names are complete once it is imported, and nothing below it imports it back.
"""

from __future__ import annotations

from typing import Any

import stgraph.baselines  # noqa: F401  (registers historical_average, ..., dcrnn)
import stgraph.tasks.forecast  # noqa: F401  (registers "forecast")
import stgraph.tasks.stfm_forecaster  # noqa: F401  (registers "stfm")
from stgraph.tasks.forecaster import MODELS, Forecaster
from stgraph.tasks.task import TASKS, Task


def task_names() -> list[str]:
    """The names of the registered tasks, sorted."""
    return sorted(TASKS)


def get_task(name: str, **options: Any) -> Task:
    """Build a registered task by name with its keyword options.

    Raises:
        KeyError: if no task of that name is registered (the message lists the names).
    """
    if name not in TASKS:
        raise KeyError(f"unknown task {name!r}; registered: {task_names()}")
    return TASKS[name](**options)


def model_names() -> list[str]:
    """The names of the registered models, sorted."""
    return sorted(MODELS)


def build_model(name: str, **kwargs: Any) -> Forecaster:
    """Instantiate a registered model by name with keyword arguments from a config.

    Raises:
        KeyError: if no model of that name is registered (the message lists the names).
    """
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {model_names()}")
    return MODELS[name](**kwargs)


__all__ = ["build_model", "get_task", "model_names", "task_names"]
