"""Road traffic sensors: Los-loop (T-GCN) with METR-LA coordinates and adjacency."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stgraph.data.stgraph import STGraph
from stgraph.datasets._common import (
    check_range,
    numeric_columns,
    read_csv,
    read_numeric_csv,
    sources,
    step_times,
)
from stgraph.datasets._graphs import dense_to_edges, median_neighbour_distance
from stgraph.datasets._pickle import load_verified_pickle
from stgraph.datasets.registry import register
from stgraph.errors import DataFormatError

LOS_SPEED = "los-loop/los_speed.csv"
LOS_ADJ = "los-loop/los_adj.csv"
METR_LOC = "metr-la-graph/graph_sensor_locations.csv"
METR_ADJ = "metr-la-graph/adj_mx.pkl"


def _los_needs(options: dict) -> tuple[str, ...]:
    adjacency = options.get("adjacency", "tgcn")
    return (LOS_SPEED, LOS_ADJ, METR_LOC) + ((METR_ADJ,) if adjacency == "dcrnn" else ())


def _los_adjacency(
    paths: dict[str, Path], ids: list[str], adjacency: str
) -> tuple[np.ndarray, str]:
    """The ``[N, N]`` adjacency of los-loop for the sensors ``ids`` (in that order), described."""
    n = len(ids)
    if adjacency == "tgcn":
        _, adj = read_numeric_csv(paths[LOS_ADJ], header=False)
        if adj.shape != (n, n):
            raise DataFormatError(f"{paths[LOS_ADJ]}: shape {adj.shape}; expected ({n}, {n})")
        check_range(
            adj, path=paths[LOS_ADJ], what=lambda i, j: f"line {i + 1}, field {j + 1}", lo=0, hi=1
        )
        adj_desc = "los_adj.csv (T-GCN), symmetric"
    else:
        obj = load_verified_pickle(paths[METR_ADJ], source=str(paths[METR_ADJ]), encoding="latin1")
        try:
            pkl_ids, id_to_ind, adj_all = obj
        except (TypeError, ValueError):
            raise DataFormatError(
                f"{paths[METR_ADJ]}: expected [sensor_ids, sensor_id_to_ind, adj_mx]"
            ) from None
        absent = [s for s in ids if s not in id_to_ind]
        if absent:
            raise DataFormatError(f"{paths[METR_ADJ]}: sensors missing from adj_mx: {absent[:10]}")
        perm = np.array([id_to_ind[s] for s in ids])
        try:
            adj = np.asarray(adj_all, dtype=np.float64)[np.ix_(perm, perm)]
        except (ValueError, TypeError, IndexError):
            raise DataFormatError(f"{paths[METR_ADJ]}: adj_mx is not an N x N matrix") from None
        check_range(adj, path=paths[METR_ADJ], what=lambda i, j: f"adj_mx[{i}][{j}]", lo=0, hi=1)
        adj_desc = "adj_mx.pkl (DCRNN), directed, row = source"
    return adj, adj_desc


def _los_locations(path: Path, ids: list[str], *, speed_name: str) -> np.ndarray:
    """``[N, 2]`` lon/lat of the sensors ``ids`` from METR-LA's ``graph_sensor_locations.csv``."""
    loc = read_csv(path, dtype={"sensor_id": str})
    need = ["sensor_id", "latitude", "longitude"]
    if not set(need) <= set(loc.columns):
        raise DataFormatError(f"{path}: columns {need} expected, got {list(loc.columns)}")
    lonlat = numeric_columns(loc, ["longitude", "latitude"], path=path)
    for j, (name, limit) in enumerate((("longitude", 180.0), ("latitude", 90.0))):
        check_range(
            lonlat[:, j],
            path=path,
            what=lambda i, c=name: f"line {i + 2}, {c}",
            lo=-limit,
            hi=limit,
        )
    first = ~loc["sensor_id"].duplicated().to_numpy()
    row = dict(zip(loc["sensor_id"][first], np.flatnonzero(first), strict=True))
    absent = [s for s in ids if s not in row]
    if absent:
        raise DataFormatError(
            f"{path}: {len(absent)} of the {len(ids)} sensors of {speed_name} have no "
            f"location: {absent[:10]}"
        )
    return lonlat[[row[s] for s in ids]]


@register(
    "los-loop",
    title="Los-loop (T-GCN): freeway speeds of 207 METR-LA loop detectors, Los Angeles, 5 min",
    files=(LOS_SPEED, LOS_ADJ, METR_LOC, METR_ADJ),
    needs=_los_needs,
    facts={
        "N": 207,
        "T": 2016,
        "V": 1,
        "interval": 300,
        "span": ["2012-03-01T00:00", "2012-03-07T23:55"],
        "missing_share": 0.0,
        "variables": [{"name": "speed", "unit": "mph"}],
        "domain": "traffic",
        "city": "Los Angeles",
        "source": "lehaifeng/T-GCN (Zhao et al., T-ITS 2019); coordinates and DCRNN adjacency "
        "from liyaguang/DCRNN (Li et al., ICLR 2018); upstream Caltrans PeMS via METR-LA",
        "license": "none stated (T-GCN repo root); DCRNN files MIT",
    },
)
def load_los_loop(paths: dict[str, Path], *, adjacency: str = "tgcn") -> STGraph:
    """Los-loop: traffic speed from 207 loop detectors on Los Angeles County freeways.

    The T-GCN benchmark (Zhao et al., "T-GCN", IEEE T-ITS 2019): the first week of METR-LA
    (Jagadish et al. 2014; Li et al., DCRNN, ICLR 2018), missing readings linearly interpolated by
    the T-GCN authors.

    Dataset information:
        + Nodes: 207 (METR-LA sensor ids, ``meta["node_ids"]``)
        + Time steps: 2016
        + Variables: 1 (``speed``, mph)
        + Sampling rate: 5 minutes
        + Span: 2012-03-01 00:00 .. 2012-03-07 23:55
        + Missing values: 0.00 % (interpolated upstream)
        + Coordinates: METR-LA sensor locations joined by sensor id (all 207 match)
        + Source: github.com/lehaifeng/T-GCN ``data/los_speed.csv``, ``data/los_adj.csv``

    Time: the CSV has no time column. Row ``i`` is stamped 2012-03-01 00:00 + 5 min·i — inferred
    from the stated span (2016 = 7 × 288 steps). The labels are the source's clock (METR-LA's own
    index is naive Los Angeles local time, PST in that week), written as UTC;
    ``meta["time_reference"] == "local"``.

    Args:
        paths: local verified files (given by :func:`stgraph.datasets.load`).
        adjacency: ``"tgcn"`` (``los_adj.csv``: symmetric, weights in [0, 1], 2833 non-zeros) or
            ``"dcrnn"`` (DCRNN ``adj_mx.pkl``: thresholded Gaussian kernel of road distances,
            directed; edge ``i -> j`` where ``adj[i, j] > 0``). Both have a unit diagonal; the
            self-loops are dropped from ``edge_index`` (PyG layers add their own).

    Returns:
        STGraph with ``x`` ``[207, 2016, 1]``, ``pos`` ``[207, 2]``, weighted static edges.
    """
    if adjacency not in ("tgcn", "dcrnn"):
        raise ValueError(f"los-loop: adjacency must be 'tgcn' or 'dcrnn', got {adjacency!r}")
    speed_path = paths[LOS_SPEED]
    header, speed = read_numeric_csv(speed_path, header=True)
    try:
        ids = [str(int(h)) for h in header]
    except ValueError:
        raise DataFormatError(
            f"{speed_path}: header must be METR-LA sensor ids (integers), got {header[:3]}..."
        ) from None
    n = len(ids)
    if (speed <= 0).any():
        i, j = np.argwhere(speed <= 0)[0]
        raise DataFormatError(
            f"{speed_path}: line {i + 2}, sensor {ids[j]}: speed {speed[i, j]} <= 0"
        )

    lonlat = _los_locations(paths[METR_LOC], ids, speed_name=speed_path.name)
    adj, adj_desc = _los_adjacency(paths, ids, adjacency)
    edge_index, edge_weight = dense_to_edges(adj, self_loops=False)

    meta = {
        "variables": [{"name": "speed", "unit": "mph"}],
        "domain": "traffic",
        "city": "Los Angeles",
        "crs": "EPSG:4326",
        "interval": 300,
        "spatial_scale": median_neighbour_distance(lonlat[:, 0], lonlat[:, 1]),
        "timezone": "America/Los_Angeles",
        "time_reference": "local",
        "node_ids": ids,
        "graph": {
            "adjacency": adjacency,
            "self_loops": "dropped",
            "directed": adjacency == "dcrnn",
        },
        "sources": sources(
            "los-loop",
            _los_needs({"adjacency": adjacency}),
            citation="Zhao et al., T-GCN, IEEE T-ITS 2019; Li et al., DCRNN, ICLR 2018",
            license="none stated (T-GCN); MIT (DCRNN)",
        ),
        "provenance": [
            "stgraph.datasets.load('los-loop'): x = los_speed.csv (rows = steps, columns = sensors)",
            "time inferred: 2012-03-01 00:00 + 5 min * row (source clock labels, no zone in file)",
            "pos: graph_sensor_locations.csv joined on sensor_id",
            f"edges: {adj_desc}; diagonal (self-loops) dropped; spatial_scale = median "
            "nearest-sensor distance (haversine)",
        ],
    }
    return STGraph(
        x=speed.T[:, :, None].astype(np.float32),
        mask=np.ones((n, speed.shape[0], 1), dtype=bool),
        time=step_times("2012-03-01T00:00", speed.shape[0], 300),
        pos=lonlat.astype(np.float32),
        edge_index=edge_index,
        edge_weight=edge_weight,
        meta=meta,
    )
