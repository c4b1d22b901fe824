"""One great-circle formula for the registry and the builders."""

from __future__ import annotations

import math

import numpy as np

from graph_builders.osm import topology
from stgraph.utils.geo import EARTH_RADIUS_M, haversine_m, haversine_matrix


def test_haversine_on_known_arcs():
    # a degree of latitude and a degree of longitude on the equator are R * pi / 180
    arc = EARTH_RADIUS_M * math.pi / 180
    assert np.allclose(haversine_m(0, 0, 0, 1), arc) and np.allclose(haversine_m(0, 0, 1, 0), arc)
    # a degree of longitude at 60 degrees north: the central angle is 2 asin(cos(60) sin(0.5 deg))
    want = 2 * EARTH_RADIUS_M * math.asin(0.5 * math.sin(math.radians(0.5)))
    assert np.allclose(haversine_m(10, 60, 11, 60), want)
    # antipodes: half the circumference
    assert np.allclose(haversine_m(0, 0, 180, 0), math.pi * EARTH_RADIUS_M)


def test_matrix_matches_pairs_and_osm_radius_is_osmnx():
    lon, lat = np.array([-118.25, -118.3, -118.2]), np.array([34.05, 34.1, 34.0])
    d = haversine_matrix(lon, lat)
    assert d.shape == (3, 3) and np.allclose(np.diag(d), 0) and np.allclose(d, d.T)
    assert np.allclose(d[0, 2], haversine_m(lon[0], lat[0], lon[2], lat[2]))
    # road lengths use OSMnx's radius so that they agree with it to the millimetre
    ratio = topology.haversine_m(lon[0], lat[0], lon[1], lat[1]) / d[0, 1]
    assert np.isclose(ratio, 6_371_009.0 / EARTH_RADIUS_M)
