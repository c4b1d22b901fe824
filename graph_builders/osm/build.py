"""Assemble a :class:`~stgraph.data.STGraph` road graph from a :class:`RoadNet` (see ``osm/__init__``)."""

from __future__ import annotations

import numpy as np
import torch

from graph_builders.osm.context import CONTEXT_NAMES, LANDUSE_NAMES, POI_NAMES, count_within
from graph_builders.osm.reader import ContextPoints
from graph_builders.osm.spatial import pos_tensor, project, utm_crs
from graph_builders.osm.tags import DEFAULT_SPEED_KPH, ROAD_CLASSES
from graph_builders.osm.topology import EDGE_ATTR_NAMES, RoadNet, haversine_m
from stgraph.data import DISTANCE_M, STGraph
from stgraph.datasets.files import sha256_of
from stgraph.errors import ConfigError, DataFormatError

SEGMENT_EDGE_ATTR_NAMES: tuple[str, ...] = ("length_m", "turn_deg")

#: The hex sha256 of a file: the registry's :func:`stgraph.datasets.files.sha256_of`.
sha256_file = sha256_of


def _polyline_midpoints(net: RoadNet) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat of the point halfway along each edge polyline."""
    ptr, lon, lat = net.geom_ptr, net.geom_lon, net.geom_lat
    seg = haversine_m(lon[:-1], lat[:-1], lon[1:], lat[1:])
    # sub-segments that cross from one polyline to the next are not part of any polyline
    seg[ptr[1:-1] - 1] = 0.0
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    start, end = ptr[:-1], ptr[1:] - 1
    half = (cum[start] + cum[end]) / 2.0
    # index of the sub-segment containing the half-way point (searchsorted within each polyline)
    j = np.searchsorted(cum, half, side="right") - 1
    j = np.clip(j, start, np.maximum(end - 1, start))
    span = cum[j + 1] - cum[j] if len(cum) > 1 else np.zeros_like(half)
    jj = np.minimum(j + 1, end)
    t = np.where(span > 0, (half - cum[j]) / np.where(span > 0, span, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    return lon[j] + t * (lon[jj] - lon[j]), lat[j] + t * (lat[jj] - lat[j])


def _bearings(xy: np.ndarray, ptr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Direction (degrees, 0 = north, clockwise) of the first and the last piece of each polyline."""
    a, b = xy[ptr[:-1]], xy[ptr[:-1] + 1]
    c, d = xy[ptr[1:] - 2], xy[ptr[1:] - 1]
    first = np.degrees(np.arctan2(b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]))
    last = np.degrees(np.arctan2(d[:, 0] - c[:, 0], d[:, 1] - c[:, 1]))
    return first, last


def _context(lon, lat, ctx: ContextPoints | None, radius: float, crs) -> np.ndarray:
    if ctx is None:
        return np.zeros((len(lon), 0), dtype=np.float32)
    # one projection call for the nodes and both feature sets
    n, n_poi = len(lon), len(ctx.poi_lon)
    xy, _ = project(
        np.concatenate([lon, ctx.poi_lon, ctx.landuse_lon]),
        np.concatenate([lat, ctx.poi_lat, ctx.landuse_lat]),
        crs=crs,
    )
    node_xy, poi_xy, lu_xy = xy[:n], xy[n : n + n_poi], xy[n + n_poi :]
    return np.concatenate(
        [
            count_within(node_xy, poi_xy, ctx.poi_category, len(POI_NAMES), radius),
            count_within(node_xy, lu_xy, ctx.landuse_category, len(LANDUSE_NAMES), radius),
        ],
        axis=1,
    )


def _street_count(net: RoadNet) -> np.ndarray:
    """Distinct neighbours of each node (the streets meeting there, ignoring direction)."""
    n = len(net.lon)
    a = np.concatenate([net.u, net.v])
    b = np.concatenate([net.v, net.u])
    pairs = np.unique(a * np.int64(n) + b)
    return np.bincount(pairs // n, minlength=n).astype(np.float32)


def segment_edges(net: RoadNet, *, u_turns: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Line-graph edges ``a -> b`` where segment ``b`` starts where ``a`` ends.

    Returns ``(src [E_s], dst [E_s], n_u_turns_removed)``; a U-turn is ``b`` leading straight back
    to ``a``'s start node.
    """
    order = np.argsort(net.u, kind="stable")
    su = net.u[order]
    lo = np.searchsorted(su, net.v, side="left")
    hi = np.searchsorted(su, net.v, side="right")
    cnt = hi - lo
    src = np.repeat(np.arange(len(net.u)), cnt)
    offs = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    dst = order[np.repeat(lo, cnt) + offs]
    uturn = net.v[dst] == net.u[src]
    n_u = int(uturn.sum())
    if not u_turns:
        src, dst = src[~uturn], dst[~uturn]
    return src.astype(np.int64), dst.astype(np.int64), n_u


def assemble(
    net: RoadNet,
    *,
    ctx: ContextPoints | None,
    node: str,
    context_radius: float,
    u_turns: bool,
    meta: dict,
) -> STGraph:
    """The STGraph of ``net`` in ``node`` mode, with context features and the metadata given."""
    if len(net.u) == 0:
        raise DataFormatError("road graph is empty after filtering (see meta 'dropped' reasons)")
    crs = utm_crs(float(np.median(net.lon)), float(np.median(net.lat)))
    attrs = net.attrs.astype(np.float32)
    geom = np.stack([net.geom_lon, net.geom_lat], 1)
    osmid = net.node_osmid.tolist()
    if node == "intersection":
        lon, lat = net.lon, net.lat
        edge_index = np.stack([net.u, net.v])
        edge_attr = attrs
        edge_weight = attrs[:, 0]
        static = _street_count(net)[:, None]
        static_names = ["street_count"]
        node_ids = osmid
        edge_names = list(EDGE_ATTR_NAMES)
    elif node == "segment":
        lon, lat = _polyline_midpoints(net)
        src, dst, n_u = segment_edges(net, u_turns=u_turns)
        geo_xy, _ = project(net.geom_lon, net.geom_lat, crs=crs)
        first, last = _bearings(geo_xy, net.geom_ptr)
        turn = (first[dst] - last[src] + 180.0) % 360.0 - 180.0
        seg_len = attrs[:, 0]
        weight = (seg_len[src] + seg_len[dst]) / 2.0
        edge_index = np.stack([src, dst])
        edge_attr = np.stack([weight, turn.astype(np.float32)], 1).astype(np.float32)
        edge_weight = weight.astype(np.float32)
        static = attrs
        static_names = list(EDGE_ATTR_NAMES)
        node_ids = [
            f"{osmid[a]}-{osmid[b]}-{k}" for a, b, k in zip(net.u, net.v, net.key, strict=True)
        ]
        edge_names = list(SEGMENT_EDGE_ATTR_NAMES)
        if not u_turns and n_u:
            meta.setdefault("dropped", {})["segment_transition_u_turn"] = n_u
    else:
        raise ConfigError(f"node={node!r}: expected 'intersection' or 'segment'")
    ctx_feat = _context(lon, lat, ctx, context_radius, crs)
    node_attr = np.concatenate([static, ctx_feat], axis=1).astype(np.float32)
    n = len(lon)
    meta = dict(meta)
    meta.update(
        {
            "variables": [],
            "domain": "road",
            "crs": "EPSG:4326",
            "projected_crs": crs.to_string(),
            "interval": None,
            "spatial_scale": float(np.median(edge_weight)) if len(edge_weight) else None,
            "edge_weight": DISTANCE_M,
            "node_ids": node_ids,
            "road_node": node,
            "edge_attr_names": edge_names,
            "node_attr_names": static_names + (list(CONTEXT_NAMES) if ctx is not None else []),
            "road_classes": list(ROAD_CLASSES),
            "speed_default_kph": dict(DEFAULT_SPEED_KPH),
            "context_radius_m": float(context_radius) if ctx is not None else None,
            "bbox": [float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())],
        }
    )
    meta["dropped"] = {**net.dropped, **meta.get("dropped", {})}
    meta["defaulted"] = dict(net.defaulted)
    meta["counts"] = {**net.counts, "nodes": n, "edges": int(edge_index.shape[1])}
    return STGraph(
        x=torch.zeros((n, 0, 0)),
        mask=torch.zeros((n, 0, 0), dtype=torch.bool),
        pos=pos_tensor(lon, lat),
        edge_index=torch.from_numpy(edge_index.astype(np.int64)),
        edge_weight=torch.from_numpy(np.ascontiguousarray(edge_weight, dtype=np.float32)),
        edge_attr=torch.from_numpy(np.ascontiguousarray(edge_attr)),
        node_attr=torch.from_numpy(node_attr),
        road_geom=torch.from_numpy(geom),
        road_geom_ptr=torch.from_numpy(net.geom_ptr.astype(np.int64)),
        meta=meta,
    )
