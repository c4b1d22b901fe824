"""GPS trajectories -> dynamic spatio-temporal graphs: map matching, counts, speeds and flows.

:func:`from_points` map-matches GPS points onto the directed road segments of a road graph
(:mod:`graph_builders.mapmatch`: a light hidden-Markov / Viterbi matcher with distance, heading and
route continuity) or onto the cells of a regular grid (an ``events.Grid``), then aggregates per node
and per time bin:

- ``count``: GPS points in the node during the bin (unit ``points``),
- ``trajectories``: distinct trajectories seen in the node during the bin (unit ``trajectories``),
- ``speed``: mean speed of those points (unit ``m/s``; from ``speed_col`` or from consecutive
  points),

plus dynamic transition edges (flows) between consecutive matched nodes of the same trajectory:
``dyn_edge_index`` ``[2, E_d]``, ``dyn_edge_weight`` = number of transitions, ``dyn_edge_time`` = the
step of the later point.

Nothing is dropped silently: every skipped point is counted by reason in ``meta["dropped"]``
(:data:`DROP_REASONS`; points in = matched + dropped) and the matching quality (share matched,
distance median / p90 / max) is in ``meta["matching"]``.

Example::

    from graph_builders import osm, trajectories
    roads = osm.road_graph("city.osm.pbf")
    g = trajectories.from_points("gps.csv", road_graph=roads, interval="15min")
    g = trajectories.from_points("gps.csv", grid={"bbox": (w, s, e, n), "cell_m": 500}, interval="1h")
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from graph_builders._inputs import MAX_DROP_SHARE, interval_seconds, report_dropped
from graph_builders.mapmatch import RoadIndex, match_to_roads, road_index, simulate_tracks
from graph_builders.regions import Grid, as_grid, grid_nodes
from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError, DataFormatError
from stgraph.utils.geo import EARTH_RADIUS_M, haversine_m
from stgraph.utils.memory import check_memory

__all__ = [
    "DROP_REASONS",
    "as_grid",
    "from_points",
    "haversine_m",
    "match_to_roads",
    "point_speeds",
    "read_point_table",
    "read_points",
    "simulate_tracks",
    "split_segments",
]

#: Reasons a GPS point can be dropped, in the order they are checked.
DROP_REASONS = (
    "unparseable_time",
    "missing_coordinates",
    "invalid_coordinates",
    "duplicate",
    "outside",
    "too_far",
)

_ALIASES = {
    "lon": ("lon", "lng", "longitude", "long", "x"),
    "lat": ("lat", "latitude", "y"),
    "time": ("time", "timestamp", "datetime", "date_time", "t", "date"),
    "id": (
        "trajectory_id",
        "traj_id",
        "trip_id",
        "track_id",
        "track",
        "trajectory",
        "tid",
        "uid",
        "user_id",
        "vehicle_id",
        "device_id",
        "id",
    ),
}


# ----------------------------------------------------------------------------- small helpers
def _resolve_column(df: pd.DataFrame, given: str | None, kind: str, source: str) -> str | None:
    cols = list(df.columns)
    if given is not None:
        if given not in df.columns:
            raise DataFormatError(
                f"{source}: column {given!r} ({kind}) not found; the columns are {cols}"
            )
        return given
    lower = {str(c).lower(): c for c in cols}
    for alias in _ALIASES[kind]:
        if alias in lower:
            return lower[alias]
    return None


def read_point_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV (separator sniffed from the header: ``,``/``;``/tab/``|``; ``.gz``/``.bz2``) or Parquet table."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    opener = None
    if name.endswith(".gz"):
        import gzip

        opener = gzip.open
    elif name.endswith(".bz2"):
        import bz2

        opener = bz2.open
    try:
        if opener is not None:
            with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
                header = fh.readline()
        else:
            with open(path, encoding="utf-8", errors="replace") as fh:
                header = fh.readline()
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot be read as text ({exc})") from exc
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    sep = max(counts, key=counts.get)
    if counts[sep] == 0:
        raise DataFormatError(f"{path}: the first line has no ',', ';' or tab: not a CSV table")
    try:
        return pd.read_csv(path, sep=sep)
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataFormatError(
            f"{path}: cannot be parsed as a {sep!r}-separated table ({exc})"
        ) from exc


#: Unix seconds a time may take: the range of pandas' nanosecond timestamps (1677-2262).
_TIME_RANGE_S = (pd.Timestamp.min.value // 10**9 + 1, pd.Timestamp.max.value // 10**9 - 1)


def _parse_times(values: pd.Series) -> np.ndarray:
    """Unix seconds (float, NaN where unparseable or outside 1677-2262). Naive strings are taken
    as UTC."""
    if pd.api.types.is_numeric_dtype(values):
        out = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
        lo, hi = _TIME_RANGE_S
        return np.where((out >= lo) & (out <= hi), out, np.nan)
    try:
        return _parse_time_values(values)
    except (OverflowError, ValueError):  # pandas.errors.OutOfBoundsDatetime is a ValueError
        return np.array([_parse_one_time(v) for v in values], dtype=np.float64)


def _parse_one_time(value: Any) -> float:
    """One time as unix seconds (NaN when unparseable or out of range)."""
    try:
        return float(_parse_time_values(pd.Series([value]))[0])
    except (pd.errors.OutOfBoundsDatetime, OverflowError, ValueError, TypeError):
        return np.nan


def _parse_time_values(values: pd.Series) -> np.ndarray:
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = values if getattr(values.dt, "tz", None) is not None else values.dt.tz_localize("UTC")
    else:
        text = values.astype("string")
        try:
            ts = pd.to_datetime(text, utc=True, errors="coerce")
        except (ValueError, TypeError):
            ts = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
        if ts.isna().all() and text.notna().any():
            ts = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    epoch = pd.Timestamp(0, tz="UTC")
    out = ((ts - epoch) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    return np.floor(out)


def read_points(
    table: pd.DataFrame | str | os.PathLike,
    *,
    lon_col: str | None = None,
    lat_col: str | None = None,
    time_col: str | None = None,
    id_col: str | None = None,
    value_cols: Sequence[str] = (),
    require_id: bool = True,
    source: str | None = None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Read GPS points into a clean table with columns ``lon, lat, time, track`` (+ values).

    Columns not named are found by common names (``lon``/``lng``/``longitude``/``X``,
    ``lat``/``latitude``/``Y``, ``time``/``timestamp``/``datetime``/``t``,
    ``trajectory_id``/``trip_id``/``track_id``/``uid``/``id``). Times may be strings (naive ones are
    taken as UTC), datetimes or unix seconds.

    Rows with an unparseable time, a missing coordinate or coordinates outside
    ``|lon| <= 180, |lat| <= 90`` are dropped and counted. Each track is sorted by time (stably:
    rows with the same time keep their file order), so a file need not be in time order; the
    number of rows that were out of order is ``points.attrs["reordered"]``. A row that repeats an
    earlier row of its track exactly (same time, coordinates and values) is a ``duplicate``:
    dropped and counted. Two different fixes at the same second are both kept.

    Args:
        table: a DataFrame, or a CSV (``,``/``;``/tab, optionally ``.gz``/``.bz2``) or Parquet path.
        lon_col, lat_col, time_col, id_col: column names (found by alias when ``None``).
        value_cols: further numeric columns to keep (e.g. ``speed``).
        require_id: raise when no track id column is found; else all rows form one track.
        source: how the table is named in messages (default: its path, or ``"table"``).

    Returns:
        ``(points, dropped)``: the points sorted by track then time, with ``time`` int64 unix
        seconds and ``track`` int64 codes (``points.attrs["track_names"]`` maps codes to the
        original ids), and the counts of dropped rows by reason.

    Raises:
        DataFormatError: naming the file and the missing column.
    """
    if source is None:
        source = str(table) if not isinstance(table, pd.DataFrame) else "table"
    df = table if isinstance(table, pd.DataFrame) else read_point_table(table)
    cols = {
        "lon": _resolve_column(df, lon_col, "lon", source),
        "lat": _resolve_column(df, lat_col, "lat", source),
        "time": _resolve_column(df, time_col, "time", source),
        "id": _resolve_column(df, id_col, "id", source),
    }
    for kind in ("lon", "lat", "time"):
        if cols[kind] is None:
            raise DataFormatError(
                f"{source}: no {kind} column found (tried {list(_ALIASES[kind])}); pass "
                f"{kind}_col=... ; the columns are {list(df.columns)}"
            )
    if cols["id"] is None and require_id:
        raise DataFormatError(
            f"{source}: no trajectory id column found (tried {list(_ALIASES['id'])}); pass "
            f"id_col=... ; the columns are {list(df.columns)}"
        )
    for v in value_cols:
        if v not in df.columns:
            raise DataFormatError(
                f"{source}: value column {v!r} not found; the columns are {list(df.columns)}"
            )

    n_in = len(df)
    dropped = dict.fromkeys(DROP_REASONS[:4], 0)
    t = _parse_times(df[cols["time"]])
    lon = pd.to_numeric(df[cols["lon"]], errors="coerce").to_numpy(np.float64)
    lat = pd.to_numeric(df[cols["lat"]], errors="coerce").to_numpy(np.float64)
    bad_t = ~np.isfinite(t)
    dropped["unparseable_time"] = int(bad_t.sum())
    bad_c = ~bad_t & ~(np.isfinite(lon) & np.isfinite(lat))
    dropped["missing_coordinates"] = int(bad_c.sum())
    bad_r = ~bad_t & ~bad_c & ((np.abs(lon) > 180) | (np.abs(lat) > 90))
    dropped["invalid_coordinates"] = int(bad_r.sum())
    keep = ~(bad_t | bad_c | bad_r)
    if n_in and not keep.any():
        worst = "time" if bad_t.all() else "lon"
        sample = df[cols[worst]].head(3).tolist()
        raise DataFormatError(
            f"{source}: none of the {n_in:,} rows is usable (unparseable_time "
            f"{dropped['unparseable_time']:,}, missing_coordinates {dropped['missing_coordinates']:,}"
            f", invalid_coordinates {dropped['invalid_coordinates']:,}); column {cols[worst]!r} "
            f"holds e.g. {sample}"
        )

    if cols["id"] is not None:
        codes, names = pd.factorize(df[cols["id"]], use_na_sentinel=False)
    else:
        codes, names = np.zeros(n_in, dtype=np.int64), pd.Index(["track0"])
    out = pd.DataFrame(
        {
            "lon": lon,
            "lat": lat,
            "time": np.where(keep, t, 0).astype(np.int64),
            "track": codes.astype(np.int64),
            "row": np.arange(n_in, dtype=np.int64),
        }
    )
    for v in value_cols:
        out[v] = pd.to_numeric(df[v], errors="coerce").to_numpy(np.float64)
    out = out[keep]
    # by track, then time; stable, so fixes of the same second keep their file order
    order = np.lexsort((out["time"].to_numpy(), out["track"].to_numpy()))
    out = out.iloc[order]
    rows = out["row"].to_numpy()
    tr = out["track"].to_numpy()
    same_track = tr[1:] == tr[:-1]
    reordered = int((same_track & (rows[1:] < rows[:-1])).sum())
    exact = ["track", "time", "lon", "lat", *value_cols]
    dup = out.duplicated(subset=exact, keep="first").to_numpy()
    dropped["duplicate"] = int(dup.sum())
    out = out[~dup].reset_index(drop=True)
    out.attrs["track_names"] = [str(v) for v in names]
    out.attrs["source"] = source
    out.attrs["n_input"] = n_in
    out.attrs["reordered"] = reordered
    return out, dropped


def split_segments(track: np.ndarray, time: np.ndarray, max_gap_s: float) -> np.ndarray:
    """Segment id per point: a new segment at each new track or time gap above ``max_gap_s``."""
    new = np.ones(len(track), dtype=bool)
    if len(track) > 1:
        new[1:] = (track[1:] != track[:-1]) | ((time[1:] - time[:-1]) > max_gap_s)
    return np.cumsum(new) - 1


def point_speeds(
    lon: np.ndarray, lat: np.ndarray, time: np.ndarray, segment: np.ndarray
) -> np.ndarray:
    """Speed (m/s) of each point from the previous point of the same segment (NaN for the first).

    Haversine distance over time difference; points are expected sorted by segment then time.
    """
    speed = np.full(len(lon), np.nan)
    if len(lon) < 2:
        return speed
    same = segment[1:] == segment[:-1]
    dt = (time[1:] - time[:-1]).astype(np.float64)
    d = haversine_m(lon[:-1], lat[:-1], lon[1:], lat[1:])
    ok = same & (dt > 0)
    speed[1:][ok] = d[ok] / dt[ok]
    return speed


# ----------------------------------------------------------------------------- main entry
def from_points(
    table: pd.DataFrame | str | os.PathLike,
    *,
    road_graph: STGraph | None = None,
    grid: Grid | Mapping[str, Any] | None = None,
    interval: str | int = "15min",
    lon_col: str | None = None,
    lat_col: str | None = None,
    time_col: str | None = None,
    id_col: str | None = None,
    speed_col: str | None = None,
    speed_unit: str = "m/s",
    heading_col: str | None = None,
    max_dist_m: float = 50.0,
    max_gap: str | int = "10min",
    max_speed_mps: float = 70.0,
    node: str = "intersection",
    method: str = "hmm",
    sigma_m: float = 10.0,
    drop_empty: bool = False,
    name: str = "trajectories",
    city: str | None = None,
    strict: bool = False,
    max_drop_share: float = MAX_DROP_SHARE,
) -> STGraph:
    r"""Map-match GPS points and aggregate them per node and time bin into an :class:`STGraph`.

    Exactly one of ``road_graph`` / ``grid`` is given.

    - Road graph (``osm.road_graph``): points are matched to directed edges (see
      :func:`match_to_roads`). With ``node="intersection"`` a point counts at the nearer end of its
      edge and the output has the road graph's nodes and edges; with ``node="segment"`` the output
      nodes are the directed edges (pos = edge midpoint) joined when one ends where the next starts
      (U-turns excluded), and a point counts on its edge. A segment-mode road graph
      (``osm.road_graph(..., node="segment")``) is matched onto its own nodes whatever ``node`` says.
    - Grid (an ``events.Grid``, or a dict ``{"cell_m": ..., "bbox": (w, s, e, n)}``): each point
      goes to the cell that contains it; points outside the grid are dropped as ``outside``.

    Per node and bin: ``count`` (points), ``trajectories`` (distinct track ids) and ``speed``
    (mean, m/s; masked where no point has a speed). Dynamic edges: transitions between
    consecutive matched nodes of the same trajectory segment (a gap longer than ``max_gap`` starts a
    new segment), weight = number of transitions, step = bin of the later point.

    Args:
        table: GPS points (DataFrame or CSV/Parquet path), one row per fix.
        road_graph: the road network to match onto.
        grid: the grid to match onto.
        interval: bin length (``"15min"``, ``"1h"``, seconds).
        lon_col, lat_col, time_col, id_col: column names (found by alias when ``None``).
        speed_col: a speed column (in ``speed_unit``: ``"m/s"``, ``"km/h"`` or ``"mph"``); when
            ``None`` speeds come from consecutive points (haversine / time difference).
        heading_col: a compass bearing column (degrees clockwise from north) used for matching.
        max_dist_m: points farther than this from every edge are dropped as ``too_far``.
        max_gap: a longer gap between consecutive points of a track starts a new segment.
        max_speed_mps: computed speeds above this (GPS jumps, flights) are left out of the mean
            speed and counted in ``meta["matching"]["speed_outliers"]``.
        node: ``"intersection"`` or ``"segment"`` (road graphs only).
        method: ``"hmm"`` (Viterbi with continuity) or ``"nearest"`` (per point).
        sigma_m: GPS noise scale for the distance cost.
        drop_empty: drop nodes that never receive a point.
        name: source name recorded in the metadata.
        city: city name for the metadata.
        strict, max_drop_share: the builders' drop rule
            (:func:`graph_builders._inputs.report_dropped`): more than ``max_drop_share`` of the
            points dropped for reasons other than the options' own (``outside`` the grid, exact
            ``duplicate`` fixes) is a warning on stderr, with ``strict=True`` an error.

    Returns:
        An STGraph with ``x`` ``[N, T, 3]`` (count, trajectories, speed), ``mask``, ``time``,
        ``pos``, static edges, dynamic transition edges and ``meta["dropped"]`` /
        ``meta["matching"]`` reports.

    Raises:
        DataFormatError: a missing column or an unreadable file.
        TooManyDroppedError: ``strict=True`` and more than ``max_drop_share`` of the points were
            dropped (unparseable times, missing or invalid coordinates, too far from any road).
        ConfigError: both or neither of ``road_graph`` and ``grid``; a bad ``node``.
    """
    if (road_graph is None) == (grid is None):
        raise ConfigError("from_points: give exactly one of road_graph=... or grid=...")
    if node not in ("intersection", "segment"):
        raise ConfigError(f"node: expected 'intersection' or 'segment', got {node!r}")
    step_s = interval_seconds(interval)
    values = [c for c in (speed_col, heading_col) if c is not None]
    pts, dropped = read_points(
        table, lon_col=lon_col, lat_col=lat_col, time_col=time_col, id_col=id_col, value_cols=values
    )
    track, t = pts["track"].to_numpy(), pts["time"].to_numpy()
    segment = split_segments(track, t, interval_seconds(max_gap, option="max_gap"))
    if road_graph is not None:
        heading = pts[heading_col].to_numpy() if heading_col is not None else None
        opts = {"max_dist_m": max_dist_m, "sigma_m": sigma_m, "method": method}
        m = _match_on_roads(pts, segment, road_graph, node=node, heading=heading, **opts)
    else:
        m = _match_on_grid(pts, as_grid(grid))
    dropped["outside"], dropped["too_far"] = m.outside, m.too_far
    _report_dropped(pts, dropped, strict, max_drop_share)
    speed, outliers = _speeds(pts, segment, speed_col, speed_unit, max_speed_mps)
    x, mask, times, dyn = _aggregate(
        node_of=m.node_of,
        time=t,
        track=track,
        segment=segment,
        speed=speed,
        n_nodes=m.nodes.pos.shape[0],
        step_s=step_s,
    )
    n_points_in = pts.attrs["n_input"]
    assert int(m.ok.sum()) + sum(dropped.values()) == n_points_in, (m.ok.sum(), dropped)
    how = (method if road_graph is not None else "cell", speed_col or "consecutive points")
    matching = _matching_report(m, n_points_in, track, segment, *how, outliers, dyn)
    matching["rows_out_of_time_order"] = pts.attrs["reordered"]
    files = [pts.attrs["source"]] if pts.attrs["source"] != "table" else []
    meta = _trajectory_meta(m, matching, dropped, step_s, max_dist_m, name, city, files)
    out = m.nodes.graph(x, mask, times, dyn, meta)
    if drop_empty:
        seen = torch.from_numpy(np.bincount(m.node_of[m.ok], minlength=out.num_nodes) > 0)
        out = out.select_nodes(seen)  # road polylines follow the kept segments
        out.meta["provenance"].append("drop_empty")
    return out


def _report_dropped(
    pts: pd.DataFrame, dropped: dict[str, int], strict: bool, max_share: float
) -> None:
    """The builders' drop rule on the points; the grid extent and exact repeats are the
    options' own reasons, not held against the input."""
    report_dropped(
        pts.attrs["source"],
        dropped,
        pts.attrs["n_input"],
        what="GPS points",
        strict=strict,
        max_share=max_share,
        ignore=("outside", "duplicate"),
    )


@dataclass
class _Nodes:
    """The output nodes (a road graph's, its line graph's or a grid's) and what they carry."""

    pos: np.ndarray
    edge_index: torch.Tensor | None = None
    edge_weight: torch.Tensor | None = None
    edge_attr: torch.Tensor | None = None
    node_attr: torch.Tensor | None = None
    node_ids: list[str] | None = None
    edge_attr_names: list[str] | None = None
    node_attr_names: list[str] | None = None
    grid: dict[str, Any] | None = None
    road_geom: torch.Tensor | None = None
    road_geom_ptr: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def graph(
        self,
        x: np.ndarray,
        mask: np.ndarray,
        times: np.ndarray,
        dyn: tuple[np.ndarray, np.ndarray, np.ndarray],
        meta: dict[str, Any],
    ) -> STGraph:
        """The STGraph of these nodes with the aggregated ``x`` and transitions ``dyn``."""
        for key, value in self.meta.items():
            meta.setdefault(key, value)
        for key in ("node_ids", "edge_attr_names", "node_attr_names", "grid"):
            if getattr(self, key) is not None:
                meta[key] = getattr(self, key)
        extra = {
            k: getattr(self, k)
            for k in ("road_geom", "road_geom_ptr")
            if getattr(self, k) is not None
        }
        return STGraph(
            x=torch.from_numpy(x),
            mask=torch.from_numpy(mask),
            time=torch.from_numpy(times),
            pos=torch.from_numpy(self.pos),
            edge_index=self.edge_index,
            edge_weight=self.edge_weight,
            edge_attr=self.edge_attr,
            node_attr=self.node_attr,
            dyn_edge_index=torch.from_numpy(dyn[0]),
            dyn_edge_time=torch.from_numpy(dyn[1]),
            dyn_edge_weight=torch.from_numpy(dyn[2]),
            meta=meta,
            **extra,
        )


@dataclass
class _Match:
    """Where each point went: ``node_of`` (``-1`` = not matched), distances, the output nodes."""

    node_of: np.ndarray
    dist: np.ndarray  # metres to the matched segment / cell centre (NaN = not matched)
    nodes: _Nodes
    spatial_scale: float
    matched_on: str
    outside: int
    too_far: int

    @property
    def ok(self) -> np.ndarray:
        return self.node_of >= 0


def _match_on_roads(
    pts: pd.DataFrame,
    segment: np.ndarray,
    road_graph: STGraph,
    *,
    node: str,
    heading: np.ndarray | None,
    max_dist_m: float,
    sigma_m: float,
    method: str,
) -> _Match:
    """Map-match the points onto the road graph's directed edges (:func:`match_to_roads`)."""
    lon, lat = pts["lon"].to_numpy(), pts["lat"].to_numpy()
    index = road_index(road_graph, step_m=max(max_dist_m, 5.0))
    w, s, e, n_ = index.bbox
    margin_lat = math.degrees(max_dist_m / EARTH_RADIUS_M)
    margin_lon = margin_lat / max(math.cos(math.radians((s + n_) / 2)), 1e-6)
    inside = (
        (lon >= w - margin_lon)
        & (lon <= e + margin_lon)
        & (lat >= s - margin_lat)
        & (lat <= n_ + margin_lat)
    )
    seg = np.full(len(pts), -1, dtype=np.int64)
    dist = np.full(len(pts), np.nan)
    frac = np.full(len(pts), np.nan)
    seg[inside], dist[inside], frac[inside] = match_to_roads(
        np.stack([lon[inside], lat[inside]], 1),
        segment[inside],
        index=index,
        max_dist_m=max_dist_m,
        sigma_m=sigma_m,
        heading=heading[inside] if heading is not None else None,
        method=method,
    )
    ok = seg >= 0
    safe = np.maximum(seg, 0)
    if index.segment_graph:
        node_of, nodes, node = seg, _road_nodes(road_graph), "segment"
    elif node == "intersection":
        node_of = np.where(frac < 0.5, index.src[safe], index.dst[safe])
        nodes = _road_nodes(road_graph)
    else:
        node_of, nodes = seg, _segment_nodes(road_graph, index)
    scale = (road_graph.meta or {}).get("spatial_scale") or float(np.median(index.seg_len))
    return _Match(
        node_of=np.where(ok, node_of, -1),
        dist=dist,
        nodes=nodes,
        spatial_scale=scale,
        matched_on=f"road_graph ({node})",
        outside=int((~inside).sum()),
        too_far=int((inside & (seg < 0)).sum()),
    )


def _match_on_grid(pts: pd.DataFrame, grid: Grid) -> _Match:
    """Each point to the grid cell that contains it; points outside the grid are not matched."""
    lon, lat = pts["lon"].to_numpy(), pts["lat"].to_numpy()
    node_of = grid.cell_of(lon, lat)
    ok = node_of >= 0
    g = grid_nodes(grid)
    nodes = _Nodes(
        pos=g.pos,
        edge_index=g.edge_index,
        edge_weight=g.edge_weight,
        node_ids=g.node_ids,
        grid=g.grid,
    )
    clon, clat = g.pos[np.maximum(node_of, 0)].T
    return _Match(
        node_of=node_of,
        dist=np.where(ok, haversine_m(lon, lat, clon, clat), np.nan),
        nodes=nodes,
        spatial_scale=g.spatial_scale,
        matched_on="grid",
        outside=int((~ok).sum()),
        too_far=0,
    )


def _speeds(
    pts: pd.DataFrame,
    segment: np.ndarray,
    speed_col: str | None,
    speed_unit: str,
    max_speed_mps: float,
) -> tuple[np.ndarray, int]:
    """Speed (m/s) per point, given or from consecutive points, and the outliers left out."""
    if speed_col is not None:
        factor = {"m/s": 1.0, "km/h": 1 / 3.6, "mph": 0.44704}.get(speed_unit)
        if factor is None:
            raise ConfigError(f"speed_unit: expected 'm/s', 'km/h' or 'mph', got {speed_unit!r}")
        return pts[speed_col].to_numpy() * factor, 0
    lon, lat, t = pts["lon"].to_numpy(), pts["lat"].to_numpy(), pts["time"].to_numpy()
    speed = point_speeds(lon, lat, t, segment)
    outliers = int((speed > max_speed_mps).sum())
    return np.where(speed > max_speed_mps, np.nan, speed), outliers


def _matching_report(
    m: _Match,
    n_points_in: int,
    track: np.ndarray,
    segment: np.ndarray,
    method: str,
    speed_source: str,
    outliers: int,
    dyn: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> dict[str, Any]:
    """``meta["matching"]``: share matched, distances, trajectories, speeds, transitions."""
    n_matched = int(m.ok.sum())
    dm = m.dist[m.ok]
    return {
        "matched_on": m.matched_on,
        "method": method,
        "points_in": int(n_points_in),
        "points_matched": n_matched,
        "share_matched": n_matched / n_points_in if n_points_in else 0.0,
        "distance_m": {
            "median": float(np.median(dm)) if len(dm) else None,
            "p90": float(np.percentile(dm, 90)) if len(dm) else None,
            "max": float(dm.max()) if len(dm) else None,
        },
        "trajectories": int(len(np.unique(track))),
        "segments": int(len(np.unique(segment))),
        "speed_source": speed_source,
        "speed_outliers": outliers,
        "transitions": int(dyn[2].sum()) if dyn[2].size else 0,
    }


def _trajectory_meta(
    m: _Match,
    matching: dict[str, Any],
    dropped: dict[str, int],
    step_s: int,
    max_dist_m: float,
    name: str,
    city: str | None,
    files: list[str],
) -> dict[str, Any]:
    return {
        "variables": [
            {"name": "count", "unit": "points", "agg": "sum"},
            {"name": "trajectories", "unit": "trajectories", "agg": "sum"},
            {"name": "speed", "unit": "m/s", "agg": "mean"},
        ],
        "domain": "mobility",
        "city": city,
        "crs": "EPSG:4326",
        "interval": step_s,
        "spatial_scale": m.spatial_scale,
        "sources": [{"name": name, "files": files}],
        "provenance": [
            f"trajectories.from_points({m.matched_on}, interval={step_s}s, max_dist_m={max_dist_m}, "
            f"method={matching['method']})"
        ],
        "dropped": {k: int(v) for k, v in dropped.items()},
        "matching": matching,
        "dyn_edge_weight": "transitions",
        "name": name,
    }


_ROAD_META = (
    "road_node",
    "projected_crs",
    "road_classes",
    "network",
    "bbox",
    "simplified",
    "edge_weight",
)


def _road_nodes(road_graph: STGraph) -> _Nodes:
    """The road graph's own nodes, edges, attributes and geometry."""
    meta = road_graph.meta or {}
    return _Nodes(
        pos=road_graph.pos.double().numpy(),
        edge_index=road_graph.edge_index,
        edge_weight=road_graph.edge_weight,
        edge_attr=road_graph.edge_attr,
        node_attr=road_graph.node_attr,
        node_ids=meta.get("node_ids"),
        edge_attr_names=meta.get("edge_attr_names"),
        node_attr_names=meta.get("node_attr_names"),
        road_geom=getattr(road_graph, "road_geom", None),
        road_geom_ptr=getattr(road_graph, "road_geom_ptr", None),
        meta={k: meta[k] for k in _ROAD_META if k in meta},
    )


def _segment_nodes(road_graph: STGraph, index: RoadIndex) -> _Nodes:
    """Line graph: one node per directed edge (pos = half way along its polyline), joined where
    one edge ends and the next begins (no U-turns)."""
    pos = road_graph.pos.double().numpy()
    ei = road_graph.edge_index.numpy()
    src, dst = ei[0], ei[1]
    half = index.seg_len / 2
    first_piece = np.searchsorted(index.piece_seg, np.arange(len(src)))
    end_off = index.piece_offset + index.piece_len
    # the piece of each segment that contains its half-way point
    piece = first_piece.copy()
    for _ in range(int(np.bincount(index.piece_seg).max())):
        step = (end_off[piece] < half) & (piece + 1 < len(index.piece_seg))
        step &= index.piece_seg[np.minimum(piece + 1, len(index.piece_seg) - 1)] == np.arange(
            len(src)
        )
        if not step.any():
            break
        piece = piece + step
    t = np.clip((half - index.piece_offset[piece]) / np.maximum(index.piece_len[piece], 1e-9), 0, 1)
    mid = index.proj.inverse(index.a[piece] + t[:, None] * (index.b[piece] - index.a[piece]))
    order = np.argsort(src, kind="stable")
    starts = np.searchsorted(src[order], np.arange(len(pos)))
    ends = np.searchsorted(src[order], np.arange(len(pos)), side="right")
    # edge e -> every edge f with src[f] == dst[e]
    counts = ends[dst] - starts[dst]
    e_rep = np.repeat(np.arange(len(src)), counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    f = order[np.repeat(starts[dst], counts) + offs]
    keep = dst[f] != src[e_rep]  # no U-turn back along the same pair
    e_rep, f = e_rep[keep], f[keep]
    length = road_graph.edge_weight.double().numpy() if road_graph.edge_weight is not None else None
    weight = None
    if length is not None:
        weight = torch.from_numpy((length[e_rep] + length[f]) / 2)
    meta = road_graph.meta or {}
    ids = meta.get("node_ids")
    node_ids = (
        [f"{ids[s]}->{ids[d]}" for s, d in zip(src, dst, strict=False)] if ids is not None else None
    )
    return _Nodes(
        pos=mid,
        edge_index=torch.from_numpy(np.stack([e_rep, f])),
        edge_weight=weight,
        node_attr=road_graph.edge_attr,
        node_attr_names=meta.get("edge_attr_names"),
        node_ids=node_ids,
        road_geom=getattr(road_graph, "road_geom", None),
        road_geom_ptr=getattr(road_graph, "road_geom_ptr", None),
        meta={**{k: meta[k] for k in _ROAD_META if k in meta}, "road_node": "segment"},
    )


def _aggregate(
    *,
    node_of: np.ndarray,
    time: np.ndarray,
    track: np.ndarray,
    segment: np.ndarray,
    speed: np.ndarray,
    n_nodes: int,
    step_s: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    ok = node_of >= 0
    if not ok.any():
        raise DataFormatError(
            "from_points: no point was matched; check the coordinates, the grid/road graph extent "
            "and max_dist_m (see the dropped counts)"
        )
    t0 = (int(time[ok].min()) // step_s) * step_s
    bins_all = (time - t0) // step_s
    n_steps = int(bins_all[ok].max()) + 1
    size = n_nodes * n_steps
    # per node-step at the peak: 5 float64 bincounts, the float64 stack [3], x float32 [3], mask
    check_memory(
        f"trajectories.from_points: {n_nodes:,} nodes x {n_steps:,} steps x 3 variables",
        size * (5 * 8 + 3 * 8 + 3 * 4 + 3),
        hint="use a longer interval, a smaller grid/bbox, or a time range of the points",
    )
    nd, b = node_of[ok], bins_all[ok]
    flat = nd * n_steps + b
    count = np.bincount(flat, minlength=size).astype(np.float64)
    pair = np.unique(np.stack([flat, track[ok]]), axis=1)
    distinct = np.bincount(pair[0], minlength=size).astype(np.float64)
    sp = speed[ok]
    fin = np.isfinite(sp)
    s_sum = np.bincount(flat[fin], weights=sp[fin], minlength=size)
    s_cnt = np.bincount(flat[fin], minlength=size)
    mean_speed = np.divide(s_sum, s_cnt, out=np.zeros(size), where=s_cnt > 0)
    x = np.stack([count, distinct, mean_speed], -1).reshape(n_nodes, n_steps, 3).astype(np.float32)
    mask = np.ones((n_nodes, n_steps, 3), dtype=bool)
    mask[..., 2] = (s_cnt > 0).reshape(n_nodes, n_steps)
    times = t0 + step_s * np.arange(n_steps, dtype=np.int64)

    # transitions between consecutive matched points of a segment whose node changes
    idx = np.nonzero(ok)[0]
    if len(idx) > 1:
        a, c = idx[:-1], idx[1:]
        same_seg = segment[a] == segment[c]
        change = node_of[a] != node_of[c]
        sel = same_seg & change
        src, dst, bb = node_of[a][sel], node_of[c][sel], bins_all[c][sel]
    else:
        src = dst = bb = np.zeros(0, dtype=np.int64)
    if len(src):
        key = np.stack([bb, src, dst])
        uniq, cnt = np.unique(key, axis=1, return_counts=True)
        dyn = (uniq[1:].astype(np.int64), uniq[0].astype(np.int64), cnt.astype(np.float32))
    else:
        dyn = (np.zeros((2, 0), np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    return x, mask, times, dyn
