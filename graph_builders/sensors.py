"""Fixed sensors (loop detectors, counters, stations, bus stops) → sensor graphs.

``from_table(locations, readings)`` joins a table of sensor locations with a table of readings by
sensor id, then connects the sensors either

* by **directed road distance** on a road graph (:func:`graph_builders.osm.road_graph`): each
  sensor is snapped to the nearest road segment (or node), shortest paths are computed with
  scipy's Dijkstra on the directed road graph, and the DCRNN Gaussian kernel turns the distance
  matrix into weighted edges (:func:`graph_builders.proximity.connect`); or
* by **proximity** (haversine distances: Gaussian kernel, kNN, radius or Delaunay) when there is
  no road graph.

Every sensor left out is counted by reason in ``meta["dropped"]`` (ids in ``meta["dropped_ids"]``).
Snapping is reported in ``meta["snap"]`` (median and max distance, how many beyond ``max_snap_m``).
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch

from graph_builders._inputs import (
    build_graph,
    check_lonlat,
    parse_interval,
    parse_times,
    read_table,
    source_name,
    to_lonlat,
    wall_to_unix,
)
from stgraph.datasets._pickle import load_verified_pickle
from stgraph.datasets.files import read_verified_bytes
from stgraph.errors import DataFormatError
from stgraph.utils.geo import haversine_m

__all__ = ["from_table", "read_node_link", "read_uctb", "road_distances", "snap_to_roads"]


# ---------------------------------------------------------------------------------------- ids
def _norm_ids(values: Any) -> list[str]:
    """Sensor ids as strings; integral floats lose their ``.0`` (``773869.0`` → ``"773869"``)."""
    out = []
    for v in values:
        if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v).strip())
    return out


# ---------------------------------------------------------------------------------------- readers
def read_uctb(path: str | os.PathLike, *, sha256: str) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read a UCTB Urban-Dataset node data set (``*.zip`` holding one pickle), e.g. Melbourne.

    The zip is read once; the sha256 of those bytes must equal ``sha256`` (from the data set's
    manifest) before anything is unpickled, and the pickle is taken from that same in-memory buffer
    (nothing is re-read between the check and the load). A pickle runs code when loaded, so only a
    known file is read, and only with the registry's numpy-only unpickler
    (:func:`stgraph.datasets._pickle.load_verified_pickle`).

    Returns:
        ``(locations, readings, info)``: locations with ``sensor_id, latitude, longitude, name,
        install_date``; readings wide (``time`` + one column per sensor id; the UCTB missing
        marker ``-1`` becomes NaN); info = ``{"time_range", "interval_min", "missing_marked"}``.

    Raises:
        ChecksumError: the zip's bytes do not match ``sha256`` (nothing is unpickled).
        DataFormatError: not a zip holding exactly one ``.pkl``, or not a UCTB node data set.
    """
    path = Path(path)
    raw = read_verified_bytes(path, sha256)
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = [m for m in zf.namelist() if m.endswith(".pkl")]
            if len(members) != 1:
                raise DataFormatError(f"{path}: expected one .pkl inside, found {zf.namelist()}")
            blob = zf.read(members[0])
    except zipfile.BadZipFile as exc:
        raise DataFormatError(f"{path}: not a valid zip archive ({exc})") from exc
    data = load_verified_pickle(blob, source=f"{path}:{members[0]}")  # from the verified buffer
    try:
        node = data["Node"]
        counts = np.asarray(node["TrafficNode"])
        info = node["StationInfo"]
        t0, _t1 = data["TimeRange"]
        minutes = int(data["TimeFitness"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(f"{path}: not a UCTB node data set (missing {exc})") from exc
    if counts.ndim != 2 or counts.shape[1] != len(info):
        raise DataFormatError(
            f"{path}: TrafficNode has shape {counts.shape} for {len(info)} stations in StationInfo"
        )
    locations = pd.DataFrame(
        {
            "sensor_id": _norm_ids([s[0] for s in info]),
            "install_date": [s[1] for s in info],
            "latitude": [float(s[2]) for s in info],
            "longitude": [float(s[3]) for s in info],
            "name": [str(s[4]) for s in info],
        }
    )
    values = counts.astype(np.float64)
    missing = values == -1
    values[missing] = np.nan
    readings = pd.DataFrame(values, columns=locations["sensor_id"].tolist())
    readings.insert(0, "time", pd.date_range(t0, periods=len(values), freq=f"{minutes}min"))
    meta = {
        "time_range": [str(t) for t in data["TimeRange"]],
        "interval_min": minutes,
        "missing_marked": int(missing.sum()),
    }
    return locations, readings, meta


def read_node_link(
    path: str | os.PathLike, *, values_key: str = "y"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read a networkx node-link JSON with a series per node (PyTorch Geometric Temporal style).

    Returns:
        ``(locations, readings, links)``: ``locations`` = ``sensor_id, x, y`` (the node's
        ``lon``/``lat`` fields as stored — check their CRS), ``readings`` wide (one column per
        node id, one row per step, no time column), ``links`` = ``source, target, weight``.
    """
    import json

    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        nodes = doc["nodes"]
        links = doc.get("links", doc.get("edges", []))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DataFormatError(f"{path}: not a node-link JSON ({exc})") from exc
    missing = [i for i, n in enumerate(nodes) if not {"id", "lon", "lat", values_key} <= set(n)]
    if missing:
        raise DataFormatError(
            f"{path}: node {missing[0]} lacks one of 'id', 'lon', 'lat', {values_key!r}"
        )
    ids = _norm_ids([n["id"] for n in nodes])
    locations = pd.DataFrame(
        {"sensor_id": ids, "x": [n["lon"] for n in nodes], "y": [n["lat"] for n in nodes]}
    )
    lengths = {len(n[values_key]) for n in nodes}
    if len(lengths) != 1:
        raise DataFormatError(
            f"{path}: series {values_key!r} have different lengths {sorted(lengths)}"
        )
    readings = pd.DataFrame(
        np.array([n[values_key] for n in nodes], dtype=np.float64).T, columns=ids
    )
    link_df = pd.DataFrame(links)
    return locations, readings, link_df


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


# ---------------------------------------------------------------------------------------- snapping
def snap_to_roads(
    road_graph: Any,
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
    import shapely

    from graph_builders.osm import edge_geometry, graph_crs, nearest_edges, nearest_nodes, project

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
        raise ValueError(f"snap: expected 'edge' or 'node', got {snap!r}")
    pi, ei, dist = nearest_edges(road_graph, lon, lat, all_matches=True)
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
    road_graph: Any,
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
def from_table(
    locations: Any,
    readings: Any,
    *,
    road_graph: Any = None,
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
    unit: str | Sequence[str] = "",
    missing_value: float | None = None,
    max_snap_m: float = 100.0,
    far: Literal["drop", "keep"] = "drop",
    snap: Literal["edge", "node"] = "edge",
    method: str = "gaussian",
    domain: str | None = None,
    city: str | None = None,
    **proximity_kw: Any,
) -> Any:
    r"""A sensor graph from a table of locations and a table of readings.

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
            readings).
        crs: CRS of the location coordinates when not lon/lat (e.g. ``"EPSG:32721"``).
            Coordinates beyond ±180/±90 count as missing (``no_coordinates``) for up to 10 % of
            the sensors; more mean another CRS: an error naming the column and the range.
        time_col (str, optional): time column of the readings. Without it rows are steps
            ``start + i · interval`` (``time`` is ``None`` when ``start`` is not given).
        time_format, tz: how to parse ``time_col`` (naive times are wall clock in ``tz``; UTC
            when ``None``).
        start, interval: first step and step length (``"5min"``, ``"1h"``, seconds). With
            ``time_col``, ``interval`` defaults to the most common gap; rows must lie on that
            grid; steps with no row are kept, fully masked (``meta["missing_steps"]``).
        sort_time (bool): sort wide readings by time instead of raising on non-monotone rows.
        value_col, variable_col: long format columns; ``variable`` names the single variable
            otherwise; ``unit`` its unit (or one per variable).
        missing_value (float, optional): a sentinel meaning "no reading" (e.g. ``-1``); such
            entries are masked and counted in ``meta["missing_marked"]``. NaN and non-numeric
            entries (``meta["unparseable_values"]``) are masked too; ``meta["missing_values"]``
            counts every masked entry of the kept sensors.
        max_snap_m (float): sensors farther than this from the road graph are dropped
            (``far="drop"``, counted as ``snap_too_far``) or kept (``far="keep"``).
        snap (str): ``"edge"`` (nearest road segment, position along it) or ``"node"``.
        method (str): proximity method without a road graph (``"gaussian"``, ``"knn"``,
            ``"radius"``, ``"delaunay"``). With a road graph the Gaussian kernel is used unless
            ``method="knn"`` (k nearest by road distance).
        **proximity_kw: passed to :func:`graph_builders.proximity.connect` (e.g. ``k``,
            ``threshold``, ``sigma``, ``radius``). ``distances=`` a ``from, to, distance`` table
            (DataFrame or CSV, by sensor id; e.g. DCRNN's ``distances_*.csv`` or a PGT
            ``links`` table) uses those distances instead of haversine ones.

    Returns:
        STGraph ``x [N, T, V]`` (masked where missing), ``pos`` lon/lat, weighted directed
        ``edge_index``; ``meta["node_ids"]`` the sensor ids; ``meta["dropped"]`` sensors left out
        by reason (``no_location``, ``no_readings``, ``no_coordinates``, ``snap_too_far``) and
        ``meta["dropped_ids"]`` their ids; with a road graph ``node_attr = [snap_distance_m]``,
        ``meta["snap"]`` and ``edge_attr = [road_distance_m]``.
    """
    from graph_builders import proximity

    loc_name, read_name = source_name(locations), source_name(readings)
    loc = read_table(locations, required=[id_col, lon_col, lat_col])
    raw = read_table(readings, required=[time_col] if time_col else [])

    # ---- locations
    ids = _norm_ids(loc[id_col].tolist())
    dup = pd.Series(ids).duplicated(keep=False)
    if dup.any():
        raise DataFormatError(
            f"{loc_name}: column {id_col!r} repeats sensor id(s) {sorted(set(pd.Series(ids)[dup]))[:10]}"
        )
    lon = pd.to_numeric(loc[lon_col], errors="coerce").to_numpy(np.float64)
    lat = pd.to_numeric(loc[lat_col], errors="coerce").to_numpy(np.float64)
    if crs is not None:
        lon, lat = to_lonlat(lon, lat, crs, x_col=lon_col, y_col=lat_col, name=loc_name)
    invalid = check_lonlat(
        lon, lat, lon_col=lon_col, lat_col=lat_col, name=loc_name, max_bad_share=0.1
    )
    lon, lat = np.where(invalid, np.nan, lon), np.where(invalid, np.nan, lat)  # → no_coordinates

    # ---- readings → values [T, S_read, V], ids of the readings, time axis
    long_format = id_col in raw.columns and value_col in raw.columns
    if id_col in raw.columns and not long_format:
        raise DataFormatError(
            f"{read_name}: has an {id_col!r} column (long format: time, id, value) but no value "
            f"column {value_col!r}; pass value_col=... (found {list(raw.columns)[:20]})"
        )
    if long_format:
        values, read_ids, var_names, times, td, info = _long_readings(
            raw,
            id_col=id_col,
            value_col=value_col,
            variable_col=variable_col,
            time_col=time_col,
            time_format=time_format,
            tz=tz,
            interval=interval,
            name=read_name,
        )
    else:
        values, read_ids, var_names, times, td, info = _wide_readings(
            raw,
            time_col=time_col,
            time_format=time_format,
            tz=tz,
            interval=interval,
            start=start,
            sort_time=sort_time,
            variable=variable,
            name=read_name,
        )
    if missing_value is not None:
        marked = values == float(missing_value)
        info["missing_marked"] = int(marked.sum())
        values = np.where(marked, np.nan, values)

    # ---- join by id
    read_pos = {sid: j for j, sid in enumerate(read_ids)}
    loc_set = set(ids)
    dropped_ids: dict[str, list[str]] = {
        "no_location": [sid for sid in read_ids if sid not in loc_set],
        "no_readings": [sid for sid in ids if sid not in read_pos],
        "no_coordinates": [],
        "snap_too_far": [],
    }
    keep = np.array([sid in read_pos for sid in ids], dtype=bool)
    no_xy = keep & ~(np.isfinite(lon) & np.isfinite(lat))
    dropped_ids["no_coordinates"] = [ids[i] for i in np.flatnonzero(no_xy)]
    keep &= ~no_xy

    # ---- snapping and road distances
    snap_info = None
    dist_matrix = None
    snap_dist = None
    if road_graph is not None:
        cand = np.flatnonzero(keep)
        if cand.size == 0:
            raise DataFormatError(f"{loc_name}: no sensor with both a location and readings")
        d, sd = road_distances(road_graph, lon[cand], lat[cand], snap=snap)
        far_mask = sd > max_snap_m
        snap_info = {
            "to": snap,
            "median_m": float(np.median(sd)),
            "max_m": float(np.max(sd)),
            "max_snap_m": float(max_snap_m),
            "above_max": int(far_mask.sum()),
            "policy": far,
        }
        if far == "drop":
            dropped_ids["snap_too_far"] = [ids[i] for i in cand[far_mask]]
            keep[cand[far_mask]] = False
            sel = ~far_mask
            d, sd = d[np.ix_(sel, sel)], sd[sel]
        elif far != "keep":
            raise ValueError(f"far: expected 'drop' or 'keep', got {far!r}")
        dist_matrix, snap_dist = d, sd
    if dist_matrix is None and proximity_kw.get("distances") is not None:
        # a distance table of the user's (e.g. DCRNN's distances_*.csv): by sensor id
        table = proximity_kw.pop("distances")
        full, table_drops = proximity.distance_matrix(table, [ids[i] for i in np.flatnonzero(keep)])
        info["distance_table_dropped"] = table_drops
        dist_matrix = full
    nodes = np.flatnonzero(keep)
    if nodes.size == 0:
        raise DataFormatError(
            f"{loc_name} + {read_name}: no sensor left after the join "
            f"({ {k: len(v) for k, v in dropped_ids.items()} })"
        )
    node_ids = [ids[i] for i in nodes]
    cols = np.array([read_pos[sid] for sid in node_ids], dtype=np.int64)
    vals = values[:, cols, :]  # [T, N, V]
    x = np.ascontiguousarray(np.transpose(vals, (1, 0, 2)))
    mask = np.isfinite(x)
    info["missing_values"] = int((~mask).sum())  # of the kept sensors, whatever the reason
    x = np.where(mask, x, 0.0).astype(np.float32)
    pos = np.stack([lon[nodes], lat[nodes]], 1)

    # ---- edges
    if dist_matrix is not None:
        ei, w, prox = proximity.connect(pos, method=method, distances=dist_matrix, **proximity_kw)
        ei = torch.as_tensor(ei, dtype=torch.long)
        dvals = dist_matrix[ei[0].numpy(), ei[1].numpy()]
    else:
        ei, w, prox = proximity.connect(pos, method=method, **proximity_kw)
        ei = torch.as_tensor(ei, dtype=torch.long)
        src, dst = ei.numpy()
        dvals = haversine_m(pos[src, 0], pos[src, 1], pos[dst, 0], pos[dst, 1])
    edge_attr = torch.from_numpy(dvals.astype(np.float32)[:, None])
    w = torch.as_tensor(w, dtype=torch.float32)

    units = [unit] * len(var_names) if isinstance(unit, str) else list(unit)
    if len(units) != len(var_names):
        raise ValueError(f"unit: {len(units)} given for variables {var_names}")
    dropped = {k: len(v) for k, v in dropped_ids.items()}
    spacing = _median_nn_m(pos)
    meta = {
        "variables": [{"name": n, "unit": u} for n, u in zip(var_names, units, strict=True)],
        "domain": domain,
        "city": city,
        "crs": "EPSG:4326",
        "interval": int(td.total_seconds()) if td is not None else None,
        "time_zone": tz or "UTC",
        "spatial_scale": spacing,
        "node_ids": node_ids,
        "dropped": dropped,
        "dropped_ids": dropped_ids,
        "proximity": prox,
        "edge_attr_names": ["road_distance_m" if road_graph is not None else "distance_m"],
        **info,
        "sources": [
            {"name": "sensors", "files": [f for f in (loc_name, read_name) if f != "<DataFrame>"]}
        ],
        "provenance": [
            f"sensors.from_table({'road distance' if road_graph is not None else 'proximity'}, "
            f"method={method!r}, {nodes.size} sensors, dropped {dropped})"
        ],
    }
    node_attr = None
    if snap_info is not None:
        meta["snap"] = snap_info
        meta["node_attr_names"] = ["snap_distance_m"]
        node_attr = torch.from_numpy(snap_dist.astype(np.float32)[:, None])
        rmeta = road_graph.meta or {}
        meta["city"] = city if city is not None else rmeta.get("city")
        meta["sources"] += list(rmeta.get("sources", []))
        meta["provenance"] = list(rmeta.get("provenance", [])) + meta["provenance"]
    return build_graph(
        torch.from_numpy(x),
        torch.from_numpy(mask),
        time=None if times is None else torch.from_numpy(times),
        pos=torch.from_numpy(pos),
        edge_index=ei,
        edge_weight=w,
        edge_attr=edge_attr,
        node_attr=node_attr,
        meta=meta,
    )


def _median_nn_m(pos: np.ndarray) -> float | None:
    """Median distance (m) from each sensor to its nearest other sensor."""
    if len(pos) < 2:
        return None
    d = haversine_m(pos[:, None, 0], pos[:, None, 1], pos[None, :, 0], pos[None, :, 1])
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(1)))


def _numeric(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, int]:
    """Values as float64; non-numeric entries become NaN and are counted."""
    out = frame.apply(pd.to_numeric, errors="coerce")
    bad = int((out.isna() & frame.notna()).to_numpy().sum())
    return out.to_numpy(np.float64), bad


def _wide_readings(
    raw: pd.DataFrame, *, time_col, time_format, tz, interval, start, sort_time, variable, name
):
    info: dict[str, Any] = {}
    sensor_cols = [c for c in raw.columns if c != time_col]
    if not sensor_cols:
        raise DataFormatError(f"{name}: no sensor columns besides {time_col!r}")
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
        vals, n_bad = _numeric(raw[sensor_cols], name)
        values = np.full((n_steps, len(sensor_cols)), np.nan)
        values[steps] = vals
        info["missing_steps"] = int(n_steps - len(steps))
        times = wall_to_unix(pd.DatetimeIndex(t0 + td * np.arange(n_steps)), tz)
    else:
        vals, n_bad = _numeric(raw[sensor_cols], name)
        values = vals
        if interval is not None:
            td = parse_interval(interval)
        times = None
        if start is not None:
            if td is None:
                raise ValueError("start: needs interval=... when the readings have no time column")
            t0 = pd.Timestamp(start)
            times = wall_to_unix(pd.DatetimeIndex(t0 + td * np.arange(len(values))), tz)
    info["unparseable_values"] = n_bad
    return values[:, :, None], read_ids, [variable], times, td, info


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
        raise ValueError(
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
    vals, n_bad = _numeric(raw[[value_col]], name)
    values = np.full((n_steps, len(read_ids), len(var_names)), np.nan)
    values[key["t"].to_numpy(), key["s"].to_numpy(), key["v"].to_numpy()] = vals[:, 0]
    info["unparseable_values"] = n_bad
    info["missing_steps"] = int(n_steps - np.unique(steps).size)
    times = wall_to_unix(pd.DatetimeIndex(t0 + td * np.arange(n_steps)), tz)
    return values, read_ids, var_names, times, td, info
