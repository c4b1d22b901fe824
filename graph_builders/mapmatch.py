"""Map matching of GPS points onto the directed road segments of a road graph.

A light hidden-Markov matcher (Newson & Krumm 2009, simplified): candidate segments within a radius
(a KD-tree over points sampled along the segment polylines, then exact point-to-polyline
distances), an emission cost from the distance and the heading difference, and a transition cost
from how well the distance along the road between two consecutive candidates agrees with the
straight distance between the two GPS points; Viterbi per trajectory segment.

The road graph is an :class:`~stgraph.data.STGraph` from :func:`graph_builders.osm.road_graph`, in
either mode: intersection graphs are matched onto their edges, segment graphs onto their nodes.
Polylines come from the graph's ``road_geom`` (straight lines between the end nodes without it).

:func:`simulate_tracks` makes GPS-like tracks with known ground truth by walking shortest paths of
a real road graph, to measure matching accuracy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyproj import CRS, Transformer
from scipy import sparse
from scipy.spatial import cKDTree

from graph_builders.osm.spatial import segment_geometry
from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError, DataFormatError
from stgraph.utils.geo import project

__all__ = ["MetricProjection", "RoadIndex", "match_to_roads", "road_index", "simulate_tracks"]


@dataclass(frozen=True)
class MetricProjection:
    """Lon/lat degrees <-> metres in one UTM zone (:func:`stgraph.utils.geo.project`, pyproj).

    The zone is the one of the points' centre (:func:`about`); ``__call__`` projects ``[M]``
    lon/lat to ``[M, 2]`` metres, :meth:`inverse` maps ``[M, 2]`` metres back to lon/lat.
    """

    crs: CRS

    @classmethod
    def about(cls, lon: np.ndarray, lat: np.ndarray) -> MetricProjection:
        """The UTM zone of the points' median position (as :func:`stgraph.utils.geo.project`)."""
        return cls(project(lon, lat)[1])

    def __call__(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        return project(lon, lat, crs=self.crs)[0]

    def inverse(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=np.float64)
        back = Transformer.from_crs(self.crs, 4326, always_xy=True)
        lon, lat = back.transform(xy[..., 0], xy[..., 1])
        return np.stack([lon, lat], axis=-1)


@dataclass
class RoadIndex:
    """Projected road segments of a road graph, ready for candidate search.

    Segment ``s`` is an edge (intersection graph) or a node (segment graph); it runs from road node
    ``src[s]`` to ``dst[s]`` along pieces ``piece_ptr[s]:piece_ptr[s + 1]``.
    """

    proj: MetricProjection
    a: np.ndarray  # [P, 2] piece start (m)
    b: np.ndarray  # [P, 2] piece end (m)
    piece_seg: np.ndarray  # [P] segment of each piece
    piece_offset: np.ndarray  # [P] distance along the segment where the piece starts (m)
    piece_len: np.ndarray  # [P]
    piece_bearing: np.ndarray  # [P] radians, atan2 convention
    seg_len: np.ndarray  # [S] metres
    src: np.ndarray  # [S] road-node key of the segment's start
    dst: np.ndarray  # [S] road-node key of the segment's end
    tree: cKDTree
    sample_piece: np.ndarray  # [Q] piece of each sample point in the tree
    step: float
    adjacency: sparse.csr_matrix  # road node x road node -> min segment length + 1 (0 = none)
    bbox: tuple[float, float, float, float]
    segment_graph: bool


def road_index(road_graph: STGraph, *, step_m: float = 25.0) -> RoadIndex:
    """Project a road graph's segments and build the KD-tree of points every ``step_m`` along them."""
    if road_graph.pos is None or road_graph.edge_index is None:
        raise DataFormatError(
            "road_graph: needs pos [N, 2] and edge_index [2, E] (from osm.road_graph)"
        )
    seg_graph = (road_graph.meta or {}).get("road_node") == "segment"
    if not seg_graph and road_graph.edge_index.size(1) == 0:
        raise DataFormatError("road_graph: has no edges to match onto")
    coords, ptr = segment_geometry(road_graph)
    proj = MetricProjection.about(coords[:, 0], coords[:, 1])
    xy = proj(coords[:, 0], coords[:, 1])
    n_seg = len(ptr) - 1
    counts = np.diff(ptr)
    if (counts < 2).any():
        raise DataFormatError(
            f"road_graph: segment {int(np.argmax(counts < 2))} has fewer than 2 points"
        )
    # pieces: consecutive coordinate pairs within each polyline
    is_start = np.ones(len(xy), dtype=bool)
    is_start[ptr[1:-1] - 1] = False  # last point of each polyline starts no piece
    is_start[-1] = False
    p0 = np.nonzero(is_start)[0]
    seg_of_coord = np.repeat(np.arange(n_seg), counts)
    piece_seg = seg_of_coord[p0]
    a, b = xy[p0], xy[p0 + 1]
    vec = b - a
    piece_len = np.hypot(vec[:, 0], vec[:, 1])
    cum = np.cumsum(piece_len)
    seg_total = np.bincount(piece_seg, weights=piece_len, minlength=n_seg)
    seg_start_cum = np.cumsum(seg_total) - seg_total
    piece_offset = cum - piece_len - seg_start_cum[piece_seg]
    bearing = np.arctan2(vec[:, 1], vec[:, 0])
    # road-node keys of the segment ends
    if seg_graph:
        first, last = coords[ptr[:-1]], coords[ptr[1:] - 1]
        ends = np.round(np.concatenate([first, last]) * 1e7).astype(np.int64)
        _, keys = np.unique(ends, axis=0, return_inverse=True)
        keys = keys.ravel()
        src, dst = keys[:n_seg], keys[n_seg:]
        n_nodes = int(keys.max()) + 1
    else:
        src, dst = road_graph.edge_index.numpy().astype(np.int64)
        n_nodes = road_graph.num_nodes
    # samples along every piece for the KD-tree
    n_samples = np.maximum(np.ceil(piece_len / step_m).astype(np.int64), 1) + 1
    sample_piece = np.repeat(np.arange(len(a)), n_samples)
    starts = np.cumsum(n_samples) - n_samples
    frac = (np.arange(n_samples.sum()) - np.repeat(starts, n_samples)) / np.repeat(
        n_samples - 1, n_samples
    )
    pts = a[sample_piece] + frac[:, None] * vec[sample_piece]
    tree = cKDTree(pts)
    lens = pd.DataFrame({"s": src, "d": dst, "l": seg_total + 1.0}).groupby(["s", "d"])["l"].min()
    adjacency = sparse.csr_matrix(
        (lens.to_numpy(), (lens.index.get_level_values(0), lens.index.get_level_values(1))),
        shape=(n_nodes, n_nodes),
    )
    bbox = (coords[:, 0].min(), coords[:, 1].min(), coords[:, 0].max(), coords[:, 1].max())
    return RoadIndex(
        proj,
        a,
        b,
        piece_seg,
        piece_offset,
        piece_len,
        bearing,
        seg_total,
        src,
        dst,
        tree,
        sample_piece,
        step_m,
        adjacency,
        bbox,
        seg_graph,
    )


def _candidates(
    index: RoadIndex, xy: np.ndarray, max_dist: float, n_cand: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Up to ``n_cand`` candidate segments per point: ids (-1 = none), distance, fraction, bearing."""
    n = len(xy)
    k_query = max(3 * n_cand, 16)
    _, idx = index.tree.query(
        xy, k=k_query, distance_upper_bound=math.hypot(max_dist, index.step / 2) + 1e-6
    )
    valid = idx < len(index.sample_piece)
    piece = np.where(valid, index.sample_piece[np.minimum(idx, len(index.sample_piece) - 1)], 0)
    # exact distance to each piece found
    a, b = index.a[piece], index.b[piece]
    ab = b - a
    denom = np.maximum((ab**2).sum(-1), 1e-12)
    t = np.clip(((xy[:, None, :] - a) * ab).sum(-1) / denom, 0.0, 1.0)
    foot = a + t[..., None] * ab
    d = np.hypot(*(xy[:, None, :] - foot).transpose(2, 0, 1))
    d = np.where(valid & (d <= max_dist), d, np.inf)
    seg = np.where(np.isfinite(d), index.piece_seg[piece], -1)
    # per row: pieces by exact distance, then the first (nearest) piece of each segment
    order = np.argsort(d, axis=1, kind="stable")
    d, seg = np.take_along_axis(d, order, 1), np.take_along_axis(seg, order, 1)
    piece, t = np.take_along_axis(piece, order, 1), np.take_along_axis(t, order, 1)
    dup = np.zeros(seg.shape, dtype=bool)
    for j in range(1, k_query):
        dup[:, j] = (seg[:, :j] == seg[:, j : j + 1]).any(1)
    seg = np.where(dup, -1, seg)
    # the n_cand nearest distinct segments, compacted to the left
    rank = np.cumsum(seg >= 0, axis=1) - 1
    take = (seg >= 0) & (rank < n_cand)
    rows, cols = np.nonzero(take)
    rank = rank[rows, cols]
    cand = np.full((n, n_cand), -1, dtype=np.int64)
    dist = np.full((n, n_cand), np.inf)
    frac = np.zeros((n, n_cand))
    bear = np.zeros((n, n_cand))
    s_sel, p = seg[rows, cols], piece[rows, cols]
    cand[rows, rank] = s_sel
    dist[rows, rank] = d[rows, cols]
    along = index.piece_offset[p] + t[rows, cols] * index.piece_len[p]
    frac[rows, rank] = along / np.maximum(index.seg_len[s_sel], 1e-9)
    bear[rows, rank] = index.piece_bearing[p]
    return cand, dist, np.clip(frac, 0.0, 1.0), bear


def _point_headings(xy: np.ndarray, segment: np.ndarray, min_move: float) -> np.ndarray:
    """Heading (radians, atan2 convention) from the previous to the next point of the segment."""
    n = len(xy)
    heading = np.full(n, np.nan)
    if n < 2:
        return heading
    ar = np.arange(n)
    prev = np.maximum(ar - 1, 0)
    nxt = np.minimum(ar + 1, n - 1)
    prev = np.where(segment[prev] == segment, prev, ar)
    nxt = np.where(segment[nxt] == segment, nxt, ar)
    vec = xy[nxt] - xy[prev]
    move = np.hypot(vec[:, 0], vec[:, 1])
    ok = move >= min_move
    heading[ok] = np.arctan2(vec[ok, 1], vec[ok, 0])
    return heading


def _transition_costs(
    index: RoadIndex,
    cand: np.ndarray,
    frac: np.ndarray,
    xy: np.ndarray,
    beta: float,
    uturn_cost: float,
    jump_cost: float,
) -> np.ndarray:
    """``[m - 1, C, C]`` costs from the candidates of point i to those of point i + 1."""
    c = cand.shape[1]
    if len(cand) < 2:
        return np.zeros((0, c, c))
    p, q = cand[:-1, :, None], cand[1:, None, :]
    fp, fq = frac[:-1, :, None], frac[1:, None, :]
    pe, qe = np.maximum(p, 0), np.maximum(q, 0)
    lp, lq = index.seg_len[pe], index.seg_len[qe]
    straight = np.hypot(*(xy[1:] - xy[:-1]).T)[:, None, None]
    same = p == q
    adjacent = ~same & (index.dst[pe] == index.src[qe])
    uturn = adjacent & (index.src[pe] == index.dst[qe])
    rows_b, cols_b = np.broadcast_arrays(index.dst[pe], index.src[qe])
    mid = np.asarray(index.adjacency[rows_b.ravel(), cols_b.ravel()]).reshape(rows_b.shape) - 1.0
    two_hop = ~same & ~adjacent & (mid >= 0)
    forward = (fq - fp) * lp
    route = np.full(same.shape, np.nan)
    route = np.where(same, forward, route)
    route = np.where(adjacent, (1 - fp) * lp + fq * lq, route)
    route = np.where(two_hop, (1 - fp) * lp + mid + fq * lq, route)
    cost = np.abs(route - straight) / beta
    # moving backwards along a segment beyond the noise is a U-turn in disguise
    cost = np.where(same & (forward < -beta), np.abs(forward) / beta + uturn_cost, cost)
    cost = np.where(uturn, cost + uturn_cost, cost)
    cost = np.where(np.isnan(route), jump_cost, cost)
    return np.where((p >= 0) & (q >= 0), cost, np.inf)


def match_to_roads(
    lonlat: np.ndarray,
    segment: np.ndarray,
    road_graph: STGraph | None = None,
    *,
    index: RoadIndex | None = None,
    max_dist_m: float = 50.0,
    sigma_m: float = 10.0,
    beta_m: float = 10.0,
    heading_weight: float = 2.0,
    uturn_cost: float = 3.0,
    jump_cost: float = 12.0,
    heading: np.ndarray | None = None,
    method: str = "hmm",
    candidates: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Match GPS points to the directed road segments of a road graph.

    Candidates are the ``candidates`` nearest segments within ``max_dist_m`` (both directions of a
    two-way road are separate segments). Emission cost of candidate ``s`` for a point at distance
    ``d``: :math:`\tfrac12 (d/\sigma)^2 + w_h (1 - \cos(\theta - \theta_s))`, where
    :math:`\theta` is the point's heading (from its neighbours, or a ``heading`` column) and
    :math:`\theta_s` the bearing of the road at the foot point. With ``method="hmm"``, the
    transition cost between candidates of consecutive points is
    :math:`|\text{route} - \text{straight}| / \beta`, route being the distance along the road when
    the second candidate is the same segment, the next one, or the one after next; a U-turn adds
    ``uturn_cost``; unconnected candidates cost ``jump_cost``. Viterbi runs per trajectory
    segment; ``method="nearest"`` takes each point's cheapest candidate.

    Args:
        lonlat: ``[n, 2]`` lon, lat, sorted by trajectory segment then time.
        segment: ``[n]`` trajectory segment id of each point (continuity is only used within one).
        road_graph: an STGraph from ``osm.road_graph`` (intersection or segment mode).
        index: a prebuilt :func:`road_index` (then ``road_graph`` may be ``None``).
        heading: optional ``[n]`` compass bearings (degrees clockwise from north).

    Returns:
        ``(seg, dist_m, frac)`` per point: the matched road segment (edge index for intersection
        graphs, node index for segment graphs; ``-1`` when nothing is within ``max_dist_m``), the
        distance to it (m) and the position along it (0 = start, 1 = end).
    """
    if method not in ("hmm", "nearest"):
        raise ConfigError(f"method: expected 'hmm' or 'nearest', got {method!r}")
    if index is None:
        if road_graph is None:
            raise ConfigError("match_to_roads: give road_graph or index")
        index = road_index(road_graph, step_m=max(max_dist_m, 5.0))
    lonlat = np.asarray(lonlat, dtype=np.float64)
    segment = np.asarray(segment)
    xy = index.proj(lonlat[:, 0], lonlat[:, 1])
    n = len(xy)
    cand, dist, frac, bear = _candidates(index, xy, max_dist_m, candidates)
    if heading is None:
        head = _point_headings(xy, segment, min_move=max(2.0 * sigma_m, 5.0))
    else:
        head = np.radians(90.0 - np.asarray(heading, dtype=np.float64))
    emit = 0.5 * (dist / sigma_m) ** 2
    head_cost = heading_weight * (1.0 - np.cos(bear - head[:, None]))
    emit = emit + np.where(np.isfinite(head)[:, None], head_cost, 0.0)
    emit = np.where(cand >= 0, emit, np.inf)
    matched = np.isfinite(emit).any(1)
    out_s = np.full(n, -1, dtype=np.int64)
    out_d = np.full(n, np.nan)
    out_f = np.full(n, np.nan)
    if method == "nearest" or not matched.any():
        best = np.argmin(emit, axis=1)
        r = np.arange(n)
        out_s[matched] = cand[r, best][matched]
        out_d[matched] = dist[r, best][matched]
        out_f[matched] = frac[r, best][matched]
        return out_s, out_d, out_f

    # Viterbi over the points that have candidates; unmatched points do not break continuity
    idx = np.nonzero(matched)[0]
    cand, dist, frac, emit = cand[idx], dist[idx], frac[idx], emit[idx]
    seg = segment[idx]
    m = len(idx)
    start = np.ones(m, dtype=bool)
    start[1:] = seg[1:] != seg[:-1]
    trans = _transition_costs(index, cand, frac, xy[idx], beta_m, uturn_cost, jump_cost)
    choice = _viterbi(emit, trans, start)
    r = np.arange(m)
    out_s[idx] = cand[r, choice]
    out_d[idx] = dist[r, choice]
    out_f[idx] = frac[r, choice]
    return out_s, out_d, out_f


def _viterbi(emit: np.ndarray, trans: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Best candidate per point; all trajectory segments advance together, one position at a time.

    ``emit`` ``[m, C]``, ``trans`` ``[m - 1, C, C]`` (from point i to i + 1), ``start`` marks the
    first point of each segment (points are grouped by segment, in time order).
    """
    m, c = emit.shape
    first = np.nonzero(start)[0]
    length = np.diff(np.r_[first, m])
    back = np.zeros((m, c), dtype=np.int64)
    total = np.empty((m, c))
    acc = emit[first].copy()
    total[first] = acc
    order = np.argsort(-length, kind="stable")  # segments by decreasing length: active = a prefix
    first, length, acc = first[order], length[order], acc[order]
    for k in range(1, int(length.max()) if len(length) else 0):
        n_act = int(np.searchsorted(-length, -k, side="left"))  # segments with length > k
        i = first[:n_act] + k
        step = acc[:n_act, :, None] + trans[i - 1]
        arg = step.argmin(1)
        back[i] = arg
        acc = acc[:n_act]
        acc = np.take_along_axis(step, arg[:, None, :], 1)[:, 0, :] + emit[i]
        total[i] = acc
    choice = np.empty(m, dtype=np.int64)
    cur = total[first + length - 1].argmin(1)  # each segment's best final candidate
    for k in range(int(length.max()) - 1 if len(length) else -1, -1, -1):
        n_act = int(np.searchsorted(-length, -k, side="left"))
        i = first[:n_act] + k
        choice[i] = cur[:n_act]
        if k > 0:
            cur[:n_act] = back[i, cur[:n_act]]
    return choice


def simulate_tracks(
    road_graph: STGraph,
    *,
    n_tracks: int = 20,
    spacing_m: float = 20.0,
    noise_m: float = 5.0,
    speed_mps: float = 10.0,
    min_length_m: float = 500.0,
    start_time: int = 1_546_300_800,
    seed: int = 0,
) -> pd.DataFrame:
    """GPS-like tracks along shortest paths between random nodes of a real road graph.

    For measuring map-matching accuracy against ground truth: each track follows the shortest path
    (by segment length, ``networkx``) between two random road nodes, along the segments' real
    polylines (``road_geom``), with a fix every ``spacing_m`` metres, Gaussian noise of ``noise_m``
    metres per axis and constant ``speed_mps``. Paths shorter than ``min_length_m`` are redrawn.
    Deterministic under ``seed``.

    Returns:
        A DataFrame with ``track, time, lon, lat`` and the ground truth ``true_segment`` (edge index
        for intersection graphs, node index for segment graphs), ``true_lon``, ``true_lat``.
    """
    import networkx as nx

    index = road_index(road_graph)
    rng = np.random.default_rng(seed)
    g = nx.DiGraph()
    for s in np.argsort(-index.seg_len):  # shortest parallel segment wins
        u, v = int(index.src[s]), int(index.dst[s])
        if u != v:
            g.add_edge(u, v, length=float(index.seg_len[s]), seg=int(s))
    nodes = np.array(sorted(g.nodes))
    piece_start = np.searchsorted(index.piece_seg, np.arange(len(index.seg_len)))
    piece_end = np.searchsorted(index.piece_seg, np.arange(len(index.seg_len)), side="right")
    frames = []
    made = tries = 0
    while made < n_tracks:
        tries += 1
        if tries > 200 * n_tracks:
            raise DataFormatError(
                f"road_graph: simulate_tracks made only {made} of n_tracks={n_tracks} tracks in "
                f"{tries - 1} tries; the road graph has too few connected node pairs"
            )
        s_node, d_node = rng.choice(nodes, 2, replace=False)
        try:
            path = nx.shortest_path(g, int(s_node), int(d_node), weight="length")
        except nx.NetworkXNoPath:
            continue
        segs = [g.edges[u, v]["seg"] for u, v in zip(path[:-1], path[1:], strict=False)]
        pieces = np.concatenate([np.arange(piece_start[s], piece_end[s]) for s in segs])
        plen = index.piece_len[pieces]
        total = plen.sum()
        if total < min_length_m:
            continue
        cum = np.r_[0.0, np.cumsum(plen)]
        along = np.arange(0.0, total, spacing_m)
        k = np.minimum(np.searchsorted(cum, along, side="right") - 1, len(pieces) - 1)
        p = pieces[k]
        f = (along - cum[k]) / np.maximum(plen[k], 1e-9)
        true_xy = index.a[p] + f[:, None] * (index.b[p] - index.a[p])
        noisy = true_xy + rng.normal(0.0, noise_m, true_xy.shape)
        ll, true_ll = index.proj.inverse(noisy), index.proj.inverse(true_xy)
        frames.append(
            pd.DataFrame(
                {
                    "track": made,
                    "time": start_time + made * 3600 + np.round(along / speed_mps).astype(np.int64),
                    "lon": ll[:, 0],
                    "lat": ll[:, 1],
                    "true_segment": index.piece_seg[p],
                    "true_lon": true_ll[:, 0],
                    "true_lat": true_ll[:, 1],
                }
            )
        )
        made += 1
    return pd.concat(frames, ignore_index=True)
