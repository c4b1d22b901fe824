"""fusion.fuse: several sources onto one node set, variables and units kept, counts conserved."""

from __future__ import annotations

import numpy as np
import pytest

from graph_builders import osm
from graph_builders.fusion import fuse
from graph_builders.mapmatch import simulate_tracks
from graph_builders.moving import from_tracks
from graph_builders.regions import as_grid, grid_nodes
from graph_builders.trajectories import from_points

GRID = {"bbox": (116.28, 39.88, 116.42, 40.02), "cell_m": 1000}


@pytest.fixture(scope="module")
def geolife(data_dir):
    path = data_dir / "geolife-small" / "geolife_small.csv"
    traj = from_points(path, grid=GRID, interval="1h", name="gps")
    nodes = grid_nodes(as_grid(GRID)).pos
    probe = from_tracks(
        path, interval="1h", mode="interpolate", nodes=nodes, radius_m=1500, name="probe"
    )
    return traj, probe


def test_fuse_trajectories_and_moving_speed_on_one_grid(geolife):
    traj, probe = geolife
    g = fuse([traj, probe], on=traj)
    names = [v["name"] for v in g.meta["variables"]]
    assert names == ["count", "trajectories", "gps.speed", "probe.speed"]  # clash -> prefixed
    assert [v["unit"] for v in g.meta["variables"]] == ["points", "trajectories", "m/s", "m/s"]
    assert [v["agg"] for v in g.meta["variables"]] == ["sum", "sum", "mean", "mean"]
    assert [v["source"] for v in g.meta["variables"]] == ["gps", "gps", "gps", "probe"]
    assert g.num_nodes == traj.num_nodes and g.edge_index.shape == traj.edge_index.shape
    # same nodes, same interval: every value passes through unchanged at its own time
    assert g.time[0] == min(traj.time[0], probe.time[0]) and g.time[-1] == max(
        traj.time[-1], probe.time[-1]
    )
    a = int((traj.time[0] - g.time[0]) // 3600)
    b = int((probe.time[0] - g.time[0]) // 3600)
    assert np.array_equal(g.x[:, a : a + traj.num_steps, :3].numpy(), traj.x.numpy())
    assert not g.mask[:, :a, :3].any() and not g.mask[:, a + traj.num_steps :, :3].any()
    assert np.array_equal(g.mask[:, b : b + probe.num_steps, 3].numpy(), probe.mask[..., 0].numpy())
    np.testing.assert_allclose(g.x[:, b : b + probe.num_steps, 3].numpy(), probe.x[..., 0].numpy())
    # flows move over with the same totals
    assert float(g.dyn_edge_weight.sum()) == float(traj.dyn_edge_weight.sum())
    assert g.meta["fusion"]["dyn_edges_from"] == ["gps"]
    assert g.meta["dropped"]["gps.outside"] == traj.meta["dropped"]["outside"] > 0


def test_fuse_onto_coarser_nodes_and_longer_interval_conserves_counts(geolife):
    traj, probe = geolife
    target = grid_nodes(as_grid({"bbox": GRID["bbox"], "cell_m": 3000})).pos
    g = fuse({"gps": traj, "probe": probe}, on=target, interval="1D", max_dist_m=2500)
    assert g.meta["interval"] == 86400 and g.num_nodes == len(target)
    i_count = [v["name"] for v in g.meta["variables"]].index("count")
    dropped = g.meta["dropped"]["gps.fuse_values_too_far"]
    far = g.meta["dropped"]["gps.fuse_nodes_too_far"]
    assert far == 0 and dropped == 0
    assert float(g.x[..., i_count].sum()) == float(traj.x[..., 0].sum())
    # a day's mean speed lies within the range of that node's hourly speeds
    i_speed = [v["name"] for v in g.meta["variables"]].index("probe.speed")
    assert g.mask[..., i_speed].any()
    sp = g.x[..., i_speed][g.mask[..., i_speed]]
    src = probe.x[..., 0][probe.mask[..., 0]]
    assert float(sp.min()) >= float(src.min()) - 1e-4 and float(sp.max()) <= float(src.max()) + 1e-4
    # times: one step per day from the first hour's day
    assert int(g.time[0]) == int(traj.time[0]) and (g.time.diff() == 86400).all()


def test_nodes_too_far_are_dropped_and_counted(geolife):
    traj, _ = geolife
    target = grid_nodes(as_grid(GRID)).pos[:10]  # the southernmost cells only
    g = fuse([traj], on=target, max_dist_m=600)
    d = g.meta["dropped"]
    mapped = g.meta["fusion"]["sources"]["gps"]["nodes_mapped"]
    assert d["gps.fuse_nodes_too_far"] == traj.num_nodes - mapped > 0
    # the first 10 cells map onto themselves, every other cell is >= 1 km from them
    assert mapped == 10
    assert float(g.x[..., 0].sum()) == float(traj.x[:10, :, 0].sum())
    assert d["gps.fuse_values_too_far"] == int(traj.mask[10:].sum())


def test_road_graph_with_two_sources():
    roads = osm.road_graph(osm.helsinki_sample_path())
    tracks = simulate_tracks(roads, n_tracks=8, noise_m=5, seed=3)
    traj = from_points(tracks, road_graph=roads, interval="15min", id_col="track", name="gps")
    probe = from_tracks(
        tracks.drop(columns=["true_segment"]),
        interval="15min",
        mode="interpolate",
        nodes=roads,
        radius_m=100,
        id_col="track",
        name="probe",
    )
    g = fuse({"gps": traj, "probe": probe}, on=roads, how="idw", max_dist_m=150)
    assert (
        g.num_nodes == roads.num_nodes
        and g.meta["node_attr_names"] == roads.meta["node_attr_names"]
    )
    assert float(g.x[..., 0].sum()) == len(tracks)
    assert [v["unit"] for v in g.meta["variables"]][-1] == "m/s"
    with pytest.raises(ValueError, match="longer than the common interval"):
        fuse([traj, probe], on=roads, interval="5min")
    with pytest.raises(ValueError, match="how"):
        fuse([traj], on=roads, how="kriging")


def test_times_intersection_keeps_only_common_steps(geolife):
    traj, probe = geolife
    late = probe.slice_time(probe.num_steps // 2)
    g = fuse({"gps": traj, "probe": late}, on=traj, times="intersection")
    start = max(int(traj.time[0]), int(late.time[0]))
    end = min(int(traj.time[-1]), int(late.time[-1]))
    assert int(g.time[0]) >= start - 3600 and int(g.time[-1]) <= end
    union = fuse({"gps": traj, "probe": late}, on=traj, times="union")
    assert g.num_steps < union.num_steps
    assert g.meta["dropped"]["gps.fuse_values_outside_time"] > 0


def test_value_too_far_and_outside_time_is_counted_once(geolife):
    traj, probe = geolife
    late = probe.slice_time(probe.num_steps // 2)
    target = grid_nodes(as_grid(GRID)).pos[:10]  # the first 10 cells of traj's grid
    g = fuse({"gps": traj, "probe": late}, on=target, max_dist_m=600, times="intersection")
    d = g.meta["dropped"]
    t = traj.time.numpy()
    inside = (t >= int(g.time[0])) & (t < int(g.time[-1]) + g.meta["interval"])
    assert inside.any() and not inside.all()
    obs = traj.mask.numpy()
    far = int(obs[10:].sum())  # every value of a far node, whatever its time
    outside = int(obs[:10][:, ~inside].sum())  # near nodes only
    assert int(obs[10:][:, ~inside].sum()) > 0  # values that are both: counted as too far
    assert d["gps.fuse_values_too_far"] == far
    assert d["gps.fuse_values_outside_time"] == outside
    assert far + outside + int(obs[:10][:, inside].sum()) == int(obs.sum())
