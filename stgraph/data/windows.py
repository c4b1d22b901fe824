"""Lazily indexed sliding windows over an :class:`STGraph` for forecasting.

Only window start indices are kept; each item is sliced from the graph when requested, so a
series of ``T`` steps costs ``O(1)`` memory however many windows it yields.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor
from torch.utils.data import Dataset

from stgraph.data.stgraph import STRUCTURE_KEYS, STGraph
from stgraph.errors import ConfigError

SECONDS_PER_DAY = 86_400
#: Past periods averaged into the seasonal reference (see :func:`seasonal_reference`).
SEASON_LAGS = 4


def season_periods(interval: int | None) -> tuple[int, ...]:
    """Seasonal periods in steps, in order of preference: a week, then a day; a year of 52
    weeks for weekly data.

    Only periods of at least 2 steps that a whole number of steps spans (an ``interval`` that
    divides a day, or a week): hourly data gives ``(168, 24)``, daily data ``(7,)``, weekly
    data ``(52,)``, anything else ``()``.
    """
    if interval == 7 * SECONDS_PER_DAY:
        return (52,)
    if not interval or interval <= 0 or SECONDS_PER_DAY % int(interval):
        return ()
    per_day = SECONDS_PER_DAY // int(interval)
    return tuple(p for p in (7 * per_day, per_day) if p >= 2)


def seasonal_reference(
    graph: STGraph,
    start: int,
    stop: int,
    *,
    lags: int = SEASON_LAGS,
    periods: tuple[int, ...] | None = None,
    stat: str = "mean",
) -> tuple[Tensor, Tensor]:
    r"""The seasonal profile of steps ``[start, stop)`` from the periods *before* ``start``.

    For each step :math:`j` the mean of the observed values at :math:`j - kP` over the ``lags``
    most recent whole periods :math:`P` that end before ``start`` (:math:`k \ge
    \lceil (j - \text{start} + 1) / P \rceil`): a local historical average (the same slot of the
    last weeks) that a window can carry without seeing its own future or any masked input of the
    window itself. The weekly period is used where one of its lags was observed, else the daily
    one (:func:`season_periods`); ``stop`` may run past the series (a forecast after the last
    observation).

    Args:
        graph: the series.
        start, stop: the steps to give a reference for.
        lags: periods averaged.
        periods: the periods to use (default :func:`season_periods` of the graph's interval).
        stat: ``"mean"`` (default) or ``"median"`` of the observed lags (the lower middle one
            of an even count, as :func:`torch.nanmedian`).

    Returns:
        ``(values, observed)``, each ``[N, stop - start, V]``; values are 0 where no lag was
        observed.
    """
    n, t, v = graph.x.shape
    width = stop - start
    values = graph.x.new_zeros(n, width, v)
    found = torch.zeros(n, width, v, dtype=torch.bool, device=graph.x.device)
    if width <= 0 or start <= 0:
        return values, found
    offset = torch.arange(width, device=graph.x.device)
    for period in season_periods(graph.interval) if periods is None else periods:
        first = torch.div(offset, period, rounding_mode="floor") + 1  # k0 = ceil((j-start+1)/P)
        k = first.view(-1, 1) + torch.arange(lags, device=offset.device).view(1, -1)
        steps = (start + offset).view(-1, 1) - k * period  # [W, lags]
        ok = (steps >= 0) & (steps < t)
        idx = steps.clamp(0, max(t - 1, 0)).view(-1)
        m = graph.mask[:, idx].view(n, width, lags, v) & ok.view(1, width, lags, 1)
        x = graph.x[:, idx].view(n, width, lags, v)
        count = m.sum(2)
        if stat == "median":
            mean = _masked_median(x, m, 2)
        else:
            mean = (x * m).sum(2) / count.clamp_min(1)
        fill = (count > 0) & ~found
        values = torch.where(fill, mean, values)
        found = found | fill
    return values, found


#: ``(lags, stat)`` of the adaptive reference's seasonal candidates (in periods of the preferred
#: period): a recent profile that follows a changing pattern, and a long median that shrugs off
#: the bursts of sparse counts.
SEASONAL_CANDIDATES = ((4, "mean"), (26, "median"))
#: Lags of the seasonal candidates (kept for callers of the earlier name).
ADAPTIVE_LAGS = tuple(lags for lags, _ in SEASONAL_CANDIDATES)
#: ``(stat, periods)`` of the adaptive reference's level candidates: the median of the last 8
#: periods (a series whose profile is noise).
LEVEL_CANDIDATES = (("median", 8),)
#: Periods of history the first level candidate reaches back (kept for callers).
LEVEL_PERIODS = 8
#: Steps per period where no period divides the interval (levels reach back multiples of it).
LEVEL_STEPS = 512
#: The shares of the input's last gap to its reference that :func:`anomaly_persistence` picks
#: from, per lead: none (the reference alone) to all of it (the gap persists).
PERSISTENCE = (0.0, 0.25, 0.5, 0.75, 1.0)
#: The adaptive reference's choices per graph (by ``id``, dropped with the graph) and block.
_CHOICES: dict[int, dict] = {}


def _backtest_steps(periods: tuple[int, ...]) -> int:
    """Steps before a window on which the adaptive reference's candidates are scored: two
    periods of the preferred one, at least 28 and at most 336 steps."""
    return min(max(2 * periods[0], 28), 336) if periods else 28


def _masked_median(x: Tensor, mask: Tensor, dim: int) -> Tensor:
    """Median of the observed entries along ``dim`` (the lower middle of an even count); 0
    where none is observed."""
    if x.size(dim) == 0:
        return (x * 0).sum(dim)
    return torch.nan_to_num(
        torch.where(mask, x, torch.full_like(x, float("nan"))).nanmedian(dim).values
    )


def _level(graph: STGraph, stop: int, span: int, stat: str) -> tuple[Tensor, Tensor]:
    """Median (or mean) of the observed values of steps ``[stop - span, stop)``: ``[N, V]`` and
    found (the median: the constant with the smallest absolute error; on sparse counts mostly
    0, where a mean is pulled up by the bursts)."""
    a = max(0, min(stop, stop - span))
    m = graph.mask[:, a:stop]
    count = m.sum(1)
    x = graph.x[:, a:stop]
    if stat == "median":
        return _masked_median(x, m, 1), count > 0
    return (x * m).sum(1) / count.clamp_min(1), count > 0


def _levels(graph: STGraph, stop: int, periods: tuple[int, ...]) -> list[tuple[Tensor, Tensor]]:
    """The level candidates (:data:`LEVEL_CANDIDATES`) as of step ``stop``, ``[N, V]`` each."""
    unit = periods[0] if periods else LEVEL_STEPS
    return [_level(graph, stop, count * unit, stat) for stat, count in LEVEL_CANDIDATES]


def _candidates(
    graph: STGraph,
    start: int,
    stop: int,
    periods: tuple[int, ...],
    levels: list[tuple[Tensor, Tensor]],
) -> list[tuple[Tensor, Tensor]]:
    """``(values, observed)`` ``[N, stop - start, V]`` of every candidate: the seasonal ones
    from the steps before ``start`` (none without a period), then the ``levels``."""
    out = []
    if periods:
        for lags, stat in SEASONAL_CANDIDATES:
            out.append(
                seasonal_reference(graph, start, stop, lags=lags, periods=periods, stat=stat)
            )
    width = max(stop - start, 0)
    for level, ok in levels:
        n, v = level.shape
        out.append((level.unsqueeze(1).expand(n, width, v), ok.unsqueeze(1).expand(n, width, v)))
    return out


def _pick(best: Tensor, cands: list[tuple[Tensor, Tensor]], like: Tensor) -> tuple[Tensor, Tensor]:
    """The candidate ``best`` (``[N, V]``) of each node and variable, the others in order where it
    has no value."""
    values = torch.zeros_like(like)
    found = torch.zeros(like.shape, dtype=torch.bool, device=like.device)
    chosen = best.unsqueeze(1)  # [N, 1, V]
    for c, (value, ok) in enumerate(cands):
        take = (chosen == c) & ok
        values = torch.where(take, value, values)
        found = found | take
    for value, ok in cands:  # the chosen one has no value there: the others, in order
        take = ok & ~found
        values = torch.where(take, value, values)
        found = found | take
    return values, found


class _Choice:
    """The adaptive reference's choice on one backtest span (``[b0, end)``): which candidate
    did best per node and variable, and the gaps of the observed steps to it (what
    :func:`anomaly_persistence` scores its shares on)."""

    def __init__(self, graph: STGraph, end: int, periods: tuple[int, ...]) -> None:
        b0 = max(0, end - _backtest_steps(periods))
        xb, mb = graph.x[:, b0:end], graph.mask[:, b0:end]
        cands = _candidates(graph, b0, end, periods, _levels(graph, b0, periods))
        self.levels = _levels(graph, end, periods)  # what the windows of the block use
        errors = []
        for ref, ok in cands:
            both = mb & ok
            count = both.sum(1)
            err = ((xb - ref).abs() * both).sum(1) / count.clamp_min(1)
            errors.append(torch.where(count >= 2, err, torch.full_like(err, float("inf"))))
        self.best = torch.stack(errors).argmin(0)  # ties, no score: the first (recent) one
        ref, ok = _pick(self.best, cands, xb)
        self.ok = ok & mb
        self.gap = torch.where(self.ok, xb - ref, torch.zeros_like(xb))
        self._persist: dict[int, Tensor] = {}

    def persistence(self, horizon: int) -> Tensor:
        """``[N, horizon, V]``: per lead ``h``, the share of :data:`PERSISTENCE` with the least
        absolute error of ``gap[t + h] - share * gap[t]`` on the backtest (0 where fewer than 4
        pairs were observed; the longest lead the span holds for longer ones)."""
        if horizon not in self._persist:
            grid = torch.tensor(PERSISTENCE, dtype=self.gap.dtype, device=self.gap.device)
            span = self.gap.size(1)
            shares = []
            for h in range(1, horizon + 1):
                if h > span - 4 and shares:
                    shares.append(shares[-1])
                    continue
                a, b = self.gap[:, : max(span - h, 0)], self.gap[:, h:]
                both = (self.ok[:, : max(span - h, 0)] & self.ok[:, h:]).unsqueeze(0)
                err = (b.unsqueeze(0) - grid.view(-1, 1, 1, 1) * a.unsqueeze(0)).abs() * both
                share = grid[err.sum(2).argmin(0)]  # [N, V]; ties: the smallest share
                shares.append(torch.where(both[0].sum(1) >= 4, share, torch.zeros_like(share)))
            self._persist[horizon] = torch.stack(shares, 1)
        return self._persist[horizon]


def _choice_for(graph: STGraph, start: int, periods: tuple[int, ...]) -> _Choice:
    """The cached :class:`_Choice` of the block that ``start`` falls in."""
    block = max(1, periods[0] // 7) if periods else LEVEL_STEPS // 8
    end = min(start - start % block, graph.num_steps)
    cache = _CHOICES.get(id(graph))
    if cache is None:
        cache = _CHOICES[id(graph)] = {}
        weakref.finalize(graph, _CHOICES.pop, id(graph), None)
    key = (end, periods)
    if key not in cache:
        cache[key] = _Choice(graph, end, periods)
    return cache[key]


def adaptive_reference(
    graph: STGraph,
    start: int,
    stop: int,
    *,
    periods: tuple[int, ...] | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The reference of steps ``[start, stop)`` that did best just before ``start``, per node
    and variable.

    Three candidates, each from the steps *before* ``start`` only: the seasonal profile of the
    last 4 periods (their mean) and of the last 26 (their median; :func:`seasonal_reference`,
    week then day), and the median of the last 8 periods (512 steps where no period fits the
    interval). Medians, because the choice and the forecasts are scored by absolute error, and
    the median is the constant with the least of it: on sparse counts mostly 0, where a mean is
    pulled up by the bursts. Each is scored on the observed steps of a backtest span
    before ``start`` (two periods, 28 to 336 steps; each step's candidate computed from the
    history before the span), and every node and variable takes the one with the smallest mean
    absolute error there: a pattern that changes (footfall after a lockdown) keeps the recent
    profile, noisy sparse counts the long one or the median, a series without a period a level.
    Where the chosen candidate has no value, the others fill in, in that order.

    The backtest span ends at the last multiple of a seventh of the preferred period at or
    before ``start`` (a day of sub-daily data, a step of daily data, 7 weeks of weekly data), so
    windows starting in the same block share one choice, computed once per graph and block (a
    cache that lives as long as the graph object; change a graph's values in place and the
    choices made before are kept).

    Returns:
        ``(values, observed)``, each ``[N, stop - start, V]``, as :func:`seasonal_reference`.
    """
    n, t, v = graph.x.shape
    width = stop - start
    like = graph.x.new_zeros(n, max(width, 0), v)
    if width <= 0 or start <= 0:
        return like, torch.zeros(like.shape, dtype=torch.bool, device=like.device)
    periods = season_periods(graph.interval) if periods is None else periods
    choice = _choice_for(graph, start, periods)
    return _pick(choice.best, _candidates(graph, start, stop, periods, choice.levels), like)


def anomaly_persistence(
    graph: STGraph,
    start: int,
    horizon: int,
    *,
    periods: tuple[int, ...] | None = None,
) -> Tensor:
    r"""How much of a window's last gap to its :func:`adaptive_reference` persists, per lead.

    ``[N, horizon, V]``: for lead :math:`h = 1..H` after a window's last input step, the share
    :math:`\phi_h` of :data:`PERSISTENCE` with the least absolute error of :math:`a_{t+h} -
    \phi_h a_t` over the gaps :math:`a` of the observed steps to the chosen reference on the
    backtest span of the window that starts at ``start`` (the same span and choice as the
    reference, so from the steps before ``start`` only). Near 1 where anomalies last (a jam, a
    lockdown week), 0 where they are noise (sparse counts): the in-context damping that
    :class:`~stgraph.nn.layers.SeasonalAnchor` starts its gate from. Zeros before any history.
    """
    n, _, v = graph.x.shape
    if start <= 0 or horizon <= 0:
        return graph.x.new_zeros(n, max(horizon, 0), v)
    periods = season_periods(graph.interval) if periods is None else periods
    return _choice_for(graph, start, periods).persistence(horizon)


class SlidingWindows(Dataset):
    r"""Forecasting windows ``x[t : t+L] -> y[t+L : t+L+H]`` inside steps ``[start, stop)``.

    Every window lies entirely inside ``[start, stop)``: pass a split part's range and no window
    crosses the split boundary. With ``history=True`` only the *targets* must lie inside the range
    and the inputs may reach back before ``start`` (PyG Temporal's ``temporal_signal_split`` and
    tsl do this: at test time the recent past is known).

    Each item is an :class:`STGraph` with ``x``/``mask`` ``[N, L, V]``, ``y``/``y_mask``
    ``[N, H, V]``, ``time`` ``[L]``, ``y_time`` ``[H]``, ``season``/``season_mask``
    ``[N, L + H, V]`` (the :func:`adaptive_reference` of the input and target steps, from the
    steps before the window), the static graph, and the dynamic edges of
    the input steps (``dyn_edge_time`` re-based to the window). What was computed once for the
    graph travels with each window as it is (shared, not copied): the structure of
    :class:`~stgraph.nn.AddGraphStructure` (:data:`~stgraph.data.stgraph.STRUCTURE_KEYS`) and the
    edge affinities of :class:`~stgraph.data.AddEdgeAffinity` (``dyn_edge_affinity`` sliced with
    the dynamic edges).

    Args:
        graph: the series.
        input_steps: ``L``, steps fed to the model.
        horizon: ``H``, steps to predict.
        stride: steps between consecutive window starts (default 1).
        start, stop: the step range (default: the whole series).
        history: allow inputs before ``start`` (see above).
        reference: carry ``season``/``season_mask`` (default ``True``); ``False`` for a model
            that does not read them (:attr:`~stgraph.tasks.Forecaster.reads_reference`).

    Raises:
        ValueError: if not a single window fits, naming the lengths.
    """

    def __init__(
        self,
        graph: STGraph,
        input_steps: int,
        horizon: int,
        *,
        stride: int = 1,
        start: int = 0,
        stop: int | None = None,
        history: bool = False,
        reference: bool = True,
    ) -> None:
        if input_steps < 1 or horizon < 1 or stride < 1:
            raise ConfigError(
                "input_steps, horizon and stride must each be >= 1, got "
                f"input_steps={input_steps}, horizon={horizon}, stride={stride}"
            )
        t = graph.num_steps
        stop = t if stop is None else stop
        if not 0 <= start <= stop <= t:
            raise ConfigError(
                f"start/stop: window range [{start}, {stop}) is not inside the series [0, {t})"
            )
        self.graph = graph
        self.input_steps, self.horizon, self.stride = input_steps, horizon, stride
        self.start, self.stop, self.history = start, stop, history
        self.reference = reference
        first = max(0, start - input_steps) if history else start
        span = input_steps + horizon
        if stop - first < span:
            raise ConfigError(
                f"window of {input_steps} input + {horizon} horizon = {span} steps is longer than "
                f"the {stop - first} steps available in [{first}, {stop}) of a {t}-step series"
            )
        self._first = first
        self._len = (stop - first - span) // stride + 1
        self._periods = season_periods(graph.interval)

    def __len__(self) -> int:
        return self._len

    def window_start(self, i: int) -> int:
        """First input step of window ``i``."""
        if not -self._len <= i < self._len:
            raise IndexError(f"window {i} out of range for {self._len} windows")
        return self._first + (i % self._len) * self.stride

    def __getitem__(self, i: int) -> STGraph:
        g = self.graph
        s = self.window_start(int(i))
        m = s + self.input_steps
        e = m + self.horizon
        out = STGraph(
            x=g.x[:, s:m],
            mask=g.mask[:, s:m],
            y=g.x[:, m:e],
            y_mask=g.mask[:, m:e],
            time=None if g.time is None else g.time[s:m],
            y_time=None if g.time is None else g.time[m:e],
            pos=g.pos,
            edge_index=g.edge_index,
            edge_weight=g.edge_weight,
            edge_attr=g.edge_attr,
            node_attr=g.node_attr,
            validate=False,
        )
        for key in (*STRUCTURE_KEYS, "edge_affinity"):
            value = g._store.get(key)
            if value is not None:
                out[key] = value
        if g.dyn_edge_index is not None:
            keep = (g.dyn_edge_time >= s) & (g.dyn_edge_time < m)
            out.dyn_edge_index = g.dyn_edge_index[:, keep]
            out.dyn_edge_time = g.dyn_edge_time[keep] - s
            for key in ("dyn_edge_weight", "dyn_edge_affinity"):
                value = g._store.get(key)
                if value is not None:
                    out[key] = value[keep]
        if self.reference:
            out.season, out.season_mask = adaptive_reference(g, s, e, periods=self._periods)
            out.season_persist = anomaly_persistence(g, s, self.horizon, periods=self._periods)
        out.meta = g.meta  # shared, read-only by convention: windows are views of one series
        out.window = torch.tensor([s], dtype=torch.long)
        return out

    def dense(self, indices: torch.Tensor | list[int] | None = None) -> dict[str, torch.Tensor]:
        """Windows stacked as dense tensors: ``x``/``mask`` ``[B, N, L, V]``, ``y``/``y_mask`` ``[B, N, H, V]``.

        The fast path for statistical baselines and evaluation on a single graph.
        """
        if indices is None:
            indices = torch.arange(self._len)
        starts = torch.tensor([self.window_start(int(i)) for i in indices], dtype=torch.long)
        span = torch.arange(self.input_steps + self.horizon)
        steps = starts[:, None] + span[None, :]  # [B, L+H]
        x = self.graph.x[:, steps].permute(1, 0, 2, 3)  # [B, N, L+H, V]
        mask = self.graph.mask[:, steps].permute(1, 0, 2, 3)
        L = self.input_steps
        out = {"x": x[:, :, :L], "mask": mask[:, :, :L], "y": x[:, :, L:], "y_mask": mask[:, :, L:]}
        if self.graph.time is not None:
            out["time"], out["y_time"] = (
                self.graph.time[steps[:, :L]],
                self.graph.time[steps[:, L:]],
            )
        out["start"] = starts
        return out

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)}, input_steps={self.input_steps}, "
            f"horizon={self.horizon}, stride={self.stride}, range=[{self.start}, {self.stop}))"
        )


def windows_for_split(
    graph: STGraph,
    split,
    input_steps: int,
    horizon: int,
    *,
    stride: int = 1,
    history: bool = False,
    reference: bool = True,
) -> dict[str, SlidingWindows | None]:
    """One :class:`SlidingWindows` per non-empty split part (``None`` for an empty part).

    With ``history=True`` the validation and test inputs may reach back into the part before;
    a validation or test part shorter than one window (input + horizon) always does (a 12-day
    validation part of daily data still scores 12 - horizon + 1 targets' windows instead of
    none), while longer parts keep their inputs inside unless ``history`` is set.
    """
    out: dict[str, SlidingWindows | None] = {}
    for part in ("train", "val", "test"):
        a, b = split[part]
        if b <= a:
            out[part] = None
            continue
        out[part] = SlidingWindows(
            graph,
            input_steps,
            horizon,
            stride=stride,
            start=a,
            stop=b,
            history=part != "train" and (history or b - a < input_steps + horizon),
            reference=reference,
        )
    return out


__all__ = [
    "ADAPTIVE_LAGS",
    "SEASON_LAGS",
    "SlidingWindows",
    "adaptive_reference",
    "anomaly_persistence",
    "season_periods",
    "seasonal_reference",
    "windows_for_split",
]


def last_observed(x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Last observed value along dim 1 of ``x`` ``[R, L, V]``: values ``[R, V]``, found ``[R, V]``."""
    steps = torch.arange(1, x.size(1) + 1, device=x.device).view(1, -1, 1)
    pos = (mask.long() * steps).amax(1)  # 0 where nothing was observed
    found = pos > 0
    idx = (pos - 1).clamp_min(0).unsqueeze(1)
    return x.gather(1, idx).squeeze(1), found
