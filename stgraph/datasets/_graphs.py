"""Small graph helpers the loaders share: dense matrices to edges, grid edges, proximity edges.

These are deliberately minimal (a registry must not depend on ``graph_builders``, which depends on
:mod:`stgraph.data`); ``graph_builders.proximity.connect`` is the general tool.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from stgraph.data.weights import gaussian_affinity
from stgraph.utils.geo import EARTH_RADIUS_M, haversine_matrix
from stgraph.utils.grid import grid_edges as _grid_edges


def dense_to_edges(adj: np.ndarray, *, self_loops: bool = False) -> tuple[Tensor, Tensor]:
    """Edges ``(i -> j)`` for every non-zero ``adj[i, j]``, PyG order (sorted by source).

    Args:
        adj: ``[N, N]`` weights; row = source, column = target.
        self_loops: keep the diagonal (default: drop it, as PyG layers add their own).

    Returns:
        ``edge_index`` ``[2, E]`` (int64) and ``edge_weight`` ``[E]`` (float32).
    """
    a = np.asarray(adj)
    nz = a != 0
    if not self_loops:
        np.fill_diagonal(nz, False)
    src, dst = np.nonzero(nz)
    edge_index = torch.from_numpy(np.stack([src, dst]).astype(np.int64))
    return edge_index, torch.from_numpy(a[src, dst].astype(np.float32))


def grid_edges(rows: int, cols: int) -> Tensor:
    """4-neighbour edges of a ``rows x cols`` grid as a tensor (:func:`stgraph.utils.grid.grid_edges`).

    Returns:
        ``edge_index`` ``[2, E]`` with ``E = 2 * (rows * (cols - 1) + cols * (rows - 1))``.
    """
    return torch.from_numpy(_grid_edges(rows, cols, neighbourhood=4))


def proximity_edges(
    lon: np.ndarray,
    lat: np.ndarray,
    *,
    method: str = "knn",
    k: int = 8,
    threshold: float = 0.1,
    sigma: float | None = None,
) -> tuple[Tensor, Tensor, dict]:
    r"""Distance graph from coordinates, weighted by a Gaussian kernel (DCRNN).

    :math:`w_{ij} = \exp(-d_{ij}^2 / \sigma^2)` with :math:`d` the haversine distance:
    :func:`stgraph.data.weights.gaussian_affinity` of the full ``[N, N]`` distance matrix, zero
    diagonal included, so :math:`\sigma` is the standard deviation of all N² distances (as
    DCRNN's ``gen_adj_mx`` and :func:`graph_builders.proximity.connect`) unless given.

    Args:
        lon, lat: ``[N]`` degrees.
        method: ``"knn"``: edge ``j -> i`` for each of the ``k`` nearest ``j`` of every ``i``
            (directed; weights from the kernel). ``"gaussian"``: every pair whose weight is at
            least ``threshold`` (symmetric).
        k: neighbours per node for ``"knn"``.
        threshold: smallest kept weight for ``"gaussian"``.
        sigma: kernel width in metres (default: std of all N² distances, diagonal included).

    Returns:
        ``edge_index`` ``[2, E]``, ``edge_weight`` ``[E]`` (no self-loops) and a dict describing
        the construction (for ``meta["provenance"]``/``meta["graph"]``).
    """
    n = len(lon)
    d = haversine_matrix(np.asarray(lon, float), np.asarray(lat, float))
    off = ~np.eye(n, dtype=bool)
    dist = torch.from_numpy(d)
    if sigma is None:  # gaussian_affinity's own default, computed here to record it in meta
        sigma = float(dist.std(unbiased=False))
    w = gaussian_affinity(dist, sigma).numpy()
    if method == "knn":
        if not 0 < k < n:
            raise ValueError(f"proximity_edges: k must lie in [1, {n - 1}], got {k}")
        d_no_self = np.where(off, d, np.inf)
        nbrs = np.argsort(d_no_self, axis=1, kind="stable")[:, :k]  # [N, k] neighbours of i
        dst = np.repeat(np.arange(n), k)
        src = nbrs.ravel()
        order = np.lexsort((dst, src))
        src, dst = src[order], dst[order]
    elif method == "gaussian":
        keep = (w >= threshold) & off
        src, dst = np.nonzero(keep)
    else:
        raise ValueError(f"proximity_edges: method must be 'knn' or 'gaussian', got {method!r}")
    edge_index = torch.from_numpy(np.stack([src, dst]).astype(np.int64))
    weight = torch.from_numpy(w[src, dst].astype(np.float32))
    info = {"method": method, "kernel": "gaussian", "sigma_m": sigma, "distance": "haversine"}
    info.update({"k": k} if method == "knn" else {"threshold": threshold})
    return edge_index, weight, info


def median_neighbour_distance(lon: np.ndarray, lat: np.ndarray) -> float:
    """Median over nodes of the distance (m) to the nearest other node: a node spacing scale."""
    d = haversine_matrix(np.asarray(lon, float), np.asarray(lat, float))
    np.fill_diagonal(d, np.inf)
    return float(np.median(d.min(axis=1)))


def degree_cell_metres(step_deg: float, lat_deg: float) -> tuple[float, float]:
    """East-west and north-south size in metres of a ``step_deg`` cell at latitude ``lat_deg``."""
    ns = math.radians(step_deg) * EARTH_RADIUS_M
    return ns * math.cos(math.radians(lat_deg)), ns
