"""Seasonal naive: each future step repeats the value one season (default one day) earlier."""

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
    per_window,
)
from stgraph.data.stgraph import STGraph
from stgraph.data.windows import last_observed
from stgraph.tasks.forecaster import Forecaster


class SeasonalNaive(ResizableBuffers, Forecaster):
    r"""Seasonal naive forecast: :math:`\hat{x}_{t} = x_{t - kS}` with season :math:`S` and the
    smallest :math:`k \ge 1` that puts :math:`t - kS` before the first predicted step.

    A season is usually longer than the input window (a day is 288 five-minute steps), so the model
    needs the series *before* the window. :meth:`fit` therefore keeps a reference to the graph it is
    given, and :meth:`forward` reads from it only steps strictly before each window's first input
    step (``batch.window``); steps inside the window are read from the batch itself, so its
    ``mask`` is honoured. Everything read lies before the first predicted step: past data that is
    known when the forecast is made (the same information a deployed model has). The training range
    passed to :meth:`fit` is only used for the fallback means. ``batch.time`` is checked against the
    stored series, so windows of another series are refused instead of silently mismatched.

    Where the seasonal value is unavailable (before the start of the series, or not observed), the
    last observed input value is used, then the node's training mean.

    The stored series is not part of ``state_dict``: after loading a checkpoint, call :meth:`fit`
    again with the series.

    Args:
        input_steps: ``L``.
        horizon: ``H``.
        num_variables: ``V``.
        season_steps: :math:`S` in steps. Default from the graph's interval: one day for
            sub-daily data, one week for daily data, about a year for weekly to quarterly data
            (52 steps of a week); an error without an interval.

    Shapes:
        - **input:** ``batch.x``, ``batch.mask`` :math:`(B \cdot N, L, V)`, ``batch.window``
          :math:`(B)`.
        - **output:** :math:`(B \cdot N, H, V)` in the units of the data.
    """

    name = "seasonal_naive"
    trainable = False

    def __init__(
        self,
        input_steps: int,
        horizon: int,
        num_variables: int = 1,
        *,
        season_steps: int | None = None,
    ) -> None:
        super().__init__(input_steps, horizon, num_variables)
        if season_steps is not None and int(season_steps) < 1:
            raise ValueError(f"season_steps must be >= 1, got {season_steps}")
        self.season_steps = None if season_steps is None else int(season_steps)
        self.register_buffer("node_mean", torch.zeros(0, num_variables))  # [N, V]
        self.register_buffer("season", torch.tensor(0))
        self._series: STGraph | None = None

    def fit(self, graph: STGraph, train_range: tuple[int, int]) -> SeasonalNaive:
        a, b = train_range
        season = self.season_steps or _default_season(graph)
        self.node_mean = masked_node_mean(graph.x[:, a:b], graph.mask[:, a:b]).float()
        self.season = torch.tensor(season)
        self._series = graph
        return self

    def forward(self, batch: STGraph) -> Tensor:
        series = self._series
        if series is None:
            raise RuntimeError(
                "seasonal_naive: call fit(graph, train_range) first; it keeps the series whose "
                "past values the forecast repeats"
            )
        n = check_nodes(batch, series.num_nodes, self.name)
        b = num_windows(batch)
        starts = per_window(getattr(batch, "window", None), b)
        if starts is None:
            raise ValueError("seasonal_naive: batch.window (first step of each window) is missing")
        starts = starts.view(b).to(series.x.device)
        x, mask = batch.x, batch.mask
        L, season = x.size(1), int(self.season)
        _check_same_series(series, batch, starts, b, L)

        # Indices live with the stored series (usually CPU); results move to the batch's device.
        h = torch.arange(self.horizon, device=starts.device)
        back = season * (torch.div(h, season, rounding_mode="floor") + 1)  # smallest k*S > h
        src = starts.view(-1, 1) + L + h - back  # [B, H] step index of the seasonal value
        node = local_node_index(batch, n).to(starts.device)
        graph = batch.batch if getattr(batch, "batch", None) is not None else None
        graph = torch.zeros_like(node) if graph is None else graph.to(starts.device)
        src_rows = src[graph]  # [R, H]
        start_rows = starts[graph].view(-1, 1)
        past = src_rows.clamp_min(0)
        out_val = series.x[node.view(-1, 1), past].to(device=x.device, dtype=x.dtype)
        out_obs = series.mask[node.view(-1, 1), past] & (src_rows >= 0).unsqueeze(-1)
        inside = (src_rows >= start_rows).unsqueeze(-1).to(x.device)
        idx = (src_rows - start_rows).clamp(0, L - 1).unsqueeze(-1).expand(-1, -1, x.size(2))
        idx = idx.to(x.device)
        value = torch.where(inside, x.gather(1, idx), out_val)
        observed = torch.where(inside, mask.gather(1, idx), out_obs.to(x.device))

        last, found = last_observed(x, mask)
        fallback = torch.where(found, last, self.node_mean[node.to(x.device)].to(x.dtype))
        return torch.where(observed, value, fallback.unsqueeze(1))

    def extra_repr(self) -> str:
        return (
            f"input_steps={self.input_steps}, horizon={self.horizon}, "
            f"num_variables={self.num_variables}, season_steps={self.season_steps}"
        )


def _default_season(graph: STGraph) -> int:
    """One day for sub-daily data, one week for daily data, else about one year (52 weekly steps)."""
    interval = graph.interval
    week, year = 7 * SECONDS_PER_DAY, 365.25 * SECONDS_PER_DAY
    if interval and interval < SECONDS_PER_DAY and SECONDS_PER_DAY % interval == 0:
        return SECONDS_PER_DAY // interval
    if interval and interval < week and week % interval == 0:
        return week // interval
    if interval and week <= interval <= year / 4:
        return max(1, round(year / interval))
    raise ValueError(
        f"seasonal_naive: cannot derive a daily, weekly or yearly season from interval={interval!r}"
        " s; give season_steps"
    )


def _check_same_series(series: STGraph, batch: STGraph, starts: Tensor, b: int, L: int) -> None:
    time = per_window(getattr(batch, "time", None), b)
    if starts.numel() and (int(starts.min()) < 0 or int(starts.max()) + L > series.num_steps):
        raise ValueError(
            f"seasonal_naive: batch.window points outside the fitted series of {series.num_steps} steps"
        )
    if time is None or series.time is None:
        return
    steps = starts.view(-1, 1) + torch.arange(L, device=starts.device)
    if not torch.equal(series.time[steps], time.to(series.time.device)):
        raise ValueError(
            "seasonal_naive: batch.time does not match the series given to fit() at batch.window; "
            "fit the model on the series the windows were cut from"
        )
