"""Moving sensors (point-reference data: buoys, balloons, probe vehicles) -> STGraphs.

A moving sensor reports values at changing positions. :func:`from_tracks` turns such reports into
either

- ``mode="knn"``: one node per sensor (track id), its values binned per step (masked where the
  sensor reported nothing), its position per step kept as the variables ``lon``/``lat``, and a
  kNN graph per step among the sensors active in that step (dynamic edges), plus a static kNN
  graph on the sensors' mean positions; or
- ``mode="interpolate"``: the values spread onto fixed nodes (an STGraph such as a road graph or
  a grid, or plain coordinates) by inverse-distance or Gaussian weighting within a radius.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.spatial import cKDTree

from graph_builders._inputs import interval_seconds, node_positions
from graph_builders.mapmatch import MetricProjection
from graph_builders.trajectories import (
    point_speeds,
    read_point_table,
    read_points,
    split_segments,
)
from stgraph.data.stgraph import STGraph
from stgraph.data.weights import DISTANCE_M
from stgraph.errors import ConfigError, DataFormatError
from stgraph.utils.memory import check_memory

__all__ = ["from_tracks"]

_DERIVED_SPEED = "speed"


def _bin_tracks(
    pts: pd.DataFrame, value_cols: Sequence[str], step_s: int
) -> tuple[pd.DataFrame, int, int]:
    """One row per (track, bin): mean lon/lat and mean of each value column (NaN-aware)."""
    t0 = (int(pts["time"].min()) // step_s) * step_s
    b = (pts["time"].to_numpy() - t0) // step_s
    frame = pts[["track", "lon", "lat", *value_cols]].copy()
    frame["bin"] = b
    grouped = frame.groupby(["track", "bin"], sort=True)
    agg = grouped[["lon", "lat", *value_cols]].mean()
    agg["points"] = grouped.size()
    agg = agg.reset_index()
    return agg, t0, int(b.max()) + 1


def _check_size(what: str, rows: int, steps: int, columns: int) -> None:
    """Refuse a ``[rows, steps, columns]`` float64 array (plus its mask and float32 copy)
    beyond the memory budget."""
    check_memory(
        f"moving.from_tracks: {rows:,} {what} x {steps:,} steps x {columns} variables",
        rows * steps * columns * (2 * 8 + 4 + 1),
        hint="use a longer interval or a time range of the reports",
    )


def _knn_edges(xy: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Directed kNN edges (neighbour -> centre) and their lengths in metres."""
    n = len(xy)
    k_eff = min(k, n - 1)
    if k_eff <= 0:
        return np.zeros((2, 0), np.int64), np.zeros(0)
    dist, idx = cKDTree(xy).query(xy, k=k_eff + 1)
    dist, idx = dist[:, 1:], idx[:, 1:]
    centre = np.repeat(np.arange(n), k_eff)
    return np.stack([idx.ravel(), centre]).astype(np.int64), dist.ravel()


def from_tracks(
    table: pd.DataFrame | str | os.PathLike,
    *,
    interval: str | int = "15min",
    value_cols: Sequence[str] = (_DERIVED_SPEED,),
    units: Mapping[str, str] | None = None,
    mode: str = "knn",
    k: int = 3,
    nodes: STGraph | np.ndarray | None = None,
    radius_m: float = 1000.0,
    kernel: str = "idw",
    power: float = 2.0,
    sigma_m: float | None = None,
    lon_col: str | None = None,
    lat_col: str | None = None,
    time_col: str | None = None,
    id_col: str | None = None,
    max_gap: str | int = "10min",
    max_speed_mps: float = 70.0,
    include_position: bool = True,
    name: str = "moving",
    city: str | None = None,
) -> STGraph:
    r"""Build an STGraph from moving sensors' reports.

    Reports are binned per sensor (track id) and step: position and values are the means of the
    sensor's reports in the step. A value column named ``speed`` that the table lacks is derived
    from consecutive reports of the same sensor (haversine / time, m/s; reports more than
    ``max_gap`` apart do not give a speed, nor do speeds above ``max_speed_mps``).

    ``mode="knn"``: nodes are the sensors (``pos`` = mean position, ``meta["node_ids"]`` = track
    ids); ``x`` ``[N, T, V]`` holds the binned values (plus ``lon``, ``lat`` per step when
    ``include_position``), masked where the sensor did not report; per step, each active sensor
    receives edges from its ``k`` nearest active sensors at that step's positions
    (``dyn_edge_index`` neighbour -> sensor, ``dyn_edge_weight`` = distance in metres); the static
    edges are the kNN graph of the mean positions.

    ``mode="interpolate"``: nodes are ``nodes`` (an STGraph, whose pos/edges/attributes are kept,
    or ``[M, 2]`` lon/lat); each node and step gets the weighted mean of the binned reports within
    ``radius_m``: weights ``1 / max(d, 1 m)^power`` (``kernel="idw"``) or
    ``exp(-d^2 / (2 sigma^2))`` (``kernel="gaussian"``, ``sigma_m`` defaults to ``radius_m / 3``);
    masked where no report is within the radius. The steps run from the first to the last report
    that reached a node.

    Args:
        table: reports (DataFrame or CSV/Parquet path) with track id, time, lon, lat and values.
        interval: step length (``"15min"``, ``"1h"``, seconds).
        value_cols: the value columns (numeric).
        units: unit per value column (``speed`` derived here is ``m/s``).
        mode: ``"knn"`` or ``"interpolate"``.
        k: neighbours per sensor and step (``knn``).
        nodes: the fixed nodes (``interpolate``).
        radius_m, kernel, power, sigma_m: interpolation options.
        lon_col, lat_col, time_col, id_col: column names (found by alias when ``None``).
        include_position: add per-step ``lon``/``lat`` variables (``knn``).
        name, city: recorded in the metadata.

    Returns:
        An :class:`STGraph`; ``meta["dropped"]`` counts reports dropped by reason and
        ``meta["moving"]`` summarises the steps (active sensors, observed share).
    """
    _check_options(mode, kernel, nodes, k)
    value_cols = list(value_cols)
    if not value_cols:
        raise ConfigError("value_cols: give at least one value column")
    step_s = interval_seconds(interval)
    units = dict(units or {})
    cols = {"lon_col": lon_col, "lat_col": lat_col, "time_col": time_col, "id_col": id_col}
    pts, dropped, speed_outliers, derived = _read_reports(
        table, value_cols, cols, max_gap=max_gap, max_speed_mps=max_speed_mps
    )
    if derived:
        units.setdefault(_DERIVED_SPEED, "m/s")
    track_names = pts.attrs["track_names"]
    binned, t0, n_steps = _bin_tracks(pts, value_cols, step_s)
    check_memory(f"moving.from_tracks: {n_steps:,} steps of {step_s} s", n_steps * 8 * 4)
    times = t0 + step_s * np.arange(n_steps, dtype=np.int64)
    proj = MetricProjection.about(pts["lon"].to_numpy(), pts["lat"].to_numpy())
    source = pts.attrs["source"]
    base_meta: dict[str, Any] = {
        "domain": "mobility",
        "city": city,
        "crs": "EPSG:4326",
        "interval": step_s,
        "sources": [{"name": name, "files": [source] if source != "table" else []}],
        "dropped": {k_: int(v) for k_, v in dropped.items()},
        "name": name,
    }
    if mode == "knn":
        return _knn_graph(
            binned,
            value_cols,
            units,
            track_names,
            times,
            proj,
            k,
            include_position,
            base_meta,
            speed_outliers,
        )
    return _interpolate(
        binned,
        value_cols,
        units,
        times,
        proj,
        nodes,
        radius_m,
        kernel,
        power,
        sigma_m,
        base_meta,
        speed_outliers,
    )


def _check_options(mode: str, kernel: str, nodes: object, k: int) -> None:
    if mode not in ("knn", "interpolate"):
        raise ConfigError(f"mode: expected 'knn' or 'interpolate', got {mode!r}")
    if kernel not in ("idw", "gaussian"):
        raise ConfigError(f"kernel: expected 'idw' or 'gaussian', got {kernel!r}")
    if mode == "interpolate" and nodes is None:
        raise ConfigError("mode='interpolate' needs nodes=... (an STGraph or [M, 2] lon/lat)")
    if k < 1:
        raise ConfigError(f"k: must be at least 1, got {k}")


def _read_reports(
    table: pd.DataFrame | str | os.PathLike,
    value_cols: list[str],
    cols: Mapping[str, str | None],
    *,
    max_gap: str | int,
    max_speed_mps: float,
) -> tuple[pd.DataFrame, dict[str, int], int, bool]:
    """The reports (``read_points``), with a derived ``speed`` column when the table lacks it;
    returns ``(points, dropped, speed_outliers, derived)``."""
    source = None
    if not isinstance(table, pd.DataFrame):
        source = str(table)
        table = read_point_table(table)
    derive = _DERIVED_SPEED in value_cols and _DERIVED_SPEED not in table.columns
    present = [c for c in value_cols if not (derive and c == _DERIVED_SPEED)]
    pts, dropped = read_points(table, value_cols=present, source=source, **cols)
    if len(pts) == 0:
        raise DataFormatError(
            f"{source or 'table'}: no usable report (an empty table; dropped: {dropped})"
        )
    if not derive:
        return pts, dropped, 0, False
    seg = split_segments(
        pts["track"].to_numpy(), pts["time"].to_numpy(), interval_seconds(max_gap, option="max_gap")
    )
    sp = point_speeds(pts["lon"].to_numpy(), pts["lat"].to_numpy(), pts["time"].to_numpy(), seg)
    pts[_DERIVED_SPEED] = np.where(sp > max_speed_mps, np.nan, sp)
    return pts, dropped, int((sp > max_speed_mps).sum()), True


def _knn_graph(
    binned: pd.DataFrame,
    value_cols: list[str],
    units: dict[str, str],
    track_names: list[str],
    times: np.ndarray,
    proj: MetricProjection,
    k: int,
    include_position: bool,
    meta: dict[str, Any],
    speed_outliers: int,
) -> STGraph:
    used = np.unique(binned["track"].to_numpy())
    remap = np.full(int(used.max()) + 1, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    node = remap[binned["track"].to_numpy()]
    step = binned["bin"].to_numpy()
    n, t = len(used), len(times)
    names = list(value_cols) + (["lon", "lat"] if include_position else [])
    _check_size("sensors", n, t, len(names))
    x = np.full((n, t, len(names)), np.nan, dtype=np.float64)
    for j, col in enumerate(names):
        x[node, step, j] = binned[col].to_numpy()
    # mean position weighted by the number of reports
    w = binned["points"].to_numpy().astype(np.float64)
    pos = (
        np.stack(
            [
                np.bincount(node, weights=binned["lon"].to_numpy() * w, minlength=n),
                np.bincount(node, weights=binned["lat"].to_numpy() * w, minlength=n),
            ],
            1,
        )
        / np.bincount(node, weights=w, minlength=n)[:, None]
    )
    static_ei, static_w = _knn_edges(proj(pos[:, 0], pos[:, 1]), k)

    xy = proj(binned["lon"].to_numpy(), binned["lat"].to_numpy())
    order = np.argsort(step, kind="stable")
    bounds = np.searchsorted(step[order], np.arange(t + 1))
    d_src, d_dst, d_w, d_t = [], [], [], []
    active = np.diff(bounds)
    for s in np.nonzero(active >= 2)[0]:
        rows = order[bounds[s] : bounds[s + 1]]
        ei, dist = _knn_edges(xy[rows], k)
        d_src.append(node[rows][ei[0]])
        d_dst.append(node[rows][ei[1]])
        d_w.append(dist)
        d_t.append(np.full(len(dist), s, dtype=np.int64))
    cat = np.concatenate if d_src else (lambda _: np.zeros(0, np.int64))
    dyn_ei = np.stack([cat(d_src), cat(d_dst)]).astype(np.int64)
    dyn_w = np.concatenate(d_w) if d_w else np.zeros(0)
    dyn_t = cat(d_t).astype(np.int64)
    variables = [{"name": c, "unit": units.get(c, ""), "agg": "mean"} for c in value_cols]
    if include_position:
        variables += [
            {"name": "lon", "unit": "degree", "agg": "mean"},
            {"name": "lat", "unit": "degree", "agg": "mean"},
        ]
    spacing = float(np.median(static_w)) if len(static_w) else None
    meta.update(
        {
            "variables": variables,
            "spatial_scale": spacing,
            "node_ids": [track_names[i] for i in used.tolist()],
            "edge_weight": DISTANCE_M,
            "dyn_edge_weight": DISTANCE_M,
            "provenance": [f"moving.from_tracks(knn, k={k}, interval={meta['interval']}s)"],
            "moving": {
                "mode": "knn",
                "sensors": int(n),
                "steps": int(t),
                "steps_with_edges": int((active >= 2).sum()),
                "mean_active_per_step": float(active.mean()) if t else 0.0,
                "max_active_per_step": int(active.max()) if t else 0,
                "observed_share": float(np.isfinite(x[..., 0]).mean()) if x.size else 0.0,
                "speed_outliers": speed_outliers,
            },
        }
    )
    return STGraph(
        x=torch.from_numpy(x.astype(np.float32)),
        time=torch.from_numpy(times),
        pos=torch.from_numpy(pos),
        edge_index=torch.from_numpy(static_ei),
        edge_weight=torch.from_numpy(static_w.astype(np.float32)),
        dyn_edge_index=torch.from_numpy(dyn_ei),
        dyn_edge_weight=torch.from_numpy(dyn_w.astype(np.float32)),
        dyn_edge_time=torch.from_numpy(dyn_t),
        meta=meta,
    )


def _interpolate(
    binned: pd.DataFrame,
    value_cols: list[str],
    units: dict[str, str],
    times: np.ndarray,
    proj: MetricProjection,
    nodes: STGraph | np.ndarray,
    radius_m: float,
    kernel: str,
    power: float,
    sigma_m: float | None,
    meta: dict[str, Any],
    speed_outliers: int,
) -> STGraph:
    target = node_positions(nodes, option="nodes")
    m, t = len(target), len(times)
    _check_size("nodes", m, t, 2 * len(value_cols))
    txy = proj(target[:, 0], target[:, 1])
    oxy = proj(binned["lon"].to_numpy(), binned["lat"].to_numpy())
    pairs = cKDTree(oxy).sparse_distance_matrix(cKDTree(txy), radius_m, output_type="coo_matrix")
    obs, tgt, d = pairs.row, pairs.col, pairs.data
    # sparse_distance_matrix omits exact zeros: add coincident pairs explicitly
    zero_t = cKDTree(txy).query(oxy, k=1, distance_upper_bound=1e-6)
    hit = np.isfinite(zero_t[0])
    if hit.any():
        obs = np.r_[obs, np.nonzero(hit)[0]]
        tgt = np.r_[tgt, zero_t[1][hit]]
        d = np.r_[d, np.zeros(int(hit.sum()))]
    if kernel == "idw":
        w = 1.0 / np.maximum(d, 1.0) ** power
    else:
        sigma = sigma_m if sigma_m is not None else radius_m / 3.0
        w = np.exp(-(d**2) / (2 * sigma**2))
    step = binned["bin"].to_numpy()[obs]
    flat = tgt * t + step
    x = np.zeros((m * t, len(value_cols)))
    mask = np.zeros((m * t, len(value_cols)), dtype=bool)
    for j, col in enumerate(value_cols):
        v = binned[col].to_numpy()[obs]
        fin = np.isfinite(v)
        num = np.bincount(flat[fin], weights=(w * v)[fin], minlength=m * t)
        den = np.bincount(flat[fin], weights=w[fin], minlength=m * t)
        mask[:, j] = den > 0
        x[:, j] = np.divide(num, den, out=np.zeros(m * t), where=den > 0)
    used_obs = np.zeros(len(binned), dtype=bool)
    used_obs[obs] = True
    meta["dropped"]["observations_beyond_radius"] = int((~used_obs).sum())
    if not used_obs.any():
        raise DataFormatError(
            f"from_tracks: no report lies within radius_m={radius_m} of any node; check the nodes' "
            "coordinates or widen the radius"
        )
    # keep the steps from the first to the last report that reached a node
    used_steps = binned["bin"].to_numpy()[used_obs]
    lo, hi = int(used_steps.min()), int(used_steps.max()) + 1
    x = x.reshape(m, t, -1)[:, lo:hi]
    mask = mask.reshape(m, t, -1)[:, lo:hi]
    times, t = times[lo:hi], hi - lo
    variables = [{"name": c, "unit": units.get(c, ""), "agg": "mean"} for c in value_cols]
    out_meta = dict(meta)
    if isinstance(nodes, STGraph):
        nm = nodes.meta or {}
        for key in ("node_ids", "edge_attr_names", "node_attr_names", "city", "spatial_scale"):
            if nm.get(key) is not None and out_meta.get(key) is None:
                out_meta[key] = nm[key]
    out_meta.update(
        {
            "variables": variables,
            "provenance": [
                f"moving.from_tracks(interpolate, kernel={kernel}, radius_m={radius_m}, "
                f"interval={meta['interval']}s)"
            ],
            "moving": {
                "mode": "interpolate",
                "sensors": int(binned["track"].nunique()),
                "observations": len(binned),
                "observations_used": int(used_obs.sum()),
                "steps": int(t),
                "observed_share": float(mask.mean()) if mask.size else 0.0,
                "speed_outliers": speed_outliers,
            },
        }
    )
    g = nodes if isinstance(nodes, STGraph) else None
    return STGraph(
        x=torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        mask=torch.from_numpy(np.ascontiguousarray(mask)),
        time=torch.from_numpy(times),
        pos=torch.from_numpy(target),
        edge_index=g.edge_index if g is not None else None,
        edge_weight=g.edge_weight if g is not None else None,
        edge_attr=g.edge_attr if g is not None else None,
        node_attr=g.node_attr if g is not None else None,
        meta=out_meta,
    )
