"""Interop round trips on real data: networkx/OSMnx, geopandas, xarray, pandas, numpy, subgraph."""

from __future__ import annotations

import sys

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from stgraph import datasets
from stgraph.data import STGraph, interop
from stgraph.errors import DataFormatError

ox = pytest.importorskip("osmnx")
gpd = pytest.importorskip("geopandas")
xr = pytest.importorskip("xarray")


@pytest.fixture(scope="module")
def los(data_dir) -> STGraph:
    return datasets.load("los-loop")


@pytest.fixture(scope="module")
def helsinki(data_dir) -> STGraph:
    from graph_builders import osm

    return osm.road_graph(data_dir / "osm-helsinki" / "Helsinki.osm.pbf")


@pytest.fixture(scope="module")
def oakland_osmnx(data_dir):
    """West Oakland read by OSMnx itself (``graph_from_xml``): a stock OSMnx MultiDiGraph."""
    return ox.graph_from_xml(data_dir / "osm-west-oakland" / "West-Oakland.osm.bz2")


def _by_pair(edge_index: torch.Tensor) -> np.ndarray:
    """Edges sorted by (source, target), stable: networkx lists a node's edges together."""
    ei = edge_index.numpy()
    return np.lexsort((ei[1], ei[0]))


def _route_length(g: STGraph, a: int, b: int) -> float:
    """Shortest-path metres between nodes by scipy on ``length`` (the reference for OSMnx)."""
    gx = g.to_networkx()
    u, v, w = zip(*((s, d, a_["length"]) for s, d, a_ in gx.edges(data=True)), strict=True)
    n = g.num_nodes
    m = csr_matrix((np.asarray(w), (np.asarray(u), np.asarray(v))), shape=(n, n))
    return float(dijkstra(m, indices=a)[b])


# ------------------------------------------------------------------------------ networkx / OSMnx


def test_to_networkx_is_accepted_by_osmnx_on_a_road_graph(helsinki):
    g = helsinki.to_networkx()
    assert g.graph["crs"] == "EPSG:4326" and g.number_of_edges() == helsinki.edge_index.size(1)
    nodes, edges = ox.graph_to_gdfs(g)
    assert len(nodes) == helsinki.num_nodes and len(edges) == helsinki.edge_index.size(1)
    np.testing.assert_allclose(nodes[["x", "y"]].to_numpy(), helsinki.pos.double().numpy())
    # named edge attributes, OSMnx's length and the road polylines, edge by edge
    edges = edges.sort_index()  # (u, v, key): keys number parallel edges in their order
    order = _by_pair(helsinki.edge_index)
    assert edges.index.get_level_values("u").tolist() == helsinki.edge_index[0, order].tolist()
    names = helsinki.meta["edge_attr_names"]
    assert {*names, "length", "weight", "geometry"} <= set(edges.columns)
    attr = helsinki.edge_attr[order]
    np.testing.assert_allclose(edges["speed_kph"], attr[:, names.index("speed_kph")])
    np.testing.assert_allclose(edges["length"], attr[:, 0], rtol=1e-6)
    classes = helsinki.meta["road_classes"]
    codes = attr[:, names.index("road_class")].long().tolist()
    assert edges["highway"].tolist() == [classes[c] for c in codes]
    assert edges["oneway"].dtype == bool
    np.testing.assert_allclose(edges["travel_time"], edges["length"] / (edges["speed_kph"] / 3.6))
    fastest = ox.routing.shortest_path(g, 0, helsinki.num_nodes // 2, weight="travel_time")
    assert fastest[0] == 0 and fastest[-1] == helsinki.num_nodes // 2
    ptr, e = helsinki.road_geom_ptr, int(order[5])
    assert edges.geometry.iloc[5].coords[:] == [
        tuple(c) for c in helsinki.road_geom[ptr[e] : ptr[e + 1]].tolist()
    ]
    assert nodes["street_count"].tolist() == helsinki.node_attr[:, 0].tolist()
    # routing: OSMnx's shortest path has the length scipy finds on the same edges
    a, b = 0, helsinki.num_nodes // 2
    route = ox.routing.shortest_path(g, a, b, weight="length")
    assert route[0] == a and route[-1] == b
    length = sum(
        min(d["length"] for d in g.get_edge_data(u, v).values())
        for u, v in zip(route[:-1], route[1:], strict=True)
    )
    assert length == pytest.approx(_route_length(helsinki, a, b), rel=1e-9)


def test_networkx_round_trip_keeps_the_road_contract(helsinki):
    back = STGraph.from_networkx(helsinki.to_networkx())
    a, b = _by_pair(back.edge_index), _by_pair(helsinki.edge_index)
    assert torch.equal(back.edge_index[:, a], helsinki.edge_index[:, b])
    assert torch.equal(back.edge_attr[a], helsinki.edge_attr[b])
    assert torch.allclose(back.edge_weight[a], helsinki.edge_weight[b])
    assert torch.equal(back.node_attr, helsinki.node_attr)
    assert torch.allclose(back.pos, helsinki.pos)
    # each edge keeps its polyline
    from graph_builders.osm import edge_geometry

    (c1, p1), (c2, p2) = edge_geometry(back), edge_geometry(helsinki)
    for i, j in zip(a[:50].tolist(), b[:50].tolist(), strict=True):
        assert np.allclose(c1[p1[i] : p1[i + 1]], c2[p2[j] : p2[j + 1]])
    assert back.road_geom.shape == helsinki.road_geom.shape
    assert back.meta["node_ids"] == helsinki.meta["node_ids"]
    assert back.meta["edge_attr_names"] == helsinki.meta["edge_attr_names"]
    assert back.meta["city"] == "Helsinki"


def test_networkx_round_trip_with_readings(los):
    g = los.to_networkx()
    assert g.edges[0, 13, 0]["length"] == pytest.approx(1449.9, abs=1.0)  # great circle, m
    back = STGraph.from_networkx(g, x=los.x, mask=los.mask, time=los.time)
    a, b = _by_pair(back.edge_index), _by_pair(los.edge_index)
    assert torch.equal(back.edge_index[:, a], los.edge_index[:, b]) and back.edge_attr is None
    assert torch.allclose(back.edge_weight[a], los.edge_weight[b])
    assert torch.equal(back.x, los.x) and torch.equal(back.time, los.time)
    assert back.meta["node_ids"] == los.meta["node_ids"] and back.interval == 300
    assert back.variables == ["speed"] and back.units == ["mph"]


def test_from_networkx_reads_a_stock_osmnx_graph(oakland_osmnx):
    G = oakland_osmnx
    g = STGraph.from_networkx(G)
    assert g.num_nodes == G.number_of_nodes() and g.edge_index.size(1) == G.number_of_edges()
    assert g.meta["node_ids"] == list(G.nodes) and g.meta["edge_weight"] == "distance_m"
    lengths = [d["length"] for _, _, d in G.edges(data=True)]
    np.testing.assert_allclose(g.edge_weight.double().numpy(), lengths, rtol=1e-6)
    assert g.pos[0].tolist() == pytest.approx([G.nodes[g.meta["node_ids"][0]][k] for k in "xy"])
    # an OSMnx graph back out of stgraph routes the same
    route = ox.routing.shortest_path(g.to_networkx(), 0, g.num_nodes - 1, weight="length")
    ref = ox.routing.shortest_path(
        G, g.meta["node_ids"][0], g.meta["node_ids"][-1], weight="length"
    )
    assert [g.meta["node_ids"][i] for i in route] == ref


def test_road_graph_takes_an_osmnx_multidigraph(oakland_osmnx):
    from graph_builders import osm

    G = oakland_osmnx
    g = osm.road_graph(G)
    assert g.num_nodes == G.number_of_nodes() and g.edge_index.size(1) == G.number_of_edges()
    assert g.meta["node_ids"] == list(G.nodes) and g.meta["domain"] == "road"
    assert g.meta["edge_attr_names"][0] == "length_m"
    total = sum(d["length"] for _, _, d in G.edges(data=True))
    assert float(g.edge_attr[:, 0].double().sum()) == pytest.approx(total, rel=1e-5)
    assert "OSMnx graph" in g.meta["sources"][0]["name"]
    with pytest.raises(DataFormatError, match="MultiDiGraph"):
        osm.road_graph(nx.DiGraph(G))


# ------------------------------------------------------------------------------ geopandas


def test_to_geopandas_nodes_points_edges_lines(helsinki):
    nodes, edges = helsinki.to_geopandas()
    assert nodes.crs.to_epsg() == 4326 and edges.crs.to_epsg() == 4326
    assert (nodes.geom_type == "Point").all() and (edges.geom_type == "LineString").all()
    np.testing.assert_allclose(np.c_[nodes.geometry.x, nodes.geometry.y], helsinki.pos.numpy())
    assert nodes["node_id"].tolist() == helsinki.meta["node_ids"]
    assert edges[["source", "target"]].to_numpy().T.tolist() == helsinki.edge_index.tolist()
    for j, name in enumerate(helsinki.meta["edge_attr_names"]):
        np.testing.assert_array_equal(edges[name].to_numpy(), helsinki.edge_attr[:, j].numpy())
    # the lines are the roads: their projected length is the edge's length in metres
    metres = edges.to_crs(helsinki.meta["projected_crs"]).length.to_numpy()
    np.testing.assert_allclose(metres, edges["length_m"], rtol=5e-3, atol=0.5)


def test_to_geopandas_straight_edges_and_back_through_the_sensor_builder(data_dir):
    """Melbourne's sensors as a GeoDataFrame (reprojected to UTM) + the wide table: the sensor
    builder rebuilds the registry graph's readings and positions from them."""
    from graph_builders import proximity, sensors

    g = datasets.load("melbourne-pedestrian")
    nodes, edges = g.to_geopandas()
    assert len(edges) == g.edge_index.size(1)
    a, b = g.edge_index[:, 0].tolist()
    assert edges.geometry.iloc[0].coords[:] == [tuple(g.pos[a].tolist()), tuple(g.pos[b].tolist())]
    utm = nodes.to_crs(32755)  # metres: the builder reprojects the geometry itself
    wide = g.to_pandas(wide=True).reset_index()
    built = sensors.from_table(
        utm[["node_id", "geometry"]],
        wide,
        id_col="node_id",
        time_col="time",
        method="knn",
        k=4,
    )
    assert built.meta["node_ids"] == g.meta["node_ids"]
    assert torch.equal(built.mask, g.mask) and torch.equal(built.x, g.x)
    assert torch.equal(built.time, g.time)
    np.testing.assert_allclose(built.pos.double().numpy(), g.pos.double().numpy(), atol=1e-6)
    ref = proximity.connect(g.pos, method="knn", k=4)
    assert torch.equal(built.edge_index, ref.edge_index)


def test_points_to_columns_refuses_polygons_and_missing_crs(data_dir):
    g = datasets.load("melbourne-pedestrian")
    nodes, _ = g.to_geopandas()
    with pytest.raises(ValueError, match="Polygon geometry"):
        utm = nodes.to_crs(32755)
        interop.points_to_columns(utm.set_geometry(utm.buffer(50.0)))
    with pytest.raises(ValueError, match="no CRS"):
        interop.points_to_columns(nodes.set_crs(None, allow_override=True))


# ------------------------------------------------------------------------------ xarray


def test_to_xarray_grid_round_trips_through_the_raster_builder(data_dir):
    pytest.importorskip("cfgrib")
    from graph_builders import raster

    g = datasets.load("era5-uk-t2m")
    ds = g.to_xarray()
    rows, cols = g.meta["grid"]["rows"], g.meta["grid"]["cols"]
    assert ds["t2m"].dims == ("time", "latitude", "longitude")
    assert ds["t2m"].shape == (g.num_steps, rows, cols)
    assert ds["t2m"].attrs["units"] == "K" and ds.attrs["crs"] == "EPSG:4326"
    assert "WGS 84" in ds["spatial_ref"].attrs["crs_wkt"] and ds.attrs["interval_s"] == 3600
    # node = lat_index * cols + lon_index: the cube holds the same numbers
    np.testing.assert_array_equal(
        ds["t2m"].to_numpy()[:, 3, 7], g.x[3 * cols + 7, :, 0].double().numpy()
    )
    back = raster.from_grid(ds["t2m"])
    assert back.num_nodes == g.num_nodes and torch.equal(back.time, g.time)
    order = np.lexsort((back.pos[:, 0].numpy(), -back.pos[:, 1].numpy()))
    ref = np.lexsort((g.pos[:, 0].numpy(), -g.pos[:, 1].numpy()))
    np.testing.assert_allclose(back.x[order].numpy(), g.x[ref].numpy())


def test_to_xarray_node_by_time_round_trip(los):
    ds = los.to_xarray()
    assert ds["speed"].dims == ("node", "time") and ds["speed"].attrs["units"] == "mph"
    assert ds["time"].dtype.kind == "M" and ds["node"].to_numpy().tolist() == los.meta["node_ids"]
    np.testing.assert_allclose(ds["lon"], los.pos[:, 0].double())
    back = STGraph.from_xarray(ds)
    assert torch.equal(back.x, los.x) and torch.equal(back.mask, los.mask)
    assert torch.equal(back.time, los.time) and back.interval == 300
    assert back.units == ["mph"] and back.meta["node_ids"] == los.meta["node_ids"]


# ------------------------------------------------------------------------------ pandas / numpy


def test_wide_table_with_a_datetimeindex(data_dir):
    g = datasets.load("melbourne-pedestrian")
    wide = g.to_pandas(wide=True)
    assert isinstance(wide.index, pd.DatetimeIndex) and list(wide.columns) == g.meta["node_ids"]
    back = STGraph.from_pandas(wide, pos=g.pos, variable="pedestrians")
    assert torch.equal(back.x, g.x) and torch.equal(back.mask, g.mask)
    assert torch.equal(back.time, g.time) and back.meta["interval"] == 3600
    # STGraph(time=df.index): datetime64, naive or aware (converted to UTC), interval inferred
    local = wide.index.tz_convert("Australia/Melbourne")
    direct = STGraph(x=g.x, time=local, meta={"variables": g.meta["variables"]})
    assert torch.equal(direct.time, g.time) and direct.meta["interval"] == 3600
    naive = STGraph(x=g.x, time=wide.index.tz_localize(None).to_numpy())
    assert torch.equal(naive.time, g.time)
    column = pd.Series(local)  # a column of aware times, as read from a CSV
    assert torch.equal(STGraph(x=g.x, time=column).time, g.time)
    strings = [str(t) for t in local[:3]]  # "2021-01-01 11:00:00+11:00"
    assert STGraph(x=g.x[:, :3], time=strings).time.tolist() == g.time[:3].tolist()


def test_time_finer_than_seconds_is_refused(los):
    from stgraph.errors import STGraphValidationError

    t = pd.date_range("2020-01-01", periods=los.num_steps, freq="500ms")
    with pytest.raises(STGraphValidationError, match="whole seconds"):
        STGraph(x=los.x, time=t)


def test_numpy_as_pyg_temporal_and_tsl_hold_it(los, data_dir):
    pedal = datasets.load("pedalme")  # PyG Temporal's PedalMe: features [T, N], edges + weights
    arr = pedal.to_numpy()  # [T, N, V]
    assert arr.shape == (pedal.num_steps, pedal.num_nodes, 1)
    back = STGraph.from_numpy(arr[:, :, 0], (pedal.edge_index.numpy(), pedal.edge_weight.numpy()))
    assert torch.equal(back.x, pedal.x) and torch.equal(back.edge_index, pedal.edge_index)
    assert torch.equal(back.edge_weight, pedal.edge_weight)
    # a dense adjacency (T-GCN's los_adj.csv, self-loops on the diagonal) gives the registry's edges
    adj = np.loadtxt(data_dir / "los-loop" / "los_adj.csv", delimiter=",")
    dense = STGraph.from_numpy(los.to_numpy(), adj, time=los.time, pos=los.pos)
    assert torch.equal(dense.edge_index, los.edge_index)
    assert torch.allclose(dense.edge_weight, los.edge_weight)
    assert torch.equal(dense.x, los.x) and dense.interval == 300
    sparse = STGraph.from_numpy(los.to_numpy(), csr_matrix(adj))
    assert torch.equal(sparse.edge_index, los.edge_index)


# ------------------------------------------------------------------------------ subgraph


def test_subgraph_keeps_node_ids_in_step(los):
    from torch_geometric.transforms import LargestConnectedComponents

    idx = torch.tensor([5, 0, 17, 100])
    sub = los.subgraph(idx)
    assert sub.meta["node_ids"] == [los.meta["node_ids"][i] for i in idx.tolist()]
    assert torch.equal(sub.x, los.x[idx])
    mask = torch.zeros(los.num_nodes, dtype=torch.bool)
    mask[40:90] = True
    part = los.subgraph(mask)
    lcc = LargestConnectedComponents()(part)  # PyG's own transform calls subgraph
    assert len(lcc.meta["node_ids"]) == lcc.num_nodes < part.num_nodes
    kept = [los.meta["node_ids"].index(i) for i in lcc.meta["node_ids"]]
    assert torch.equal(lcc.x, los.x[kept])


def test_events_from_a_geodataframe_of_points(data_dir):
    """Chicago crimes as point geometry instead of latitude/longitude columns: the same counts."""
    from graph_builders import events

    df = events.read_events(
        data_dir / "chicago-crime" / "CHI_Crime.zip",
        names=["time", "type", "latitude", "longitude"],
    ).iloc[:30000]
    opts = {
        "regions": events.Grid.sthsl(df, km=3),
        "types": "type",
        "categories": ["THEFT", "BATTERY", "ASSAULT", "CRIMINAL DAMAGE"],
        "time_format": "%m/%d/%Y %I:%M:%S %p",
        "interval": "1D",
    }
    ref = events.from_points(df, **opts)
    points = gpd.GeoDataFrame(
        df.drop(columns=["latitude", "longitude"]),
        geometry=gpd.points_from_xy(df["longitude"], df["latitude"]),
        crs=4326,
    )
    same = events.from_points(points, **opts)
    assert torch.equal(same.x, ref.x) and torch.equal(same.time, ref.time)
    # in metres (UTM 16N): reprojected back; only events on a cell edge may change cell
    utm = events.from_points(points.to_crs(32616), **opts)
    moved = float((utm.x - ref.x).abs().sum()) / 2
    assert float(utm.x.sum()) + utm.meta["dropped"]["outside_regions"] == float(ref.x.sum())
    assert moved <= 1e-3 * len(df)


@pytest.mark.parametrize(
    ("module", "call", "extra"),
    [
        ("xarray", lambda g: g.to_xarray(), "raster"),
        ("geopandas", lambda g: g.to_geopandas(), "osm"),
    ],
)
def test_a_missing_extra_is_one_line(los, monkeypatch, module, call, extra):
    from stgraph.utils.extras import MissingExtraError

    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    with pytest.raises(MissingExtraError) as info:
        call(los)
    text = str(info.value)
    assert "\n" not in text and f"pip install 'stgraph[{extra}]'" in text and module in text
