"""Proximity graphs between located nodes: Gaussian kernel (DCRNN), kNN, radius, Delaunay.

``connect(pos, *, method=...)`` returns :class:`ProximityEdges` ``(edge_index, edge_weight,
summary)``; ``connect_graph(graph, ...)`` returns a copy of an STGraph with those edges. Distances are great-circle (``metric="haversine"``, metres) between lon/lat
positions, or road-network distances (``distances=``: a ``from, to, dist`` table with ``node_ids``,
or a dense ``[N, N]`` matrix with ``inf`` where unknown).

The Gaussian kernel is the recipe of DCRNN (``scripts/gen_adj_mx.py`` in liyaguang/DCRNN):
``sigma`` = standard deviation of all finite distances (including the zero self-distances),
``w = exp(-(d / sigma)^2)``, and ``w < threshold`` set to 0. Entry ``A[i, j]`` (distance from ``i`` to
``j``) becomes the edge ``i -> j``. With coordinates, the pairs beyond the distance where the kernel
falls below ``threshold`` are never formed: a KD-tree finds the rest, so memory is ``O(N + E)``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy.spatial import Delaunay, cKDTree

from graph_builders._inputs import renamed_options
from stgraph.data.weights import gaussian_affinity
from stgraph.errors import ConfigError, DataFormatError
from stgraph.utils.geo import EARTH_RADIUS_M, project

if TYPE_CHECKING:
    from stgraph.data import STGraph

__all__ = [
    "METHODS",
    "SENSOR_DEFAULTS",
    "ProximityEdges",
    "connect",
    "connect_graph",
    "distance_matrix",
    "to_dense",
]

METHODS = ("gaussian", "knn", "radius", "delaunay")

#: The sparse default for sensors linked by coordinates alone (no road graph, no road distances):
#: the registry's recipe (:func:`stgraph.datasets._graphs.proximity_edges`, used for Melbourne's
#: pedestrian counters and the NOAA and Irish weather stations) — each sensor's 8 nearest
#: sensors, directed ``j -> i``, Gaussian weights with DCRNN's ``sigma`` (std of all ``N^2``
#: distances). The DCRNN Gaussian threshold (``method="gaussian"``) links every pair within
#: ``sigma * sqrt(ln 10)``, half of all pairs for a city's freeway sensors (Los-loop: 21,910 edges
#: against 2,626 in the registry's T-GCN graph; this recipe gives 1,656, 75 % of them in it).
SENSOR_DEFAULTS: dict[str, Any] = {"method": "knn", "k": 8, "weight": "gaussian"}


def _unit_vectors(lonlat: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1])
    return np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], 1)


def _chord_to_m(chord: np.ndarray) -> np.ndarray:
    return 2.0 * EARTH_RADIUS_M * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))


def _m_to_chord(m: float) -> float:
    return float(2.0 * np.sin(min(m / EARTH_RADIUS_M, np.pi) / 2.0))


def haversine_matrix(pos: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Great-circle distances (m) from ``pos[rows]`` to every position: ``[len(rows), N]``."""
    xyz = _unit_vectors(pos)
    sub = xyz if rows is None else xyz[rows]
    dot = np.clip(sub @ xyz.T, -1.0, 1.0)
    chord = np.sqrt(np.maximum(2.0 - 2.0 * dot, 0.0))
    return _chord_to_m(chord)


def _check_pos(pos: Any) -> np.ndarray:
    arr = (
        pos.detach().cpu().double().numpy()
        if isinstance(pos, torch.Tensor)
        else np.asarray(pos, dtype=np.float64)
    )
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DataFormatError(f"pos: expected shape (N, 2) of lon, lat degrees, got {arr.shape}")
    bad = ~np.isfinite(arr).all(1) | (np.abs(arr[:, 0]) > 180) | (np.abs(arr[:, 1]) > 90)
    if bad.any():
        i = int(np.nonzero(bad)[0][0])
        raise DataFormatError(
            f"pos: row {i} is ({arr[i, 0]}, {arr[i, 1]}); expected finite lon in [-180, 180] and lat "
            f"in [-90, 90] ({int(bad.sum())} bad rows)"
        )
    return arr


def distance_matrix(
    distances: Any, node_ids: Sequence | None = None, *, columns: Sequence[str] | None = None
) -> tuple[np.ndarray, dict[str, int]]:
    """A dense ``[N, N]`` distance matrix (``inf`` = unknown) from a table or an array.

    Args:
        distances: ``[N, N]`` array, or a DataFrame / path of a CSV table with ``from, to, dist``
            columns (by name via ``columns``, else the first three columns; a CSV without a header
            as DCRNN's ``distances_*.csv``).
        node_ids: the id of each node, in node order (required with a table).
        columns: names of the from, to and distance columns.

    Returns:
        ``(matrix, dropped)`` with ``dropped`` counting table rows whose ids are not in ``node_ids``
        (``distance_row_unknown_id``), rows with a missing or negative distance
        (``distance_row_missing_or_negative``) and, for a ``(from, to)`` pair given more than once,
        every row but the last, which is the one used (``distance_row_duplicate``).
    """
    if isinstance(distances, (np.ndarray, torch.Tensor)):
        mat = np.asarray(
            distances.detach().cpu() if isinstance(distances, torch.Tensor) else distances,
            dtype=np.float64,
        )
        if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
            raise DataFormatError(f"distances: expected a square [N, N] matrix, got {mat.shape}")
        return mat, {}
    if node_ids is None:
        raise ConfigError(
            "distances: a from/to/dist table needs node_ids (the id of each node in order)"
        )
    source = distances
    if not isinstance(distances, pd.DataFrame):
        distances = pd.read_csv(distances, header=None, dtype=str)
    if columns is not None:
        missing = [c for c in columns if c not in distances.columns]
        if missing:
            raise DataFormatError(
                f"{source!s:.80}: missing columns {missing}; have {list(distances.columns)}"
            )
        table = distances[list(columns)]
    else:
        if distances.shape[1] < 3:
            raise DataFormatError(
                f"{source!s:.80}: expected 3 columns (from, to, distance), got {distances.shape[1]}"
            )
        table = distances.iloc[:, :3]
    ids = [str(i) for i in node_ids]
    index = {k: i for i, k in enumerate(ids)}
    if len(index) != len(ids):
        raise DataFormatError("node_ids: ids must be unique")
    src = table.iloc[:, 0].astype(str).map(index)
    dst = table.iloc[:, 1].astype(str).map(index)
    dist = pd.to_numeric(table.iloc[:, 2], errors="coerce")
    dropped: dict[str, int] = {}
    unknown = src.isna() | dst.isna()
    if unknown.any():
        dropped["distance_row_unknown_id"] = int(unknown.sum())
    bad = ~unknown & (dist.isna() | (dist < 0))
    if bad.any():
        dropped["distance_row_missing_or_negative"] = int(bad.sum())
    ok = (~(unknown | bad)).to_numpy()
    n = len(ids)
    rows = src[ok].astype(np.int64).to_numpy()
    cols = dst[ok].astype(np.int64).to_numpy()
    vals = dist[ok].to_numpy(np.float64)
    # a (from, to) pair given more than once: the last row is used, the earlier ones are counted
    dup = pd.Series(rows * n + cols).duplicated(keep="last").to_numpy()
    if dup.any():
        dropped["distance_row_duplicate"] = int(dup.sum())
    mat = np.full((n, n), np.inf)
    mat[rows[~dup], cols[~dup]] = vals[~dup]
    return mat, dropped


def _haversine_std(pos: np.ndarray, block: int = 2048) -> float:
    """Standard deviation of all ``N^2`` great-circle distances, in blocks of rows (O(N) memory)."""
    n = len(pos)
    s = s2 = 0.0
    for a in range(0, n, block):
        d = haversine_matrix(pos, np.arange(a, min(a + block, n)))
        s += float(d.sum())
        s2 += float((d * d).sum())
    mean = s / (n * n)
    return float(np.sqrt(max(s2 / (n * n) - mean * mean, 0.0)))


def _pairs_within(pos: np.ndarray, radius_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs ``(i, j)``, ``i != j``, within ``radius_m`` great-circle metres."""
    tree = cKDTree(_unit_vectors(pos))
    sp = tree.sparse_distance_matrix(tree, _m_to_chord(radius_m), output_type="ndarray")
    i, j, c = sp["i"], sp["j"], sp["v"]
    off = i != j
    return i[off].astype(np.int64), j[off].astype(np.int64), _chord_to_m(c[off])


def _symmetrise(src, dst, dist):
    a = np.concatenate([src, dst])
    b = np.concatenate([dst, src])
    d = np.concatenate([dist, dist])
    code = a * (max(int(a.max(initial=0)), int(b.max(initial=0))) + 1) + b
    _, first = np.unique(code, return_index=True)
    return a[first], b[first], d[first]


def _kernel(dist: np.ndarray, sigma: float) -> np.ndarray:
    """The package's one Gaussian kernel (:func:`stgraph.data.weights.gaussian_affinity`) on a
    NumPy array of distances with an explicit ``sigma`` (infinite distances give 0)."""
    d = torch.from_numpy(np.asarray(dist, dtype=np.float64))
    return gaussian_affinity(d, sigma).numpy()


def _weights(dist: np.ndarray, weight: str, sigma: float | None) -> np.ndarray:
    if weight == "distance":
        return dist
    if weight == "binary":
        return np.ones_like(dist)
    if weight == "gaussian":
        s = sigma if sigma is not None else (float(dist.std()) if dist.size else 1.0)
        return _kernel(dist, s if s > 0 else 1.0)
    raise ConfigError(f"weight={weight!r}: expected 'distance', 'gaussian' or 'binary'")


class ProximityEdges(NamedTuple):
    """What :func:`connect` returns: ``(edge_index, edge_weight, summary)``.

    ``edge_index`` ``[2, E]`` int64 sorted by source then target, ``edge_weight`` ``[E]`` float32,
    ``summary`` the construction (method, weight, sigma, edge count, dropped distance rows).
    """

    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    summary: dict[str, Any]


@renamed_options(radius="radius_m", sigma="sigma_m")
def connect(
    pos: np.ndarray | torch.Tensor | None = None,
    *,
    method: str = "gaussian",
    distances: Any = None,
    node_ids: Sequence | None = None,
    metric: str = "haversine",
    sigma_m: float | None = None,
    threshold: float = 0.1,
    k: int = 8,
    radius_m: float = 1000.0,
    include_self: bool = False,
    directed: bool | None = None,
    weight: str | None = None,
) -> ProximityEdges:
    """Connect nodes by proximity.

    Args:
        pos: ``[N, 2]`` lon/lat degrees (array or tensor). For an STGraph use
            :func:`connect_graph`.
        method: ``"gaussian"`` (thresholded Gaussian kernel, DCRNN), ``"knn"`` (each node's ``k``
            nearest), ``"radius"`` (all pairs within ``radius_m``) or ``"delaunay"`` (edges of the
            Delaunay triangulation of the projected positions; needs ``pos``).
        distances: road-network distances instead of great-circle ones: a ``from, to, dist`` table
            (DataFrame or CSV path, with ``node_ids``) or a dense ``[N, N]`` matrix, ``inf`` where
            unknown (then ``pos`` may be ``None`` except for ``delaunay``).
        node_ids: node ids, in node order, matching the table's from/to columns.
        metric: ``"haversine"`` (the only geometric metric; lon/lat in, metres out).
        sigma_m: kernel width in metres (``None``: the std of the finite distances, as DCRNN;
            was ``sigma``).
        threshold: Gaussian weights below it are dropped (DCRNN's ``normalized_k`` = 0.1).
        k: neighbours per node for ``knn``.
        radius_m: metres for ``radius`` (formerly ``radius``, still accepted with a warning).
        include_self: keep self-loops (weight 1 for Gaussian, 0 m for distance weights).
        directed: ``None`` = automatic: Gaussian on road distances and kNN are directed (edge
            ``j -> i`` for each of ``i``'s neighbours ``j``; Gaussian ``i -> j`` for ``A[i, j]``),
            symmetric otherwise; ``False`` symmetrises, ``True`` keeps the one-way pairs.
        weight: ``"gaussian"``, ``"distance"`` (metres) or ``"binary"``; default: ``"gaussian"`` for
            the Gaussian method, ``"distance"`` for the others. Gaussian weights of the other
            methods use ``sigma_m``, else DCRNN's (std of all finite distances, as the Gaussian
            method), so kNN with Gaussian weights is the registry's recipe
            (:data:`SENSOR_DEFAULTS`).

    Returns:
        :class:`ProximityEdges` ``(edge_index [2, E] int64, edge_weight [E] float32, summary)``;
        ``summary`` holds the method, weight, ``sigma`` (Gaussian), ``edges`` and the ``dropped``
        rows of a distance table.

    Raises:
        ConfigError: an unknown method, metric or weight, a numeric option out of range (``k``,
            ``radius_m``, ``threshold``, ``sigma_m``), neither ``pos`` nor ``distances``.
        DataFormatError: bad positions or distances, ``pos`` is an STGraph (use
            :func:`connect_graph`).
    """
    from stgraph.data import STGraph

    if isinstance(pos, STGraph):
        raise DataFormatError("connect: pos is an STGraph; use proximity.connect_graph(graph, ...)")
    if method not in METHODS:
        raise ConfigError(f"method={method!r}: expected one of {', '.join(METHODS)}")
    if metric != "haversine":
        raise ConfigError(f"metric={metric!r}: only 'haversine' (lon/lat degrees) is supported")
    _check_numbers(k=k, radius_m=radius_m, threshold=threshold, sigma_m=sigma_m)
    weight = weight or ("gaussian" if method == "gaussian" else "distance")
    p, dmat, dropped = _read_inputs(pos, distances, node_ids)
    summary: dict[str, Any] = {"method": method, "weight": weight}
    if dropped is not None:
        summary["dropped"] = dropped
    if method == "gaussian":
        src, dst, ww, sigma_used = _gaussian_edges(
            p,
            dmat,
            sigma=sigma_m,
            threshold=threshold,
            include_self=include_self,
            directed=directed,
            weight=weight,
        )
        summary["sigma"] = sigma_used
    else:
        src, dst, dist, auto_directed = _method_pairs(method, p, dmat, k=k, radius_m=radius_m)
        if not (auto_directed if directed is None else directed):
            src, dst, dist = _symmetrise(src, dst, dist)
        if include_self:
            src, dst, dist = _with_self_loops(src, dst, dist, len(dmat if dmat is not None else p))
        if weight == "gaussian" and sigma_m is None:  # DCRNN's sigma, as the Gaussian method
            sigma_m = (
                float(dmat[np.isfinite(dmat)].std()) if dmat is not None else _haversine_std(p)
            )
            summary["sigma"] = sigma_m
        ww = _weights(dist, weight, sigma_m)
    if not include_self:
        off = src != dst
        src, dst, ww = src[off], dst[off], ww[off]
    order = np.lexsort((dst, src))
    edge_index = torch.from_numpy(np.stack([src[order], dst[order]]).astype(np.int64))
    edge_weight = torch.from_numpy(np.asarray(ww, dtype=np.float32)[order])
    summary["edges"] = int(edge_index.size(1))
    return ProximityEdges(edge_index, edge_weight, summary)


def _is_number(value: object) -> bool:
    """A finite real number (not a bool)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float, np.number))
        and bool(np.isfinite(value))
    )


def _check_numbers(*, k: int, radius_m: float, threshold: float, sigma_m: float | None) -> None:
    """The numeric options of :func:`connect` in range (a :class:`ConfigError` naming the first
    one that is not)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"k: expected an integer >= 1 (neighbours per node), got {k!r}")
    if not (_is_number(radius_m) and radius_m > 0):
        raise ConfigError(f"radius_m: expected a number of metres > 0, got {radius_m!r}")
    if not (_is_number(threshold) and 0.0 <= threshold <= 1.0):
        raise ConfigError(f"threshold: expected a Gaussian weight in [0, 1], got {threshold!r}")
    if sigma_m is not None and not (_is_number(sigma_m) and sigma_m > 0):
        raise ConfigError(f"sigma_m: expected a number of metres > 0 (or None), got {sigma_m!r}")


def connect_graph(graph: STGraph, **options: Any) -> STGraph:
    """A copy of ``graph`` with proximity edges from its ``pos`` (:func:`connect` ``options``).

    ``node_ids`` defaults to ``graph.meta["node_ids"]``; the copy has ``edge_attr`` ``None``,
    ``meta["proximity"]`` = the summary, dropped distance rows added to ``meta["dropped"]`` and
    a provenance line.
    """
    options.setdefault("node_ids", (graph.meta or {}).get("node_ids"))
    edges = connect(graph.pos, **options)
    out = copy.copy(graph)
    out.edge_index = edges.edge_index
    out.edge_weight = edges.edge_weight
    out.edge_attr = None
    out.meta = copy.deepcopy(graph.meta)
    out.meta["proximity"] = edges.summary
    if edges.summary.get("dropped"):
        out.meta.setdefault("dropped", {}).update(edges.summary["dropped"])
    out.meta["provenance"] = [
        *out.meta.get("provenance", []),
        f"proximity.connect(method={edges.summary['method']})",
    ]
    return out


def _read_inputs(
    pos: Any, distances: Any, node_ids: Sequence | None
) -> tuple[np.ndarray | None, np.ndarray | None, dict[str, int] | None]:
    """Checked positions, the distance matrix (if any) and its dropped rows."""
    p = _check_pos(pos) if pos is not None else None
    if distances is None:
        if p is None:
            raise ConfigError("connect: give pos ([N, 2] lon/lat) or distances")
        return p, None, None
    dmat, dropped = distance_matrix(distances, node_ids)
    if p is not None and len(p) != len(dmat):
        raise DataFormatError(f"distances: {len(dmat)} nodes but pos has {len(p)}")
    return p, dmat, dropped


def _with_self_loops(src, dst, vals, n: int, fill: float = 0.0):
    ar = np.arange(n)
    return (
        np.concatenate([src, ar]),
        np.concatenate([dst, ar]),
        np.concatenate([vals, np.full(n, fill)]),
    )


def _gaussian_edges(
    p: np.ndarray | None,
    dmat: np.ndarray | None,
    *,
    sigma: float | None,
    threshold: float,
    include_self: bool,
    directed: bool | None,
    weight: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """DCRNN's thresholded kernel: ``(src, dst, weight, sigma)`` (self-loops still included)."""
    if dmat is not None:
        s = sigma if sigma is not None else float(dmat[np.isfinite(dmat)].std())
        w = _kernel(dmat, s)
        w[w < threshold] = 0.0
        src, dst = np.nonzero(w)
        ww, dist = w[src, dst], dmat[src, dst]
        directed = True if directed is None else directed
    else:
        s = sigma if sigma is not None else _haversine_std(p)
        cutoff = s * np.sqrt(-np.log(threshold)) if threshold > 0 else np.inf
        src, dst, dist = _pairs_within(p, cutoff)
        ww = _kernel(dist, s)
        keep = ww >= threshold
        src, dst, dist, ww = src[keep], dst[keep], dist[keep], ww[keep]
        if include_self:
            n = len(p)
            src, dst, dist = _with_self_loops(src, dst, dist, n)
            ww = np.concatenate([ww, np.ones(n)])
        directed = False if directed is None else directed
    if weight != "gaussian":
        ww = _weights(dist, weight, s)
    if not directed and dmat is not None:
        src, dst, ww = _symmetrise(src, dst, ww)
    return src, dst, ww, float(s)


def _method_pairs(
    method: str, p: np.ndarray | None, dmat: np.ndarray | None, *, k: int, radius_m: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """kNN / radius / Delaunay pairs: ``(src, dst, distance_m, directed by default)``."""
    n = len(dmat) if dmat is not None else len(p)
    if method == "knn":
        kk = min(k, n - 1)
        if dmat is not None:
            d = np.where(np.eye(n, dtype=bool), np.inf, dmat)
            nb = np.argsort(d, axis=1, kind="stable")[:, :kk]
            dist = np.take_along_axis(d, nb, 1).ravel()
            src, dst = nb.ravel(), np.repeat(np.arange(n), kk)
            ok = np.isfinite(dist)
            return src[ok], dst[ok], dist[ok], True
        chord, nb = cKDTree(_unit_vectors(p)).query(_unit_vectors(p), k=kk + 1)
        chord, nb = chord[:, 1:], nb[:, 1:]  # the nearest is the node itself
        src = nb.ravel().astype(np.int64)
        return src, np.repeat(np.arange(n), kk), _chord_to_m(chord.ravel()), True
    if method == "radius":
        if dmat is not None:
            d = np.where(np.eye(n, dtype=bool), np.inf, dmat)
            src, dst = np.nonzero(d <= radius_m)
            return src, dst, d[src, dst], True
        src, dst, dist = _pairs_within(p, radius_m)
        return src, dst, dist, False
    # delaunay
    if p is None:
        raise ConfigError("method='delaunay' needs pos")
    if n < 3:
        raise DataFormatError(f"method='delaunay' needs at least 3 nodes, got {n}")
    xy, _ = project(p[:, 0], p[:, 1])
    s3 = Delaunay(xy).simplices
    src = np.concatenate([s3[:, 0], s3[:, 1], s3[:, 2]]).astype(np.int64)
    dst = np.concatenate([s3[:, 1], s3[:, 2], s3[:, 0]]).astype(np.int64)
    dist = dmat[src, dst] if dmat is not None else haversine_pairs(p, src, dst)
    return src, dst, dist, False


def haversine_pairs(pos: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Great-circle metres between ``pos[src]`` and ``pos[dst]``."""
    xyz = _unit_vectors(pos)
    chord = np.linalg.norm(xyz[src] - xyz[dst], axis=1)
    return _chord_to_m(chord)


def to_dense(edge_index: torch.Tensor, edge_weight: torch.Tensor, num_nodes: int) -> np.ndarray:
    """Dense ``[N, N]`` matrix with ``A[src, dst] = weight`` (for comparisons)."""
    a = np.zeros((num_nodes, num_nodes), dtype=np.float64)
    ei = edge_index.numpy()
    a[ei[0], ei[1]] = edge_weight.double().numpy()
    return a
