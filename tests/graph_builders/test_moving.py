"""moving.from_tracks: per-step kNN graphs among moving sensors, interpolation onto fixed nodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graph_builders.moving import from_tracks
from graph_builders.trajectories import haversine_m
from stgraph.errors import DataFormatError


def _unix(values) -> np.ndarray:
    ts = pd.to_datetime(values)
    return ((ts - pd.Timestamp(0)) // pd.Timedelta(seconds=1)).to_numpy().astype(np.int64)


@pytest.fixture(scope="module")
def bus(data_dir):
    raw = pd.read_csv(data_dir / "liverpool-bus" / "route14_outbound.csv")
    raw["t"] = _unix(raw["timestamp"])
    return raw


def test_knn_graph_per_step_among_active_buses(data_dir, bus):
    k = 2
    g = from_tracks(data_dir / "liverpool-bus" / "route14_outbound.csv", interval="5min", k=k)
    assert g.variables == ["speed", "lon", "lat"] and g.units == ["m/s", "degree", "degree"]
    assert sorted(g.meta["node_ids"]) == sorted(str(t) for t in bus["trip_id"].unique())
    # a bus is active in a step exactly when it reported in that step
    ids = {tid: i for i, tid in enumerate(g.meta["node_ids"])}
    step = (bus["t"].to_numpy() - int(g.time[0])) // 300
    node = bus["trip_id"].astype(str).map(ids).to_numpy()
    active = np.zeros((g.num_nodes, g.num_steps), dtype=bool)
    active[node, step] = True
    assert np.array_equal(g.mask[..., 1].numpy(), active)
    n_active = active.sum(0)
    assert (n_active >= 2).sum() > 10
    # each active bus receives min(k, active - 1) edges from buses active in the same step
    src, dst, t = g.dyn_edge_index[0].numpy(), g.dyn_edge_index[1].numpy(), g.dyn_edge_time.numpy()
    assert active[src, t].all() and active[dst, t].all() and (src != dst).all()
    indeg = np.zeros((g.num_nodes, g.num_steps), dtype=int)
    np.add.at(indeg, (dst, t), 1)
    expected = np.where(active, np.minimum(k, n_active - 1)[None, :], 0)
    assert np.array_equal(indeg, expected)
    # weights are distances between the step's mean positions; neighbours are the nearest ones
    lon, lat = g.x[..., 1].numpy(), g.x[..., 2].numpy()
    d = haversine_m(lon[src, t], lat[src, t], lon[dst, t], lat[dst, t])
    np.testing.assert_allclose(g.dyn_edge_weight.numpy(), d, rtol=0.01, atol=1.0)
    s0 = int(np.argmax(n_active))
    members = np.nonzero(active[:, s0])[0]
    centre = members[0]
    others = members[members != centre]
    dist = haversine_m(lon[others, s0], lat[others, s0], lon[centre, s0], lat[centre, s0])
    chosen = set(src[(dst == centre) & (t == s0)].tolist())
    assert chosen == set(others[np.argsort(dist)[:k]].tolist())


def test_derived_speed_is_binned_mean(data_dir, bus):
    g = from_tracks(data_dir / "liverpool-bus" / "route14_outbound.csv", interval="15min", k=3)
    raw = bus.sort_values(["trip_id", "t"], kind="stable")
    trip, tt = raw["trip_id"].to_numpy(), raw["t"].to_numpy()
    lon, lat = raw["longitude"].to_numpy(), raw["latitude"].to_numpy()
    ok = (trip[1:] == trip[:-1]) & (tt[1:] > tt[:-1]) & (tt[1:] - tt[:-1] <= 600)
    speed = np.full(len(raw), np.nan)
    speed[1:][ok] = (
        haversine_m(lon[:-1], lat[:-1], lon[1:], lat[1:]) / np.maximum(tt[1:] - tt[:-1], 1)
    )[ok]
    frame = pd.DataFrame(
        {"trip": trip.astype(str), "step": (tt - int(g.time[0])) // 900, "speed": speed}
    )
    expected = frame.dropna().groupby(["trip", "step"])["speed"].mean()
    ids = {tid: i for i, tid in enumerate(g.meta["node_ids"])}
    rows = [ids[t] for t in expected.index.get_level_values(0)]
    got = g.x[rows, expected.index.get_level_values(1), 0].numpy()
    np.testing.assert_allclose(got, expected.to_numpy(), rtol=1e-4)
    assert int(g.mask[..., 0].sum()) == len(expected)


def test_interpolation_onto_fixed_nodes(data_dir, bus):
    path = data_dir / "liverpool-bus" / "route14_outbound.csv"
    knn = from_tracks(path, interval="15min", k=2)
    lon, lat, obs = knn.x[..., 1].numpy(), knn.x[..., 2].numpy(), knn.mask[..., 0].numpy()
    speed = knn.x[..., 0].numpy()
    # nodes: the first bus's first observed position, and a point 50 km away
    b, s = map(int, np.argwhere(obs)[0])
    nodes = np.array([[lon[b, s], lat[b, s]], [lon[b, s] + 0.75, lat[b, s]]])
    g = from_tracks(
        path, interval="15min", mode="interpolate", nodes=nodes, radius_m=800, kernel="idw"
    )
    assert g.num_nodes == 2 and g.num_steps <= knn.num_steps
    assert not g.mask[1].any()  # nothing within 800 m of the far node
    sg = int((knn.time[s] - g.time[0]) // 900)  # step s of the kNN graph in g
    # IDW by hand at (node 0, step s) over the buses reporting a speed within 800 m
    near = obs[:, s] & (haversine_m(lon[:, s], lat[:, s], nodes[0, 0], nodes[0, 1]) <= 800)
    d = haversine_m(lon[near, s], lat[near, s], nodes[0, 0], nodes[0, 1])
    w = 1.0 / np.maximum(d, 1.0) ** 2
    assert bool(g.mask[0, sg, 0])
    np.testing.assert_allclose(
        float(g.x[0, sg, 0]), (w * speed[near, s]).sum() / w.sum(), rtol=1e-4
    )
    gauss = from_tracks(
        path, interval="15min", mode="interpolate", nodes=nodes, radius_m=800, kernel="gaussian"
    )
    assert np.array_equal(gauss.mask.numpy(), g.mask.numpy())
    lo, hi = speed[near, s].min(), speed[near, s].max()
    assert lo - 1e-4 <= float(gauss.x[0, sg, 0]) <= hi + 1e-4


def test_geolife_tracks_carrying_speed(data_dir):
    g = from_tracks(data_dir / "geolife-small" / "geolife_small.csv", interval="1h", k=2)
    assert g.num_nodes == 5 and g.meta["moving"]["sensors"] == 5
    # the five trajectories never overlap in time: no step has two active sensors
    assert g.meta["moving"]["max_active_per_step"] == 1 and g.dyn_edge_index.shape[1] == 0
    assert g.edge_index.shape[1] == 5 * 2  # static kNN on the mean positions
    sp = g.x[..., 0][g.mask[..., 0]]
    assert 0 < float(sp.median()) < 30


def test_bad_input(data_dir, bus):
    path = data_dir / "liverpool-bus" / "route14_outbound.csv"
    with pytest.raises(ValueError, match="needs nodes"):
        from_tracks(path, mode="interpolate")
    with pytest.raises(DataFormatError, match="'pressure'"):
        from_tracks(path, value_cols=["pressure"])
    with pytest.raises(DataFormatError, match="time"):
        from_tracks(bus.drop(columns=["timestamp", "t"]))
