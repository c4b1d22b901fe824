"""graph_builders.regions (the shared grid) and mapmatch.MetricProjection (the one projection)."""

from __future__ import annotations

import numpy as np
import pytest

from graph_builders import events, trajectories
from graph_builders.mapmatch import MetricProjection
from graph_builders.regions import Grid, as_grid, cell_ids, grid_nodes
from stgraph.errors import ConfigError
from stgraph.utils.geo import haversine_m, project
from stgraph.utils.grid import grid_edges


def test_grid_is_shared_and_re_exported():
    assert events.Grid is Grid and trajectories.as_grid is as_grid


def test_grid_nodes_are_row_major_from_the_south_west():
    grid = Grid(
        origin_lon=10.0, origin_lat=50.0, cell_deg_lat=0.1, cell_deg_lon=0.2, rows=3, cols=4
    )
    nodes = grid_nodes(grid, neighbourhood=8)
    assert nodes.node_ids[:5] == ["r0c0", "r0c1", "r0c2", "r0c3", "r1c0"]
    np.testing.assert_allclose(nodes.pos[0], [10.1, 50.05])  # south-west cell centre
    np.testing.assert_allclose(nodes.pos[5], [10.3, 50.15])  # row 1, col 1
    assert np.array_equal(nodes.edge_index.numpy(), grid_edges(3, 4, neighbourhood=8))
    assert nodes.grid["shape"] == [3, 4] and nodes.grid["neighbourhood"] == 8
    # a point inside a cell maps to that cell's node; outside the grid to -1
    lon, lat = nodes.pos[:, 0], nodes.pos[:, 1]
    assert np.array_equal(grid.cell_of(lon, lat), np.arange(12))
    assert grid.cell_of(np.array([9.9]), np.array([50.05]))[0] == -1
    w, h = grid.cell_size_m
    assert h == pytest.approx(haversine_m(10.0, 50.0, 10.0, 50.1), rel=1e-9)
    assert nodes.spatial_scale == pytest.approx(np.sqrt(w * h))
    assert cell_ids(np.array([2]), np.array([3])) == ["r2c3"]


def test_as_grid_reads_a_spec_and_names_bad_ones():
    g = as_grid({"bbox": (116.2, 39.85, 116.5, 40.05), "cell_m": 1000})
    assert (g.rows, g.cols) == (23, 26)
    with pytest.raises(ValueError, match="exactly the keys"):
        as_grid({"cell_m": 1000})
    with pytest.raises(ValueError, match="4 numbers"):
        as_grid({"bbox": (1, 2, 3), "cell_m": 1000})
    with pytest.raises(ConfigError, match="events.Grid"):
        as_grid([1, 2, 3, 4])


def test_metric_projection_is_geo_project_and_inverts():
    rng = np.random.default_rng(0)
    lon, lat = 24.9 + rng.uniform(0, 0.1, 50), 60.15 + rng.uniform(0, 0.05, 50)  # Helsinki
    proj = MetricProjection.about(lon, lat)
    xy = proj(lon, lat)
    ref, crs = project(lon, lat)
    assert proj.crs == crs and crs.to_epsg() == 32635
    np.testing.assert_array_equal(xy, ref)
    np.testing.assert_allclose(proj.inverse(xy), np.stack([lon, lat], 1), atol=1e-9)
    # projected (WGS84 ellipsoid) distances agree with great-circle (sphere) ones to within the
    # ellipsoid's departure from the sphere: up to about 0.35 % at 60° N, depending on direction
    d_xy = np.hypot(*(xy[1:] - xy[:-1]).T)
    d_gc = haversine_m(lon[:-1], lat[:-1], lon[1:], lat[1:])
    np.testing.assert_allclose(d_xy, d_gc, rtol=4e-3)
    assert np.abs(d_xy / d_gc - 1).max() > 1e-3  # not the spherical equirectangular projection
