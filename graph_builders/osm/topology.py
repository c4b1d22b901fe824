"""Road topology from ways: directed edges, bbox clipping, largest component, simplification.

Everything here works on flat numpy arrays (a directed multigraph as ``u, v`` index arrays) instead
of a networkx graph; only the walk along chains of degree-2 nodes is a Python loop, linear in the
number of edges. The rules are OSMnx's, so counts agree with ``osmnx.graph_from_xml``:

* edges follow each way's node order, both directions unless one-way (``oneway=-1`` reverses);
* ``retain_all=False`` keeps the largest weakly connected component;
* simplification (``osmnx.simplification.simplify_graph``): a node is an *endpoint* when it has a
  self-loop, no in- or no out-edge, or not exactly two neighbours with degree 2 or 4; every chain of
  non-endpoints between two endpoints becomes one edge (its geometry is the chain), and rings
  without any endpoint are removed.

Merged attributes stay consistent with the parts: length is the sum, speed the one that keeps the
travel time (length / sum of part travel times), lanes the length-weighted mean, road class the class
covering most of the length, one-way true only when every part is.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from graph_builders.osm.tags import (
    DEFAULT_SPEED_KPH,
    ROAD_CLASSES,
    parse_lanes,
    parse_speed,
    road_class,
)
from stgraph.errors import ConfigError
from stgraph.utils.geo import haversine_m as _haversine_m

#: Earth radius (m) for great-circle lengths; OSMnx's value, so lengths agree with it.
EARTH_RADIUS_M = 6_371_009.0
EDGE_ATTR_NAMES: tuple[str, ...] = (
    "length_m",
    "speed_kph",
    "lanes",
    "oneway",
    "road_class",
    "speed_tagged",
    "lanes_tagged",
)


def haversine_m(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in metres between arrays of points (degrees), on OSMnx's radius."""
    return _haversine_m(lon1, lat1, lon2, lat2, radius=EARTH_RADIUS_M)


@dataclass
class RoadNet:
    """A directed road multigraph with edge polylines and attributes (all numpy).

    Attributes:
        node_osmid: int64 ``[N]``; ``lon``, ``lat``: float64 ``[N]``.
        u, v: int64 ``[E]`` node indices; ``key``: int64 ``[E]`` index among parallel ``(u, v)``.
        geom_ptr: int64 ``[E + 1]``; ``geom_lon``, ``geom_lat``: float64 ``[P]``: the polyline of
            edge ``e`` (from ``u`` to ``v``) is ``geom_*[geom_ptr[e]:geom_ptr[e + 1]]``.
        attrs: float64 ``[E, F]`` in :data:`EDGE_ATTR_NAMES` order.
        dropped: records removed, by reason; defaulted: values filled in, by reason.
    """

    node_osmid: np.ndarray
    lon: np.ndarray
    lat: np.ndarray
    u: np.ndarray
    v: np.ndarray
    key: np.ndarray
    geom_ptr: np.ndarray
    geom_lon: np.ndarray
    geom_lat: np.ndarray
    attrs: np.ndarray
    dropped: dict[str, int] = field(default_factory=dict)
    defaulted: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


_parse_speed = lru_cache(maxsize=4096)(parse_speed)
_parse_lanes = lru_cache(maxsize=4096)(parse_lanes)


def way_attributes(
    tags: list[dict[str, str]], direction: np.ndarray, *, speed_fallback: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """Per way part, forward and backward speed (km/h) and lanes, class code and tag flags.

    Returns ``(cls [W], speed [W, 2], lanes [W, 2], speed_tagged [W, 2], lanes_tagged [W, 2],
    defaulted)`` with column 0 for travel along the node order and 1 against it; ``defaulted``
    counts way parts (not directions) by reason.
    """
    w = len(tags)
    nan = float("nan")
    cls_l: list[int] = []
    speed_l: list[tuple[float, float]] = []
    lanes_l: list[tuple[float, float]] = []
    hows: Counter[str] = Counter()
    # plain Python lists (element-wise numpy writes cost more than the parsing); the parsers are
    # cached per tag value: the same few maxspeed / lanes strings repeat over a whole extract
    for t, d in zip(tags, direction.tolist(), strict=True):
        get = t.get
        cls_l.append(road_class(get("highway")))
        base, how = _parse_speed(get("maxspeed"))
        hows[how] += 1
        fwd = _parse_speed(get("maxspeed:forward"))[0]
        bwd = _parse_speed(get("maxspeed:backward"))[0]
        fwd = base if fwd is None else fwd
        bwd = base if bwd is None else bwd
        speed_l.append((nan if fwd is None else fwd, nan if bwd is None else bwd))
        total = _parse_lanes(get("lanes"))
        pair = []
        for side in ("lanes:forward", "lanes:backward"):
            side_lanes = _parse_lanes(get(side))
            if side_lanes is None and total is not None:
                side_lanes = total if d != 0 else total / 2.0
            pair.append(nan if side_lanes is None else side_lanes)
        lanes_l.append((pair[0], pair[1]))
    cls = np.asarray(cls_l, dtype=np.int64).reshape(w)
    speed = np.asarray(speed_l, dtype=np.float64).reshape(w, 2)
    lanes = np.asarray(lanes_l, dtype=np.float64).reshape(w, 2)
    speed_tagged = np.isfinite(speed).astype(np.float64)
    lanes_tagged = np.isfinite(lanes).astype(np.float64)
    defaulted: dict[str, int] = {}
    if hows["unparseable"]:
        defaulted["maxspeed_unparseable"] = hows["unparseable"]
    if hows["implicit"]:
        defaulted["maxspeed_implicit_zone"] = hows["implicit"]
    missing = ~np.isfinite(speed)
    if missing.any():
        fill = np.array([DEFAULT_SPEED_KPH[c] for c in ROAD_CLASSES])
        n_mean = 0
        if speed_fallback == "impute":
            for c in np.unique(cls[missing.any(1)]):
                obs = speed[cls == c]
                obs = obs[np.isfinite(obs)]
                if obs.size:
                    fill[c] = obs.mean()
                    n_mean += int(missing[cls == c].any(1).sum())
        elif speed_fallback != "class":
            raise ConfigError(f"speed_fallback={speed_fallback!r}: expected 'impute' or 'class'")
        rows, cols = np.nonzero(missing)
        speed[rows, cols] = fill[cls[rows]]
        n_total = int(missing.any(1).sum())
        if n_mean:
            defaulted["speed_kph_from_class_mean_in_extract"] = n_mean
        if n_total - n_mean:
            defaulted["speed_kph_from_class_default_table"] = n_total - n_mean
    lanes_missing = ~np.isfinite(lanes)
    if lanes_missing.any():
        defaulted["lanes_missing_set_to_1"] = int(lanes_missing.any(1).sum())
        lanes[lanes_missing] = 1.0
    return cls, speed, lanes, speed_tagged, lanes_tagged, defaulted


def edges_from_ways(ways, *, speed_fallback: str = "impute") -> RoadNet:
    """The unsimplified directed multigraph of :class:`~graph_builders.osm.reader.RawWays`."""
    ptr, refs = ways.ptr, ways.refs
    n_parts = len(ways.way_ids)
    part_of = np.repeat(np.arange(n_parts), np.diff(ptr))
    is_last = np.zeros(len(refs), dtype=bool)
    is_last[ptr[1:] - 1] = True
    pos = np.nonzero(~is_last)[0]
    pos_way = part_of[pos]
    d = ways.direction[pos_way]
    fwd = d >= 0
    bwd = d <= 0
    src = np.concatenate([pos[fwd], pos[bwd] + 1])
    dst = np.concatenate([pos[fwd] + 1, pos[bwd]])
    e_way = np.concatenate([pos_way[fwd], pos_way[bwd]])
    side = np.concatenate([np.zeros(fwd.sum(), np.int64), np.ones(bwd.sum(), np.int64)])
    # keep OSMnx's insertion order (way by way: forward edges, then the reverse ones)
    order = np.lexsort((side, e_way))
    src, dst, e_way, side = src[order], dst[order], e_way[order], side[order]

    node_osmid, first, inverse = np.unique(refs, return_index=True, return_inverse=True)
    lon, lat = ways.lon[first], ways.lat[first]
    u, v = inverse[src], inverse[dst]
    length = haversine_m(lon[u], lat[u], lon[v], lat[v])
    cls, speed, lanes, s_tag, l_tag, defaulted = way_attributes(
        ways.tags, ways.direction, speed_fallback=speed_fallback
    )
    oneway = (ways.direction[e_way] != 0).astype(np.float64)
    attrs = np.stack(
        [
            length,
            speed[e_way, side],
            lanes[e_way, side],
            oneway,
            cls[e_way].astype(np.float64),
            s_tag[e_way, side],
            l_tag[e_way, side],
        ],
        axis=1,
    )
    geom_ptr = np.arange(0, 2 * len(u) + 1, 2, dtype=np.int64)
    gidx = np.stack([u, v], 1).ravel()
    net = RoadNet(
        node_osmid=node_osmid,
        lon=lon,
        lat=lat,
        u=u.astype(np.int64),
        v=v.astype(np.int64),
        key=np.zeros(len(u), dtype=np.int64),
        geom_ptr=geom_ptr,
        geom_lon=lon[gidx],
        geom_lat=lat[gidx],
        attrs=attrs,
        defaulted=defaulted,
    )
    net.key = parallel_keys(net.u, net.v, len(lon))
    net.counts = {"raw_nodes": len(lon), "raw_edges": len(u)}
    return net


def parallel_keys(u: np.ndarray, v: np.ndarray, n: int) -> np.ndarray:
    """``key`` of each edge: its rank among edges with the same ``(u, v)`` (in array order)."""
    code = u.astype(np.int64) * n + v
    order = np.argsort(code, kind="stable")
    sc = code[order]
    start = np.r_[True, sc[1:] != sc[:-1]]
    grp_start = np.maximum.accumulate(np.where(start, np.arange(len(sc)), 0))
    key = np.empty(len(code), dtype=np.int64)
    key[order] = np.arange(len(sc)) - grp_start
    return key


def subgraph(net: RoadNet, keep_node: np.ndarray, keep_edge: np.ndarray | None = None) -> RoadNet:
    """The graph on the kept nodes and the kept edges between them (node indices renumbered)."""
    n = len(net.lon)
    ke = keep_node[net.u] & keep_node[net.v]
    if keep_edge is not None:
        ke &= keep_edge
    remap = np.full(n, -1, dtype=np.int64)
    remap[keep_node] = np.arange(int(keep_node.sum()))
    lens = np.diff(net.geom_ptr)[ke]
    gsel = np.repeat(ke, np.diff(net.geom_ptr))
    gptr = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=gptr[1:])
    u, v = remap[net.u[ke]], remap[net.v[ke]]
    return RoadNet(
        node_osmid=net.node_osmid[keep_node],
        lon=net.lon[keep_node],
        lat=net.lat[keep_node],
        u=u,
        v=v,
        key=parallel_keys(u, v, int(keep_node.sum())),
        geom_ptr=gptr,
        geom_lon=net.geom_lon[gsel],
        geom_lat=net.geom_lat[gsel],
        attrs=net.attrs[ke],
        dropped=dict(net.dropped),
        defaulted=dict(net.defaulted),
        counts=dict(net.counts),
    )


def _add(d: dict[str, int], key: str, n: int) -> None:
    if n:
        d[key] = d.get(key, 0) + int(n)


def clip_bbox(net: RoadNet, bbox: tuple[float, float, float, float]) -> RoadNet:
    """Keep the nodes inside ``bbox = (west, south, east, north)`` and the edges between them."""
    w, s, e, n = bbox
    inside = (net.lon >= w) & (net.lon <= e) & (net.lat >= s) & (net.lat <= n)
    out = subgraph(net, inside)
    _add(out.dropped, "node_outside_bbox", (~inside).sum())
    _add(out.dropped, "edge_leaving_bbox", len(net.u) - len(out.u))
    return drop_isolated(out, reason="node_isolated_by_bbox_clip")


def drop_isolated(net: RoadNet, *, reason: str) -> RoadNet:
    """Remove nodes without any edge, counting them under ``reason``."""
    deg = np.bincount(np.concatenate([net.u, net.v]), minlength=len(net.lon))
    keep = deg > 0
    if keep.all():
        return net
    out = subgraph(net, keep)
    _add(out.dropped, reason, (~keep).sum())
    return out


def largest_component(net: RoadNet, *, simplified: bool = True) -> RoadNet:
    """The largest weakly connected component (ties: the one with the smallest node index).

    The other components are counted as the graph would have them (``simplified``: after
    :func:`simplify`, as ``retain_all=True`` would keep them): ``dropped`` gets
    ``node_outside_largest_component`` and ``edge_outside_largest_component`` in graph nodes and
    edges; ``counts`` the raw OSM way nodes and way segments they hold
    (``osm_nodes_outside_largest_component``, ``osm_segments_outside_largest_component``).
    """
    n = len(net.lon)
    if n == 0:
        return net
    adj = coo_matrix((np.ones(len(net.u)), (net.u, net.v)), shape=(n, n))
    n_comp, label = connected_components(adj, directed=True, connection="weak")
    if n_comp == 1:
        return net
    sizes = np.bincount(label)
    keep = label == int(np.argmax(sizes))
    out = subgraph(net, keep)
    rest = subgraph(net, ~keep)
    if simplified:
        rest = simplify(rest)
    _add(out.dropped, "node_outside_largest_component", len(rest.lon))
    _add(out.dropped, "edge_outside_largest_component", len(rest.u))
    out.counts["osm_nodes_outside_largest_component"] = int((~keep).sum())
    out.counts["osm_segments_outside_largest_component"] = len(net.u) - len(out.u)
    out.counts["components"] = int(n_comp)
    return out


def endpoints(net: RoadNet) -> np.ndarray:
    """OSMnx's endpoint rule, vectorised: bool ``[N]``."""
    n = len(net.lon)
    u, v = net.u, net.v
    indeg = np.bincount(v, minlength=n)
    outdeg = np.bincount(u, minlength=n)
    loop = np.zeros(n, dtype=bool)
    loop[u[u == v]] = True
    a = np.concatenate([u, v])
    b = np.concatenate([v, u])
    nb = a != b
    pairs = np.unique(a[nb] * np.int64(n) + b[nb])
    n_nbr = np.bincount(pairs // n, minlength=n)
    deg = indeg + outdeg
    simple = (n_nbr == 2) & ((deg == 2) | (deg == 4))
    return loop | (indeg == 0) | (outdeg == 0) | ~simple


def simplify(net: RoadNet) -> RoadNet:
    """Merge chains of non-endpoint nodes into single edges (see the module docstring)."""
    n = len(net.lon)
    is_end = endpoints(net)
    # unique successors (CSR, sorted) and the first edge of each (u, v) pair
    code = net.u * np.int64(n) + net.v
    uniq, first_edge = np.unique(code, return_index=True)
    su, sv = uniq // n, uniq % n
    sptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(su, minlength=n), out=sptr[1:])
    sv_l = sv.tolist()
    bounds = sptr.tolist()
    succ = [sv_l[bounds[i] : bounds[i + 1]] for i in range(n)]
    edge_of = dict(zip(uniq.tolist(), first_edge.tolist(), strict=True))
    end_list = np.nonzero(is_end)[0].tolist()
    is_end_l = is_end.tolist()

    paths: list[list[int]] = []
    n_unexpected = 0
    for e in end_list:
        for s in succ[e]:
            if is_end_l[s]:
                continue
            path = [e, s]
            seen = {e, s}
            for nxt in succ[s]:
                if nxt in seen:
                    continue
                path.append(nxt)
                seen.add(nxt)
                cur = nxt
                while not is_end_l[cur]:
                    cand = [c for c in succ[cur] if c not in seen]
                    if len(cand) == 1:
                        cur = cand[0]
                        path.append(cur)
                        seen.add(cur)
                    elif not cand:
                        if e in succ[cur]:
                            path.append(e)
                        else:
                            n_unexpected += 1
                        break
                    else:  # cannot happen for a non-endpoint (two neighbours)
                        raise RuntimeError(
                            f"simplify: node {net.node_osmid[cur]} has {len(cand)} ways on"
                        )
                break
            paths.append(path)
    if n_unexpected:
        warnings.warn(f"simplify: {n_unexpected} chains ended at a non-endpoint", stacklevel=2)

    keep_node = is_end.copy()
    for p in paths:
        keep_node[p[-1]] = True
    direct = keep_node[net.u] & keep_node[net.v]
    # edges of each chain, in order
    chain_edges = [[edge_of[a * n + b] for a, b in zip(p[:-1], p[1:], strict=True)] for p in paths]
    c_len = np.fromiter((len(c) for c in chain_edges), dtype=np.int64, count=len(chain_edges))
    c_ptr = np.zeros(len(paths) + 1, dtype=np.int64)
    np.cumsum(c_len, out=c_ptr[1:])
    flat = np.fromiter((x for c in chain_edges for x in c), dtype=np.int64, count=int(c_ptr[-1]))
    flat_nodes = np.fromiter(
        (x for p in paths for x in p), dtype=np.int64, count=int(c_ptr[-1] + len(paths))
    )

    d_idx = np.nonzero(direct)[0]
    attrs = np.concatenate([net.attrs[d_idx], _merge_attrs(net.attrs, flat, c_ptr)], axis=0)
    u_all = np.concatenate([net.u[d_idx], np.asarray([p[0] for p in paths], dtype=np.int64)])
    v_all = np.concatenate([net.v[d_idx], np.asarray([p[-1] for p in paths], dtype=np.int64)])
    # geometry: direct edges keep theirs; chains take their node sequence
    d_len = np.diff(net.geom_ptr)[d_idx]
    d_sel = np.repeat(direct, np.diff(net.geom_ptr))
    g_len = np.concatenate([d_len, c_len + 1])
    gptr = np.zeros(len(g_len) + 1, dtype=np.int64)
    np.cumsum(g_len, out=gptr[1:])
    glon = np.concatenate([net.geom_lon[d_sel], net.lon[flat_nodes]])
    glat = np.concatenate([net.geom_lat[d_sel], net.lat[flat_nodes]])

    remap = np.full(n, -1, dtype=np.int64)
    remap[keep_node] = np.arange(int(keep_node.sum()))
    u_new, v_new = remap[u_all], remap[v_all]
    n_new = int(keep_node.sum())
    out = RoadNet(
        node_osmid=net.node_osmid[keep_node],
        lon=net.lon[keep_node],
        lat=net.lat[keep_node],
        u=u_new,
        v=v_new,
        key=parallel_keys(u_new, v_new, n_new),
        geom_ptr=gptr,
        geom_lon=glon,
        geom_lat=glat,
        attrs=attrs,
        dropped=dict(net.dropped),
        defaulted=dict(net.defaulted),
        counts=dict(net.counts),
    )
    # rings without any endpoint vanish with their nodes (OSMnx removes them too)
    covered = np.zeros(n, dtype=bool)
    covered[flat_nodes] = True
    ring = ~keep_node & ~covered
    _add(out.dropped, "node_in_isolated_ring", ring.sum())
    out.counts["simplified_away_nodes"] = int((~keep_node).sum() - ring.sum())
    return drop_isolated(out, reason="node_isolated_after_simplify")


def _merge_attrs(attrs: np.ndarray, flat: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    """Aggregate the attributes of each chain's edges (``flat[ptr[i]:ptr[i+1]]``)."""
    m = len(ptr) - 1
    out = np.zeros((m, attrs.shape[1]))
    if m == 0:
        return out
    a = attrs[flat]
    starts = ptr[:-1]
    length = np.add.reduceat(a[:, 0], starts)
    w = a[:, 0]
    out[:, 0] = length
    safe = np.where(length > 0, length, 1.0)
    hours = np.add.reduceat(w / a[:, 1], starts)
    out[:, 1] = np.where(hours > 0, length / np.where(hours > 0, hours, 1.0), a[starts, 1])
    out[:, 2] = np.add.reduceat(w * a[:, 2], starts) / safe
    out[:, 3] = np.minimum.reduceat(a[:, 3], starts)
    cls = a[:, 4].astype(np.int64)
    chain = np.repeat(np.arange(m), np.diff(ptr))
    by_cls = np.zeros((m, len(ROAD_CLASSES)))
    np.add.at(by_cls, (chain, cls), w + 1e-9)
    out[:, 4] = np.argmax(by_cls, axis=1)
    out[:, 5] = np.add.reduceat(w * a[:, 5], starts) / safe
    out[:, 6] = np.add.reduceat(w * a[:, 6], starts) / safe
    zero = length <= 0
    if zero.any():
        out[zero, 2] = a[starts[zero], 2]
        out[zero, 5] = a[starts[zero], 5]
        out[zero, 6] = a[starts[zero], 6]
    return out
