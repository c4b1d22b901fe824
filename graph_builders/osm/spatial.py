"""Geometry helpers for road graphs: projection, edge polylines, nearest nodes and edges.

These are what the other builders (sensors, trajectories, events, fusion) use to put points on a
road graph. Distances are computed on projected coordinates (the UTM zone of the graph's centre,
via pyproj): nearest nodes with a ``scipy.spatial.cKDTree``, nearest edges with a
``shapely.STRtree`` over the edge polylines (exact point-to-polyline distance).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import numpy as np
import torch
from pyproj import CRS
from scipy.spatial import cKDTree

from stgraph.errors import DataFormatError
from stgraph.utils.extras import require
from stgraph.utils.geo import project, utm_crs

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from stgraph.data import STGraph


def graph_crs(graph) -> CRS:
    """The projected CRS used for ``graph`` (``meta["projected_crs"]``, else the UTM of its centre)."""
    code = (graph.meta or {}).get("projected_crs")
    if code:
        return CRS.from_user_input(code)
    pos = graph.pos.double().numpy()
    return utm_crs(float(np.median(pos[:, 0])), float(np.median(pos[:, 1])))


def _is_segment_graph(graph) -> bool:
    return (graph.meta or {}).get("road_node") == "segment"


def segment_geometry(graph) -> tuple[np.ndarray, np.ndarray]:
    """The road-segment polylines of a road graph: ``(coords [P, 2] lon/lat, ptr [S + 1])``.

    Segment ``i`` is ``coords[ptr[i]:ptr[i + 1]]`` in travel direction. In intersection mode the
    segments are the edges (``S = E``, same order as ``edge_index``); in segment mode they are the
    nodes (``S = N``; ``STGraph.select_nodes`` keeps them in step). Graphs without stored
    geometry (``road_geom``/``road_geom_ptr``), or whose geometry does not match the segments, get
    straight lines between the endpoints (intersection mode) or raise (segment mode).
    """
    coords = getattr(graph, "road_geom", None)
    ptr = getattr(graph, "road_geom_ptr", None)
    n_seg = graph.num_nodes if _is_segment_graph(graph) else graph.edge_index.size(1)
    if coords is not None and ptr is not None and ptr.numel() == n_seg + 1:
        return coords.double().numpy(), ptr.long().numpy()
    if _is_segment_graph(graph):
        raise DataFormatError("segment_geometry: this segment graph has no (matching) road_geom")
    pos = graph.pos.double().numpy()
    ei = graph.edge_index.numpy()
    coords = np.stack([pos[ei[0]], pos[ei[1]]], 1).reshape(-1, 2)
    return coords, np.arange(0, 2 * ei.shape[1] + 1, 2, dtype=np.int64)


def edge_geometry(graph) -> tuple[np.ndarray, np.ndarray]:
    """Polylines of the edges of an intersection-mode road graph (see :func:`segment_geometry`)."""
    if _is_segment_graph(graph):
        raise DataFormatError(
            "edge_geometry: in a segment graph the road segments are the nodes; use segment_geometry"
        )
    return segment_geometry(graph)


def _shapely():
    """shapely (the ``[osm]`` extra), imported when distances to road lines are needed."""
    return require("shapely", "distances to road segments (snapping to roads)")


def _lines(coords_xy: np.ndarray, ptr: np.ndarray) -> np.ndarray:
    idx = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    return _shapely().linestrings(coords_xy, indices=idx)


@overload
def nearest_nodes(
    graph: STGraph, lon: ArrayLike, lat: ArrayLike, *, return_dist: Literal[False] = ...
) -> np.ndarray: ...
@overload
def nearest_nodes(
    graph: STGraph, lon: ArrayLike, lat: ArrayLike, *, return_dist: Literal[True]
) -> tuple[np.ndarray, np.ndarray]: ...
def nearest_nodes(
    graph: STGraph, lon: ArrayLike, lat: ArrayLike, *, return_dist: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The node nearest to each point (vectorised).

    In intersection mode the nearest intersection (KD-tree on projected node positions); in
    segment mode the nearest road segment, by distance to its polyline.

    Args:
        graph: a road graph from :func:`~graph_builders.osm.road_graph`.
        lon, lat: arrays ``[M]`` of degrees.
        return_dist: also return the distances in metres (OSMnx's convention).

    Returns:
        int64 ``[M]`` node indices; with ``return_dist=True`` ``(indices, metres [M])``.
    """
    crs = graph_crs(graph)
    pts, _ = project(lon, lat, crs=crs)
    if _is_segment_graph(graph):
        idx, dist = _nearest_lines(graph, pts, crs)
    else:
        node_xy, _ = project(
            graph.pos[:, 0].double().numpy(), graph.pos[:, 1].double().numpy(), crs=crs
        )
        dist, idx = cKDTree(node_xy).query(pts)
        idx = idx.astype(np.int64)
    return (idx, dist) if return_dist else idx


@overload
def nearest_edges(
    graph: STGraph, lon: ArrayLike, lat: ArrayLike, *, return_dist: Literal[False] = ...
) -> np.ndarray: ...
@overload
def nearest_edges(
    graph: STGraph, lon: ArrayLike, lat: ArrayLike, *, return_dist: Literal[True]
) -> tuple[np.ndarray, np.ndarray]: ...
def nearest_edges(
    graph: STGraph, lon: ArrayLike, lat: ArrayLike, *, return_dist: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The edge nearest to each point, by exact distance to the edge polylines (vectorised).

    Args:
        graph: an intersection-mode road graph.
        lon, lat: arrays ``[M]`` of degrees.
        return_dist: also return distances in metres (OSMnx's convention).

    Returns:
        int64 ``[M]`` edge indices (into ``edge_index``); with ``return_dist=True``
        ``(indices, metres [M])``. For every equally near edge use :func:`nearest_edges_all`.
    """
    if _is_segment_graph(graph):
        raise DataFormatError(
            "nearest_edges: segment graphs have segments as nodes; use nearest_nodes"
        )
    crs = graph_crs(graph)
    pts, _ = project(lon, lat, crs=crs)
    idx, dist = _nearest_lines(graph, pts, crs)
    return (idx, dist) if return_dist else idx


def nearest_edges_all(
    graph: STGraph, lon: ArrayLike, lat: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every equally near edge of each point (both directions of a two-way street, or all the
    edges meeting at the nearest node): ``(point_index [K], edge_index [K], metres [K])``."""
    if _is_segment_graph(graph):
        raise DataFormatError(
            "nearest_edges_all: segment graphs have segments as nodes; use nearest_nodes"
        )
    crs = graph_crs(graph)
    pts, _ = project(lon, lat, crs=crs)
    coords, ptr = segment_geometry(graph)
    xy, _ = project(coords[:, 0], coords[:, 1], crs=crs)
    shapely = _shapely()
    tree = shapely.STRtree(_lines(xy, ptr))
    (pi, ei), dist = tree.query_nearest(shapely.points(pts), return_distance=True, all_matches=True)
    return pi.astype(np.int64), ei.astype(np.int64), dist


def _nearest_lines(graph, pts: np.ndarray, crs: CRS) -> tuple[np.ndarray, np.ndarray]:
    coords, ptr = segment_geometry(graph)
    xy, _ = project(coords[:, 0], coords[:, 1], crs=crs)
    shapely = _shapely()
    tree = shapely.STRtree(_lines(xy, ptr))
    (pi, li), dist = tree.query_nearest(
        shapely.points(pts), return_distance=True, all_matches=False
    )
    idx = np.full(len(pts), -1, dtype=np.int64)
    d = np.full(len(pts), np.inf)
    idx[pi] = li
    d[pi] = dist
    return idx, d


def pos_tensor(lon: np.ndarray, lat: np.ndarray) -> torch.Tensor:
    """``[N, 2]`` float64 tensor of lon/lat (the ``pos`` of a road graph)."""
    return torch.from_numpy(np.stack([lon, lat], 1).astype(np.float64))
