"""The task contract: what a task feeds the model, its loss and its metrics.

A :class:`Task` is what the trainer optimises and reports, independent of the model: the
trainer draws batches, asks the task for the loss of the model on each batch, and scores the
model on the validation and test parts with the task's :class:`TaskMetrics`. The model side is
:class:`~stgraph.tasks.forecaster.Forecaster` (``model(batch) -> Tensor``).

Every task is built with the same keywords, taken from the run (see
:func:`stgraph.train.assemble.make_task`): ``horizon`` (steps predicted), ``null_value`` (a
target value that means "no reading", or ``None``), ``loss`` and ``loss_delta`` (the loss kind
and its threshold, from ``train.loss`` / ``train.loss_delta``), plus the task's own options.
Subclasses register themselves in :data:`TASKS`; :func:`stgraph.tasks.registry.get_task`
builds one by name.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

from stgraph.data.stgraph import STGraph

#: Registered tasks by name (``task:`` in a training config), filled by subclassing :class:`Task`.
TASKS: dict[str, type[Task]] = {}


class TaskMetrics(abc.ABC):
    """Scores of a model accumulated over batches (sums, so the result is over all entries seen,
    not a mean of batch means)."""

    @abc.abstractmethod
    def update(self, model: torch.nn.Module, batch: STGraph) -> None:
        """Run ``model`` on ``batch`` as the task feeds it and add the errors."""

    @abc.abstractmethod
    def summary(self) -> dict[str, float]:
        """Each metric over everything added so far (``nan`` where nothing counted)."""


class Task(abc.ABC):
    """An objective: the model's inputs from a batch of windows, the loss, the metrics.

    A subclass that sets its own ``name`` is registered in :data:`TASKS` under it.

    - :meth:`inputs` is the batch as the model sees it: a task that hides entries (masked
      reconstruction) returns a view without them; the default is the batch itself.
    - :meth:`loss` is the scalar the trainer minimises on a training batch: masked, so that only
      observed targets count, and in the units the task states.
    - :meth:`metrics` is a fresh accumulator; :meth:`score` runs it over batches without
      gradients.
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):  # its own name: a subclass does not take its parent's
            TASKS[cls.name] = cls

    def inputs(self, batch: STGraph) -> STGraph:
        """What the model is fed from ``batch`` (default: the batch unchanged)."""
        return batch

    @abc.abstractmethod
    def loss(self, model: torch.nn.Module, batch: STGraph) -> Tensor:
        """The training loss of ``model`` on ``batch`` (a scalar tensor with gradients)."""

    @abc.abstractmethod
    def metrics(self) -> TaskMetrics:
        """A fresh, empty metrics accumulator for this task."""

    @torch.no_grad()
    def score(
        self,
        model: torch.nn.Module,
        batches: Iterable[STGraph],
        metrics: TaskMetrics | None = None,
    ) -> TaskMetrics:
        """Put ``model`` in eval mode and add every batch to ``metrics`` (default: a fresh one)."""
        model.eval()
        acc = self.metrics() if metrics is None else metrics
        for batch in batches:
            acc.update(model, batch)
        return acc


__all__ = ["TASKS", "Task", "TaskMetrics"]
