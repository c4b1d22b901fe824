"""Historical average: the mean training value of each node at the same time of day and weekday."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.baselines._batch import (
    SECONDS_PER_DAY,
    ResizableBuffers,
    check_nodes,
    local_node_index,
    masked_node_mean,
    num_windows,
    target_times,
)
from stgraph.data.stgraph import STGraph
from stgraph.tasks.forecaster import Forecaster

SEASONALITIES = ("week", "day", "none")


def seasonal_slots(time: Tensor, interval: int, seasonality: str) -> tuple[Tensor, int]:
    """Slot of each unix time in the seasonal cycle, and the number of slots.

    ``"week"``: time of day × day of week (Monday = 0); ``"day"``: time of day; ``"none"`` or an
    interval that does not divide a day: a single slot. Times are read in UTC.

    Args:
        time: int64 unix seconds, any shape.
        interval: sampling interval in seconds.
        seasonality: ``"week"``, ``"day"`` or ``"none"``.

    Returns:
        ``(slots, num_slots)`` with ``slots`` of the shape of ``time``.
    """
    if seasonality not in SEASONALITIES:
        raise ValueError(f"seasonality must be one of {SEASONALITIES}, got {seasonality!r}")
    per_day = SECONDS_PER_DAY // interval if interval and SECONDS_PER_DAY % interval == 0 else 0
    if seasonality == "none" or per_day == 0:
        return torch.zeros_like(time), 1
    tod = torch.div(time % SECONDS_PER_DAY, interval, rounding_mode="floor")
    if seasonality == "day":
        return tod, per_day
    dow = (torch.div(time, SECONDS_PER_DAY, rounding_mode="floor") + 3) % 7  # 1970-01-01: Thursday
    return dow * per_day + tod, 7 * per_day


class HistoricalAverage(ResizableBuffers, Forecaster):
    r"""Historical average (HA): the training mean of each node at the target's seasonal slot.

    For every node, variable and slot of the cycle (time of day × day of week by default) the mean
    of the *observed* training values is stored; a prediction for time :math:`t` looks up the slot of
    :math:`t`. The input window is not used. Slots never observed in training fall back, in order,
    to the node's time-of-day mean, the node's overall mean, and the variable's mean over all nodes
    (counts of each fallback are kept in :attr:`fit_summary`). Without timestamps or a sampling
    interval, the model is the plain per-node mean.

    Args:
        input_steps: ``L`` (unused by the model, kept for the common signature).
        horizon: ``H``.
        num_variables: ``V``.
        seasonality: ``"week"`` (default), ``"day"`` or ``"none"``.

    Shapes:
        - **input:** a batch of windows with ``y_time`` :math:`(B, H)` (or ``time`` to extrapolate).
        - **output:** :math:`(B \cdot N, H, V)` in the units of the data.
    """

    name = "historical_average"
    trainable = False

    def __init__(
        self, input_steps: int, horizon: int, num_variables: int = 1, *, seasonality: str = "week"
    ) -> None:
        super().__init__(input_steps, horizon, num_variables)
        if seasonality not in SEASONALITIES:
            raise ValueError(f"seasonality must be one of {SEASONALITIES}, got {seasonality!r}")
        self.seasonality = seasonality
        self.register_buffer("table", torch.zeros(0, 1, num_variables))  # [N, S, V]
        self.register_buffer("node_mean", torch.zeros(0, num_variables))  # [N, V]
        self.register_buffer("interval", torch.tensor(0))
        self.fit_summary: dict[str, int] = {}

    def fit(self, graph: STGraph, train_range: tuple[int, int]) -> HistoricalAverage:
        a, b = train_range
        x = graph.x[:, a:b].double()
        m = graph.mask[:, a:b].double()
        if x.size(1) == 0:
            raise ValueError(f"historical_average.fit: empty training range [{a}, {b})")
        if x.size(2) != self.num_variables:
            raise ValueError(
                f"historical_average.fit: graph has {x.size(2)} variables, model {self.num_variables}"
            )
        n, _, v = x.shape
        # Hierarchy of means, coarse to fine; each finer level falls back to the coarser one.
        node_mean = masked_node_mean(x, graph.mask[:, a:b])  # [N, V], variable mean if unseen
        summary = {"nodes_never_observed": int((m.sum(1) == 0).sum())}
        interval = graph.interval
        table = node_mean.unsqueeze(1)
        if graph.time is not None and interval and self.seasonality != "none":
            time = graph.time[a:b]
            levels = ["day", "week"] if self.seasonality == "week" else ["day"]
            for level in levels:
                slots, num_slots = seasonal_slots(time, interval, level)
                if num_slots == 1:  # e.g. time of day of daily data
                    continue
                sums = torch.zeros(n, num_slots, v, dtype=x.dtype).index_add_(1, slots, x * m)
                counts = torch.zeros(n, num_slots, v, dtype=x.dtype).index_add_(1, slots, m)
                coarse = _coarse_lookup(table, num_slots, interval)
                table = torch.where(counts > 0, sums / counts.clamp_min(1), coarse)
                summary[f"{level}_slots_filled_by_fallback"] = int((counts == 0).sum())
            self.interval = torch.tensor(int(interval))
        self.table = table.float()
        self.node_mean = node_mean.float()
        self.fit_summary = summary
        return self

    def forward(self, batch: STGraph) -> Tensor:
        if self.node_mean.numel() == 0:
            raise RuntimeError("historical_average: call fit(graph, train_range) before forward")
        n = check_nodes(batch, self.node_mean.size(0), self.name)
        b = num_windows(batch)
        node = local_node_index(batch, n)
        graph = batch.batch if getattr(batch, "batch", None) is not None else torch.zeros_like(node)
        interval = int(self.interval)
        times = target_times(batch, b, self.horizon, interval) if interval else None
        if times is None or self.table.size(1) == 1:
            return self.node_mean[node].unsqueeze(1).expand(-1, self.horizon, -1).clone()
        level = "week" if self.table.size(1) > SECONDS_PER_DAY // interval else "day"
        slots, _ = seasonal_slots(times.to(node.device), interval, level)  # [B, H]
        return self.table[node.unsqueeze(1), slots[graph]]

    def extra_repr(self) -> str:
        return (
            f"input_steps={self.input_steps}, horizon={self.horizon}, "
            f"num_variables={self.num_variables}, seasonality={self.seasonality!r}"
        )


def _coarse_lookup(table: Tensor, num_slots: int, interval: int) -> Tensor:
    """Spread a coarser table ``[N, S_c, V]`` onto ``num_slots`` finer slots (week → day order)."""
    if table.size(1) == 1:
        return table.expand(-1, num_slots, -1)
    per_day = SECONDS_PER_DAY // interval
    tod = torch.arange(num_slots) % per_day
    return table[:, tod]
