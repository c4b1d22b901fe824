"""Pedestrian counting sensors: City of Melbourne (UCTB Urban-Dataset)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stgraph.data.stgraph import STGraph
from stgraph.datasets._common import sources, step_times
from stgraph.datasets._graphs import median_neighbour_distance, proximity_edges
from stgraph.datasets.files import FILES
from stgraph.datasets.registry import register
from stgraph.utils.readers import read_uctb

MELBOURNE = "melbourne-pedestrian/Pedestrian_Melbourne.zip"


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

    The archive is read in memory (nothing extracted) by :func:`stgraph.utils.readers.read_uctb`:
    its sha256 is always checked before the pickle inside is unpickled, and the unpickler accepts
    numpy arrays only.

    Args:
        graph: ``"knn"`` (each sensor receives edges from its ``k`` nearest sensors) or
            ``"gaussian"`` (all pairs with Gaussian-kernel weight ``>= threshold``); weights
            ``exp(-d²/σ²)``, σ = std of all N² haversine distances, self-distances included
            (DCRNN's rule).
        k: neighbours per sensor for ``"knn"``.
        threshold: smallest weight kept for ``"gaussian"``.
    """
    path = paths[MELBOURNE]
    # sha256 of the read bytes checked before the numpy-only unpickler runs
    locations, readings, facts = read_uctb(path, sha256=FILES[MELBOURNE].sha256)
    counts = readings.drop(columns="time").to_numpy()  # [T, N], NaN where UCTB wrote -1
    t = counts.shape[0]
    start = facts["time_range"][0]
    minutes = int(facts["interval_min"])
    ids = locations["sensor_id"].tolist()
    lat = locations["latitude"].to_numpy(np.float64)
    lon = locations["longitude"].to_numpy(np.float64)
    observed = ~np.isnan(counts)
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
        "node_names": locations["name"].tolist(),
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
    x = np.where(observed, counts, 0.0).T[:, :, None].astype(np.float32)
    return STGraph(
        x=x,
        mask=observed.T[:, :, None],
        time=step_times(f"{start}T00:00", t, interval),
        pos=np.stack([lon, lat], axis=1).astype(np.float32),
        edge_index=edge_index,
        edge_weight=edge_weight,
        meta=meta,
    )
