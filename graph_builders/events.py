"""Typed point events (crimes, collisions, calls, check-ins) → counts per region, time bin and type.

Regions are one of:

* a regular lon/lat :class:`Grid` (e.g. the STHSL 3 km crime grid): all cells become nodes,
  row-major, linked to their 4/8 neighbours;
* H3 cells (:class:`H3Cells`, or an int resolution): nodes are the cells holding at least one
  counted event, plus every cell of ``bbox`` when given, linked to adjacent cells;
* polygons (a GeoDataFrame, one node per row): an event in several polygons (overlaps, or on a
  shared border) goes to the first, counted in ``meta["events_in_several_polygons"]``; polygons
  that intersect, corners included, are linked;
* the nodes of a road-graph :class:`STGraph`: each event to the nearest node within
  ``max_dist_m``, by a k-d tree on UTM coordinates; the road graph's edges are kept.

Each event lands in at most one region; every event that is not counted is counted by reason in
``meta["dropped"]``, so ``events in = counted + sum(dropped)`` always holds. Column names match in
any case; the time is one column or is composed from columns and constants
(:func:`compose_times`); exact duplicate rows are counted; the drop rule of every builder
(:func:`graph_builders._inputs.report_dropped`) warns, or refuses with ``strict=True``, when more
than ``max_drop_share`` of the events are dropped for reasons other than the options' own
(``bbox``, ``start``/``end``, ``categories``, ``duplicates="drop"``).

Example (the STHSL Chicago crime grid; ``header=0`` mirrors the authors' ``pd.read_csv``, which
took the first line of the header-less CSV as the header — without it the first crime counts too)::

    from graph_builders import events
    df = events.read_events("CHI_Crime.zip", names=["time", "type", "latitude", "longitude"],
                            header=0)
    grid = events.Grid.sthsl(df, km=3)                       # 14 x 12 cells
    g = events.from_points(df, regions=grid, interval="1D", types="type",
                           categories=["THEFT", "BATTERY", "ASSAULT", "CRIMINAL DAMAGE"],
                           time_format="%m/%d/%Y %I:%M:%S %p")
    counts = grid.to_array(g)                                 # (14, 12, 731, 4)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from pyproj import CRS

from graph_builders._inputs import (
    MAX_DROP_SHARE,
    build_graph,
    check_bbox,
    check_lonlat,
    log,
    match_columns,
    parse_interval,
    parse_times,
    read_table,
    renamed_options,
    report_dropped,
    source_name,
    to_lonlat,
)
from graph_builders.regions import Grid, H3Cells, grid_nodes
from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError, DataFormatError
from stgraph.utils.extras import require
from stgraph.utils.geo import haversine_m, project, utm_crs

__all__ = [
    "DROP_REASONS",
    "TIME_PARTS",
    "Grid",
    "H3Cells",
    "compose_times",
    "from_points",
    "read_events",
]

#: Reasons an event is not counted, in the order they are tested (an event gets the first).
DROP_REASONS = (
    "missing_coordinates",
    "invalid_coordinates",
    "missing_time",
    "unparseable_time",
    "missing_type",
    "unknown_type",
    "outside_bbox",
    "outside_time_range",
    "outside_regions",
    "duplicate",
)
#: Reasons that are the user's choice (a bbox, a time range, the categories, ``duplicates="drop"``):
#: counted, not held against the input by the drop rule (:func:`~graph_builders._inputs.report_dropped`).
_CHOSEN = ("outside_bbox", "outside_time_range", "duplicate")
#: The parts a time can be composed of (``time={...}``), in order; the defaults of those left out.
TIME_PARTS = ("year", "month", "day", "hour", "minute", "second")
_PART_DEFAULTS = {"month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0}
_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
    )
}

#: Largest dense count tensor ``N · T · V`` built (4 GB of float32); a stray date usually explains more.
_MAX_ENTRIES = 1_000_000_000


def read_events(source: Any, *, names: Sequence[str] | None = None, **read_kw: Any) -> pd.DataFrame:
    """Read an event table (CSV, ``.csv.gz``, a ZIP holding one CSV, Parquet, or a DataFrame).

    ``names`` gives column names to a file without a header row (its first row is then data;
    with ``header=0`` as well, the first row is skipped as a header: what ``pd.read_csv`` does by
    default, and how the STHSL crime tensors were made, one crime short).
    """
    return read_table(source, names=names, **read_kw)


@renamed_options(max_distance_m="max_dist_m")
def from_points(
    table: Any,
    *,
    regions: Grid | H3Cells | int | Any,
    interval: Any = "1D",
    types: str | None = None,
    categories: Sequence[str] | None = None,
    lon_col: str = "longitude",
    lat_col: str = "latitude",
    time_col: str = "time",
    time: Mapping[str, str | int] | None = None,
    time_format: str | None = None,
    tz: str | None = None,
    start: Any = None,
    end: Any = None,
    bbox: Sequence[float] | None = None,
    crs: Any = None,
    max_dist_m: float = 1000.0,
    neighbourhood: int = 4,
    region_id_col: str | None = None,
    names: Sequence[str] | None = None,
    header: int | None | str = "infer",
    max_invalid_share: float = 0.01,
    duplicates: str = "keep",
    strict: bool = False,
    max_drop_share: float = MAX_DROP_SHARE,
    domain: str = "events",
    city: str | None = None,
) -> STGraph:
    r"""Count typed point events per region, per time bin and per type.

    Args:
        table: a DataFrame, a GeoDataFrame of points or a path (CSV, ``.gz``, ZIP with one CSV,
            Parquet); ``names``/``header`` as :func:`read_events`.
        regions: where events are counted (see the module docstring): a :class:`Grid`,
            :class:`H3Cells` or an int (H3 resolution), a GeoDataFrame of polygons, or a
            road-graph :class:`STGraph`.
        interval: time-bin width (``"1D"``, ``"1h"``, ``"15min"``, a Timedelta or seconds).
        types (str, optional): column holding the event type; each type is one variable. Without
            it, one variable ``"count"``.
        categories (list, optional): the types to count, in this order (others are dropped as
            ``unknown_type``); default all types seen, sorted.
        lon_col, lat_col, time_col (str): column names (as ``types``), matched ignoring case; a
            missing one is an error listing the columns found.
        time (dict, optional): the time from parts instead of ``time_col``
            (:func:`compose_times`), e.g. ``{"year": 2017, "month": "Month", "day": "Day",
            "hour": "Hour"}``; rows whose parts make no date are ``unparseable_time``.
        time_format (str, optional): strptime format of ``time_col`` (much faster than
            inference); unparseable values are dropped and counted.
        tz (str, optional): time zone of naive times (wall clock); bins are wall-clock bins in
            ``tz`` and ``time`` holds their start in unix seconds. Default: UTC. A bin on an hour
            skipped or repeated by daylight saving is an error saying what to do.
        start, end: bin range ``[start, end)``; default from the first event's bin to the last.
            Events outside are dropped and counted (``outside_time_range``).
        bbox: ``(min_lon, min_lat, max_lon, max_lat)``; events outside are dropped and counted.
        crs: CRS of the coordinates when they are not lon/lat degrees (e.g. ``"EPSG:32616"``).
        max_invalid_share (float): coordinates beyond ±180/±90 are dropped and counted
            (``invalid_coordinates``) while they are at most this share of the rows (default 1 %);
            beyond it the column is taken to be in another CRS: a :class:`DataFormatError`.
        duplicates (str): ``"keep"`` counts rows equal to an earlier row in every column
            (``meta["summary"]["duplicates"]``); ``"drop"`` also drops them (``duplicate``).
        strict, max_drop_share: the drop rule (module docstring): warn, or refuse.
        max_dist_m (float): road graphs only: farther events are dropped (was ``max_distance_m``).
        neighbourhood (int): grids only: 4 or 8 neighbours.
        region_id_col (str, optional): polygons only: column with region ids for
            ``meta["node_ids"]`` (default the GeoDataFrame's index).
        domain, city: metadata.

    Returns:
        STGraph with ``x`` ``[N, T, V]`` float counts (``mask`` all ``True``: zero is an observed
        count), ``time`` = bin starts, ``pos`` = region centres, ``meta["dropped"]`` = count per
        reason in :data:`DROP_REASONS` and ``meta["summary"]`` = ``{"events_in", "counted",
        "dropped", "duplicates"}``.

    Raises:
        DataFormatError: missing columns (naming them and the file), coordinates that are not
            degrees, no event left to count.
        ConfigError: a bad option (``interval``, ``bbox``, ``neighbourhood``, ``duplicates``...).
    """
    name = source_name(table)
    df = read_table(table, names=names, header=header, coords=(lon_col, lat_col))
    bbox = _check_options(duplicates, bbox, neighbourhood, max_invalid_share)
    cols = _columns(df, lon_col, lat_col, time_col if time is None else None, types, name)
    td = parse_interval(interval)
    ev = _read_events(
        df,
        cols,
        time_parts=time,
        time_format=time_format,
        tz=tz,
        crs=crs,
        categories=categories,
        bbox=bbox,
        max_invalid_share=max_invalid_share,
        name=name,
    )
    dup = df.duplicated(keep="first").to_numpy()
    if duplicates == "drop":
        ev.drop(dup, "duplicate")
    hint = regions.num_cells if isinstance(regions, Grid) else 1
    t0, n_bins = _time_bins(ev, td, start=start, end=end, tz=tz, n_nodes_hint=hint, name=name)
    assign = _assign(
        regions,
        ev.lon,
        ev.lat,
        ev.kept(),
        bbox=bbox,
        max_dist_m=max_dist_m,
        neighbourhood=neighbourhood,
        region_id_col=region_id_col,
        name=name,
    )
    ev.drop(ev.kept() & (assign.node < 0), "outside_regions")
    x = _count(ev, assign, t0, n_bins, td, name)
    times = _bin_times(t0, td, n_bins, tz, name)
    head = {"domain": domain, "city": city, "interval": interval, "types": types, "tz": tz}
    meta = _events_meta(ev, assign, td, name=name, **head)
    _report(meta, dup, name, duplicates, categories is not None, strict, max_drop_share)
    return _graph(x, times, assign, meta)


def _check_options(
    duplicates: str, bbox: Sequence[float] | None, neighbourhood: int, max_invalid_share: float
) -> tuple[float, float, float, float] | None:
    """The options of :func:`from_points` that need no data, checked (a :class:`ConfigError`
    naming the first bad one); ``bbox`` as four floats."""
    if duplicates not in ("keep", "drop"):
        raise ConfigError(f"duplicates: expected 'keep' or 'drop', got {duplicates!r}")
    if neighbourhood not in (4, 8) or isinstance(neighbourhood, bool):
        raise ConfigError(f"neighbourhood: expected 4 or 8, got {neighbourhood!r}")
    share = max_invalid_share
    if (
        isinstance(share, bool)
        or not isinstance(share, (int, float, np.number))
        or not 0 <= share <= 1
    ):
        raise ConfigError(
            f"max_invalid_share: expected a share in [0, 1], got {max_invalid_share!r}"
        )
    if bbox is None:
        return None
    return check_bbox(bbox)


def _graph(x: np.ndarray, times: np.ndarray, assign: _Assignment, meta: dict) -> STGraph:
    """The counts on the regions' nodes and edges (``mask`` all ``True``: zero is observed)."""
    return build_graph(
        torch.from_numpy(x),
        torch.ones(x.shape, dtype=torch.bool),
        time=torch.from_numpy(times),
        pos=torch.from_numpy(assign.pos),
        edge_index=assign.edge_index,
        edge_weight=assign.edge_weight,
        edge_attr=assign.edge_attr,
        node_attr=assign.node_attr,
        meta=meta,
    )


def _columns(
    df: pd.DataFrame,
    lon_col: str,
    lat_col: str,
    time_col: str | None,
    types: str | None,
    name: str,
) -> dict[str, str | None]:
    """The columns as named in ``df`` (any case); a missing time column hints at ``time=``."""
    wanted = {"lon_col": lon_col, "lat_col": lat_col, "types": types}
    hint = ""
    if time_col is not None:
        wanted["time_col"] = time_col
        hint = (
            " (a time spread over several columns: time={'year': 2017, 'month': 'Month', ...}, "
            "in the CLI --time year=2017,month=Month,day=Day,hour=Hour)"
        )
    return match_columns(df, wanted, name, hint=hint)


def _report(
    meta: dict[str, Any],
    dup: np.ndarray,
    name: str,
    duplicates: str,
    chose_categories: bool,
    strict: bool,
    max_share: float,
) -> None:
    """Duplicates into ``meta["summary"]``, and the drop rule on the events dropped."""
    meta["summary"]["duplicates"] = int(dup.sum())
    if dup.any():
        log.info(
            "%s: %d rows repeat an earlier row exactly (%s)",
            name,
            int(dup.sum()),
            "dropped" if duplicates == "drop" else "counted; duplicates='drop' drops them",
        )
    chosen = [*_CHOSEN, *(["unknown_type"] if chose_categories else [])]
    total = meta["summary"]["events_in"]
    report_dropped(
        name,
        meta["dropped"],
        total,
        what="events",
        strict=strict,
        max_share=max_share,
        ignore=chosen,
    )


@dataclass
class _Events:
    """The parsed events, and why each one is not counted (``reason``: 0 = still counted, else
    ``1 +`` its index in :data:`DROP_REASONS`; an event keeps the first reason it gets)."""

    lon: np.ndarray
    lat: np.ndarray
    wall: np.ndarray  # naive wall-clock datetimes
    codes: np.ndarray  # type index per event (-1: not a category)
    categories: list[str]
    reason: np.ndarray

    def drop(self, cond: np.ndarray, why: str) -> None:
        self.reason[(self.reason == 0) & cond] = DROP_REASONS.index(why) + 1

    def kept(self) -> np.ndarray:
        return self.reason == 0

    def counts(self) -> dict[str, int]:
        return _counts(self.reason)


def _read_events(
    df: pd.DataFrame,
    cols: dict[str, str | None],
    *,
    time_parts: Mapping[str, str | int] | None,
    time_format: str | None,
    tz: str | None,
    crs: Any,
    categories: Sequence[str] | None,
    bbox: Sequence[float] | None,
    max_invalid_share: float,
    name: str,
) -> _Events:
    """Coordinates, times and types of the events (``cols``: the columns' names in ``df``); the
    invalid ones dropped by reason."""
    lon_col, lat_col, time_col, types = (
        cols.get(k) for k in ("lon_col", "lat_col", "time_col", "types")
    )
    n_in = len(df)
    lon = pd.to_numeric(df[lon_col], errors="coerce").to_numpy(np.float64)
    lat = pd.to_numeric(df[lat_col], errors="coerce").to_numpy(np.float64)
    if crs is not None:
        lon, lat = to_lonlat(lon, lat, crs, x_col=lon_col, y_col=lat_col, name=name)
    ev = _Events(lon, lat, np.zeros(0), np.zeros(0), [], np.zeros(n_in, dtype=np.int8))
    ev.drop(~(np.isfinite(lon) & np.isfinite(lat)), "missing_coordinates")
    # a few impossible coordinates are dropped and counted; mostly impossible ones mean a CRS
    # mismatch (projected metres given as lon/lat): a clear error
    invalid = check_lonlat(
        lon, lat, lon_col=lon_col, lat_col=lat_col, name=name, max_bad_share=max_invalid_share
    )
    ev.drop(invalid, "invalid_coordinates")
    if time_parts is not None:
        wall, t_missing, t_bad = compose_times(df, time_parts, name=name)
    else:
        wall, t_missing, t_bad = parse_times(
            df[time_col], time_format=time_format, tz=tz, name=name, col=time_col
        )
    ev.wall = wall.to_numpy()
    ev.drop(t_missing, "missing_time")
    ev.drop(t_bad, "unparseable_time")
    if types is not None:
        tcol = df[types]
        ev.drop(tcol.isna().to_numpy(), "missing_type")
        labels = tcol.astype("string")
        if categories is None:
            categories = sorted(labels.dropna().unique().tolist())
        else:
            categories = [str(c) for c in categories]
            if len(set(categories)) != len(categories):
                raise ConfigError(f"categories: duplicates in {categories}")
        ev.codes = pd.Index(categories).get_indexer(labels).astype(np.int64)  # -1: no category
        ev.drop(ev.codes < 0, "unknown_type")
    else:
        categories = ["count"]
        ev.codes = np.zeros(n_in, dtype=np.int64)
    if not categories:
        raise DataFormatError(f"{name}: column {types!r} holds no event type")
    ev.categories = list(categories)
    if bbox is not None:
        x0, y0, x1, y1 = (float(b) for b in bbox)
        with np.errstate(invalid="ignore"):
            ev.drop(~((lon >= x0) & (lon <= x1) & (lat >= y0) & (lat <= y1)), "outside_bbox")
    return ev


def compose_times(
    df: pd.DataFrame, parts: Mapping[str, str | int], *, name: str = "<DataFrame>"
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Times composed from columns and constants (``{"year": 2017, "month": "Month", ...}``).

    Args:
        df: the table.
        parts: keys of :data:`TIME_PARTS`, each a column of ``df`` (matched ignoring case) or a
            constant (an int, or a string of digits). ``year`` is required; ``month`` and ``day``
            default to 1, ``hour``, ``minute``, ``second`` to 0. A month column may hold names
            (``"October"``, ``"Oct"``) or numbers.
        name: the source, for errors.

    Returns:
        ``(wall, missing, unparseable)`` as :func:`graph_builders._inputs.parse_times`: naive
        times (NaT where not composed), a part absent, parts present that make no date.

    Raises:
        DataFormatError: an unknown part, no ``year``, or a column that is not in ``df``.
    """
    if not isinstance(parts, Mapping):
        raise DataFormatError(
            f"time: expected a mapping of {list(TIME_PARTS)} to columns or constants, got {parts!r}"
        )
    unknown = sorted(set(parts) - set(TIME_PARTS))
    if unknown or "year" not in parts:
        raise DataFormatError(
            f"time: parts are {list(TIME_PARTS)} (year required), each a column or a constant; "
            f"got {sorted(parts)}"
        )
    n = len(df)
    columns = {k: v for k, v in parts.items() if isinstance(v, str) and not v.strip().isdigit()}
    found = match_columns(df, {f"time.{k}": v for k, v in columns.items()}, name)
    missing = np.zeros(n, dtype=bool)
    values: dict[str, pd.Series] = {}
    for part in TIME_PARTS:
        spec = parts.get(part, _PART_DEFAULTS.get(part))
        if f"time.{part}" in found:
            raw = df[found[f"time.{part}"]]
            missing |= raw.isna().to_numpy()
            num = pd.to_numeric(raw, errors="coerce").to_numpy(np.float64, na_value=np.nan)
            if part == "month":  # names of months, as many tables write them
                short = raw.astype(object).astype(str).str.strip().str[:3].str.lower()
                names = short.map(_MONTHS).to_numpy(np.float64, na_value=np.nan)
                num = np.where(np.isnan(num), names, num)
            values[part] = pd.Series(num, index=df.index)
        else:
            if isinstance(spec, bool) or not isinstance(spec, (int, np.integer, str)):
                raise DataFormatError(f"time.{part}: expected a column or an integer, got {spec!r}")
            values[part] = pd.Series(int(spec), index=df.index, dtype="float64")
    frame = pd.DataFrame(values)
    whole = frame.notna().all(axis=1) & (frame.fillna(0) % 1 == 0).all(axis=1)
    wall = pd.to_datetime(frame.where(whole), errors="coerce")
    wall = wall.astype("datetime64[ns]")
    unparseable = wall.isna().to_numpy() & ~missing
    return wall, missing, unparseable


def _short(td: pd.Timedelta) -> str:
    """``1h``, ``15min``, ``1D``: a bin width as the ``interval`` option writes it."""
    sec = int(td.total_seconds())
    for unit, n in (("D", 86400), ("h", 3600), ("min", 60)):
        if sec % n == 0:
            return f"{sec // n}{unit}"
    return f"{sec}s"


def _bin_times(
    t0: pd.Timestamp, td: pd.Timedelta, n_bins: int, tz: str | None, name: str
) -> np.ndarray:
    """Unix seconds of the bin starts (wall clock in ``tz``); a DST change is a plain error."""
    wall = pd.DatetimeIndex(t0 + td * np.arange(n_bins))
    if tz is None:
        return wall.to_numpy().astype("datetime64[s]").astype(np.int64)
    local = wall.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
    if local.isna().any():
        i = int(np.flatnonzero(local.isna())[0])
        skipped = wall[i].tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        what = (
            "happens twice there (clocks go back)"
            if pd.isna(skipped)
            else "does not exist there (clocks go forward)"
        )
        raise DataFormatError(
            f"{name}: {_short(td)} bins in time zone {tz!r} cannot all be local clock times: "
            f"{wall[i]} {what}, at a daylight-saving change. Give the times in a zone without "
            "daylight saving: UTC (tz=None, or leave out --tz) if the times are UTC, or a fixed "
            "offset if they are local standard time (e.g. tz='Etc/GMT-1' for UTC+1; the sign of "
            "Etc/GMT is inverted); or count per day (interval='1D')"
        )
    return (
        local.tz_convert("UTC")
        .tz_localize(None)
        .to_numpy()
        .astype("datetime64[s]")
        .astype(np.int64)
    )


def _time_bins(
    ev: _Events,
    td: pd.Timedelta,
    *,
    start: Any,
    end: Any,
    tz: str | None,
    n_nodes_hint: int,
    name: str,
) -> tuple[pd.Timestamp, int]:
    """First bin and number of bins; events outside ``[start, end)`` dropped by reason."""
    w = ev.wall
    ok_time = ev.kept()
    if not ok_time.any():
        raise DataFormatError(f"{name}: no event left to count; dropped {ev.counts()}")
    t0 = pd.Timestamp(start) if start is not None else pd.Timestamp(w[ok_time].min()).floor(td)
    if t0.tzinfo is not None:
        t0 = t0.tz_convert(tz or "UTC").tz_localize(None)
    if end is not None:
        t_end = pd.Timestamp(end)
        if t_end.tzinfo is not None:
            t_end = t_end.tz_convert(tz or "UTC").tz_localize(None)
        n_bins = -(-(int(t_end.value) - int(t0.value)) // int(td.value))  # ceil, Python ints
    else:
        last = pd.Timestamp(w[ok_time].max())
        n_bins = (int(last.value) - int(t0.value)) // int(td.value) + 1
    if n_bins < 1:
        raise ConfigError(f"start/end: empty time range [{t0}, {end})")
    if n_nodes_hint * n_bins * max(len(ev.categories), 1) > _MAX_ENTRIES:
        _too_many(name, n_nodes_hint, n_bins, td, len(ev.categories), t0, w[ok_time])
    # compare as datetimes first: int64 nanosecond differences overflow beyond 292 years
    wt = w.astype("datetime64[ns]")
    stop = min(int(t0.value) + n_bins * int(td.value), np.iinfo(np.int64).max)
    inside = ok_time & (wt >= np.datetime64(int(t0.value), "ns")) & (wt < np.datetime64(stop, "ns"))
    ev.drop(ok_time & ~inside, "outside_time_range")
    return t0, n_bins


def _count(
    ev: _Events, assign: _Assignment, t0: pd.Timestamp, n_bins: int, td: pd.Timedelta, name: str
) -> np.ndarray:
    """Counts ``[N, T, V]`` of the kept events per region, bin and type."""
    keep = ev.kept()
    n_nodes, n_var = assign.num_nodes, len(ev.categories)
    if n_nodes * n_bins * n_var > _MAX_ENTRIES:
        _too_many(name, n_nodes, n_bins, td, n_var, t0, ev.wall[keep])
    bins = (ev.wall[keep].astype("datetime64[ns]").astype(np.int64) - int(t0.value)) // int(
        td.value
    )
    flat = (assign.node[keep] * n_bins + bins) * n_var + ev.codes[keep]
    # unique + scatter instead of bincount(minlength=N*T*V): no int64 array of the dense size
    cells, hits = np.unique(flat, return_counts=True)
    x = np.zeros(n_nodes * n_bins * n_var, dtype=np.float32)
    x[cells] = hits
    return x.reshape(n_nodes, n_bins, n_var)


def _events_meta(
    ev: _Events,
    assign: _Assignment,
    td: pd.Timedelta,
    *,
    name: str,
    domain: str,
    city: str | None,
    interval: Any,
    types: str | None,
    tz: str | None,
) -> dict[str, Any]:
    dropped, counted, n_in = ev.counts(), int(ev.kept().sum()), len(ev.reason)
    return {
        **assign.meta,
        "variables": [{"name": c, "unit": "count"} for c in ev.categories],
        "domain": domain,
        "city": city if city is not None else assign.meta.get("city"),
        "crs": "EPSG:4326",
        "interval": int(td.total_seconds()),
        "time_zone": tz or "UTC",
        "dropped": dropped,
        "summary": {"events_in": n_in, "counted": counted, "dropped": dropped},
        "sources": [{"name": name, "files": [name] if name != "<DataFrame>" else []}],
        "provenance": [
            *assign.meta.get("provenance", []),
            f"events.from_points(regions={assign.kind}, interval={interval!r}, types={types!r}, "
            f"{n_in} events in, {counted} counted)",
        ],
    }


def _too_many(name: str, n: int, t: int, td: Any, v: int, t0: Any, times: np.ndarray) -> None:
    last = pd.Timestamp(times.max()) if times.size else t0
    raise DataFormatError(
        f"{name}: {n} regions x {t} bins of {td} x {v} types is more than {_MAX_ENTRIES:.0e} "
        f"counts (times span {t0} .. {last}); pass start=/end= or a longer interval"
    )


def _counts(reason: np.ndarray) -> dict[str, int]:
    tally = np.bincount(reason, minlength=len(DROP_REASONS) + 1)
    return {why: int(tally[i + 1]) for i, why in enumerate(DROP_REASONS)}


@dataclass
class _Assignment:
    kind: str
    node: np.ndarray  # [n_events] node index or -1
    pos: np.ndarray  # [N, 2] lon, lat
    edge_index: torch.Tensor | None
    edge_weight: torch.Tensor | None
    edge_attr: torch.Tensor | None
    node_attr: torch.Tensor | None
    meta: dict

    @property
    def num_nodes(self) -> int:
        return int(self.pos.shape[0])


def _assign(
    regions: Any,
    lon: np.ndarray,
    lat: np.ndarray,
    keep: np.ndarray,
    *,
    bbox: Sequence[float] | None,
    max_dist_m: float,
    neighbourhood: int,
    region_id_col: str | None,
    name: str,
) -> _Assignment:
    if isinstance(regions, Grid):
        return _assign_grid(regions, lon, lat, neighbourhood)
    if isinstance(regions, (bool, np.bool_)):
        raise ConfigError(
            "regions: expected a Grid, H3Cells/int, GeoDataFrame or road-graph STGraph"
        )
    if isinstance(regions, (int, np.integer)):
        regions = H3Cells(int(regions))
    if isinstance(regions, H3Cells):
        return _assign_h3(regions, lon, lat, keep, bbox)
    if isinstance(regions, STGraph):
        return _assign_road(regions, lon, lat, keep, max_dist_m)
    try:
        import geopandas as gpd
    except ImportError:  # pragma: no cover - geopandas is in the [osm] extra
        gpd = None
    if gpd is not None and isinstance(regions, gpd.GeoDataFrame):
        return _assign_polygons(regions, lon, lat, keep, region_id_col)
    raise ConfigError(
        f"regions: expected a Grid, H3Cells/int, GeoDataFrame or road-graph STGraph, got {type(regions).__name__}"
    )


def _assign_grid(grid: Grid, lon: np.ndarray, lat: np.ndarray, neighbourhood: int) -> _Assignment:
    nodes = grid_nodes(grid, neighbourhood)
    return _Assignment(
        kind="Grid",
        node=grid.cell_of(lon, lat),
        pos=nodes.pos,
        edge_index=nodes.edge_index,
        edge_weight=nodes.edge_weight,
        edge_attr=None,
        node_attr=None,
        meta={
            "spatial_scale": nodes.spatial_scale,
            "cell_size_m": nodes.cell_size_m,
            "grid": nodes.grid,
            "node_ids": nodes.node_ids,
        },
    )


def _assign_h3(
    spec: H3Cells, lon: np.ndarray, lat: np.ndarray, keep: np.ndarray, bbox: Sequence[float] | None
) -> _Assignment:
    h3 = require("h3", "H3 regions")
    res = int(spec.resolution)
    idx = np.flatnonzero(keep)
    to_cell = h3.latlng_to_cell
    ev_cells = np.array(
        [to_cell(a, b, res) for a, b in zip(lat[idx].tolist(), lon[idx].tolist(), strict=True)],
        dtype=object,
    )
    cells = set(ev_cells.tolist())
    if bbox is not None:
        x0, y0, x1, y1 = (float(b) for b in bbox)
        poly = h3.LatLngPoly([(y0, x0), (y0, x1), (y1, x1), (y1, x0)])
        cells |= set(h3.polygon_to_cells(poly, res))
    cell_list = sorted(cells)
    lookup = {c: i for i, c in enumerate(cell_list)}
    node = np.full(lon.shape, -1, dtype=np.int64)
    node[idx] = np.array([lookup[c] for c in ev_cells.tolist()], dtype=np.int64)
    centres = np.array([h3.cell_to_latlng(c) for c in cell_list], dtype=np.float64).reshape(-1, 2)
    src, dst = [], []
    for i, c in enumerate(cell_list):
        for nb in h3.grid_ring(c, 1):
            j = lookup.get(nb)
            if j is not None:
                src.append(i)
                dst.append(j)
    ei = np.array([src, dst], dtype=np.int64).reshape(2, -1)
    pos = centres[:, ::-1].copy()
    dist = haversine_m(pos[ei[0], 0], pos[ei[0], 1], pos[ei[1], 0], pos[ei[1], 1])
    edge_len = float(h3.average_hexagon_edge_length(res, unit="m"))
    return _Assignment(
        kind=f"H3Cells({res})",
        node=node,
        pos=pos,
        edge_index=torch.from_numpy(ei),
        edge_weight=torch.ones(ei.shape[1]),
        edge_attr=torch.from_numpy(dist.astype(np.float32)[:, None]),
        node_attr=None,
        meta={
            "spatial_scale": edge_len * math.sqrt(3.0),  # centre-to-centre spacing of hexagons
            "h3_resolution": res,
            "node_ids": cell_list,
            "edge_attr_names": ["distance_m"],
        },
    )


def _assign_polygons(
    gdf: Any, lon: np.ndarray, lat: np.ndarray, keep: np.ndarray, region_id_col: str | None
) -> _Assignment:
    import geopandas as gpd

    if gdf.crs is None:
        raise DataFormatError(
            "regions: the GeoDataFrame has no CRS; set one (e.g. gdf.set_crs(4326))"
        )
    if len(gdf) == 0:
        raise DataFormatError("regions: the GeoDataFrame has no polygon")
    polys = gdf.to_crs(4326).reset_index(drop=False)
    ids = (
        polys[region_id_col].astype(str).tolist()
        if region_id_col is not None
        else polys[polys.columns[0]].astype(str).tolist()
    )
    idx = np.flatnonzero(keep)
    pts = gpd.GeoDataFrame(
        {"event": idx}, geometry=gpd.points_from_xy(lon[idx], lat[idx]), crs=4326
    )
    # "intersects": a point on a shared border belongs to both polygons (then to the first), not
    # to neither as with "within"
    joined = gpd.sjoin(pts, polys[["geometry"]], how="inner", predicate="intersects")
    joined = joined.sort_values(["event", "index_right"], kind="stable")
    multi = int(joined["event"].duplicated().sum())
    first = joined.drop_duplicates("event", keep="first")
    node = np.full(lon.shape, -1, dtype=np.int64)
    node[first["event"].to_numpy()] = first["index_right"].to_numpy()
    centre_lon = float(np.nanmean(lon[idx])) if idx.size else float(polys.union_all().centroid.x)
    centre_lat = float(np.nanmean(lat[idx])) if idx.size else float(polys.union_all().centroid.y)
    proj = polys.to_crs(utm_crs(centre_lon, centre_lat))
    cent = gpd.GeoSeries(proj.geometry.centroid, crs=proj.crs).to_crs(4326)
    pairs = gpd.sjoin(polys[["geometry"]], polys[["geometry"]], how="inner", predicate="intersects")
    pairs = pairs[pairs.index != pairs["index_right"]]
    ei = np.stack([pairs.index.to_numpy(), pairs["index_right"].to_numpy()]).astype(np.int64)
    order = np.lexsort((ei[1], ei[0]))
    ei = ei[:, order]
    areas = proj.geometry.area.to_numpy()
    return _Assignment(
        kind=f"polygons({len(polys)})",
        node=node,
        pos=np.stack([cent.x.to_numpy(), cent.y.to_numpy()], 1),
        edge_index=torch.from_numpy(ei),
        edge_weight=torch.ones(ei.shape[1]),
        edge_attr=None,
        node_attr=torch.from_numpy((areas / 1e6).astype(np.float32)[:, None]),
        meta={
            "spatial_scale": float(np.sqrt(np.median(areas))),
            "node_ids": ids,
            "node_attr_names": ["area_km2"],
            "events_in_several_polygons": multi,
        },
    )


def _assign_road(
    road: STGraph, lon: np.ndarray, lat: np.ndarray, keep: np.ndarray, max_dist_m: float
) -> _Assignment:
    from graph_builders.osm import nearest_nodes

    if road.pos is None:
        raise DataFormatError("regions: the road graph has no pos (node lon/lat)")
    idx = np.flatnonzero(keep)
    node = np.full(lon.shape, -1, dtype=np.int64)
    dist = np.zeros(0)
    if idx.size and (road.meta or {}).get("road_node") == "segment":
        # segment graphs: nodes are road segments, distance to their polylines
        nearest, dist = nearest_nodes(road, lon[idx], lat[idx], return_dist=True)
        hit = np.asarray(dist) <= max_dist_m
        node[idx[hit]] = np.asarray(nearest)[hit]
        dist = np.asarray(dist)[hit]
    elif idx.size:
        # intersections (or any point set): k-d tree on UTM coordinates, the search bounded by
        # max_dist_m (about twice as fast as an unbounded query on city-sized inputs)
        from scipy.spatial import cKDTree

        pos = road.pos.double().numpy()
        given = (road.meta or {}).get("projected_crs")
        crs = CRS.from_user_input(given) if given else utm_crs(*np.median(pos, axis=0))
        node_xy, _ = project(pos[:, 0], pos[:, 1], crs=crs)
        ev_xy, _ = project(lon[idx], lat[idx], crs=crs)
        dist, nearest = cKDTree(node_xy).query(ev_xy, k=1, distance_upper_bound=max_dist_m)
        hit = np.isfinite(dist)
        node[idx[hit]] = nearest[hit]
        dist = dist[hit]
    rmeta = dict(road.meta or {})
    meta = {
        k: rmeta[k]
        for k in (
            "node_ids",
            "edge_attr_names",
            "node_attr_names",
            "spatial_scale",
            "city",
            "edge_weight",
        )
        if rmeta.get(k) is not None
    }
    meta["snap_m"] = {
        "median": float(np.median(dist)) if dist.size else None,
        "max": float(dist.max()) if dist.size else None,
        "max_distance_m": float(max_dist_m),  # meta key kept as written before
    }
    meta["provenance"] = list(rmeta.get("provenance", []))
    return _Assignment(
        kind=f"road_graph({road.num_nodes} nodes)",
        node=node,
        pos=road.pos.double().numpy(),
        edge_index=road.edge_index,
        edge_weight=road.edge_weight,
        edge_attr=road.edge_attr,
        node_attr=road.node_attr,
        meta=meta,
    )
