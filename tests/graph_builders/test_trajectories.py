"""trajectories.from_points / mapmatch: map matching, counts, speeds, transitions, drops."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch

from graph_builders import osm
from graph_builders.events import Grid
from graph_builders.mapmatch import match_to_roads, simulate_tracks
from graph_builders.trajectories import from_points, haversine_m, read_points, split_segments
from stgraph.errors import DataFormatError

BEIJING = {"bbox": (116.30, 39.90, 116.45, 40.02), "cell_m": 1000}


@pytest.fixture(scope="module")
def helsinki():
    return osm.road_graph(osm.helsinki_sample_path(), node="intersection")


@pytest.fixture(scope="module")
def helsinki_segments():
    return osm.road_graph(osm.helsinki_sample_path(), node="segment")


def _unix(values) -> np.ndarray:
    """Unix seconds of naive UTC time strings (any pandas datetime resolution)."""
    ts = pd.to_datetime(values)
    return ((ts - pd.Timestamp(0)) // pd.Timedelta(seconds=1)).to_numpy().astype(np.int64)


def _accuracy(graph, tracks, method):
    seg = split_segments(tracks["track"].to_numpy(), tracks["time"].to_numpy(), 600)
    matched, _, _ = match_to_roads(tracks[["lon", "lat"]].to_numpy(), seg, graph, method=method)
    return float((matched == tracks["true_segment"].to_numpy()).mean()), matched


@pytest.mark.parametrize("fixture", ["helsinki", "helsinki_segments"])
def test_map_matching_accuracy_on_generated_helsinki_tracks(fixture, request):
    graph = request.getfixturevalue(fixture)
    tracks = simulate_tracks(graph, n_tracks=30, spacing_m=20, noise_m=5, seed=0)
    # the ground truth lies on the real road polylines of the graph
    assert len(tracks) > 1000
    acc_hmm, matched = _accuracy(graph, tracks, "hmm")
    acc_nearest, _ = _accuracy(graph, tracks, "nearest")
    assert (matched >= 0).all()
    assert acc_hmm >= 0.9, acc_hmm
    assert acc_hmm > acc_nearest  # continuity must help over per-point nearest edge + heading


def test_road_graph_counts_and_transitions(helsinki):
    tracks = simulate_tracks(helsinki, n_tracks=10, noise_m=5, seed=1)
    g = from_points(tracks, road_graph=helsinki, interval="5min", id_col="track")
    n = len(tracks)
    assert g.num_nodes == helsinki.num_nodes and g.edge_index.shape == helsinki.edge_index.shape
    assert g.meta["edge_weight"] == "distance_m" and torch.equal(
        g.edge_weight, helsinki.edge_weight
    )
    assert g.meta["matching"]["points_matched"] + sum(g.meta["dropped"].values()) == n
    assert int(g.x[..., 0].sum()) == g.meta["matching"]["points_matched"] == n
    d = g.meta["matching"]["distance_m"]
    assert 0 < d["median"] <= d["p90"] <= d["max"] <= 50
    # 10 tracks at 10 m/s: speeds come from consecutive points (noise adds a little)
    speeds = g.x[..., 2][g.mask[..., 2]]
    assert 8.0 < float(speeds.median()) < 14.0
    # transitions link road nodes that each received points of the same step
    src, dst = g.dyn_edge_index
    assert (g.x[src, g.dyn_edge_time, 0] > 0).all() and (g.x[dst, g.dyn_edge_time, 0] > 0).all()
    # transitions per track = node changes along its matched sequence; their sum is the total
    assert int(g.dyn_edge_weight.sum()) == g.meta["matching"]["transitions"] > 10


def test_points_outside_and_too_far_are_counted(helsinki):
    tracks = simulate_tracks(helsinki, n_tracks=3, noise_m=3, seed=2)
    far = tracks.copy()
    far.loc[:4, "lat"] += 1.0  # 111 km north: outside the road graph
    g = from_points(far, road_graph=helsinki, interval="5min", id_col="track", max_dist_m=30)
    assert g.meta["dropped"]["outside"] == 5
    assert g.meta["matching"]["points_matched"] + sum(g.meta["dropped"].values()) == len(far)
    shifted = tracks.copy()
    shifted.loc[20:22, "lon"] += (
        0.0015  # ~80 m east: inside the extent, beyond max_dist_m of any road?
    )
    g2 = from_points(shifted, road_graph=helsinki, interval="5min", id_col="track", max_dist_m=10)
    assert g2.meta["dropped"]["too_far"] > 0
    assert g2.meta["matching"]["points_matched"] + sum(g2.meta["dropped"].values()) == len(shifted)


def test_geolife_small_on_grid_counts_conserved(data_dir):
    path = data_dir / "geolife-small" / "geolife_small.csv"
    g = from_points(path, grid=BEIJING, interval="1h")
    raw = pd.read_csv(path, sep=";")
    n_in = len(raw)
    m = g.meta["matching"]
    assert m["points_in"] == n_in == 5908
    assert m["points_matched"] + sum(g.meta["dropped"].values()) == n_in
    assert g.meta["dropped"]["outside"] > 0 and m["points_matched"] > 0
    assert int(g.x[..., 0].sum()) == m["points_matched"]
    # per-cell totals equal an independent count with the grid's cell rule
    grid = Grid.from_bbox(*BEIJING["bbox"], cell_m=BEIJING["cell_m"])
    r = np.floor((raw["Y"] - grid.origin_lat) / grid.cell_deg_lat)
    c = np.floor((raw["X"] - grid.origin_lon) / grid.cell_deg_lon)
    inside = (r >= 0) & (r < grid.rows) & (c >= 0) & (c < grid.cols)
    assert int(inside.sum()) == m["points_matched"]
    expected = np.bincount(
        (r[inside] * grid.cols + c[inside]).astype(int), minlength=grid.num_cells
    )
    assert np.array_equal(g.x[..., 0].sum(1).numpy().astype(int), expected)
    # distinct trajectories never exceed points; speeds are masked where a cell-hour is empty
    assert (g.x[..., 1] <= g.x[..., 0]).all()
    assert not (g.mask[..., 2] & (g.x[..., 0] == 0)).any()
    assert g.time.diff().eq(3600).all()


def test_speed_is_mean_of_consecutive_point_speeds(data_dir):
    path = data_dir / "liverpool-bus" / "route14_outbound.csv"
    grid = {"bbox": (-3.05, 53.35, -2.85, 53.5), "cell_m": 500}
    g = from_points(path, grid=grid, interval="15min")
    raw = pd.read_csv(path).sort_values(["trip_id", "timestamp"], kind="stable")
    t = _unix(raw["timestamp"])
    same = raw["trip_id"].to_numpy()[1:] == raw["trip_id"].to_numpy()[:-1]
    dt = np.diff(t)
    dist = haversine_m(
        raw["longitude"].to_numpy()[:-1],
        raw["latitude"].to_numpy()[:-1],
        raw["longitude"].to_numpy()[1:],
        raw["latitude"].to_numpy()[1:],
    )
    ok = same & (dt > 0) & (dt <= 600)
    speed = np.full(len(raw), np.nan)
    speed[1:][ok] = dist[ok] / dt[ok]
    grid_o = Grid.from_bbox(*grid["bbox"], cell_m=grid["cell_m"])
    cell = grid_o.cell_of(raw["longitude"].to_numpy(), raw["latitude"].to_numpy())
    step = (t - int(g.time[0])) // 900
    frame = pd.DataFrame({"cell": cell, "step": step, "speed": speed}).dropna()
    expected = frame.groupby(["cell", "step"])["speed"].mean()
    got = g.x[expected.index.get_level_values(0), expected.index.get_level_values(1), 2].numpy()
    np.testing.assert_allclose(got, expected.to_numpy(), rtol=1e-4)
    assert int(g.mask[..., 2].sum()) == len(expected)


def test_transitions_consistent_with_consecutive_points(data_dir):
    path = data_dir / "liverpool-bus" / "route14_outbound.csv"
    grid = {"bbox": (-3.05, 53.35, -2.85, 53.5), "cell_m": 300}
    g = from_points(path, grid=grid, interval="15min")
    raw = pd.read_csv(path)
    raw["t"] = _unix(raw["timestamp"])
    raw = raw.sort_values(["trip_id", "t"], kind="stable")
    cell = Grid.from_bbox(*grid["bbox"], cell_m=grid["cell_m"]).cell_of(
        raw["longitude"], raw["latitude"]
    )
    trip = raw["trip_id"].to_numpy()
    tt = raw["t"].to_numpy()
    ok = (trip[1:] == trip[:-1]) & (tt[1:] - tt[:-1] <= 600) & (cell[1:] != cell[:-1])
    expected = (
        pd.Series(
            1,
            index=pd.MultiIndex.from_arrays(
                [cell[:-1][ok], cell[1:][ok], (tt[1:][ok] - int(g.time[0])) // 900]
            ),
        )
        .groupby(level=[0, 1, 2])
        .sum()
    )
    got = pd.Series(
        g.dyn_edge_weight.numpy(),
        index=pd.MultiIndex.from_arrays(
            [g.dyn_edge_index[0].numpy(), g.dyn_edge_index[1].numpy(), g.dyn_edge_time.numpy()]
        ),
    ).sort_index()
    assert got.index.equals(expected.sort_index().index)
    assert np.array_equal(got.to_numpy().astype(int), expected.sort_index().to_numpy())


def test_bad_rows_are_counted_by_reason(data_dir):
    raw = pd.read_csv(data_dir / "liverpool-bus" / "route14_outbound.csv")
    bad = raw.copy()
    trip0 = bad.index[bad["trip_id"] == bad["trip_id"].iloc[0]]
    bad.loc[trip0[5], "timestamp"] = bad.loc[trip0[1], "timestamp"]  # earlier than its predecessor
    bad.loc[trip0[8], "timestamp"] = "not a time"
    bad.loc[trip0[10], "latitude"] = np.nan
    bad.loc[trip0[14], "latitude"] = 54.5  # 100 km north of the route: outside the grid
    pos = bad.index.get_loc(trip0[12])
    bad = pd.concat(
        [bad.iloc[: pos + 1], bad.iloc[[pos]], bad.iloc[pos + 1 :]], ignore_index=True
    )  # repeated fix
    grid = {"bbox": (-3.05, 53.35, -2.85, 53.5), "cell_m": 500}
    g = from_points(bad, grid=grid, interval="15min")
    d = g.meta["dropped"]
    assert "non_monotone_time" not in d  # sorted per track: the earlier fix is kept, in order
    assert g.meta["matching"]["rows_out_of_time_order"] == 1
    assert d["unparseable_time"] == 1
    assert d["missing_coordinates"] == 1
    assert d["duplicate"] == 1
    assert d["outside"] == 1
    assert g.meta["matching"]["points_matched"] + sum(d.values()) == len(bad)


def test_missing_columns_raise_naming_them(data_dir, tmp_path):
    raw = pd.read_csv(data_dir / "liverpool-bus" / "route14_outbound.csv")
    path = tmp_path / "no_time.csv"
    raw.drop(columns=["timestamp"]).to_csv(path, index=False)
    with pytest.raises(DataFormatError, match="no_time.csv.*time"):
        from_points(path, grid=BEIJING)
    with pytest.raises(DataFormatError, match="'speed_kmh'"):
        from_points(raw, grid=BEIJING, speed_col="speed_kmh")
    with pytest.raises(ValueError, match="exactly one"):
        from_points(raw)


def test_read_points_keeps_file_order_per_track(data_dir):
    pts, dropped = read_points(data_dir / "geolife-small" / "geolife_small.csv")
    assert sum(dropped.values()) == 0 and len(pts) == 5908
    assert pts.attrs["track_names"] == ["1", "2", "3", "4", "5"]
    assert (pts.groupby("track")["time"].diff().dropna() > 0).all()


@pytest.mark.slow
def test_geolife_217k_points_matched_under_30s(data_dir):
    path = data_dir / "geolife-sample" / "geolife_sample.txt.gz"
    start = time.perf_counter()
    g = from_points(
        path, grid={"bbox": (116.2, 39.85, 116.5, 40.05), "cell_m": 1000}, interval="1h"
    )
    seconds = time.perf_counter() - start
    m = g.meta["matching"]
    assert m["points_in"] == 217_653
    assert m["points_matched"] + sum(g.meta["dropped"].values()) == 217_653
    assert seconds < 30, seconds
