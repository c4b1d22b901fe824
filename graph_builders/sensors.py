"""Fixed sensors (loop detectors, counters, stations, bus stops) → sensor graphs.

``from_table(locations, readings)`` joins a table of sensor locations with a table of readings by
sensor id, then connects the sensors either

* by **directed road distance** on a road graph (:func:`graph_builders.osm.road_graph`): each
  sensor is snapped to the nearest road segment (or node), shortest paths are computed with
  scipy's Dijkstra on the directed road graph, and the DCRNN Gaussian kernel turns the distance
  matrix into weighted edges (:func:`graph_builders.proximity.connect`); or
* by **proximity** (haversine distances: Gaussian kernel, kNN, radius or Delaunay) when there is
  no road graph.

Every sensor left out is counted by reason in ``meta["dropped"]`` (ids in ``meta["dropped_ids"]``),
and so are the readings of the kept sensors that are masked for a reason of their own (not a
number, ``±inf``, beyond float32's range: ``1e39`` would be stored as ``inf``). Ids are
identifiers, read as text on both sides of the join (``"001001"`` stays ``"001001"``); a join that
keeps few or no sensors shows a few ids of each side. The drop rule of every builder
(:func:`graph_builders._inputs.report_dropped`) warns, or refuses with ``strict=True``, when more
than ``max_drop_share`` of the sensors or of the readings are dropped. Snapping is reported in
``meta["snap"]`` (median and max distance, how many beyond ``max_dist_m``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from graph_builders._inputs import (
    MAX_DROP_SHARE,
    build_graph,
    check_lonlat,
    check_memory,
    log,
    match_columns,
    parse_interval,
    parse_times,
    read_table,
    renamed_options,
    report_dropped,
    source_name,
    to_lonlat,
    wall_to_unix,
)
from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError, DataFormatError
from stgraph.utils.extras import require
from stgraph.utils.geo import haversine_m
from stgraph.utils.readers import normalize_ids as _norm_ids
from stgraph.utils.readers import read_node_link, read_uctb

__all__ = ["from_table", "read_node_link", "read_uctb", "road_distances", "snap_to_roads"]

#: Sensors left out, by reason (``meta["dropped"]``; their ids in ``meta["dropped_ids"]``).
SENSOR_DROP_REASONS = (
    "no_location",
    "no_readings",
    "no_coordinates",
    "snap_too_far",
    "non_numeric_sensor",
)
#: Readings of the kept sensors masked as not observed, by reason (also in ``meta["dropped"]``):
#: not a number, ``±inf``, or beyond float32's range (``1e39`` would be stored as ``inf``).
VALUE_DROP_REASONS = ("unparseable_values", "infinite_values", "overflow_values")
_F32_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------------------------------- time axis
def _time_axis(
    stamps: pd.Series,
    *,
    interval: Any,
    name: str,
    col: str,
    sort_time: bool,
    unique: bool,
) -> tuple[np.ndarray, pd.Timedelta, pd.Timestamp, int]:
    """Regular steps for ``stamps`` (wall clock): ``(step index per row, interval, t0, T)``."""
    w = stamps.to_numpy().astype("datetime64[ns]")
    if unique:
        diffs = np.diff(w.astype(np.int64))
        if (diffs <= 0).any() and not sort_time:
            i = int(np.flatnonzero(diffs <= 0)[0]) + 1
            raise DataFormatError(
                f"{name}: column {col!r} must strictly increase; row {i} ({stamps.iloc[i]}) is not after "
                f"row {i - 1} ({stamps.iloc[i - 1]}). Pass sort_time=True to sort the rows"
            )
        dup = pd.Series(w).duplicated(keep=False).to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            raise DataFormatError(
                f"{name}: column {col!r} repeats the time {stamps.iloc[i]} (row {i})"
            )
    uniq = np.unique(w)
    if interval is None:
        if uniq.size < 2:
            raise DataFormatError(f"{name}: a single time in {col!r}; pass interval=...")
        gaps = np.diff(uniq.astype(np.int64))
        vals, counts = np.unique(gaps, return_counts=True)
        td = pd.Timedelta(int(vals[np.argmax(counts)]), unit="ns")  # the most common step
    else:
        td = parse_interval(interval)
    t0 = pd.Timestamp(uniq[0])
    rel = w.astype(np.int64) - t0.value
    off = rel % td.value
    if (off != 0).any():
        i = int(np.flatnonzero(off != 0)[0])
        raise DataFormatError(
            f"{name}: time {stamps.iloc[i]} (row {i}) is not on the {td} grid starting at {t0}; "
            "resample the readings to a regular interval first"
        )
    steps = rel // td.value
    return steps, td, t0, int(steps.max()) + 1


def _check_size(name: str, n_steps: int, n_sensors: int, n_vars: int, t0, td, col) -> None:
    """Refuse a readings array beyond the memory budget (a stray date, a too short interval)."""
    # float64 values + their bool flags, then the float32 x and bool mask of the graph
    n_bytes = float(n_steps) * n_sensors * n_vars * (8 + 1 + 4 + 1)
    last = t0 + td * (n_steps - 1)
    check_memory(
        name,
        f"{n_steps:,} steps of {td} ({t0} .. {last}) x {n_sensors:,} sensors x {n_vars} "
        "variable(s)",
        n_bytes,
        hint=f"; check column {col!r} for a stray date, or pass a longer interval",
    )


# ---------------------------------------------------------------------------------------- snapping
def snap_to_roads(
    road_graph: STGraph,
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    snap: Literal["edge", "node"] = "edge",
) -> dict[str, np.ndarray]:
    """Snap points to a road graph (intersection mode).

    ``snap="edge"``: to the nearest road segment by exact distance to its polyline; every equally
    near segment is kept (both directions of a two-way street, or all segments meeting at a node)
    so the sensor can be passed in any of them. ``snap="node"``: to the nearest intersection.

    Returns:
        dict with ``point [K]`` (index of the point), ``edge [K]`` (candidate edge; ``-1`` for node
        snapping), ``node [K]`` (the node for ``snap="node"``), ``frac [K]`` (position along the
        edge, 0 = source end, 1 = target end), ``dist [M]`` (snap distance, metres, per point).
    """
    shapely = require("shapely", "snapping sensors to a road graph")

    from graph_builders.osm import (
        edge_geometry,
        graph_crs,
        nearest_edges_all,
        nearest_nodes,
        project,
    )

    lon = np.asarray(lon, dtype=np.float64)
    lat = np.asarray(lat, dtype=np.float64)
    if snap == "node":
        idx, dist = nearest_nodes(road_graph, lon, lat, return_dist=True)
        k = np.arange(lon.size)
        return {
            "point": k,
            "edge": np.full(lon.size, -1),
            "node": np.asarray(idx, dtype=np.int64),
            "frac": np.zeros(lon.size),
            "dist": np.asarray(dist, dtype=np.float64),
        }
    if snap != "edge":
        raise ConfigError(f"snap: expected 'edge' or 'node', got {snap!r}")
    pi, ei, dist = nearest_edges_all(road_graph, lon, lat)
    best = np.full(lon.size, np.inf)
    np.minimum.at(best, pi, dist)
    # keep the ties (same distance up to 1 mm): the two directions of a street, or a node's edges
    tie = dist <= best[pi] + 1e-3
    pi, ei = pi[tie], ei[tie]
    crs = graph_crs(road_graph)
    coords, ptr = edge_geometry(road_graph)
    xy, _ = project(coords[:, 0], coords[:, 1], crs=crs)
    seg_id = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    lines = shapely.linestrings(xy, indices=seg_id)
    pts_xy, _ = project(lon, lat, crs=crs)
    pts = shapely.points(pts_xy)
    frac = shapely.line_locate_point(lines[ei], pts[pi], normalized=True)
    return {
        "point": pi.astype(np.int64),
        "edge": ei.astype(np.int64),
        "node": np.full(pi.size, -1),
        "frac": np.clip(np.nan_to_num(frac), 0.0, 1.0),
        "dist": best,
    }


def _road_csgraph(road_graph: Any) -> Any:
    """The directed road graph as a CSR matrix of lengths (parallel edges: the shortest)."""
    from scipy.sparse import csr_matrix

    n = road_graph.num_nodes
    ei = road_graph.edge_index.numpy()
    w = road_graph.edge_weight.double().numpy()
    df = pd.DataFrame({"s": ei[0], "d": ei[1], "w": np.maximum(w, 1e-6)})  # csgraph: 0 = no edge
    df = df[df["s"] != df["d"]].groupby(["s", "d"], sort=False, as_index=False)["w"].min()
    return csr_matrix((df["w"].to_numpy(), (df["s"].to_numpy(), df["d"].to_numpy())), shape=(n, n))


def road_distances(
    road_graph: STGraph,
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    snap: Literal["edge", "node"] = "edge",
) -> tuple[np.ndarray, np.ndarray]:
    """Directed shortest road distances (metres) between points snapped to a road graph.

    From sensor ``a`` on edge ``u → v`` at fraction ``f_a`` to sensor ``b`` on edge ``x → y`` at
    ``f_b``: ``(f_b - f_a) · L`` when both are on the same edge with ``f_b >= f_a``, else
    ``(1 - f_a) · L_a + d(v, x) + f_b · L_b`` with ``d`` the shortest path (scipy Dijkstra on
    ``edge_weight``); the minimum over the candidate edges of each sensor. With
    ``snap="node"`` it is ``d(node_a, node_b)``. Snap distances are not added.

    Returns:
        ``(D [M, M], snap_dist [M])``: ``D[a, b]`` from ``a`` to ``b`` (``inf`` if unreachable,
        0 on the diagonal).
    """
    from scipy.sparse.csgraph import dijkstra

    m = len(lon)
    s = snap_to_roads(road_graph, lon, lat, snap=snap)
    graph = _road_csgraph(road_graph)
    if snap == "node":
        nodes = s["node"]
        src, inv = np.unique(nodes, return_inverse=True)
        sp = dijkstra(graph, directed=True, indices=src)
        d = sp[inv][:, nodes]
        np.fill_diagonal(d, 0.0)
        return d, s["dist"]
    ei = road_graph.edge_index.numpy()
    length = road_graph.edge_weight.double().numpy()
    pt, edge, frac = s["point"], s["edge"], s["frac"]
    u, v, L = ei[0, edge], ei[1, edge], length[edge]
    exit_cost = (1.0 - frac) * L  # from the sensor to the edge's target node
    entry_cost = frac * L  # from the edge's source node to the sensor
    src, inv = np.unique(v, return_inverse=True)
    sp = dijkstra(graph, directed=True, indices=src)  # [len(src), N]
    d = np.full((m, m), np.inf)
    c = pt.size
    block = max(1, 4_000_000 // max(c, 1))  # every (candidate of a, candidate of b) pair, in blocks
    for lo in range(0, c, block):
        ca, cb = np.meshgrid(np.arange(lo, min(c, lo + block)), np.arange(c), indexing="ij")
        ca, cb = ca.ravel(), cb.ravel()
        via = exit_cost[ca] + sp[inv[ca], u[cb]] + entry_cost[cb]
        same = (edge[ca] == edge[cb]) & (frac[cb] >= frac[ca])
        via = np.where(same, np.minimum(via, (frac[cb] - frac[ca]) * L[ca]), via)
        np.minimum.at(d, (pt[ca], pt[cb]), via)
    np.fill_diagonal(d, 0.0)
    return d, s["dist"]


# ---------------------------------------------------------------------------------------- builder
@renamed_options(max_snap_m="max_dist_m", unit="units")
def from_table(
    locations: Any,
    readings: Any,
    *,
    road_graph: STGraph | None = None,
    id_col: str = "sensor_id",
    lon_col: str = "longitude",
    lat_col: str = "latitude",
    crs: Any = None,
    time_col: str | None = None,
    time_format: str | None = None,
    tz: str | None = None,
    start: Any = None,
    interval: Any = None,
    sort_time: bool = False,
    value_col: str = "value",
    variable_col: str | None = None,
    variable: str = "value",
    units: str | Sequence[str] = "",
    missing_value: float | None = None,
    max_dist_m: float = 100.0,
    far: Literal["drop", "keep"] = "drop",
    snap: Literal["edge", "node"] = "edge",
    method: str | None = None,
    domain: str | None = None,
    city: str | None = None,
    strict: bool = False,
    max_drop_share: float = MAX_DROP_SHARE,
    **proximity_kw: Any,
) -> STGraph:
    r"""A sensor graph from a table of locations and a table of readings (read, join, snap, edges).

    Args:
        locations: DataFrame or file (CSV, ZIP, Parquet) with ``id_col``, ``lon_col``, ``lat_col``
            (degrees, or coordinates in ``crs``). One row per sensor; nodes follow its order.
        readings: DataFrame or file, either **wide** (one column per sensor id, one row per step,
            plus ``time_col`` if given) or **long** (columns ``time_col``, ``id_col``,
            ``value_col`` and optionally ``variable_col``: one variable per distinct value).
        road_graph (STGraph, optional): an intersection-mode road graph
            (:func:`graph_builders.osm.road_graph`). Sensors are snapped to it (``snap``) and
            connected by directed road distance through the Gaussian kernel; without it they are
            connected by ``method`` on haversine distances.
        id_col, lon_col, lat_col (str): column names of ``locations`` (and ``id_col`` of long
            readings), matched ignoring case; ids are read as text.
        crs: CRS of the location coordinates when not lon/lat (e.g. ``"EPSG:32721"``).
            Coordinates beyond ±180/±90 count as missing (``no_coordinates``) for up to 10 % of
            the sensors; more mean another CRS: an error naming the column and the range.
        time_col (str, optional): time column of the readings; without it (and ``start``), a
            wide table's one column of times that is no located sensor (``meta["time_col"]``),
            else rows are steps ``start + i · interval`` (``time`` ``None`` without ``start``).
        time_format, tz: how to parse ``time_col`` (naive times are wall clock in ``tz``; UTC
            when ``None``).
        start, interval: first step and step length (``"5min"``, ``"1h"``, seconds). With
            ``time_col``, ``interval`` defaults to the most common gap; rows must lie on that
            grid; steps with no row are kept, fully masked (``meta["missing_steps"]``).
        sort_time (bool): sort wide readings by time instead of raising on non-monotone rows.
        value_col, variable_col, variable, units: long format columns; ``variable`` names the
            single variable otherwise; ``units`` its unit or one per variable (was ``unit``).
        missing_value (float, optional): a sentinel meaning "no reading" (e.g. ``-1``); such
            entries are masked and counted in ``meta["missing_marked"]``. NaN and bad entries
            (:data:`VALUE_DROP_REASONS`) are masked too; a wide column without a number is no
            sensor. ``meta["missing_values"]`` counts every masked entry of the kept sensors.
        max_dist_m (float): sensors farther from the road graph are dropped (``far="drop"``,
            counted as ``snap_too_far``) or kept (``far="keep"``); was ``max_snap_m``.
        snap (str): ``"edge"`` (nearest road segment, position along it) or ``"node"``.
        method (str): proximity method (``"gaussian"``, ``"knn"``, ``"radius"``,
            ``"delaunay"``). Default: on great-circle distances the registry's recipe,
            :data:`graph_builders.proximity.SENSOR_DEFAULTS` (each sensor's 8 nearest, Gaussian
            weights: a sparse graph); with a road graph or a ``distances=`` table the Gaussian
            kernel (DCRNN's) on those distances.
        **proximity_kw: passed to :func:`graph_builders.proximity.connect` (e.g. ``k``,
            ``threshold``, ``sigma_m``, ``radius_m``). ``distances=`` a ``from, to, distance``
            table (DataFrame or CSV, by sensor id; e.g. DCRNN's ``distances_*.csv`` or a PGT
            ``links`` table) uses those distances instead of haversine ones.
        strict, max_drop_share: the drop rule (module docstring): warn, or refuse.

    Returns:
        STGraph ``x [N, T, V]`` (masked where missing), ``pos`` lon/lat, weighted directed
        ``edge_index``; ``meta["node_ids"]`` the sensor ids; ``meta["dropped"]`` sensors left out
        by reason (:data:`SENSOR_DROP_REASONS`; ``meta["dropped_ids"]`` their ids) and readings
        masked by reason (:data:`VALUE_DROP_REASONS`); with a road graph ``node_attr = [snap_distance_m]``,
        ``meta["snap"]`` and ``edge_attr = [road_distance_m]``.
    """
    loc_name, read_name = source_name(locations), source_name(readings)
    ids, lon, lat, id_col = _read_locations(locations, id_col, lon_col, lat_col, crs, loc_name)
    rd = _read_readings(
        readings,
        loc_ids=ids,
        id_col=id_col,
        value_col=value_col,
        variable_col=variable_col,
        time_col=time_col,
        time_format=time_format,
        tz=tz,
        interval=interval,
        start=start,
        sort_time=sort_time,
        variable=variable,
        missing_value=missing_value,
        name=read_name,
    )
    names = (loc_name, read_name)
    table = proximity_kw.pop("distances", None)
    snapping = {"snap": snap, "far": far, "max_dist_m": max_dist_m}
    sel = _select(ids, lon, lat, rd, road_graph, table, names=names, **snapping)
    about = {"units": units, "domain": domain, "city": city, "tz": tz, "files": list(names)}
    graph = _assemble(
        sel, rd, lon, lat, road_graph, method=method, proximity_kw=proximity_kw, **about
    )
    _report(graph, ids, rd, names, strict=strict, max_share=max_drop_share)
    return graph


def _report(
    graph: STGraph,
    loc_ids: list[str],
    rd: _Readings,
    names: tuple[str, str],
    *,
    strict: bool,
    max_share: float,
) -> None:
    """The drop rule on the sensors (of either table) and on the readings of the kept ones."""
    dropped = graph.meta["dropped"]
    rule = {"strict": strict, "max_share": max_share}
    n_sensors = len(set(loc_ids) | set(rd.ids) | set(rd.non_numeric))
    sensor_drops = {k: dropped[k] for k in SENSOR_DROP_REASONS}
    report_dropped(" + ".join(names), sensor_drops, n_sensors, what="sensors", **rule)
    value_drops = {k: dropped[k] for k in VALUE_DROP_REASONS}
    report_dropped(names[1], value_drops, int(graph.x.numel()), what="readings", **rule)


@dataclass
class _Selection:
    """The sensors that become nodes (indices into the locations), and their distances."""

    nodes: np.ndarray
    node_ids: list[str]
    dropped_ids: dict[str, list[str]]
    distances: np.ndarray | None  # [N, N] road or table distances; None: haversine
    snapped: _Snapped | None


def _select(
    ids: list[str],
    lon: np.ndarray,
    lat: np.ndarray,
    rd: _Readings,
    road_graph: STGraph | None,
    table: Any,
    *,
    snap: Literal["edge", "node"],
    far: str,
    max_dist_m: float,
    names: tuple[str, str],
) -> _Selection:
    """Join locations and readings, snap to the road graph or read a distance table."""
    from graph_builders import proximity

    keep, dropped_ids = _join(ids, lon, lat, rd.ids)
    non_numeric = set(rd.non_numeric)  # a located sensor whose column holds no number
    dropped_ids["no_readings"] = [i for i in dropped_ids["no_readings"] if i not in non_numeric]
    dropped_ids["non_numeric_sensor"] = list(rd.non_numeric)
    _report_join(ids, rd.ids, len(set(ids) & set(rd.ids)), names)
    snapped = None
    dist_matrix = None
    if road_graph is not None:
        if table is not None:
            raise ConfigError("distances: give either road_graph= or distances=, not both")
        snapped = _snap(
            road_graph,
            ids,
            lon,
            lat,
            keep,
            dropped_ids,
            snap=snap,
            far=far,
            max_dist_m=max_dist_m,
            name=names[0],
        )
        dist_matrix = snapped.distances
    elif table is not None:
        # a distance table of the user's (e.g. DCRNN's distances_*.csv): by sensor id
        kept_ids = [ids[i] for i in np.flatnonzero(keep)]
        dist_matrix, table_drops = proximity.distance_matrix(table, kept_ids)
        rd.info["distance_table_dropped"] = table_drops
    nodes = np.flatnonzero(keep)
    if nodes.size == 0:
        raise DataFormatError(
            f"{names[0]} + {names[1]}: no sensor left after the join "
            f"({ {k: len(v) for k, v in dropped_ids.items() if v} }); "
            + _id_examples(ids, rd.ids, names)
        )
    return _Selection(nodes, [ids[i] for i in nodes], dropped_ids, dist_matrix, snapped)


def _id_examples(loc_ids: list[str], read_ids: list[str], names: tuple[str, str]) -> str:
    """A few ids of each side of the join, and a hint when they differ only by leading zeros."""
    text = (
        f"sensor ids in {names[0]}: {loc_ids[:5]}{' ...' if len(loc_ids) > 5 else ''}; "
        f"in {names[1]}: {read_ids[:5]}{' ...' if len(read_ids) > 5 else ''}"
    )
    strip = {s.lstrip("0") or "0" for s in loc_ids}
    if any((r.lstrip("0") or "0") in strip for r in read_ids if r not in set(loc_ids)):
        text += (
            " (some match once leading zeros are ignored: give the ids as text on both sides, "
            "e.g. read a DataFrame with dtype={'<id column>': str})"
        )
    return text


def _report_join(
    loc_ids: list[str], read_ids: list[str], n_joined: int, names: tuple[str, str]
) -> None:
    """Warn when the join keeps less than half of either side (ids that do not match)."""
    if n_joined == 0 or not loc_ids or not read_ids:
        return  # none: the caller's error; an empty side is an error of its own
    if n_joined < 0.5 * len(loc_ids) or n_joined < 0.5 * len(read_ids):
        log.warning(
            "%s + %s: only %d of %d located sensors and %d sensors with readings match by id; %s",
            *names,
            n_joined,
            len(loc_ids),
            len(read_ids),
            _id_examples(loc_ids, read_ids, names),
        )


def _value_drops(values: np.ndarray, unparseable: np.ndarray) -> dict[str, int]:
    """Readings (float64, before the cast to float32) masked for a reason of their own."""
    inf = np.isinf(values)
    with np.errstate(invalid="ignore"):
        over = np.isfinite(values) & (np.abs(values) > _F32_MAX)
    return {
        "unparseable_values": int(unparseable.sum()),
        "infinite_values": int(inf.sum()),
        "overflow_values": int(over.sum()),
    }


def _assemble(
    sel: _Selection,
    rd: _Readings,
    lon: np.ndarray,
    lat: np.ndarray,
    road_graph: STGraph | None,
    *,
    method: str | None,
    units: str | Sequence[str],
    domain: str | None,
    city: str | None,
    tz: str | None,
    proximity_kw: dict[str, Any],
    files: list[str],
) -> STGraph:
    """Values of the selected sensors, their edges and the graph's metadata."""
    from graph_builders import proximity

    read_pos = {sid: j for j, sid in enumerate(rd.ids)}
    cols = np.array([read_pos[sid] for sid in sel.node_ids], dtype=np.int64)
    x = np.ascontiguousarray(np.transpose(rd.values[:, cols, :], (1, 0, 2)))  # [N, T, V]
    value_drops = _value_drops(x, rd.unparseable[:, cols, :])
    with np.errstate(invalid="ignore"):
        mask = np.isfinite(x) & (np.abs(x) <= _F32_MAX)  # 1e39 would be stored as inf
    rd.info["missing_values"] = int((~mask).sum())  # of the kept sensors, whatever the reason
    x = np.where(mask, x, 0.0).astype(np.float32)
    pos = np.stack([lon[sel.nodes], lat[sel.nodes]], 1)
    if method is None and sel.distances is None:  # the registry's sparse recipe
        defaults = {k: v for k, v in proximity.SENSOR_DEFAULTS.items() if k != "method"}
        method, proximity_kw = proximity.SENSOR_DEFAULTS["method"], {**defaults, **proximity_kw}
    method = method or "gaussian"
    edges = proximity.connect(pos, method=method, distances=sel.distances, **proximity_kw)
    ei = torch.as_tensor(edges.edge_index, dtype=torch.long)
    src, dst = ei.numpy()
    if sel.distances is not None:
        dvals = sel.distances[src, dst]
    else:
        dvals = haversine_m(pos[src, 0], pos[src, 1], pos[dst, 0], pos[dst, 1])
    meta = _sensor_meta(
        rd,
        units=units,
        domain=domain,
        city=city,
        tz=tz,
        pos=pos,
        node_ids=sel.node_ids,
        dropped_ids=sel.dropped_ids,
        prox=edges.summary,
        road_graph=road_graph,
        method=method,
        files=[f for f in files if f != "<DataFrame>"],
    )
    meta["dropped"].update(value_drops)
    node_attr = None
    if sel.snapped is not None:
        meta["snap"] = sel.snapped.info
        meta["node_attr_names"] = ["snap_distance_m"]
        node_attr = torch.from_numpy(sel.snapped.snap_dist.astype(np.float32)[:, None])
        rmeta = road_graph.meta or {}
        meta["city"] = city if city is not None else rmeta.get("city")
        meta["sources"] += list(rmeta.get("sources", []))
        meta["provenance"] = list(rmeta.get("provenance", [])) + meta["provenance"]
    return build_graph(
        torch.from_numpy(x),
        torch.from_numpy(mask),
        time=None if rd.times is None else torch.from_numpy(rd.times),
        pos=torch.from_numpy(pos),
        edge_index=ei,
        edge_weight=torch.as_tensor(edges.edge_weight, dtype=torch.float32),
        edge_attr=torch.from_numpy(dvals.astype(np.float32)[:, None]),
        node_attr=node_attr,
        meta=meta,
    )


@dataclass
class _Readings:
    """Readings on a regular time axis: ``values [T, S, V]`` and what describes them."""

    values: np.ndarray
    ids: list[str]
    var_names: list[str]
    times: np.ndarray | None
    interval: pd.Timedelta | None
    info: dict[str, Any]
    unparseable: np.ndarray  # [T, S, V] bool: present but not a number
    non_numeric: list[str]  # wide columns with no number at all: not sensors


@dataclass
class _Snapped:
    """Road distances between the kept sensors, their snap distances and ``meta["snap"]``."""

    distances: np.ndarray
    snap_dist: np.ndarray
    info: dict[str, Any]


def _read_locations(
    locations: Any, id_col: str, lon_col: str, lat_col: str, crs: Any, name: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sensor ids, lon/lat (NaN where missing or impossible) of the locations table, and the id
    column's name as found (names are matched ignoring case)."""
    # ids are text ("001001"); lon/lat parsed below
    loc = read_table(locations, dtype=str, coords=(lon_col, lat_col))
    cols = match_columns(loc, {"id_col": id_col, "lon_col": lon_col, "lat_col": lat_col}, name)
    id_col, lon_col, lat_col = cols["id_col"], cols["lon_col"], cols["lat_col"]
    ids = _norm_ids(loc[id_col].tolist())
    dup = pd.Series(ids).duplicated(keep=False)
    if dup.any():
        raise DataFormatError(
            f"{name}: column {id_col!r} repeats sensor id(s) {sorted(set(pd.Series(ids)[dup]))[:10]}"
        )
    lon = pd.to_numeric(loc[lon_col], errors="coerce").to_numpy(np.float64)
    lat = pd.to_numeric(loc[lat_col], errors="coerce").to_numpy(np.float64)
    if crs is not None:
        lon, lat = to_lonlat(lon, lat, crs, x_col=lon_col, y_col=lat_col, name=name)
    invalid = check_lonlat(lon, lat, lon_col=lon_col, lat_col=lat_col, name=name, max_bad_share=0.1)
    lon, lat = np.where(invalid, np.nan, lon), np.where(invalid, np.nan, lat)  # → no_coordinates
    return ids, lon, lat, id_col


def _read_readings(
    readings: Any,
    *,
    loc_ids: list[str],
    id_col: str,
    value_col: str,
    variable_col: str | None,
    time_col: str | None,
    time_format: str | None,
    tz: str | None,
    interval: Any,
    start: Any,
    sort_time: bool,
    variable: str,
    missing_value: float | None,
    name: str,
) -> _Readings:
    """The readings table (wide or long) as values ``[T, S, V]`` on a regular time axis."""
    raw = read_table(readings, dtype={id_col: str})  # long format: ids are text
    if time_col is not None:
        time_col = match_columns(raw, {"time_col": time_col}, name)["time_col"]
    long_format = id_col in raw.columns and value_col in raw.columns
    if id_col in raw.columns and not long_format:
        raise DataFormatError(
            f"{name}: has an {id_col!r} column (long format: time, id, value) but no value "
            f"column {value_col!r}; pass value_col=... (found {list(raw.columns)[:20]})"
        )
    if long_format:
        parts = _long_readings(
            raw,
            id_col=id_col,
            value_col=value_col,
            variable_col=variable_col,
            time_col=time_col,
            time_format=time_format,
            tz=tz,
            interval=interval,
            name=name,
        )
    else:
        if time_col is None and start is None:
            time_col = _detect_time_col(raw, loc_ids, name)
        parts = _wide_readings(
            raw,
            time_col=time_col,
            time_format=time_format,
            tz=tz,
            interval=interval,
            start=start,
            sort_time=sort_time,
            variable=variable,
            name=name,
        )
    rd = _Readings(*parts)
    if time_col is not None:
        rd.info["time_col"] = str(time_col)
    if missing_value is not None:
        marked = rd.values == float(missing_value)
        rd.info["missing_marked"] = int(marked.sum())
        rd.values = np.where(marked, np.nan, rd.values)
    return rd


def _join(
    ids: list[str], lon: np.ndarray, lat: np.ndarray, read_ids: list[str]
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Which located sensors have readings and coordinates; the ids left out, by reason."""
    read_set, loc_set = set(read_ids), set(ids)
    dropped_ids: dict[str, list[str]] = {
        "no_location": [sid for sid in read_ids if sid not in loc_set],
        "no_readings": [sid for sid in ids if sid not in read_set],
        "no_coordinates": [],
        "snap_too_far": [],
    }
    keep = np.array([sid in read_set for sid in ids], dtype=bool)
    no_xy = keep & ~(np.isfinite(lon) & np.isfinite(lat))
    dropped_ids["no_coordinates"] = [ids[i] for i in np.flatnonzero(no_xy)]
    return keep & ~no_xy, dropped_ids


def _snap(
    road_graph: STGraph,
    ids: list[str],
    lon: np.ndarray,
    lat: np.ndarray,
    keep: np.ndarray,
    dropped_ids: dict[str, list[str]],
    *,
    snap: Literal["edge", "node"],
    far: str,
    max_dist_m: float,
    name: str,
) -> _Snapped:
    """Snap the kept sensors, drop (or keep) the far ones, in place of ``keep``/``dropped_ids``."""
    cand = np.flatnonzero(keep)
    if cand.size == 0:
        raise DataFormatError(f"{name}: no sensor with both a location and readings")
    d, sd = road_distances(road_graph, lon[cand], lat[cand], snap=snap)
    far_mask = sd > max_dist_m
    info = {
        "to": snap,
        "median_m": float(np.median(sd)),
        "max_m": float(np.max(sd)),
        "max_snap_m": float(max_dist_m),  # meta key kept as written before
        "above_max": int(far_mask.sum()),
        "policy": far,
    }
    if far == "drop":
        dropped_ids["snap_too_far"] = [ids[i] for i in cand[far_mask]]
        keep[cand[far_mask]] = False
        sel = ~far_mask
        d, sd = d[np.ix_(sel, sel)], sd[sel]
    elif far != "keep":
        raise ConfigError(f"far: expected 'drop' or 'keep', got {far!r}")
    return _Snapped(d, sd, info)


def _sensor_meta(
    rd: _Readings,
    *,
    units: str | Sequence[str],
    domain: str | None,
    city: str | None,
    tz: str | None,
    pos: np.ndarray,
    node_ids: list[str],
    dropped_ids: dict[str, list[str]],
    prox: dict[str, Any],
    road_graph: STGraph | None,
    method: str,
    files: list[str],
) -> dict[str, Any]:
    """``meta`` of a sensor graph (the road graph's part is added by the caller)."""
    unit_list = [units] * len(rd.var_names) if isinstance(units, str) else list(units)
    if len(unit_list) != len(rd.var_names):
        raise ConfigError(f"units: {len(unit_list)} given for variables {rd.var_names}")
    dropped = {k: len(v) for k, v in dropped_ids.items()}
    on_roads = road_graph is not None
    return {
        "variables": [{"name": n, "unit": u} for n, u in zip(rd.var_names, unit_list, strict=True)],
        "domain": domain,
        "city": city,
        "crs": "EPSG:4326",
        "interval": int(rd.interval.total_seconds()) if rd.interval is not None else None,
        "time_zone": tz or "UTC",
        "spatial_scale": _median_nn_m(pos),
        "node_ids": node_ids,
        "dropped": dropped,
        "dropped_ids": dropped_ids,
        "proximity": prox,
        "edge_attr_names": ["road_distance_m" if on_roads else "distance_m"],
        **rd.info,
        "sources": [{"name": "sensors", "files": files}],
        "provenance": [
            f"sensors.from_table({'road distance' if on_roads else 'proximity'}, "
            f"method={method!r}, {len(node_ids)} sensors, dropped {dropped})"
        ],
    }


def _median_nn_m(pos: np.ndarray) -> float | None:
    """Median distance (m) from each sensor to its nearest other sensor."""
    if len(pos) < 2:
        return None
    d = haversine_m(pos[:, None, 0], pos[:, None, 1], pos[None, :, 0], pos[None, :, 1])
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(1)))


def _numeric(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 and where an entry was present but not a number (now NaN)."""
    out = frame.apply(pd.to_numeric, errors="coerce")
    bad = (out.isna() & frame.notna()).to_numpy()
    return out.to_numpy(np.float64), bad


def _detect_time_col(raw: pd.DataFrame, loc_ids: list[str], name: str) -> str | None:
    """The one column of a wide table that holds times and is no located sensor, or ``None``."""
    known = set(loc_ids)
    found = []
    for col in raw.columns:
        values = raw[col]
        if _norm_ids([col])[0] in known or pd.api.types.is_numeric_dtype(values):
            continue
        sample = values.dropna().head(50)
        if pd.api.types.is_datetime64_any_dtype(values):
            found.append(col)
        elif len(sample) and pd.to_numeric(sample, errors="coerce").isna().all():
            parsed = pd.to_datetime(sample.astype(str), format="mixed", errors="coerce")
            if parsed.notna().all():
                found.append(col)
    if len(found) == 1:
        log.info("%s: column %r holds times: taken as the time column (time_col)", name, found[0])
        return found[0]
    return None


def _wide_readings(
    raw: pd.DataFrame, *, time_col, time_format, tz, interval, start, sort_time, variable, name
):
    info: dict[str, Any] = {}
    sensor_cols = [c for c in raw.columns if c != time_col]
    if not sensor_cols:
        raise DataFormatError(f"{name}: no sensor columns besides {time_col!r}")
    # a column with entries but no number at all (a label, a second time column) is no sensor
    num = raw[sensor_cols].apply(pd.to_numeric, errors="coerce")
    non_numeric = [c for c in sensor_cols if num[c].isna().all() and raw[c].notna().any()]
    sensor_cols = [c for c in sensor_cols if c not in set(non_numeric)]
    if not sensor_cols:
        raise DataFormatError(
            f"{name}: no column of numbers (sensor readings); non-numeric columns "
            f"{[str(c) for c in non_numeric[:10]]}"
        )
    read_ids = _norm_ids(sensor_cols)
    dup = pd.Series(read_ids).duplicated(keep=False)
    if dup.any():
        raise DataFormatError(
            f"{name}: sensor column(s) {sorted(set(pd.Series(read_ids)[dup]))[:10]} appear twice"
        )
    td = None
    if time_col is not None:
        wall, missing, bad = parse_times(
            raw[time_col], time_format=time_format, tz=tz, name=name, col=time_col
        )
        if missing.any() or bad.any():
            i = int(np.flatnonzero(missing | bad)[0])
            raise DataFormatError(
                f"{name}: column {time_col!r} row {i}: {raw[time_col].iloc[i]!r} is not a time "
                f"({int(missing.sum())} missing, {int(bad.sum())} unparseable)"
            )
        if sort_time:
            order = np.argsort(wall.to_numpy(), kind="stable")
            raw, wall = raw.iloc[order], wall.iloc[order].reset_index(drop=True)
        steps, td, t0, n_steps = _time_axis(
            wall, interval=interval, name=name, col=time_col, sort_time=sort_time, unique=True
        )
        _check_size(name, n_steps, len(sensor_cols), 1, t0, td, time_col)
        vals, bad_in = _numeric(raw[sensor_cols], name)
        values = np.full((n_steps, len(sensor_cols)), np.nan)
        values[steps] = vals
        bad = np.zeros(values.shape, dtype=bool)
        bad[steps] = bad_in
        info["missing_steps"] = int(n_steps - len(steps))
        times = wall_to_unix(pd.DatetimeIndex(t0 + td * np.arange(n_steps)), tz)
    else:
        values, bad = _numeric(raw[sensor_cols], name)
        if interval is not None:
            td = parse_interval(interval)
        times = None
        if start is not None:
            if td is None:
                raise ConfigError("start: needs interval=... when the readings have no time column")
            t0 = pd.Timestamp(start)
            times = wall_to_unix(pd.DatetimeIndex(t0 + td * np.arange(len(values))), tz)
    info["unparseable_values"] = int(bad.sum())
    extra = (bad[:, :, None], _norm_ids(non_numeric))
    return values[:, :, None], read_ids, [variable], times, td, info, *extra


def _long_readings(
    raw: pd.DataFrame,
    *,
    id_col,
    value_col,
    variable_col,
    time_col,
    time_format,
    tz,
    interval,
    name,
):
    if time_col is None:
        raise ConfigError(
            f"{name}: long-format readings ({id_col!r}, {value_col!r}) need time_col=..."
        )
    if variable_col is not None and variable_col not in raw.columns:
        raise DataFormatError(
            f"{name}: missing column(s) [{variable_col!r}]; found {list(raw.columns)[:20]}"
        )
    info: dict[str, Any] = {}
    wall, missing, bad = parse_times(
        raw[time_col], time_format=time_format, tz=tz, name=name, col=time_col
    )
    ok = ~(missing | bad)
    info["dropped_rows"] = {"missing_time": int(missing.sum()), "unparseable_time": int(bad.sum())}
    raw, wall = raw.loc[ok].reset_index(drop=True), wall.loc[ok].reset_index(drop=True)
    if len(raw) == 0:
        raise DataFormatError(f"{name}: no row with a valid time in {time_col!r}")
    steps, td, t0, n_steps = _time_axis(
        wall, interval=interval, name=name, col=time_col, sort_time=True, unique=False
    )
    sid = pd.Series(_norm_ids(raw[id_col].tolist()))
    read_ids = list(dict.fromkeys(sid.tolist()))
    col_of = {s: j for j, s in enumerate(read_ids)}
    if variable_col is not None:
        var = raw[variable_col].astype(str)
        var_names = list(dict.fromkeys(var.tolist()))
        vcode = var.map({v: k for k, v in enumerate(var_names)}).to_numpy()
    else:
        var_names, vcode = ["value"], np.zeros(len(raw), dtype=np.int64)
    key = pd.DataFrame({"t": steps, "s": sid.map(col_of).to_numpy(), "v": vcode})
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise DataFormatError(
            f"{name}: {int(dup.sum())} rows repeat a (time, {id_col}"
            f"{', ' + variable_col if variable_col else ''}) key, e.g. row {i}: "
            f"{wall.iloc[i]}, {sid.iloc[i]}"
        )
    _check_size(name, n_steps, len(read_ids), len(var_names), t0, td, time_col)
    vals, bad_in = _numeric(raw[[value_col]], name)
    values = np.full((n_steps, len(read_ids), len(var_names)), np.nan)
    at = (key["t"].to_numpy(), key["s"].to_numpy(), key["v"].to_numpy())
    values[at] = vals[:, 0]
    bad = np.zeros(values.shape, dtype=bool)
    bad[at] = bad_in[:, 0]
    info["unparseable_values"] = int(bad.sum())
    info["missing_steps"] = int(n_steps - np.unique(steps).size)
    times = wall_to_unix(pd.DatetimeIndex(t0 + td * np.arange(n_steps)), tz)
    return values, read_ids, var_names, times, td, info, bad, []
