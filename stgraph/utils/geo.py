"""Earth constants, great-circle distances and the metric projection, shared by everything.

One copy of each: the registry (``stgraph.datasets``) must not import ``graph_builders`` (which
imports :mod:`stgraph.data`), and the backbone's coordinates must match the builders', so all of
them read these from here.

- :data:`EARTH_RADIUS_M` and :func:`haversine_m` / :func:`haversine_matrix`: distances on the
  sphere in metres.
- :func:`project`: lon/lat degrees to metres in the WGS84 UTM zone of the points' centre
  (:func:`utm_crs`), through pyproj; the one projection for nearest-node searches, map matching,
  grids and the backbone's relative coordinates.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from pyproj import CRS, Transformer

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


def utm_crs(lon: float, lat: float) -> CRS:
    """The WGS84 UTM zone (EPSG:326xx north / 327xx south) containing ``(lon, lat)``."""
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


@lru_cache(maxsize=32)
def _transformer(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


def project(lon, lat, *, crs: CRS | None = None) -> tuple[np.ndarray, CRS]:
    """Project lon/lat degrees to metres: ``(xy [M, 2], crs)``; UTM of the points' centre by default."""
    lon = np.asarray(lon, dtype=np.float64).ravel()
    lat = np.asarray(lat, dtype=np.float64).ravel()
    if crs is None:
        if lon.size == 0:
            raise ValueError("project: no points")
        crs = utm_crs(float(np.nanmedian(lon)), float(np.nanmedian(lat)))
    x, y = _transformer(crs.to_epsg()).transform(lon, lat)
    return np.stack([x, y], 1), crs
