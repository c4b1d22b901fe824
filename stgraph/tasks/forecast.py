"""Forecasting: predict the next ``H`` steps of every node from ``L`` observed steps.

The model is fed the batch of windows itself (``x``/``mask`` of the input steps, ``time`` and
``y_time``, the graph), returns ``[B*N, H, V]`` in the original units of the data, and is scored
against ``y`` where ``y_mask`` is set (and, with a ``null_value``, where ``y`` differs from it).
The loss is one of :data:`LOSSES`, masked the same way, in the original units.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from stgraph.data.stgraph import STGraph
from stgraph.tasks.metrics import (
    MetricAccumulator,
    masked_berhu,
    masked_huber,
    masked_mae,
    masked_mse,
    valid_mask,
)
from stgraph.tasks.task import Task, TaskMetrics

#: Training losses (``train.loss``): all masked, in the target's original units; ``huber`` and
#: ``berhu`` take ``loss_delta`` as their threshold.
LOSSES = ("mae", "mse", "huber", "berhu")


class ForecastTask(Task):
    """The forecasting task (registered as ``"forecast"``).

    Args:
        horizon: ``H``, the number of steps the model predicts.
        null_value: target value that means "no reading" (``None``: only ``y_mask`` counts).
        loss: one of :data:`LOSSES`.
        loss_delta: threshold of the ``huber`` and ``berhu`` losses, in the target's units.
    """

    name = "forecast"

    def __init__(
        self,
        horizon: int,
        *,
        null_value: float | None = None,
        loss: str = "mae",
        loss_delta: float = 1.0,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"forecast: loss {loss!r} is not one of {', '.join(LOSSES)}")
        if horizon < 1:
            raise ValueError(f"forecast: horizon must be >= 1, got {horizon}")
        self.horizon, self.null_value = int(horizon), null_value
        self.loss_kind, self.loss_delta = loss, float(loss_delta)

    def predict(self, model: torch.nn.Module, batch: STGraph) -> Tensor:
        """``model``'s forecast ``[B*N, H, V]`` for ``batch``, checked against ``batch.y``.

        Raises:
            ValueError: if the forecast's shape is not the shape of ``batch.y``.
        """
        pred = model(self.inputs(batch))
        if pred.shape != batch.y.shape:
            raise ValueError(
                f"{type(model).__name__} returned {tuple(pred.shape)}, expected "
                f"{tuple(batch.y.shape)}"
            )
        return pred

    def loss(self, model: torch.nn.Module, batch: STGraph) -> Tensor:
        """The configured masked loss of ``model``'s forecast of ``batch``."""
        return self.loss_of(self.predict(model, batch), batch)

    def loss_of(self, pred: Tensor, batch: STGraph) -> Tensor:
        """The configured masked loss of a forecast ``pred`` against ``batch.y``/``y_mask``."""
        if self.loss_kind in ("huber", "berhu"):
            fn = masked_huber if self.loss_kind == "huber" else masked_berhu
            return fn(pred, batch.y, batch.y_mask, self.null_value, delta=self.loss_delta)
        fn = masked_mae if self.loss_kind == "mae" else masked_mse
        return fn(pred, batch.y, batch.y_mask, self.null_value)

    def metrics(self, num_nodes: int | None = None) -> ForecastMetrics:
        """A fresh accumulator; with ``num_nodes`` it also keeps each node's MAE."""
        return ForecastMetrics(self, num_nodes)


class ForecastMetrics(TaskMetrics):
    """Masked MAE/RMSE/MAPE/MSE per horizon step (:class:`MetricAccumulator`) and, optionally,
    the MAE of each node of the windows' graph (for error maps).

    Args:
        task: the forecasting task (its horizon and null value).
        num_nodes: ``N`` of the graph the windows come from, to keep per-node errors
            (``None``: none kept).
    """

    def __init__(self, task: ForecastTask, num_nodes: int | None = None) -> None:
        self.task = task
        self.steps = MetricAccumulator(task.horizon, null_value=task.null_value)
        self.num_nodes = num_nodes
        n = 0 if num_nodes is None else int(num_nodes)
        self._node_abs = torch.zeros(n, dtype=torch.float64)
        self._node_cnt = torch.zeros(n, dtype=torch.float64)

    def update(self, model: torch.nn.Module, batch: STGraph) -> None:
        """Forecast ``batch`` with ``model`` and add the errors."""
        self.add(self.task.predict(model, batch), batch)

    def add(self, pred: Tensor, batch: STGraph) -> None:
        """Add the errors of a forecast ``pred`` ``[B*N, H, V]`` of ``batch``."""
        self.steps.update(pred, batch.y, batch.y_mask)
        if self.num_nodes is None:
            return
        v = valid_mask(batch.y, batch.y_mask, self.task.null_value)
        err = torch.where(v, (pred - batch.y).abs(), torch.zeros(())).double().sum((1, 2))
        local = torch.arange(batch.num_nodes) - batch.ptr[batch.batch]
        self._node_abs.index_add_(0, local, err)
        self._node_cnt.index_add_(0, local, v.double().sum((1, 2)))

    def summary(self) -> dict[str, float]:
        """Each metric over all horizon steps together (RMSE from the pooled squared error)."""
        return self.steps.average()

    def at(self, steps: Sequence[int]) -> dict[int, dict[str, float]]:
        """Each metric at the given 1-based horizon steps."""
        return self.steps.at(steps)

    def node_mae(self) -> list[float]:
        """MAE of each node (``nan`` for a node with no valid target).

        Raises:
            ValueError: if the accumulator was made without ``num_nodes``.
        """
        if self.num_nodes is None:
            raise ValueError("forecast metrics: per-node errors need num_nodes")
        c = self._node_cnt
        nan = torch.full_like(self._node_abs, float("nan"))
        return torch.where(c > 0, self._node_abs / c.clamp_min(1), nan).tolist()


__all__ = ["LOSSES", "ForecastMetrics", "ForecastTask"]
