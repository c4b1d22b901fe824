"""Metro stations: Hangzhou passenger inflow/outflow with the line graph (transdim)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.io

from stgraph.data.stgraph import STGraph
from stgraph.datasets._common import sources, step_times
from stgraph.datasets._graphs import dense_to_edges
from stgraph.datasets.registry import register
from stgraph.errors import DataFormatError

_DIR = "hangzhou-metro"
HZ_INFLOW = f"{_DIR}/inflow_tensor.mat"
HZ_OUTFLOW = f"{_DIR}/outflow_tensor.mat"
HZ_GRAPH = f"{_DIR}/graph.csv"

#: The graph node (station id of the Tianchi data) absent from the tensors: per the data set's
#: author it has no trips in the whole period. Tensor row ``r`` is graph node ``r`` for
#: ``r < 54`` and ``r + 1`` after it.
HZ_DROPPED_NODE = 54
_SLOT = 600
_VARIABLES = [
    {"name": "inflow", "unit": "passengers/10 min"},
    {"name": "outflow", "unit": "passengers/10 min"},
]
_LICENSE = "MIT (transdim repository); raw data Tianchi / Zenodo 10.5281/zenodo.3145403"


def _read_tensor(path: Path, key: str) -> np.ndarray:
    """The ``[stations, days, slots]`` array ``key`` of a MATLAB file, as float64."""
    try:
        mat = scipy.io.loadmat(path)
    except (ValueError, OSError, NotImplementedError) as exc:
        raise DataFormatError(f"{path}: not a readable MATLAB file ({exc})") from None
    if key not in mat:
        found = [k for k in mat if not k.startswith("__")]
        raise DataFormatError(f"{path}: no variable {key!r} (found {found})")
    arr = np.asarray(mat[key])
    if arr.ndim != 3 or arr.shape[2] != 86400 // _SLOT:
        raise DataFormatError(
            f"{path}: {key} has shape {arr.shape}; expected (stations, days, 144 ten-minute slots)"
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise DataFormatError(f"{path}: {key} holds negative or non-finite counts")
    return arr


def _read_graph(path: Path) -> np.ndarray:
    """The 0/1 adjacency of ``graph.csv`` (header row and first column = station ids 0..n-1)."""
    try:
        df = pd.read_csv(path, index_col=0)
        adj = df.to_numpy(np.float64)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(f"{path}: not a CSV adjacency matrix ({exc})") from None
    n = adj.shape[0]
    ids = list(range(n))
    if adj.shape != (n, n) or [int(c) for c in df.columns] != ids or list(df.index) != ids:
        raise DataFormatError(f"{path}: expected a square matrix labelled 0..n-1 on both axes")
    if not np.isin(adj, (0.0, 1.0)).all() or (adj != adj.T).any():
        raise DataFormatError(f"{path}: expected a symmetric 0/1 adjacency")
    return adj


def _station_graph(adj: np.ndarray, *, bridge: bool) -> tuple[np.ndarray, list[int], list]:
    """Adjacency of the tensors' stations (graph node 54 removed), and the bridged pairs."""
    n = adj.shape[0]
    keep = [i for i in range(n) if i != HZ_DROPPED_NODE]
    sub = adj[np.ix_(keep, keep)].copy()
    bridged = []
    if bridge:
        nbrs = [keep.index(int(j)) for j in np.nonzero(adj[HZ_DROPPED_NODE])[0]]
        for a in nbrs:
            for b in nbrs:
                if a < b and sub[a, b] == 0:
                    sub[a, b] = sub[b, a] = 1.0
                    bridged.append([keep[a], keep[b]])
    return sub, keep, bridged


@register(
    "hangzhou-metro",
    title="Hangzhou metro: passenger inflow and outflow of 80 stations, 10 min, 2019-01-01 .. 25",
    files=(HZ_INFLOW, HZ_OUTFLOW, HZ_GRAPH),
    facts={
        "N": 80,
        "T": 3600,
        "V": 2,
        "interval": _SLOT,
        "span": ["2019-01-01T00:00", "2019-01-25T23:50"],
        "missing_share": 0.0,
        "variables": _VARIABLES,
        "domain": "public transport",
        "city": "Hangzhou",
        "source": "xinychen/transdim datasets/Hangzhou-data-set (Chen & Sun, IEEE TPAMI); "
        "raw data: Tianchi Hangzhou metro (Zenodo 10.5281/zenodo.3145403), as HZMetro",
        "license": _LICENSE,
    },
)
def load_hangzhou_metro(paths: dict[str, Path], *, bridge: bool = True) -> STGraph:
    """Hangzhou metro: smart-card entries and exits at 80 stations per 10 minutes, January 2019.

    The Tianchi "Hangzhou metro" data (lines 1, 2 and 4; the raw data of PVCGN's HZMetro, which
    uses 15-minute slots) as prepared by Xinyu Chen for transdim (Chen & Sun, "Bayesian temporal
    factorization for multidimensional time series prediction", IEEE TPAMI).

    Dataset information:
        + Nodes: 80 stations (``meta["node_ids"]``: station ids of the line graph, ``"0"`` ..
          ``"80"`` without ``"54"``)
        + Time steps: 3600 (25 days × 144 slots)
        + Variables: 2 (``inflow``: entries, ``outflow``: exits; passengers per 10 minutes)
        + Sampling rate: 10 minutes
        + Span: 2019-01-01 00:00 .. 2019-01-25 23:50, China Standard Time (UTC+8, no DST),
          written as UTC (``meta["time_reference"] == "local"``)
        + Missing values: 0.00 % (no NaN in the source; the 24 % zeros are real: almost all
          fall in the closed hours 00:00-06:00)
        + Coordinates: none in the source (``pos`` is ``None``)
        + Edges: ``graph.csv``, 0/1 adjacency of consecutive stations, both directions
        + Source: github.com/xinychen/transdim ``datasets/Hangzhou-data-set/``

    Time: the files carry no dates; step ``i`` is 2019-01-01 00:00 + 10 min·i, from the data
    set's description (25 days from 1 January 2019, slot ``k`` of a day = 00:00 + 10 min·k).

    Graph of 81 nodes, tensors of 80 stations: per the data set's author, station 54 (graph
    numbering) has no trips in the whole period and was dropped from the tensors, so tensor row
    ``r`` is graph node ``r`` for ``r < 54`` and ``r + 1`` from there on; the loader removes node
    54 from the graph accordingly (``meta["dropped"]``, ``meta["graph"]["dropped_node"]``). The
    mapping is not documented upstream; the flows support it only loosely (day-to-day anomalies of
    adjacent stations correlate more than those of other pairs under any removal of a node from
    50..80, and less under any removal below 50). Node 54 lies on line 2 between nodes 53 and 55;
    with ``bridge`` (default) those two become adjacent, as trains run through 54, instead of
    leaving line 2's twelve stations beyond it disconnected from the rest of the network.

    Args:
        paths: local verified files (given by :func:`stgraph.datasets.load`).
        bridge: join the neighbours of the dropped station (53 and 55) by an edge.

    Returns:
        STGraph with ``x`` ``[80, 3600, 2]``, no ``pos``, unweighted static edges
        (``edge_weight`` 1).
    """
    inflow = _read_tensor(paths[HZ_INFLOW], "inflow_tensor")
    outflow = _read_tensor(paths[HZ_OUTFLOW], "outflow_tensor")
    if inflow.shape != outflow.shape:
        raise DataFormatError(
            f"{paths[HZ_OUTFLOW]}: shape {outflow.shape} differs from the inflow's {inflow.shape}"
        )
    n, days, slots = inflow.shape
    adj = _read_graph(paths[HZ_GRAPH])
    if adj.shape[0] != n + 1:
        raise DataFormatError(
            f"{paths[HZ_GRAPH]}: {adj.shape[0]} nodes; expected {n + 1} (the {n} stations of the "
            f"tensors and the dropped station {HZ_DROPPED_NODE})"
        )
    sub, keep, bridged = _station_graph(adj, bridge=bridge)
    edge_index, edge_weight = dense_to_edges(sub, self_loops=False)
    t = days * slots
    x = np.stack([inflow.reshape(n, t), outflow.reshape(n, t)], axis=2)
    meta = {
        "variables": [dict(v) for v in _VARIABLES],
        "domain": "public transport",
        "city": "Hangzhou",
        "crs": "EPSG:4326",
        "interval": _SLOT,
        "spatial_scale": None,
        "timezone": "Asia/Shanghai",
        "time_reference": "local",
        "node_ids": [str(i) for i in keep],
        "dropped": {"graph nodes without trips": 1},
        "graph": {
            "kind": "metro line adjacency",
            "dropped_node": HZ_DROPPED_NODE,
            "bridged": bridged,
            "self_loops": "none",
            "directed": False,
        },
        "sources": sources(
            "hangzhou-metro",
            [HZ_INFLOW, HZ_OUTFLOW, HZ_GRAPH],
            citation="Chen & Sun, Bayesian temporal factorization, IEEE TPAMI; Tianchi Hangzhou "
            "metro data",
            license=_LICENSE,
        ),
        "provenance": [
            "stgraph.datasets.load('hangzhou-metro'): x = [inflow, outflow] tensors "
            "(stations, days, slots) -> (stations, days * slots)",
            "time: 2019-01-01 00:00 + 10 min * step, China Standard Time written as UTC",
            f"graph.csv: 81 nodes; node {HZ_DROPPED_NODE} (no trips, absent from the tensors) "
            "removed, tensor row r = graph node r (r < 54) or r + 1",
            f"edges: graph.csv adjacency, both directions; bridged {bridged or 'nothing'}",
        ],
    }
    return STGraph(
        x=x.astype(np.float32),
        mask=np.ones(x.shape, dtype=bool),
        time=step_times("2019-01-01T00:00", t, _SLOT),
        edge_index=edge_index,
        edge_weight=edge_weight,
        meta=meta,
    )
