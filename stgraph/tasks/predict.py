"""Forecasts as a table: the next ``H`` steps of every node and variable, for ``stgraph predict``.

:func:`forecast_table` runs a model on the last ``input_steps`` steps of a graph (or on those
before a given ``start``) and returns one row per (node, step, variable); :func:`write_forecasts`
writes it as parquet, atomically.

Times. ``time`` holds the graph's own timestamps in stgraph's convention, as ``STGraph.time`` and
:meth:`~stgraph.data.STGraph.to_pandas` do, typed ``datetime64[ns, UTC]``. For a graph whose
``meta["time_reference"]`` is ``"utc"`` they are true UTC instants. For a ``"local"`` graph
(loop detectors, pedestrian counters, weekly reports...) they are the source's local clock labels
written as if UTC, exactly as the graph stores them (see :mod:`stgraph.datasets`): forecasts then
join one-to-one with the graph's own table, calendar-day and weekly series keep their dates
(converting "2015-01-05 00:00 Budapest" to an instant would move it into the previous UTC day),
and no label is lost or doubled at a daylight-saving change. The table's ``attrs`` (kept in the
parquet file) carry ``time_reference`` and ``timezone``, so a reader can place local labels:
``df.time.dt.tz_localize(None).dt.tz_localize(df.attrs["timezone"])``. A ``start`` is read in the
same clock: a naive time is the graph's clock, a time with a zone is converted to it first.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch_geometric.data import Batch

from stgraph.data.stgraph import STGraph
from stgraph.data.windows import adaptive_reference
from stgraph.errors import ConfigError, DataFormatError
from stgraph.nn.models.stfm import STFM
from stgraph.tasks.forecaster import Forecaster
from stgraph.utils.atomic import atomic_path

#: The columns of a forecast table, in order.
FORECAST_COLUMNS = ("node", "lon", "lat", "time", "step", "variable", "value", "unit")


def forecast_table(
    model: torch.nn.Module,
    graph: STGraph,
    *,
    input_steps: int,
    horizon: int,
    start: str | datetime | pd.Timestamp | np.datetime64 | None = None,
) -> pd.DataFrame:
    """Forecasts of the ``horizon`` steps after the graph's last observation, or from ``start``.

    The model sees the window of the last ``input_steps`` steps, ending at the last step of the
    graph or, with ``start``, at the last step before ``start``; the forecast steps are that
    window's last time plus 1..H intervals (``graph.interval``).

    Args:
        model: an :class:`~stgraph.nn.STFM`, a :class:`~stgraph.tasks.Forecaster` (its own
            ``horizon`` must be ``horizon``) or any module called as ``model(batch,
            horizon=H) -> [N, H, V]``. It runs in eval mode without gradients (its mode is
            restored afterwards); a model holding an STFM gets the graph with that STFM's
            structure (:attr:`STFM.transform`) applied once.
        graph: the series, with ``time``.
        input_steps: ``L``, steps in the window.
        horizon: ``H``, steps forecast.
        start: the first time to forecast (str, datetime, ``pandas.Timestamp``); ``None`` for
            the step after the last observation.

    Returns:
        One row per node, step and variable (node-major), columns :data:`FORECAST_COLUMNS`:
        ``node`` (``meta["node_ids"]`` when present, else the node index), ``lon``/``lat``
        (``NaN`` without ``pos``), ``time`` (``datetime64[ns, UTC]``, see the module
        docstring), ``step`` (1..H), ``variable``, ``value`` (float64, the model's units:
        those of the graph), ``unit``. ``attrs``: ``time_reference``, ``timezone``,
        ``interval_s``, ``input_start`` and ``input_end`` (the window, ISO times in the graph's
        clock).

    Raises:
        ConfigError: ``input_steps`` or ``horizon`` not an integer >= 1, too few steps for
            ``input_steps``, ``start`` not a time or outside the series, or a model whose
            horizon or output shape does not fit.
        DataFormatError: the graph has no timestamps.
    """
    if isinstance(input_steps, bool) or int(input_steps) < 1:
        raise ConfigError(f"input_steps={input_steps!r}: expected an integer >= 1")
    if isinstance(horizon, bool) or int(horizon) < 1:
        raise ConfigError(f"horizon={horizon!r}: expected an integer >= 1")
    input_steps, horizon = int(input_steps), int(horizon)
    if graph.time is None or graph.num_steps == 0:
        raise DataFormatError(
            "forecast_table: the graph has no timestamps (time) to forecast after"
        )
    interval = graph.interval
    end = window_end(graph, input_steps, start)
    graph = _with_structure(model, graph)
    window = graph.slice_time(end - input_steps, end)
    last = int(graph.time[end - 1])
    window.y_time = last + interval * torch.arange(1, horizon + 1, dtype=torch.long)
    window.season, window.season_mask = adaptive_reference(graph, end - input_steps, end + horizon)
    pred = _predict(model, Batch.from_data_list([window]), horizon)
    expected = (graph.num_nodes, horizon, graph.num_variables)
    if tuple(pred.shape) != expected:
        raise ConfigError(
            f"forecast_table: {type(model).__name__} returned shape {tuple(pred.shape)}, "
            f"expected {expected} (nodes, horizon, variables)"
        )
    df = _table(graph, pred, window.y_time)
    meta = graph.meta or {}
    df.attrs = {
        "time_reference": meta.get("time_reference") or "utc",
        "timezone": meta.get("timezone"),
        "interval_s": int(interval),
        "input_start": _label(int(graph.time[end - input_steps])),
        "input_end": _label(last),
    }
    return df


def window_end(graph: STGraph, input_steps: int, start: Any = None) -> int:
    """The step after the input window: ``T`` without ``start``, else the number of steps
    before ``start``.

    Raises:
        ConfigError: fewer than ``input_steps`` steps before it, ``start`` outside the series
            or not a time.
    """
    t = graph.num_steps
    if start is None:
        if t < input_steps:
            raise ConfigError(
                f"the graph has {t} steps, fewer than input_steps={input_steps}: nothing to "
                "forecast from"
            )
        return t
    stamp = start_seconds(start, graph.meta or {})
    time = graph.time
    first, last = int(time[0]), int(time[-1])
    if stamp <= first:
        raise ConfigError(
            f"start {start!r} is at or before the first observation ({_label(first)}): no "
            "input before it"
        )
    if stamp > last + graph.interval:
        raise ConfigError(
            f"start {start!r} is after the step following the last observation "
            f"({_label(last + graph.interval)}); omit start to forecast after the last observation"
        )
    end = int(torch.searchsorted(time, torch.tensor(stamp, dtype=time.dtype)))
    if end < input_steps:
        raise ConfigError(
            f"start {start!r}: only {end} steps before it, fewer than input_steps={input_steps}"
        )
    return end


def start_seconds(start: Any, meta: dict) -> int:
    """``start`` as unix seconds in the graph's clock (see the module docstring).

    Raises:
        ConfigError: ``start`` is a number (a step index or seconds would be ambiguous), or is
            not readable as a time.
    """
    if isinstance(start, (bool, int, float, np.integer, np.floating)):
        raise ConfigError(
            f"start={start!r}: expected a time (a string such as '2012-03-07 08:00', a datetime "
            "or a pandas.Timestamp), not a number"
        )
    try:
        ts = pd.Timestamp(start)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"start={start!r}: not readable as a time ({exc})") from None
    if ts is pd.NaT:
        raise ConfigError(f"start={start!r}: not a time")
    if ts.tzinfo is not None:
        zone = meta.get("timezone") if meta.get("time_reference") == "local" else None
        ts = ts.tz_convert(zone or "UTC").tz_localize(None)
    return int(ts.as_unit("ns").value // 1_000_000_000)


def _label(seconds: int) -> str:
    return pd.Timestamp(seconds, unit="s").isoformat()


def _with_structure(model: torch.nn.Module, graph: STGraph) -> STGraph:
    """``graph`` with the structure of the STFM inside ``model`` (once, not per window)."""
    backbones = [m for m in model.modules() if isinstance(m, STFM)]
    if len(backbones) != 1:
        return graph
    transform = backbones[0].transform
    return graph if transform.matches(graph) else transform(graph)


def _predict(model: torch.nn.Module, batch: Batch, horizon: int) -> Tensor:
    params = next(iter(model.parameters()), None)
    if params is not None:
        batch = batch.to(params.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(model, Forecaster):
                if model.horizon != horizon:
                    raise ConfigError(
                        f"{type(model).__name__} forecasts {model.horizon} steps, not "
                        f"horizon={horizon}"
                    )
                return model(batch).detach().cpu()
            return model(batch, horizon=horizon).detach().cpu()
    finally:
        model.train(was_training)


def _table(graph: STGraph, pred: Tensor, y_time: Tensor) -> pd.DataFrame:
    n, h, v = pred.shape
    node, step, var = (a.ravel() for a in np.meshgrid(*map(np.arange, (n, h, v)), indexing="ij"))
    ids = (graph.meta or {}).get("node_ids")
    if ids is not None and len(ids) != n:
        raise DataFormatError(f"meta['node_ids'] has {len(ids)} entries for {n} nodes")
    if ids is None:
        node_col = node.astype(np.int64)
    elif all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
        node_col = np.asarray(ids, dtype=np.int64)[node]
    else:
        node_col = np.asarray([str(i) for i in ids], dtype=object)[node]
    if graph.pos is not None:
        pos = graph.pos.detach().cpu().double().numpy()
        lon, lat = pos[node, 0], pos[node, 1]
    else:
        lon = lat = np.full(node.size, np.nan)
    seconds = y_time.cpu().numpy().astype(np.int64)[step]
    return pd.DataFrame(
        {
            "node": node_col,
            "lon": lon,
            "lat": lat,
            "time": pd.to_datetime(seconds, unit="s", utc=True).as_unit("ns"),
            "step": (step + 1).astype(np.int64),
            "variable": np.asarray(graph.variables, dtype=object)[var],
            "value": pred.double().numpy().reshape(-1),
            "unit": np.asarray(graph.units, dtype=object)[var],
        },
        columns=list(FORECAST_COLUMNS),
    )


def write_forecasts(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a forecast table as parquet (pyarrow), atomically: a reader sees the old file or the
    whole new one. ``pandas.read_parquet(path)`` gives the table back with the same columns,
    dtypes, values and ``attrs``.

    Raises:
        DataFormatError: ``df`` lacks some of :data:`FORECAST_COLUMNS`.
    """
    missing = [c for c in FORECAST_COLUMNS if c not in df.columns]
    if missing:
        raise DataFormatError(f"write_forecasts: the table has no columns {missing}")
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, engine="pyarrow", index=False)
    return Path(path)


__all__ = ["FORECAST_COLUMNS", "forecast_table", "start_seconds", "window_end", "write_forecasts"]
