"""sensors.from_table on real sensors: Los-loop (METR-LA), Melbourne, Montevideo; road snapping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from graph_builders import sensors
from stgraph.data import load
from stgraph.errors import ChecksumError, ConfigError, DataFormatError
from stgraph.utils.geo import haversine_m

#: ``meta["dropped"]`` of sensors with readings that are all numbers, finite, in float32's range.
NO_BAD_VALUES = {
    "non_numeric_sensor": 0,
    "unparseable_values": 0,
    "infinite_values": 0,
    "overflow_values": 0,
}
MELBOURNE_SHA = "d8c94234dd64ead84813e0cb6a5a99a785f898b0dacee8bbca77119ff757e32e"


@pytest.fixture(scope="module")
def los_paths(data_dir):
    return (
        data_dir / "metr-la-graph" / "graph_sensor_locations.csv",
        data_dir / "los-loop" / "los_speed.csv",
    )


def test_old_option_names_warn_and_still_work(los_paths):
    loc, speed = los_paths
    kw = dict(start="2012-03-01", interval="5min", variable="speed", method="knn", k=3)
    new = sensors.from_table(loc, speed, units="mph", **kw)
    with pytest.warns(DeprecationWarning, match="'unit' is now 'units'"):
        old = sensors.from_table(loc, speed, unit="mph", **kw)
    assert old.meta["variables"] == new.meta["variables"] == [{"name": "speed", "unit": "mph"}]
    assert torch.equal(old.edge_index, new.edge_index) and torch.equal(old.x, new.x)
    with pytest.raises(ConfigError, match="give units= only"):
        sensors.from_table(loc, speed, unit="mph", units="mph", **kw)


def test_los_loop_proximity_graph(los_paths, data_dir):
    loc, speed = los_paths
    g = sensors.from_table(
        loc,
        speed,
        start="2012-03-01",
        interval="5min",
        variable="speed",
        units="mph",
        city="Los Angeles",
        domain="traffic",
        method="gaussian",
    )
    ids = (data_dir / "metr-la-graph" / "graph_sensor_ids.txt").read_text().strip().split(",")
    assert g.meta["node_ids"] == ids and tuple(g.x.shape) == (207, 2016, 1)
    table = pd.read_csv(speed)
    np.testing.assert_allclose(g.x[:, :, 0].numpy().T, table[ids].to_numpy(), rtol=1e-6)
    assert bool(g.mask.all())  # Los-loop has no missing reading
    assert int(g.time[0]) == int(pd.Timestamp("2012-03-01", tz="UTC").timestamp())
    assert g.interval == 300 and int(g.time[-1] - g.time[0]) == 2015 * 300
    assert g.meta["dropped"] == {
        "no_location": 0,
        "no_readings": 0,
        "no_coordinates": 0,
        "snap_too_far": 0,
        **NO_BAD_VALUES,
    }
    # the DCRNN kernel on great-circle distances: sigma = std of all N^2 distances, weights >= 0.1
    pos = g.pos.numpy()
    d = haversine_m(pos[:, None, 0], pos[:, None, 1], pos[None, :, 0], pos[None, :, 1])
    sigma = d.std()
    assert g.meta["proximity"]["sigma"] == pytest.approx(sigma, rel=1e-6)
    src, dst = g.edge_index.numpy()
    np.testing.assert_allclose(
        g.edge_weight.numpy(), np.exp(-((d[src, dst] / sigma) ** 2)), rtol=1e-5
    )
    expected = int(((np.exp(-((d / sigma) ** 2)) >= 0.1) & ~np.eye(207, dtype=bool)).sum())
    assert g.edge_index.size(1) == expected
    np.testing.assert_allclose(g.edge_attr[:, 0].numpy(), d[src, dst], rtol=1e-5)


def test_join_drops_are_counted_and_named(los_paths):
    loc, speed = los_paths
    locations = pd.read_csv(loc)
    readings = pd.read_csv(speed)
    no_loc = locations.sensor_id.astype(str).tolist()[:3]
    no_read = readings.columns.tolist()[-2:]
    locations = locations[~locations.sensor_id.astype(str).isin(no_loc)].copy()
    locations.loc[locations.index[10], "latitude"] = np.nan
    g = sensors.from_table(locations, readings.drop(columns=no_read), method="knn", k=4)
    assert g.meta["dropped"] == {
        "no_location": 3,
        "no_readings": 2,
        "no_coordinates": 1,
        "snap_too_far": 0,
        **NO_BAD_VALUES,
    }
    assert g.meta["dropped_ids"]["no_location"] == no_loc
    assert g.meta["dropped_ids"]["no_readings"] == no_read
    assert g.num_nodes == 207 - 3 - 2 - 1
    assert g.edge_index.size(1) == 4 * g.num_nodes  # knn: 4 in-edges per node


def test_missing_columns_name_the_file(tmp_path, los_paths):
    loc, speed = los_paths
    bad = tmp_path / "locations.csv"
    pd.read_csv(loc).drop(columns=["longitude"]).to_csv(bad, index=False)
    with pytest.raises(DataFormatError) as err:
        sensors.from_table(bad, speed)
    assert str(bad) in str(err.value) and "'longitude'" in str(err.value)
    # long readings whose value column is not the one named: an error, not 2 odd "sensors"
    table = (
        pd.read_csv(speed)
        .iloc[:12, :3]
        .assign(time=pd.date_range("2012-03-01", periods=12, freq="5min"))
    )
    long = table.melt(id_vars="time", var_name="sensor_id", value_name="speed")
    with pytest.raises(DataFormatError, match="no value column 'value'"):
        sensors.from_table(loc, long, time_col="time")
    g = sensors.from_table(loc, long, time_col="time", value_col="speed", method="knn", k=1)
    assert g.num_nodes == 3 and g.meta["dropped"]["no_readings"] == 204


def test_melbourne_from_uctb_pickle(data_dir, tmp_path):
    path = data_dir / "melbourne-pedestrian" / "Pedestrian_Melbourne.zip"
    with pytest.raises(ChecksumError):
        sensors.read_uctb(path, sha256="0" * 64)  # nothing is unpickled without the right digest
    loc, readings, info = sensors.read_uctb(path, sha256=MELBOURNE_SHA)
    assert len(loc) == 55 and len(readings) == 16056
    g = sensors.from_table(
        loc,
        readings,
        time_col="time",
        method="knn",
        k=5,
        variable="pedestrians",
        units="count/h",
        city="Melbourne",
    )
    assert tuple(g.x.shape) == (55, 16056, 1) and g.interval == 3600
    # the -1 markers are the masked entries (1.4 % per the manifest)
    assert int((~g.mask).sum()) == info["missing_marked"] > 0
    assert g.missing_share == pytest.approx(0.014, abs=0.001)
    lon, lat = g.pos[:, 0], g.pos[:, 1]
    assert float(lat.min()) > -37.83 and float(lat.max()) < -37.79
    assert float(lon.min()) > 144.93 and float(lon.max()) < 144.98
    assert int(g.time[-1] - g.time[0]) == 16055 * 3600
    # the first 2000 hours as a long table, shuffled, with 500 rows removed: same values, those
    # entries masked
    head = readings.iloc[:2000]
    long = head.melt(id_vars="time", var_name="sensor_id", value_name="value").dropna()
    long = long.sample(frac=1.0, random_state=1)
    removed, long = long.iloc[:500], long.iloc[500:]
    g_long = sensors.from_table(loc, long, time_col="time", method="knn", k=5)
    assert g_long.num_steps == 2000 and g_long.meta["node_ids"] == g.meta["node_ids"]
    sub_x, sub_mask = g.x[:, :2000], g.mask[:, :2000]
    assert torch.equal(g_long.x[g_long.mask], sub_x[g_long.mask])
    assert int((sub_mask & ~g_long.mask).sum()) == 500
    node = g.meta["node_ids"].index(str(removed.iloc[0].sensor_id))
    step = int(
        (pd.Timestamp(removed.iloc[0].time) - pd.Timestamp("2021-01-01")) / pd.Timedelta("1h")
    )
    assert not bool(g_long.mask[node, step, 0])


def test_non_monotone_and_duplicate_times(data_dir):
    loc, readings, _ = sensors.read_uctb(
        data_dir / "melbourne-pedestrian" / "Pedestrian_Melbourne.zip", sha256=MELBOURNE_SHA
    )
    head = readings.iloc[:200]
    swapped = head.iloc[[0, 1, 3, 2, *range(4, 200)]]
    with pytest.raises(DataFormatError, match=r"'time' must strictly increase; row 3"):
        sensors.from_table(loc, swapped, time_col="time", method="knn")
    ok = sensors.from_table(loc, swapped, time_col="time", method="knn", sort_time=True)
    ref = sensors.from_table(loc, head, time_col="time", method="knn")
    assert torch.equal(ok.x, ref.x) and torch.equal(ok.time, ref.time)
    dup = pd.concat([head.iloc[:5], head.iloc[4:5], head.iloc[5:]])
    with pytest.raises(DataFormatError, match="must strictly increase"):
        sensors.from_table(loc, dup, time_col="time", method="knn")
    bad = head.astype({"time": object}).copy()
    bad.loc[bad.index[7], "time"] = "yesterday-ish"
    with pytest.raises(DataFormatError, match=r"row 7: 'yesterday-ish' is not a time"):
        sensors.from_table(loc, bad, time_col="time", method="knn")
    gap = head.drop(index=head.index[[10, 11]])  # two missing hours: kept as masked steps
    g_gap = sensors.from_table(loc, gap, time_col="time", method="knn")
    assert g_gap.num_steps == 200 and g_gap.meta["missing_steps"] == 2
    assert not bool(g_gap.mask[:, 10:12].any())


def test_montevideo_projected_stops(data_dir):
    loc, readings, links = sensors.read_node_link(
        data_dir / "pgt-montevideo-bus" / "montevideo_bus.json"
    )
    # the stops' "lon"/"lat" are metres: as degrees they are a clear error naming the column
    with pytest.raises(DataFormatError, match=r"column 'x' has values in \[566071, 589297\]"):
        sensors.from_table(loc, readings, lon_col="x", lat_col="y")
    g = sensors.from_table(
        loc,
        readings,
        lon_col="x",
        lat_col="y",
        crs="EPSG:32721",
        start="2020-10-01",
        interval="1h",
        tz="America/Montevideo",
        distances=links[["source", "target", "weight"]],
        variable="inflow",
    )
    assert tuple(g.x.shape) == (675, 744, 1)
    # EPSG:32721 (UTM 21S) puts every stop inside Montevideo
    assert float(g.pos[:, 0].min()) > -56.45 and float(g.pos[:, 0].max()) < -56.0
    assert float(g.pos[:, 1].min()) > -34.95 and float(g.pos[:, 1].max()) < -34.65
    # and the stored link weights (road metres between consecutive stops) match the converted
    # positions: the median ratio of link weight to great-circle distance is ~1
    ids = g.meta["node_ids"]
    pos = g.pos.numpy()
    ia = [ids.index(str(s)) for s in links.source]
    ib = [ids.index(str(t)) for t in links.target]
    ratio = links.weight.to_numpy() / np.maximum(
        haversine_m(pos[ia, 0], pos[ia, 1], pos[ib, 0], pos[ib, 1]), 1.0
    )
    assert np.median(ratio) == pytest.approx(1.0, abs=0.01)
    # edges come from the link table only (DCRNN kernel on those distances)
    pairs = set(zip(ia, ib, strict=True))
    assert set(map(tuple, g.edge_index.T.tolist())) <= pairs
    # 2020-10-01 00:00 in Montevideo is 03:00 UTC
    assert int(g.time[0]) == int(pd.Timestamp("2020-10-01T03:00", tz="UTC").timestamp())


@pytest.fixture(scope="module")
def baltimore(data_dir):
    osm = pytest.importorskip("graph_builders.osm")
    osmium = pytest.importorskip("osmium")
    path = data_dir / "osm-baltimore" / "baltimore.osm.pbf"
    road = osm.road_graph(path, context=False)
    signals = []
    for obj in osmium.FileProcessor(str(path), osmium.osm.NODE):
        if obj.tags.get("highway") == "traffic_signals":
            signals.append((obj.id, obj.location.lon, obj.location.lat))
    return road, pd.DataFrame(signals, columns=["sensor_id", "longitude", "latitude"]).sort_values(
        "sensor_id"
    )


def test_snapped_to_baltimore_roads(baltimore, los_paths, tmp_path):
    """Sensors at real traffic signals of the Baltimore extract; the readings are real Los-loop
    series (the test is about snapping and road distances, not about what is measured)."""
    import networkx as nx

    road, signals = baltimore
    assert len(signals) > 100
    locs = signals.sample(40, random_state=0).reset_index(drop=True)
    speed = pd.read_csv(los_paths[1]).iloc[:, :40]
    speed.columns = locs.sensor_id.astype(str).tolist()
    g = sensors.from_table(
        locs,
        speed,
        road_graph=road,
        start="2012-03-01",
        interval="5min",
        max_dist_m=30.0,
        far="keep",
    )
    snap = g.meta["snap"]
    sd = g.node_attr[:, 0].double().numpy()
    assert snap["median_m"] == pytest.approx(np.median(sd)) and snap["max_m"] == pytest.approx(
        sd.max()
    )
    assert snap["above_max"] == int((sd > 30.0).sum()) and g.num_nodes == 40
    assert snap["median_m"] < 1.0  # signals sit on road nodes
    back = load(g.save(tmp_path / "snapped"))
    assert torch.equal(back.edge_attr, g.edge_attr) and back.meta == g.meta
    # road distances: never shorter than the straight line (up to the snap offsets), directed
    from graph_builders.osm import nearest_nodes

    D, _ = sensors.road_distances(road, locs.longitude.values, locs.latitude.values)
    pos = g.pos.numpy()
    H = haversine_m(pos[:, None, 0], pos[:, None, 1], pos[None, :, 0], pos[None, :, 1])
    fin = np.isfinite(D)
    assert fin.mean() > 0.5
    assert (
        D[fin] >= H[fin] - sd[:, None].repeat(40, 1)[fin] - sd[None, :].repeat(40, 0)[fin] - 1.0
    ).all()
    both = fin & fin.T
    assert (np.abs(D - D.T)[both] > 1.0).any()  # one-way streets make it asymmetric
    # where a sensor is on a node, its road distance is networkx's shortest path between nodes
    dg = nx.DiGraph()
    for (u, v), w in zip(road.edge_index.T.tolist(), road.edge_weight.tolist(), strict=True):
        if u != v and (not dg.has_edge(u, v) or dg[u][v]["weight"] > w):
            dg.add_edge(u, v, weight=w)
    node, node_d = nearest_nodes(
        road, locs.longitude.values, locs.latitude.values, return_dist=True
    )
    on_node = np.flatnonzero(node_d < 0.01)[:8]  # (others sit inside a simplified road segment)
    checked = 0
    for a in on_node:
        lengths = nx.single_source_dijkstra_path_length(dg, int(node[a]), weight="weight")
        for b in on_node:
            if a != b:
                assert D[a, b] == pytest.approx(lengths.get(int(node[b]), np.inf), abs=0.05)
                checked += 1
    assert checked >= 20
    # edges: DCRNN kernel on the road distances, edge_attr = that distance
    src, dst = g.edge_index.numpy()
    assert np.allclose(g.edge_attr[:, 0].numpy(), D[src, dst], rtol=1e-5)
    sigma = g.meta["proximity"]["sigma"]
    np.testing.assert_allclose(
        g.edge_weight.numpy(), np.exp(-((D[src, dst] / sigma) ** 2)), rtol=1e-5
    )
    # far sensors: a signal moved 2 km north of the extract is dropped (or kept) and reported
    far = locs.copy()
    far.loc[0, "latitude"] = road.pos[:, 1].max().item() + 0.02
    dropped = sensors.from_table(far, speed, road_graph=road, max_dist_m=100.0, method="knn", k=3)
    assert dropped.meta["dropped"]["snap_too_far"] == 1 and dropped.num_nodes == 39
    assert dropped.meta["dropped_ids"]["snap_too_far"] == [str(far.sensor_id[0])]
    assert dropped.meta["snap"]["above_max"] == 1 and dropped.meta["snap"]["max_m"] > 1000
    kept = sensors.from_table(
        far, speed, road_graph=road, max_dist_m=100.0, far="keep", method="knn", k=3
    )
    assert kept.num_nodes == 40 and kept.meta["snap"]["above_max"] == 1


def test_two_sensors_on_one_one_way_segment(baltimore):
    """Directed distance along a one-way segment: downstream = the gap; upstream = around the block."""
    import networkx as nx
    import shapely
    from pyproj import Transformer

    from graph_builders.osm import edge_geometry

    road, _ = baltimore
    names = road.meta["edge_attr_names"]
    oneway = road.edge_attr[:, names.index("oneway")].numpy() == 1
    length = road.edge_weight.double().numpy()
    ei = road.edge_index.numpy()
    dg = nx.DiGraph()
    for (u, v), w in zip(ei.T.tolist(), length.tolist(), strict=True):
        if u != v and (not dg.has_edge(u, v) or dg[u][v]["weight"] > w):
            dg.add_edge(u, v, weight=w)
    candidates = np.flatnonzero(oneway & (length > 150) & (ei[0] != ei[1]))
    # the longest one-way segment from whose end its start can be reached again
    e = next(
        int(c)
        for c in candidates[np.argsort(-length[candidates])]
        if nx.has_path(dg, int(ei[1, c]), int(ei[0, c]))
    )
    coords, ptr = edge_geometry(road)
    to_utm = Transformer.from_crs(4326, road.meta["projected_crs"], always_xy=True)
    back = Transformer.from_crs(road.meta["projected_crs"], 4326, always_xy=True)
    line = shapely.LineString(np.stack(to_utm.transform(*coords[ptr[e] : ptr[e + 1]].T), 1))
    pts = [line.interpolate(f, normalized=True) for f in (0.25, 0.75)]
    lon, lat = back.transform([p.x for p in pts], [p.y for p in pts])
    D, snap = sensors.road_distances(road, np.array(lon), np.array(lat))
    assert snap.max() < 0.5
    L = length[e]
    assert D[0, 1] == pytest.approx(0.5 * L, rel=0.01)
    around = nx.dijkstra_path_length(dg, int(ei[1, e]), int(ei[0, e]), weight="weight")
    assert D[1, 0] == pytest.approx(0.5 * L + around, rel=0.01)


def test_default_sensor_graph_is_the_registry_recipe(data_dir):
    """Without a road graph or a method, each sensor links its 8 nearest (a sparse graph)."""
    from stgraph import datasets

    reg = datasets.load("melbourne-pedestrian")
    loc = pd.DataFrame(
        {
            "sensor_id": [str(i) for i in range(reg.num_nodes)],
            "longitude": reg.pos[:, 0].double().numpy(),
            "latitude": reg.pos[:, 1].double().numpy(),
        }
    )
    times = pd.date_range("2021-01-01", periods=48, freq="h")
    readings = pd.DataFrame(reg.x[:, :48, 0].numpy().T, columns=loc["sensor_id"])
    readings.insert(0, "time", times.astype(str))
    g = sensors.from_table(loc, readings, time_col="time", interval="1h")
    assert g.edge_index.size(1) == 8 * reg.num_nodes
    assert set(map(tuple, g.edge_index.t().tolist())) == set(
        map(tuple, reg.edge_index.t().tolist())
    )
