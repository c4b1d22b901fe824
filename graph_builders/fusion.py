"""Fusion: several sources (each an STGraph with its own nodes and times) onto one node set.

:func:`fuse` maps every source's nodes onto the target nodes (a road graph, a grid, any STGraph or
plain coordinates), re-bins every source onto one common time axis, and stacks the sources'
variables side by side: events + trajectories + sensors on one road graph become one STGraph with
``x [N, T, V_1 + V_2 + ...]``, names and units in ``meta["variables"]``.

Counts add up, measurements average: a variable is summed when its metadata says
``"agg": "sum"`` or its unit is a count unit (``count``, ``points``, ``events``, ...), else averaged
(override per variable with ``agg=``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from graph_builders._inputs import interval_seconds, node_positions
from graph_builders.mapmatch import MetricProjection
from stgraph.data.stgraph import STGraph
from stgraph.data.weights import DISTANCE_M
from stgraph.errors import ConfigError, DataFormatError

__all__ = ["COUNT_UNITS", "fuse"]

#: Units whose variables are counts (summed when several source nodes or steps merge).
COUNT_UNITS = frozenset(
    {
        "count",
        "counts",
        "points",
        "trajectories",
        "events",
        "crimes",
        "incidents",
        "vehicles",
        "veh",
        "persons",
        "pedestrians",
        "passengers",
        "trips",
        "cases",
        "transitions",
    }
)


#: Metadata of the target graph that describes its nodes and edges (kept in the fused graph).
_TARGET_META = (
    "node_ids",
    "edge_weight",
    "edge_attr_names",
    "node_attr_names",
    "road_node",
    "road_classes",
    "projected_crs",
    "network",
    "bbox",
    "grid",
    "cell_size_m",
)


def _agg_of(var: Mapping[str, Any], override: Mapping[str, str], qualified: str) -> str:
    for key in (qualified, var.get("name")):
        if key in override:
            how = override[key]
            if how not in ("sum", "mean"):
                raise ConfigError(f"agg[{key!r}]: expected 'sum' or 'mean', got {how!r}")
            return how
    if var.get("agg") in ("sum", "mean"):
        return var["agg"]
    unit = str(var.get("unit", "")).strip().lower()
    return "sum" if unit in COUNT_UNITS or unit.startswith("count") else "mean"


def _median_spacing(xy: np.ndarray) -> float:
    if len(xy) < 2:
        return 0.0
    d, _ = cKDTree(xy).query(xy, k=2)
    return float(np.median(d[:, 1]))


def fuse(
    graphs: Sequence[STGraph] | Mapping[str, STGraph],
    *,
    on: STGraph | np.ndarray | None = None,
    how: str = "nearest",
    names: Sequence[str] | None = None,
    max_dist_m: float | None = None,
    interval: str | int | None = None,
    times: str = "union",
    agg: Mapping[str, str] | None = None,
    power: float = 2.0,
    city: str | None = None,
) -> STGraph:
    r"""Map several sources onto one node set as separate variables.

    Space: with ``how="nearest"`` each source node goes to the nearest target node within
    ``max_dist_m`` (farther source nodes are dropped and counted); several source nodes on one
    target node are summed (count variables) or averaged (measurements). With ``how="idw"``
    measurement variables are instead inverse-distance weighted (``1 / max(d, 1 m)^power``) over
    all source nodes within ``max_dist_m`` of each target node; count variables always use
    ``nearest`` (spreading a count would double it).

    Time: the common interval is ``interval`` or the longest interval among the sources (a
    source whose interval is longer than the common one is an error: no upsampling). Steps are
    counted from the earliest start; ``times="union"`` spans all sources, ``"intersection"`` only
    the steps every source covers. Within a common step, counts are summed and measurements
    averaged over the source's observed steps.

    Dynamic edges of the sources whose edge weights are counts (e.g. trajectory transitions) are
    mapped onto the target nodes and re-binned, weights summed; edges whose two ends land on the
    same target node are dropped and counted. Distance-weighted dynamic edges (moving-sensor kNN)
    do not transfer to fixed nodes and are left out (reported).

    Args:
        graphs: the sources, a list or a ``{name: graph}`` mapping.
        on: the target nodes: an STGraph (its pos, static edges, node/edge attributes and node ids
            are kept) or ``[M, 2]`` lon/lat; default the first source.
        how: ``"nearest"`` or ``"idw"``.
        names: source names (default the mapping keys, else ``meta["name"]``, else ``source{i}``);
            variable names that clash between sources are prefixed ``"<source>.<name>"``.
        max_dist_m: largest source-to-target distance; default twice the median spacing of the
            target nodes (at least 50 m).
        interval: the common interval (``"1h"``, seconds); default the longest source interval.
        times: ``"union"`` or ``"intersection"``.
        agg: ``{variable: "sum" | "mean"}`` overrides (plain or qualified names).
        power: IDW exponent.
        city: city for the metadata (default the target's).

    Returns:
        The fused :class:`STGraph`; ``meta["variables"]`` lists every variable with its unit,
        ``agg`` and ``source``; ``meta["dropped"]`` holds the sources' drops and the fusion's, keyed
        ``"<source>.<reason>"``; ``meta["fusion"]`` per-source mapping statistics. Each dropped
        record is counted once, under the first reason that applies: observed values
        ``fuse_values_too_far`` (source node beyond ``max_dist_m``), then
        ``fuse_values_outside_time`` (step outside the common range); dynamic edges
        ``fuse_dyn_edges_unmapped``, then ``fuse_dyn_edges_outside_time``, then
        ``fuse_dyn_edges_within_node``. (``fuse_nodes_too_far`` counts source nodes, not values.)

    Raises:
        ConfigError: bad options (``how``, ``times``, ``names``, ``agg``, ``interval``).
        DataFormatError: no source with variables, a source without pos or time, sources that
            do not overlap under ``times='intersection'``.
    """
    if how not in ("nearest", "idw"):
        raise ConfigError(f"how: expected 'nearest' or 'idw', got {how!r}")
    if times not in ("union", "intersection"):
        raise ConfigError(f"times: expected 'union' or 'intersection', got {times!r}")
    names, graphs = _named_sources(graphs, names)
    target = graphs[0] if on is None else on
    tgt = _Target.of(target)
    if max_dist_m is None:
        max_dist_m = max(2.0 * _median_spacing(tgt.xy), 50.0)
    sources = [
        (n, g)
        for n, g in zip(names, graphs, strict=False)
        if g.x is not None and g.num_steps and g.num_variables
    ]
    axis, intervals = _common_axis(sources, interval, times)
    opts = {"how": how, "max_dist_m": max_dist_m, "power": power, "override": dict(agg or {})}
    out = _map_sources(names, graphs, sources, tgt, axis, intervals, **opts)
    x = np.stack(out.blocks_x, -1).astype(np.float32)
    mask = np.stack(out.blocks_m, -1)
    extra = _merged_dyn(out.dyn_parts)
    tmeta = (target.meta or {}) if isinstance(target, STGraph) else {}
    meta = _fused_meta(
        out,
        sources,
        names,
        graphs,
        tmeta,
        city=city,
        how=how,
        max_dist_m=max_dist_m,
        step_s=axis.step_s,
        times=times,
    )
    t_graph = target if isinstance(target, STGraph) else None
    if t_graph is not None:  # road polylines stay valid: the target's nodes and edges are kept
        for key in ("road_geom", "road_geom_ptr"):
            if getattr(t_graph, key, None) is not None:
                extra[key] = getattr(t_graph, key)
    return STGraph(
        x=torch.from_numpy(x),
        mask=torch.from_numpy(mask),
        time=torch.from_numpy(axis.times),
        pos=torch.from_numpy(tgt.pos),
        edge_index=t_graph.edge_index if t_graph is not None else None,
        edge_weight=t_graph.edge_weight if t_graph is not None else None,
        edge_attr=t_graph.edge_attr if t_graph is not None else None,
        node_attr=t_graph.node_attr if t_graph is not None else None,
        meta=meta,
        **extra,
    )


def _named_sources(
    graphs: Sequence[STGraph] | Mapping[str, STGraph], names: Sequence[str] | None
) -> tuple[list[str], list[STGraph]]:
    """The source graphs and their (unique) names."""
    if isinstance(graphs, Mapping):
        if names is not None:
            raise ConfigError("names: give names either as mapping keys or as names=..., not both")
        names = [str(k) for k in graphs]
        graphs = list(graphs.values())
    graphs = list(graphs)
    if not graphs:
        raise DataFormatError("graphs: fuse needs at least one source graph, got none")
    if names is None:
        names = [str((g.meta or {}).get("name") or f"source{i}") for i, g in enumerate(graphs)]
    names = list(names)
    if len(names) != len(graphs):
        raise ConfigError(f"names: {len(names)} names for {len(graphs)} graphs")
    if len(set(names)) != len(names):
        names = [f"{n}{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
    return names, graphs


@dataclass
class _Target:
    """The target nodes: lon/lat, metres in one UTM zone, and a KD-tree over them."""

    pos: np.ndarray
    proj: MetricProjection
    xy: np.ndarray
    tree: cKDTree

    @classmethod
    def of(cls, target: STGraph | np.ndarray) -> _Target:
        tpos = node_positions(target, option="on")
        proj = MetricProjection.about(tpos[:, 0], tpos[:, 1])
        txy = proj(tpos[:, 0], tpos[:, 1])
        return cls(tpos, proj, txy, cKDTree(txy))


@dataclass
class _Axis:
    """The common time axis: ``origin + step_s * (lo + k)`` for ``k < n_steps``."""

    origin: int
    step_s: int
    lo: int
    n_steps: int

    @property
    def times(self) -> np.ndarray:
        return self.origin + self.step_s * (self.lo + np.arange(self.n_steps, dtype=np.int64))

    def bins(self, t: np.ndarray) -> np.ndarray:
        """Common step of each source time (may fall outside ``[0, n_steps)``)."""
        return (t - self.origin) // self.step_s - self.lo


def _common_axis(
    sources: list[tuple[str, STGraph]], interval: str | int | None, times: str
) -> tuple[_Axis, dict[str, int | None]]:
    """The common interval (given, or the longest source interval) and step range."""
    if not sources:
        raise DataFormatError("fuse: none of the graphs has variables over time (x is empty)")
    for n, g in sources:
        if g.pos is None:
            raise DataFormatError(f"fuse: source {n!r} has no pos; nodes cannot be placed")
        if g.time is None:
            raise DataFormatError(f"fuse: source {n!r} has no time; steps cannot be aligned")
    intervals = {}
    for n, g in sources:
        iv = (g.meta or {}).get("interval")
        if iv is None:
            tt = g.time.numpy()
            iv = int(np.min(np.diff(tt))) if len(tt) > 1 else None
        intervals[n] = iv
    known = [v for v in intervals.values() if v]
    step_s = interval_seconds(interval) if interval is not None else (max(known) if known else None)
    if step_s is None:
        raise ConfigError("fuse: no source has an interval and none was given; pass interval=...")
    for n, iv in intervals.items():
        if iv and iv > step_s:
            raise ConfigError(
                f"fuse: source {n!r} has interval {iv} s, longer than the common interval {step_s} s; "
                f"choose interval >= {iv} s"
            )
    starts = [int(g.time[0]) for _, g in sources]
    ends = [int(g.time[-1]) for _, g in sources]
    origin = min(starts)
    if times == "union":
        lo, hi = 0, (max(ends) - origin) // step_s
    else:
        lo, hi = (max(starts) - origin) // step_s, (min(ends) - origin) // step_s
        if hi < lo:
            raise DataFormatError(
                "fuse: times='intersection' but the sources do not overlap in time "
                f"(latest start {max(starts)}, earliest end {min(ends)})"
            )
    return _Axis(origin, step_s, int(lo), int(hi - lo + 1)), intervals


@dataclass
class _Fused:
    """What the sources contribute: variable blocks, drops, per-source reports, dynamic edges."""

    blocks_x: list[np.ndarray] = field(default_factory=list)
    blocks_m: list[np.ndarray] = field(default_factory=list)
    variables: list[dict[str, Any]] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    dyn_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    dyn_from: list[str] = field(default_factory=list)
    dyn_skipped: list[str] = field(default_factory=list)


def _map_sources(
    names: list[str],
    graphs: list[STGraph],
    sources: list[tuple[str, STGraph]],
    tgt: _Target,
    axis: _Axis,
    intervals: dict[str, int | None],
    **opts: Any,
) -> _Fused:
    """Every source mapped onto the target; the sources' own drops first, keyed by source."""
    # variable names: prefix the ones that clash between sources
    all_names = [v for _, g in sources for v in g.variables]
    clash = {v for v in all_names if all_names.count(v) > 1}
    out = _Fused()
    for n, g in zip(names, graphs, strict=False):
        for reason, count in ((g.meta or {}).get("dropped") or {}).items():
            out.dropped[f"{n}.{reason}"] = int(count)
    for n, g in sources:
        _map_source(out, n, g, tgt, axis, clash=clash, interval=intervals[n], **opts)
    return out


def _map_source(
    out: _Fused,
    n: str,
    g: STGraph,
    tgt: _Target,
    axis: _Axis,
    *,
    how: str,
    max_dist_m: float,
    power: float,
    override: dict[str, str],
    clash: set[str],
    interval: int | None,
) -> None:
    """Map one source's nodes, steps, variables and dynamic edges onto the target (into ``out``)."""
    spos = g.pos.double().numpy()
    sxy = tgt.proj(spos[:, 0], spos[:, 1])
    d, nearest = tgt.tree.query(sxy, k=1)
    ok = d <= max_dist_m
    node_map = np.where(ok, nearest, -1)
    x = g.x.double().numpy()
    mask = g.mask.numpy()
    bins = axis.bins(g.time.numpy())
    in_range = (bins >= 0) & (bins < axis.n_steps)
    # each dropped value is counted once, by the first reason that applies, in this order:
    # 1. too far (its source node maps to no target node), 2. outside the common time range
    out.dropped[f"{n}.fuse_nodes_too_far"] = int((~ok).sum())
    out.dropped[f"{n}.fuse_values_too_far"] = int(mask[~ok].sum())
    out.dropped[f"{n}.fuse_values_outside_time"] = int(mask[ok][:, ~in_range].sum())
    out.report[n] = {
        "nodes": int(len(spos)),
        "nodes_mapped": int(ok.sum()),
        "target_nodes_hit": int(len(np.unique(nearest[ok]))),
        "distance_m": {
            "median": float(np.median(d[ok])) if ok.any() else None,
            "max": float(d[ok].max()) if ok.any() else None,
        },
        "interval": interval,
        "steps": int(g.num_steps),
    }
    pairs = None
    m, t = len(tgt.pos), axis.n_steps
    for j, var in enumerate(g.variables):
        vmeta = dict(((g.meta or {}).get("variables") or [{}] * g.num_variables)[j] or {})
        qualified = f"{n}.{var}"
        how_agg = _agg_of(vmeta, override, qualified)
        sel = mask[..., j] & ok[:, None] & in_range[None, :]
        src_node, src_step = np.nonzero(sel)
        vals = x[src_node, src_step, j]
        tb = bins[src_step]
        if how == "idw" and how_agg == "mean":
            if pairs is None:
                pairs = _idw_pairs(tgt.tree, sxy, max_dist_m, power)
            values, seen = _idw(pairs, src_node, tb, vals, m, t)
        else:
            flat = node_map[src_node] * t + tb
            num = np.bincount(flat, weights=vals, minlength=m * t)
            cnt = np.bincount(flat, minlength=m * t)
            seen = cnt > 0
            mean = np.divide(num, cnt, out=np.zeros(m * t), where=seen)
            values = num if how_agg == "sum" else mean
        if how_agg == "sum":
            # counts are observed wherever the source observed the step, even as zero
            covered = np.zeros((m, t), dtype=bool)
            covered[node_map[src_node], bins[src_step]] = True
            seen = seen | covered.ravel()
        out.blocks_x.append(values.reshape(m, t))
        out.blocks_m.append(seen.reshape(m, t))
        name = qualified if var in clash else var
        out.variables.append(
            {"name": name, "unit": vmeta.get("unit", ""), "agg": how_agg, "source": n}
        )
    _map_dyn_edges(out, n, g, node_map, bins, axis.n_steps)


def _idw_pairs(
    tree: cKDTree, sxy: np.ndarray, max_dist_m: float, power: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Target-source pairs within ``max_dist_m``, grouped by source: ``(target, weight, start,
    count)`` with weights ``1 / max(d, 1 m)^power`` (coincident pairs included)."""
    pairs = tree.sparse_distance_matrix(cKDTree(sxy), max_dist_m, output_type="coo_matrix")
    zero = tree.query(sxy, k=1, distance_upper_bound=1e-6)  # sparse matrices omit exact zeros
    hit = np.isfinite(zero[0])
    p_t = np.r_[pairs.row, zero[1][hit]]
    p_s = np.r_[pairs.col, np.nonzero(hit)[0]]
    p_w = 1.0 / np.maximum(np.r_[pairs.data, np.zeros(int(hit.sum()))], 1.0) ** power
    order = np.argsort(p_s, kind="stable")
    p_t, p_s, p_w = p_t[order], p_s[order], p_w[order]
    p_start = np.searchsorted(p_s, np.arange(len(sxy)))
    p_count = np.searchsorted(p_s, np.arange(len(sxy)), side="right") - p_start
    return p_t, p_w, p_start, p_count


def _idw(
    pairs: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    src_node: np.ndarray,
    tb: np.ndarray,
    vals: np.ndarray,
    m: int,
    t: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse-distance weighted means ``[m * t]`` of the observed values, and where defined."""
    p_t, p_w, p_start, p_count = pairs
    reps = p_count[src_node]
    entry = np.repeat(np.arange(len(vals)), reps)
    offs = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    pidx = p_start[src_node][entry] + offs
    flat = p_t[pidx] * t + tb[entry]
    w = p_w[pidx]
    num = np.bincount(flat, weights=w * vals[entry], minlength=m * t)
    den = np.bincount(flat, weights=w, minlength=m * t)
    return np.divide(num, den, out=np.zeros(m * t), where=den > 0), den > 0


def _map_dyn_edges(
    out: _Fused, n: str, g: STGraph, node_map: np.ndarray, bins: np.ndarray, n_steps: int
) -> None:
    """The source's count-weighted dynamic edges on the target nodes (distance-weighted ones are
    left out and reported)."""
    if g.dyn_edge_index is None or not g.dyn_edge_index.numel():
        return
    if (g.meta or {}).get("dyn_edge_weight") == DISTANCE_M:
        out.dyn_skipped.append(n)
        return
    ei = g.dyn_edge_index.numpy()
    w = (
        g.dyn_edge_weight.double().numpy()
        if g.dyn_edge_weight is not None
        else np.ones(ei.shape[1])
    )
    b = bins[g.dyn_edge_time.numpy()]
    s, t = node_map[ei[0]], node_map[ei[1]]
    mapped = (s >= 0) & (t >= 0)
    keep = mapped & (b >= 0) & (b < n_steps)
    # counted once each, first reason wins: unmapped, outside time, within one node
    out.dropped[f"{n}.fuse_dyn_edges_unmapped"] = int((~mapped).sum())
    out.dropped[f"{n}.fuse_dyn_edges_outside_time"] = int((mapped & ~keep).sum())
    within = keep & (s == t)
    out.dropped[f"{n}.fuse_dyn_edges_within_node"] = int(within.sum())
    keep &= s != t
    out.dyn_parts.append((np.stack([s[keep], t[keep]]), b[keep], w[keep]))
    out.dyn_from.append(n)


def _merged_dyn(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """All sources' dynamic edges, one per (step, source, target), weights summed."""
    if not parts:
        return {}
    ei = np.concatenate([p[0] for p in parts], 1)
    bt = np.concatenate([p[1] for p in parts])
    w = np.concatenate([p[2] for p in parts])
    if len(bt):
        key = np.stack([bt, ei[0], ei[1]])
        uniq, inv = np.unique(key, axis=1, return_inverse=True)
        ws = np.bincount(inv.ravel(), weights=w)
    else:
        uniq, ws = np.zeros((3, 0), np.int64), np.zeros(0)
    return {
        "dyn_edge_index": torch.from_numpy(uniq[1:].astype(np.int64)),
        "dyn_edge_time": torch.from_numpy(uniq[0].astype(np.int64)),
        "dyn_edge_weight": torch.from_numpy(ws.astype(np.float32)),
    }


def _fused_meta(
    out: _Fused,
    sources: list[tuple[str, STGraph]],
    names: list[str],
    graphs: list[STGraph],
    tmeta: dict[str, Any],
    *,
    city: str | None,
    how: str,
    max_dist_m: float,
    step_s: int,
    times: str,
) -> dict[str, Any]:
    domains = {(g.meta or {}).get("domain") for _, g in sources}
    source_city = next(
        ((g.meta or {}).get("city") for _, g in sources if (g.meta or {}).get("city")), None
    )
    meta: dict[str, Any] = {
        "variables": out.variables,
        "domain": "multi" if len(domains) > 1 else (sources[0][1].meta or {}).get("domain"),
        "city": city or tmeta.get("city") or source_city,
        "crs": "EPSG:4326",
        "interval": int(step_s),
        "spatial_scale": tmeta.get("spatial_scale"),
        "sources": [
            s
            for _, g in zip(names, graphs, strict=False)
            for s in ((g.meta or {}).get("sources") or [])
        ],
        "provenance": [
            f"fuse({', '.join(n for n, _ in sources)}; how={how}, max_dist_m={max_dist_m:.1f}, "
            f"interval={step_s}s, times={times})"
        ],
        "dropped": out.dropped,
        "fusion": {
            "how": how,
            "max_dist_m": float(max_dist_m),
            "times": times,
            "sources": out.report,
            "dyn_edges_from": out.dyn_from,
            "dyn_edges_left_out": out.dyn_skipped,
        },
    }
    if out.dyn_from:
        meta["dyn_edge_weight"] = "transitions"
    for key in _TARGET_META:
        if tmeta.get(key) is not None:
            meta[key] = copy.deepcopy(tmeta[key])
    return meta
