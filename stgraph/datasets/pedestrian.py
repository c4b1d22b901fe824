"""Pedestrian counting sensors: City of Melbourne (UCTB Urban-Dataset)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stgraph.data.stgraph import STGraph
from stgraph.datasets._common import sources, step_times
from stgraph.datasets._graphs import median_neighbour_distance, proximity_edges
from stgraph.datasets._pickle import load_verified_pickle
from stgraph.datasets.registry import register
from stgraph.errors import DataFormatError

MELBOURNE = "melbourne-pedestrian/Pedestrian_Melbourne.zip"
_MEMBER = "Pedestrian_Melbourne.pkl"


@register(
    "melbourne-pedestrian",
    title="Melbourne pedestrian counters: hourly counts of 55 CBD sensors, 2021-01 .. 2022-10",
    files=(MELBOURNE,),
    facts={
        "N": 55,
        "T": 16056,
        "V": 1,
        "interval": 3600,
        "span": ["2021-01-01T00:00", "2022-10-31T23:00"],
        "missing_share": 0.014033836119037912,
        "variables": [{"name": "pedestrians", "unit": "count/hour"}],
        "domain": "pedestrian mobility",
        "city": "Melbourne",
        "source": "uctb/Urban-Dataset Public_Datasets/Pedestrian/60_minutes/"
        "Pedestrian_Melbourne.zip (upstream: City of Melbourne pedestrian counting system)",
        "license": "not stated (repository); upstream City of Melbourne open data",
    },
)
def load_melbourne_pedestrian(
    paths: dict[str, Path], *, graph: str = "knn", k: int = 8, threshold: float = 0.1
) -> STGraph:
    """City of Melbourne pedestrian counting system: hourly counts of 55 CBD sensors.

    As packaged by UCTB (Urban-Dataset, ``Pedestrian/60_minutes``).

    Dataset information:
        + Nodes: 55 sensors (``meta["node_ids"]``: sensor ids; ``meta["node_names"]``: names)
        + Time steps: 16056
        + Variables: 1 (``pedestrians``, count per hour)
        + Sampling rate: 1 hour
        + Span: 2021-01-01 00:00 .. 2022-10-31 23:00, Melbourne local clock
        + Missing values: 1.40 % (``-1`` in the source; ``mask`` is ``False`` there, ``x`` 0)
        + Coordinates: sensor latitude/longitude (WGS84) from ``StationInfo``
        + Edges: none in the source; built from the coordinates (see ``graph``)
        + Source: github.com/uctb/Urban-Dataset

    Time: the source counts 24 wall-clock hours per day (669 days × 24 = 16056) in
    Australia/Melbourne time, across daylight-saving changes — so there is no one-to-one UTC
    axis. Stamps are the local clock written as UTC (``meta["time_reference"] == "local"``).

    The archive is read in memory (nothing extracted); its sha256 is always checked before the
    pickle inside is unpickled, and the unpickler accepts numpy arrays only.

    Args:
        graph: ``"knn"`` (each sensor receives edges from its ``k`` nearest sensors) or
            ``"gaussian"`` (all pairs with Gaussian-kernel weight ``>= threshold``); weights
            ``exp(-d²/σ²)``, σ = std of the pairwise haversine distances (DCRNN).
        k: neighbours per sensor for ``"knn"``.
        threshold: smallest weight kept for ``"gaussian"``.
    """
    path = paths[MELBOURNE]
    obj = load_verified_pickle(path, member=_MEMBER, source=str(path))  # sha256 of the read bytes
    try:
        counts = np.asarray(obj["Node"]["TrafficNode"])
        stations = obj["Node"]["StationInfo"]
        start, _end = obj["TimeRange"]
        minutes = int(obj["TimeFitness"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(
            f"{path}:{_MEMBER}: expected UCTB keys TimeRange, TimeFitness, "
            f"Node.TrafficNode, Node.StationInfo ({exc})"
        ) from None
    t, n = counts.shape
    if len(stations) != n:
        raise DataFormatError(f"{path}: {len(stations)} stations for {n} count columns")
    if (counts < -1).any():
        raise DataFormatError(f"{path}: counts below -1 (only -1 may mark a missing value)")
    ids = [str(s[0]) for s in stations]
    lat = np.array([float(s[2]) for s in stations])
    lon = np.array([float(s[3]) for s in stations])
    observed = counts >= 0
    edge_index, edge_weight, ginfo = proximity_edges(
        lon, lat, method=graph, k=k, threshold=threshold
    )
    interval = minutes * 60
    meta = {
        "variables": [{"name": "pedestrians", "unit": "count/hour"}],
        "domain": "pedestrian mobility",
        "city": "Melbourne",
        "crs": "EPSG:4326",
        "interval": interval,
        "spatial_scale": median_neighbour_distance(lon, lat),
        "timezone": "Australia/Melbourne",
        "time_reference": "local",
        "node_ids": ids,
        "node_names": [str(s[4]) for s in stations],
        "graph": {**ginfo, "self_loops": "none", "directed": graph == "knn"},
        "sources": sources(
            "melbourne-pedestrian",
            [MELBOURNE],
            citation="UCTB Urban-Dataset; City of Melbourne pedestrian counting system",
            license="not stated; upstream City of Melbourne open data",
        ),
        "provenance": [
            "stgraph.datasets.load('melbourne-pedestrian'): x = Node.TrafficNode (hours x sensors)",
            "-1 -> mask False, x 0",
            f"time: {start} 00:00 + {minutes} min * step, Melbourne local clock written as UTC",
            f"edges: proximity graph from sensor coordinates ({ginfo})",
        ],
    }
    x = np.where(observed, counts, 0).T[:, :, None].astype(np.float32)
    return STGraph(
        x=x,
        mask=observed.T[:, :, None],
        time=step_times(f"{start}T00:00", t, interval),
        pos=np.stack([lon, lat], axis=1).astype(np.float32),
        edge_index=edge_index,
        edge_weight=edge_weight,
        meta=meta,
    )
