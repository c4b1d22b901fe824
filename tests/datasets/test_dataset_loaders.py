"""Every loader of the registry on the real files: shapes, dates, missing shares, coordinates."""

from __future__ import annotations

import json
import math
import shutil
import time

import numpy as np
import pandas as pd
import pytest
import torch

from stgraph import datasets
from stgraph.data.stgraph import STGraph
from stgraph.datasets._pickle import load_verified_pickle
from stgraph.datasets.files import FILES

HOUR, DAY, WEEK = 3600, 86400, 7 * 86400


def _utc(s: str) -> int:
    return int(pd.Timestamp(s, tz="UTC").timestamp())


def _assert_regular(g: STGraph, first: str, last: str, interval: int) -> None:
    assert int(g.time[0]) == _utc(first)
    assert int(g.time[-1]) == _utc(last)
    assert bool((g.time.diff() == interval).all())
    assert g.meta["interval"] == interval


def _assert_inside(g: STGraph, lon: tuple[float, float], lat: tuple[float, float]) -> None:
    assert float(g.pos[:, 0].min()) >= lon[0] and float(g.pos[:, 0].max()) <= lon[1]
    assert float(g.pos[:, 1].min()) >= lat[0] and float(g.pos[:, 1].max()) <= lat[1]


def _assert_matches_info(g: STGraph, name: str) -> None:
    info = datasets.info(name)
    assert (info["N"], info["T"], info["V"]) == tuple(g.x.shape)
    assert info["interval"] == g.meta["interval"]
    assert info["missing_share"] == pytest.approx(g.missing_share, abs=1e-6)
    assert info["variables"] == g.meta["variables"]
    if g.time is not None:
        span = [pd.Timestamp(int(t), unit="s") for t in (g.time[0], g.time[-1])]
        assert [pd.Timestamp(s.rstrip("Z")) for s in info["span"]] == span
    g.validate()
    assert g.meta["sources"] and g.meta["provenance"]
    json.dumps(g.meta)  # metadata must be JSON (STGraph.save)


def _no_self_loops(g: STGraph) -> bool:
    return bool((g.edge_index[0] != g.edge_index[1]).all())


@pytest.fixture(scope="module")
def load(data_dir):
    cache = {}

    def _load(name, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = datasets.load(name, root=data_dir, download=False, **options)
        return cache[key]

    return _load


# ---------------------------------------------------------------------------------- los-loop
def test_los_loop(load, data_dir):
    g = load("los-loop")
    assert tuple(g.x.shape) == (207, 2016, 1)
    _assert_matches_info(g, "los-loop")
    _assert_regular(g, "2012-03-01 00:00", "2012-03-07 23:55", 300)
    assert g.missing_share == 0.0 and g.units == ["mph"]

    speed = pd.read_csv(data_dir / "los-loop/los_speed.csv")
    assert g.meta["node_ids"] == list(speed.columns)
    assert np.allclose(g.x[:, :, 0].numpy(), speed.to_numpy().T, atol=1e-4)

    loc = pd.read_csv(data_dir / "metr-la-graph/graph_sensor_locations.csv").set_index("sensor_id")
    i = 57
    sid = int(g.meta["node_ids"][i])
    assert float(g.pos[i, 0]) == pytest.approx(loc.loc[sid, "longitude"], abs=1e-5)
    assert float(g.pos[i, 1]) == pytest.approx(loc.loc[sid, "latitude"], abs=1e-5)
    _assert_inside(g, lon=(-118.6, -117.9), lat=(33.9, 34.4))  # Los Angeles County freeways

    adj = np.loadtxt(data_dir / "los-loop/los_adj.csv", delimiter=",")
    off = adj.copy()
    np.fill_diagonal(off, 0)
    assert g.edge_index.size(1) == int((off != 0).sum())
    assert _no_self_loops(g)
    s, d = g.edge_index.numpy()
    assert np.allclose(g.edge_weight.numpy(), adj[s, d])
    # spatial scale: median distance to the nearest other sensor (pyproj's geodesic, independently)
    from pyproj import Geod

    lon, lat = g.pos[:, 0].double().numpy(), g.pos[:, 1].double().numpy()
    a, b = np.meshgrid(np.arange(207), np.arange(207), indexing="ij")
    _, _, dist = Geod(ellps="WGS84").inv(
        lon[a.ravel()], lat[a.ravel()], lon[b.ravel()], lat[b.ravel()]
    )
    dist = dist.reshape(207, 207)
    np.fill_diagonal(dist, np.inf)
    assert g.meta["spatial_scale"] == pytest.approx(np.median(dist.min(1)), rel=0.01)


def test_los_loop_dcrnn_adjacency_joined_by_sensor_id(load, data_dir):
    g = load("los-loop", adjacency="dcrnn")
    path = data_dir / "metr-la-graph/adj_mx.pkl"
    ids, id_to_ind, adj = load_verified_pickle(
        path, sha256=FILES["metr-la-graph/adj_mx.pkl"].sha256, source=str(path), encoding="latin1"
    )
    nz = adj != 0
    np.fill_diagonal(nz, False)
    assert g.edge_index.size(1) == int(nz.sum())
    assert g.meta["graph"]["directed"] is True
    node_ids = g.meta["node_ids"]
    for e in (0, 100, g.edge_index.size(1) - 1):
        a, b = g.edge_index[:, e].tolist()
        w = adj[id_to_ind[node_ids[a]], id_to_ind[node_ids[b]]]
        assert float(g.edge_weight[e]) == pytest.approx(w, rel=1e-6)


def test_los_loop_loads_fast(data_dir):
    datasets.load("los-loop", root=data_dir, download=False)  # warm: verification cached
    t0 = time.perf_counter()
    datasets.load("los-loop", root=data_dir, download=False)
    assert time.perf_counter() - t0 < 2.0


# ---------------------------------------------------------------------------------- PGT
def test_chickenpox(load, data_dir):
    g = load("chickenpox")
    assert tuple(g.x.shape) == (20, 521, 1)
    _assert_matches_info(g, "chickenpox")
    _assert_regular(g, "2005-01-10", "2014-12-29", WEEK)
    assert pd.Timestamp(int(g.time[0]), unit="s").day_name() == "Monday"
    doc = json.loads((data_dir / "pgt-chickenpox/chickenpox.json").read_text())
    i = doc["node_ids"]["BUDAPEST"]
    assert g.meta["node_ids"][i] == "BUDAPEST"
    assert np.allclose(g.x[i, :, 0].numpy(), np.asarray(doc["FX"])[:, i], atol=1e-6)
    n_self = sum(1 for a, b in doc["edges"] if a == b)
    assert g.edge_index.size(1) == len(doc["edges"]) - n_self and _no_self_loops(g)
    assert g.pos is None


def test_pedalme(load, data_dir):
    g = load("pedalme")
    assert tuple(g.x.shape) == (15, 35, 1)
    _assert_matches_info(g, "pedalme")
    assert g.time is None and g.meta["interval"] == WEEK
    doc = json.loads((data_dir / "pgt-pedalme/pedalme_london.json").read_text())
    keep = [k for k, (a, b) in enumerate(doc["edges"]) if a != b]
    assert g.edge_index.size(1) == len(keep) and _no_self_loops(g)
    assert np.allclose(g.edge_weight.numpy(), np.asarray(doc["weights"])[keep], atol=1e-6)


def test_england_covid_dynamic_edges(load, data_dir):
    g = load("england-covid")
    assert tuple(g.x.shape) == (129, 61, 1)
    _assert_matches_info(g, "england-covid")
    _assert_regular(g, "2020-03-13", "2020-05-12", DAY)
    doc = json.loads((data_dir / "pgt-england-covid/england_covid.json").read_text())
    per_day = [len(doc["edge_mapping"]["edge_index"][str(t)]) for t in range(61)]
    assert g.dyn_edge_index.size(1) == sum(per_day)
    assert torch.bincount(g.dyn_edge_time, minlength=61).tolist() == per_day
    day0 = g.dyn_edge_time == 0
    assert g.dyn_edge_weight[day0][:3].tolist() == doc["edge_mapping"]["edge_weight"]["0"][:3]
    assert g.edge_index is None
    # slicing keeps the dynamic edges of the kept days
    s = g.slice_time(10, 20)
    assert s.dyn_edge_index.size(1) == sum(per_day[10:20])


def test_montevideo_bus_crs(load):
    g = load("montevideo-bus")
    assert tuple(g.x.shape) == (675, 744, 1)
    assert g.meta["edge_weight"] == "distance_m" and float(g.edge_weight.median()) > 50  # metres
    _assert_matches_info(g, "montevideo-bus")
    _assert_regular(g, "2020-10-01 00:00", "2020-10-31 23:00", HOUR)
    assert g.meta["time_reference"] == "local" and g.meta["timezone"] == "America/Montevideo"
    _assert_inside(g, lon=(-56.45, -56.0), lat=(-34.95, -34.70))  # Montevideo
    centre = g.pos.double().mean(0)
    assert float(centre[0]) == pytest.approx(-56.2, abs=0.15)
    assert float(centre[1]) == pytest.approx(-34.85, abs=0.1)
    assert g.edge_index.size(1) == 690 and _no_self_loops(g)
    assert float(g.edge_weight.min()) > 0


def test_montevideo_crs_alternatives(data_dir):
    from stgraph.datasets.pgt import montevideo_lonlat

    doc = json.loads((data_dir / "pgt-montevideo-bus/montevideo_bus.json").read_text())
    e = np.array([n["lon"] for n in doc["nodes"]], float)
    n = np.array([n["lat"] for n in doc["nodes"]], float)
    lon, lat = montevideo_lonlat(e, n, crs="EPSG:32721")
    lon_s, lat_s = montevideo_lonlat(e, n, crs="EPSG:31981")  # SIRGAS 2000 / UTM 21S
    assert np.abs(lat - lat_s).max() * 111_000 < 1.0 and np.abs(lon - lon_s).max() * 92_000 < 1.0
    _, lat_n = montevideo_lonlat(e, n, crs="EPSG:32621")  # UTM 21N: the northern hemisphere
    assert lat_n.min() > 50


# ---------------------------------------------------------------------------------- Melbourne
def test_melbourne_pedestrian(load, data_dir):
    g = load("melbourne-pedestrian")
    assert tuple(g.x.shape) == (55, 16056, 1)
    _assert_matches_info(g, "melbourne-pedestrian")
    _assert_regular(g, "2021-01-01 00:00", "2022-10-31 23:00", HOUR)
    _assert_inside(g, lon=(144.93, 144.99), lat=(-37.83, -37.79))  # Melbourne CBD

    path = data_dir / "melbourne-pedestrian/Pedestrian_Melbourne.zip"
    counts = load_verified_pickle(
        path,
        sha256=FILES["melbourne-pedestrian/Pedestrian_Melbourne.zip"].sha256,
        member="Pedestrian_Melbourne.pkl",
        source=str(path),
    )["Node"]["TrafficNode"]
    assert int((~g.mask).sum()) == int((counts == -1).sum())
    assert 0.01 < g.missing_share < 0.02
    assert bool((g.mask[:, :, 0].numpy() == (counts.T != -1)).all())
    assert bool((g.x[~g.mask] == 0).all())
    assert float(g.x.max()) == float(counts.max())

    # kNN graph: every sensor receives exactly k edges, none from itself
    assert torch.bincount(g.edge_index[1], minlength=55).tolist() == [8] * 55
    assert _no_self_loops(g)
    gg = load("melbourne-pedestrian", graph="gaussian", threshold=0.5)
    assert float(gg.edge_weight.min()) >= 0.5
    ei = gg.edge_index.t().tolist()
    assert {(b, a) for a, b in ei} == {tuple(e) for e in ei}  # symmetric


# ---------------------------------------------------------------------------------- crime
def test_chicago_crime_grid_and_table(load, data_dir):
    g = load("chicago-crime")
    assert tuple(g.x.shape) == (14 * 12, 731, 4)
    _assert_matches_info(g, "chicago-crime")
    _assert_regular(g, "2016-01-01", "2017-12-31", DAY)
    assert g.variables == ["theft", "battery", "assault", "criminal_damage"]
    assert g.meta["spatial_scale"] == 3000.0
    _assert_inside(g, lon=(-87.95, -87.50), lat=(41.64, 42.06))  # Chicago
    # 4-neighbour grid: 2 * (14 * 11 + 12 * 13) directed edges
    assert g.edge_index.size(1) == 2 * (14 * 11 + 12 * 13) and _no_self_loops(g)

    table = datasets.load_table("chicago-crime", root=data_dir, download=False)
    assert len(table) == 321_877 and table["time"].dt.year.isin([2016, 2017]).all()
    assert list(table["offense"].cat.categories) == [
        "THEFT",
        "BATTERY",
        "ASSAULT",
        "CRIMINAL DAMAGE",
    ]
    # the tensors hold every event of the table but its first row (read as a header upstream)
    by_type = table["offense"].iloc[1:].value_counts().reindex(table["offense"].cat.categories)
    assert g.x.sum(dim=(0, 1)).tolist() == by_type.astype(float).tolist()
    # cell of an event: the recipe puts its count in the right node and day
    ev = table.iloc[1000]
    r = math.floor((ev.lat - table.lat.min()) * 111 / 3)
    c = math.floor((ev.lon - table.lon.min()) * 84 / 3)
    day = (ev.time.normalize() - pd.Timestamp("2016-01-01")).days
    k = list(table["offense"].cat.categories).index(ev.offense)
    assert float(g.x[r * 12 + c, day, k]) >= 1
    # the node's centre is inside its cell
    assert abs(float(g.pos[r * 12 + c, 1]) - ev.lat) <= 1.5 / 111 + 1e-6


def test_chicago_rebuilt_from_events_differs_by_one_event(load):
    tensors, events = load("chicago-crime"), load("chicago-crime", source="events")
    diff = (events.x - tensors.x).abs()
    assert float(diff.sum()) == 1.0


def test_nyc_crime_dates_verified_against_events(load, data_dir):
    g = load("nyc-crime")
    assert tuple(g.x.shape) == (256, 122, 4)
    _assert_matches_info(g, "nyc-crime")
    _assert_regular(g, "2015-09-01", "2015-12-31", DAY)
    assert g.variables == ["burglary", "grand_larceny", "robbery", "felony_assault"]
    _assert_inside(g, lon=(-74.3, -73.5), lat=(40.45, 41.0))  # New York City

    full = load("nyc-crime", source="events")
    assert tuple(full.x.shape) == (256, 730, 4)
    _assert_regular(full, "2014-01-01", "2015-12-31", DAY)
    assert torch.equal(full.x[:, -122:], g.x)
    assert torch.equal(full.pos, g.pos)

    table = datasets.load_table("nyc-crime", root=data_dir, download=False)
    assert len(table) == 191_580
    assert table["sector"].isna().sum() == 4308
    counts = table["offense"].value_counts()
    assert (
        full.x.sum(dim=(0, 1)).tolist()
        == counts.reindex(table["offense"].cat.categories).astype(float).tolist()
    )


# ---------------------------------------------------------------------------------- raster
def test_era5_uk_t2m(data_dir, tmp_path):
    # from a copy, to check that reading writes nothing (no cfgrib .idx) beside the file
    rel = "era5-uk-t2m/era5-2mt-2019-03-uk.grib"
    (tmp_path / rel).parent.mkdir(parents=True)
    shutil.copyfile(data_dir / rel, tmp_path / rel)
    g = datasets.load("era5-uk-t2m", root=tmp_path, download=False)
    assert sorted(p.name for p in (tmp_path / rel).parent.iterdir()) == ["era5-2mt-2019-03-uk.grib"]
    assert tuple(g.x.shape) == (33 * 49, 744, 1)
    _assert_matches_info(g, "era5-uk-t2m")
    _assert_regular(g, "2019-03-01 00:00", "2019-03-31 23:00", HOUR)
    assert g.meta["time_reference"] == "utc" and g.units == ["K"]
    assert 230 < float(g.x.min()) and float(g.x.max()) < 300  # March, UK: K
    _assert_inside(g, lon=(-10.0, 2.0), lat=(50.0, 58.0))
    assert g.pos[0].tolist() == [-10.0, 58.0] and g.pos[48].tolist() == [2.0, 58.0]
    r = 6_371_008.8
    expected = math.sqrt(
        math.radians(0.25) * r * math.cos(math.radians(54.0)) * math.radians(0.25) * r
    )
    assert g.meta["spatial_scale"] == pytest.approx(expected, rel=1e-6)
    assert g.edge_index.size(1) == 2 * (33 * 48 + 49 * 32)


# ---------------------------------------------------------------------------------- tables
def test_trajectory_tables(data_dir):
    geo = datasets.load_table("geolife", root=data_dir, download=False)
    assert len(geo) == 217_653 and set(geo["uid"]) == {1, 5}
    assert str(geo["time"].dt.tz) == "UTC"
    assert geo["time"].min() == pd.Timestamp("2008-10-23 05:53:05", tz="UTC")
    beijing = geo["lat"].between(39.6, 40.4) & geo["lon"].between(115.9, 117.0)
    assert beijing.mean() > 0.9

    small = datasets.load_table("geolife-small", root=data_dir, download=False)
    assert len(small) == 5908 and small["trajectory_id"].nunique() == 5
    assert set(small["tracker"]) == {0, 2, 19}
    assert small["time"].iloc[0] == pd.Timestamp("2008-12-11 04:42:14", tz="UTC")
    assert small["lon"].between(115.9, 117.0).all() and small["lat"].between(39.6, 40.4).all()

    bus = datasets.load_table("liverpool-bus", root=data_dir, download=False)
    assert len(bus) == 1533 and bus["trip_id"].nunique() == 16
    assert (bus.groupby("trip_id")["vehicle_id"].nunique() == 1).all()
    assert bus["lat"].between(53.3, 53.55).all() and bus["lon"].between(-3.1, -2.8).all()
    assert bus["time"].max() == pd.Timestamp("2026-01-26 18:19:36", tz="UTC")

    for name, df in (("geolife", geo), ("geolife-small", small), ("liverpool-bus", bus)):
        info = datasets.info(name)
        assert info["rows"] == len(df)
        assert [pd.Timestamp(s) for s in info["span"]] == [df["time"].min(), df["time"].max()]
