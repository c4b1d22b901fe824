"""Great-circle distances, shared by the data-set registry and the graph builders.

One copy of the formula: the registry (``stgraph.datasets``) must not import ``graph_builders``
(which imports :mod:`stgraph.data`), so both read it from here.
"""

from __future__ import annotations

import numpy as np

#: Mean Earth radius (IUGG), metres.
EARTH_RADIUS_M = 6_371_008.8


def haversine_m(lon1, lat1, lon2, lat2, *, radius: float = EARTH_RADIUS_M) -> np.ndarray:
    """Great-circle distance in metres between points given in degrees (NumPy broadcasting)."""
    lon1, lat1, lon2, lat2 = (
        np.radians(np.asarray(a, dtype=np.float64)) for a in (lon1, lat1, lon2, lat2)
    )
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * radius * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def haversine_matrix(lon, lat) -> np.ndarray:
    """Great-circle distances in metres between all pairs of points, ``[N, N]``."""
    lon, lat = np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
    return haversine_m(lon[:, None], lat[:, None], lon[None, :], lat[None, :])
