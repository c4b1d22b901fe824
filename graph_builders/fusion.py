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
from typing import Any

import numpy as np
import torch
from scipy.spatial import cKDTree

from graph_builders._inputs import interval_seconds
from graph_builders.mapmatch import MetricProjection
from stgraph.data.stgraph import STGraph
from stgraph.data.weights import DISTANCE_M

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
                raise ValueError(f"agg[{key!r}]: expected 'sum' or 'mean', got {how!r}")
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
        ValueError: no source with variables, a source without pos or time, bad options.
    """
    if how not in ("nearest", "idw"):
        raise ValueError(f"how: expected 'nearest' or 'idw', got {how!r}")
    if times not in ("union", "intersection"):
        raise ValueError(f"times: expected 'union' or 'intersection', got {times!r}")
    if isinstance(graphs, Mapping):
        if names is not None:
            raise ValueError("names: give names either as mapping keys or as names=..., not both")
        names = [str(k) for k in graphs]
        graphs = list(graphs.values())
    graphs = list(graphs)
    if not graphs:
        raise ValueError("fuse: no source graph given")
    if names is None:
        names = [str((g.meta or {}).get("name") or f"source{i}") for i, g in enumerate(graphs)]
    names = list(names)
    if len(names) != len(graphs):
        raise ValueError(f"names: {len(names)} names for {len(graphs)} graphs")
    if len(set(names)) != len(names):
        names = [f"{n}{i}" if names.count(n) > 1 else n for i, n in enumerate(names)]
    override = dict(agg or {})
    target = graphs[0] if on is None else on
    if isinstance(target, STGraph):
        if target.pos is None:
            raise ValueError("on: the target STGraph has no pos")
        tpos = target.pos.double().numpy()
    else:
        tpos = np.asarray(target, dtype=np.float64)
        if tpos.ndim != 2 or tpos.shape[1] != 2:
            raise ValueError(f"on: expected an STGraph or [M, 2] lon/lat, got shape {tpos.shape}")
    proj = MetricProjection.about(tpos[:, 0], tpos[:, 1])
    txy = proj(tpos[:, 0], tpos[:, 1])
    ttree = cKDTree(txy)
    if max_dist_m is None:
        max_dist_m = max(2.0 * _median_spacing(txy), 50.0)

    sources = [
        (n, g)
        for n, g in zip(names, graphs, strict=False)
        if g.x is not None and g.num_steps and g.num_variables
    ]
    if not sources:
        raise ValueError("fuse: none of the graphs has variables over time (x is empty)")
    for n, g in sources:
        if g.pos is None:
            raise ValueError(f"fuse: source {n!r} has no pos; nodes cannot be placed")
        if g.time is None:
            raise ValueError(f"fuse: source {n!r} has no time; steps cannot be aligned")
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
        raise ValueError("fuse: no source has an interval and none was given; pass interval=...")
    for n, iv in intervals.items():
        if iv and iv > step_s:
            raise ValueError(
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
            raise ValueError(
                "fuse: times='intersection' but the sources do not overlap in time "
                f"(latest start {max(starts)}, earliest end {min(ends)})"
            )
    n_steps = int(hi - lo + 1)
    m = len(tpos)
    out_times = origin + step_s * (lo + np.arange(n_steps, dtype=np.int64))

    # variable names: prefix the ones that clash between sources
    all_names = [v for _, g in sources for v in g.variables]
    clash = {v for v in all_names if all_names.count(v) > 1}
    blocks_x, blocks_m, variables = [], [], []
    dropped: dict[str, int] = {}
    report: dict[str, Any] = {}
    dyn_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    dyn_from, dyn_skipped = [], []
    for n, g in zip(names, graphs, strict=False):
        for reason, count in ((g.meta or {}).get("dropped") or {}).items():
            dropped[f"{n}.{reason}"] = int(count)
    for n, g in sources:
        spos = g.pos.double().numpy()
        sxy = proj(spos[:, 0], spos[:, 1])
        d, nearest = ttree.query(sxy, k=1)
        ok = d <= max_dist_m
        node_map = np.where(ok, nearest, -1)
        x = g.x.double().numpy()
        mask = g.mask.numpy()
        bins = (g.time.numpy() - origin) // step_s - lo
        in_range = (bins >= 0) & (bins < n_steps)
        # each dropped value is counted once, by the first reason that applies, in this order:
        # 1. too far (its source node maps to no target node), 2. outside the common time range
        obs_far = int(mask[~ok].sum())
        obs_outside_time = int(mask[ok][:, ~in_range].sum())
        dropped[f"{n}.fuse_nodes_too_far"] = int((~ok).sum())
        dropped[f"{n}.fuse_values_too_far"] = obs_far
        dropped[f"{n}.fuse_values_outside_time"] = obs_outside_time
        report[n] = {
            "nodes": int(len(spos)),
            "nodes_mapped": int(ok.sum()),
            "target_nodes_hit": int(len(np.unique(nearest[ok]))),
            "distance_m": {
                "median": float(np.median(d[ok])) if ok.any() else None,
                "max": float(d[ok].max()) if ok.any() else None,
            },
            "interval": intervals[n],
            "steps": int(g.num_steps),
        }
        pairs = None
        for j, var in enumerate(g.variables):
            vmeta = dict(((g.meta or {}).get("variables") or [{}] * g.num_variables)[j] or {})
            qualified = f"{n}.{var}"
            how_agg = _agg_of(vmeta, override, qualified)
            vx, vm = x[..., j], mask[..., j]
            sel = vm & ok[:, None] & in_range[None, :]
            src_node, src_step = np.nonzero(sel)
            vals = vx[src_node, src_step]
            tb = bins[src_step]
            if how == "idw" and how_agg == "mean":
                if pairs is None:
                    pairs = ttree.sparse_distance_matrix(
                        cKDTree(sxy), max_dist_m, output_type="coo_matrix"
                    )
                    zero = ttree.query(sxy, k=1, distance_upper_bound=1e-6)
                    hit = np.isfinite(zero[0])
                    p_t = np.r_[pairs.row, zero[1][hit]]
                    p_s = np.r_[pairs.col, np.nonzero(hit)[0]]
                    p_w = (
                        1.0 / np.maximum(np.r_[pairs.data, np.zeros(int(hit.sum()))], 1.0) ** power
                    )
                    order = np.argsort(p_s, kind="stable")
                    p_t, p_s, p_w = p_t[order], p_s[order], p_w[order]
                    p_start = np.searchsorted(p_s, np.arange(len(sxy)))
                    p_count = np.searchsorted(p_s, np.arange(len(sxy)), side="right") - p_start
                    pairs = (p_t, p_w, p_start, p_count)
                p_t, p_w, p_start, p_count = pairs
                reps = p_count[src_node]
                entry = np.repeat(np.arange(len(vals)), reps)
                offs = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
                pidx = p_start[src_node][entry] + offs
                flat = p_t[pidx] * n_steps + tb[entry]
                w = p_w[pidx]
                num = np.bincount(flat, weights=w * vals[entry], minlength=m * n_steps)
                den = np.bincount(flat, weights=w, minlength=m * n_steps)
                out = np.divide(num, den, out=np.zeros(m * n_steps), where=den > 0)
                seen = den > 0
            else:
                flat = node_map[src_node] * n_steps + tb
                num = np.bincount(flat, weights=vals, minlength=m * n_steps)
                cnt = np.bincount(flat, minlength=m * n_steps)
                seen = cnt > 0
                out = (
                    num
                    if how_agg == "sum"
                    else np.divide(num, cnt, out=np.zeros(m * n_steps), where=seen)
                )
            if how_agg == "sum":
                # counts are observed wherever the source observed the step, even as zero
                covered = np.zeros((m, n_steps), dtype=bool)
                sn, ss = np.nonzero(vm & ok[:, None] & in_range[None, :])
                covered[node_map[sn], bins[ss]] = True
                seen = seen | covered.ravel()
            blocks_x.append(out.reshape(m, n_steps))
            blocks_m.append(seen.reshape(m, n_steps))
            variables.append(
                {
                    "name": qualified if var in clash else var,
                    "unit": vmeta.get("unit", ""),
                    "agg": how_agg,
                    "source": n,
                }
            )
        # dynamic edges
        if g.dyn_edge_index is not None and g.dyn_edge_index.numel():
            if (g.meta or {}).get("dyn_edge_weight") == DISTANCE_M:
                dyn_skipped.append(n)
                continue
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
            dropped[f"{n}.fuse_dyn_edges_unmapped"] = int((~mapped).sum())
            dropped[f"{n}.fuse_dyn_edges_outside_time"] = int((mapped & ~keep).sum())
            within = keep & (s == t)
            dropped[f"{n}.fuse_dyn_edges_within_node"] = int(within.sum())
            keep &= s != t
            dyn_parts.append((np.stack([s[keep], t[keep]]), b[keep], w[keep]))
            dyn_from.append(n)

    x = np.stack(blocks_x, -1).astype(np.float32)
    mask = np.stack(blocks_m, -1)
    dyn_kwargs: dict[str, Any] = {}
    if dyn_parts:
        ei = np.concatenate([p[0] for p in dyn_parts], 1)
        bt = np.concatenate([p[1] for p in dyn_parts])
        w = np.concatenate([p[2] for p in dyn_parts])
        if len(bt):
            key = np.stack([bt, ei[0], ei[1]])
            uniq, inv = np.unique(key, axis=1, return_inverse=True)
            ws = np.bincount(inv.ravel(), weights=w)
        else:
            uniq, ws = np.zeros((3, 0), np.int64), np.zeros(0)
        dyn_kwargs = {
            "dyn_edge_index": torch.from_numpy(uniq[1:].astype(np.int64)),
            "dyn_edge_time": torch.from_numpy(uniq[0].astype(np.int64)),
            "dyn_edge_weight": torch.from_numpy(ws.astype(np.float32)),
        }

    tmeta = (target.meta or {}) if isinstance(target, STGraph) else {}
    meta: dict[str, Any] = {
        "variables": variables,
        "domain": "multi"
        if len({(g.meta or {}).get("domain") for _, g in sources}) > 1
        else (sources[0][1].meta or {}).get("domain"),
        "city": city
        or tmeta.get("city")
        or next(
            ((g.meta or {}).get("city") for _, g in sources if (g.meta or {}).get("city")), None
        ),
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
        "dropped": dropped,
        "fusion": {
            "how": how,
            "max_dist_m": float(max_dist_m),
            "times": times,
            "sources": report,
            "dyn_edges_from": dyn_from,
            "dyn_edges_left_out": dyn_skipped,
        },
    }
    if dyn_from:
        meta["dyn_edge_weight"] = "transitions"
    for key in _TARGET_META:
        if tmeta.get(key) is not None:
            meta[key] = copy.deepcopy(tmeta[key])
    t_graph = target if isinstance(target, STGraph) else None
    if t_graph is not None:  # road polylines stay valid: the target's nodes and edges are kept
        for key in ("road_geom", "road_geom_ptr"):
            if getattr(t_graph, key, None) is not None:
                dyn_kwargs[key] = getattr(t_graph, key)
    return STGraph(
        x=torch.from_numpy(x),
        mask=torch.from_numpy(mask),
        time=torch.from_numpy(out_times),
        pos=torch.from_numpy(tpos),
        edge_index=t_graph.edge_index if t_graph is not None else None,
        edge_weight=t_graph.edge_weight if t_graph is not None else None,
        edge_attr=t_graph.edge_attr if t_graph is not None else None,
        node_attr=t_graph.node_attr if t_graph is not None else None,
        meta=meta,
        **dyn_kwargs,
    )
