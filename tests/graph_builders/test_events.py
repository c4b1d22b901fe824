"""events.from_points on real crime data: the STHSL Chicago/NYC grids, H3, polygons, road nodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from graph_builders import events
from stgraph.data import STGraph, load
from stgraph.datasets._pickle import load_verified_pickle
from stgraph.errors import DataFormatError

CHI_FORMAT = "%m/%d/%Y %I:%M:%S %p"
CHI_NAMES = ["time", "type", "latitude", "longitude"]
CHI_TYPES = ["THEFT", "BATTERY", "ASSAULT", "CRIMINAL DAMAGE"]
CHI_SHA = {
    "trn.pkl": "2a54c528a79031ba13ce17ca3002cd608557bd62bef8fae3285a5fb437100fca",
    "val.pkl": "636012a59d246d6b9d54cc818c527e85db0c3fef4e0dd20318a22b086553bbbf",
    "tst.pkl": "a86ac4a08b9c2c7c17bd53a79254354d3e80d25369e0023cc8f18e23bd2957f2",
}
NYC_SHA = {
    "val.pkl": "2cd9f41eef9fa5a6f9a76c70b7a28584365177a5c500443537096cac0d27e6e1",
    "tst.pkl": "f203276fb1ba5cd2aeb13e727d9807a47d2de99575385e80572c177a0e10372e",
}


def _load_pkl(path, sha):
    return load_verified_pickle(path, sha256=sha, source=str(path))  # checked, numpy-only unpickler


@pytest.fixture(scope="module")
def chicago(data_dir):
    """The crimes as the STHSL script read them: pandas' default header=0 takes the first
    line of the header-less CSV as the header, so that record (2017-10-12 19:14, CRIMINAL DAMAGE)
    is not in the published tensors."""
    return events.read_events(
        data_dir / "chicago-crime" / "CHI_Crime.zip", names=CHI_NAMES, header=0
    )


def test_chicago_sthsl_grid_reproduced_exactly(data_dir, chicago, tmp_path):
    assert len(chicago) == 321_876
    grid = events.Grid.sthsl(chicago, km=3)
    assert (grid.rows, grid.cols) == (14, 12)
    g = events.from_points(
        chicago,
        regions=grid,
        interval="1D",
        types="type",
        categories=CHI_TYPES,
        time_format=CHI_FORMAT,
    )
    counts = grid.to_array(g)
    assert counts.shape == (14, 12, 731, 4)
    ref = {k: _load_pkl(data_dir / "chicago-crime" / k, sha) for k, sha in CHI_SHA.items()}
    assert np.abs(counts[:, :, :609] - ref["trn.pkl"]).max() == 0
    assert np.abs(counts[:, :, 609:639] - ref["val.pkl"]).max() == 0
    assert np.abs(counts[:, :, 639:] - ref["tst.pkl"]).max() == 0
    assert pd.Timestamp(int(g.time[609]), unit="s") == pd.Timestamp("2017-09-01")
    g.save(tmp_path / "chicago")
    back = load(tmp_path / "chicago")
    assert torch.equal(back.x, g.x) and back.meta == g.meta
    assert g.meta["summary"] == {
        "events_in": 321_876,
        "counted": 321_876,
        "dropped": dict.fromkeys(events.DROP_REASONS, 0),
        "duplicates": 916,  # rows repeating an earlier one exactly: counted, kept (as STHSL did)
    }
    # the file has no header: read as such it holds one more event, its first line, which the
    # published tensors do not count
    full = events.read_events(data_dir / "chicago-crime" / "CHI_Crime.zip", names=CHI_NAMES)
    assert len(full) == 321_877
    pd.testing.assert_frame_equal(full.iloc[1:].reset_index(drop=True), chicago)
    assert (full.iloc[0].time, full.iloc[0].type) == ("10/12/2017 07:14:00 PM", "CRIMINAL DAMAGE")


def test_nyc_training_grid_rebuilt(data_dir):
    df = events.read_events(data_dir / "nyc-crime" / "NYC_Crime.zip")
    cols = {"lon_col": "Longitude", "lat_col": "Latitude"}
    grid = events.Grid.sthsl(df, km=3, **cols)
    assert (grid.rows, grid.cols) == (16, 16)
    order = ["BURGLARY", "GRAND LARCENY", "ROBBERY", "FELONY ASSAULT"]
    g = events.from_points(
        df,
        regions=grid,
        types="Offense",
        categories=order,
        time_col="Occurrence Date",
        time_format=CHI_FORMAT,
        **cols,
    )
    counts = grid.to_array(g)
    val = _load_pkl(data_dir / "nyc-crime" / "val.pkl", NYC_SHA["val.pkl"])
    tst = _load_pkl(data_dir / "nyc-crime" / "tst.pkl", NYC_SHA["tst.pkl"])
    assert counts.shape[2] == 608 + 30 + 92
    assert np.abs(counts[:, :, 608:638] - val).max() == 0
    assert np.abs(counts[:, :, 638:] - tst).max() == 0
    trn = counts[:, :, :608]
    assert trn.shape == (16, 16, 608, 4)
    # the rebuilt training part holds every 2014-01-01..2015-08-31 crime of the CSV
    when = pd.to_datetime(df["Occurrence Date"], format=CHI_FORMAT)
    early = df[when < "2015-09-01"]["Offense"].value_counts()
    assert trn.sum(axis=(0, 1, 2)).tolist() == [early[o] for o in order]
    # any other category order misses the published tensors
    swapped = counts[..., [1, 0, 2, 3]]
    assert np.abs(swapped[:, :, 608:638] - val).max() > 0


def _messy(chicago: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """20,000 real crimes with known defects injected, and the expected count per reason."""
    df = chicago.iloc[:20_000].copy().reset_index(drop=True)
    df = df.astype({"time": object, "type": object})
    df.loc[0:9, "latitude"] = np.nan
    df.loc[10:19, "time"] = None
    df.loc[20:49, "time"] = "not a time"
    df.loc[50:54, "type"] = None
    df.loc[55:74, "type"] = "ARSON"
    df.loc[75:99, "longitude"] = -86.0  # east of the bbox, in Lake Michigan's far side
    df.loc[100:106, "time"] = "01/01/2015 10:00:00 AM"  # before start
    df.loc[107:109, "latitude"] = 95.0  # impossible: a few are dropped, not taken as a CRS
    return df, {
        "missing_coordinates": 10,
        "invalid_coordinates": 3,
        "missing_time": 10,
        "unparseable_time": 30,
        "missing_type": 5,
        "unknown_type": 20,
        "outside_bbox": 25,
        "outside_time_range": 7,
        "outside_regions": 0,
        "duplicate": 0,
    }


def test_counts_conserved_and_drops_counted_by_reason(chicago):
    df, expected = _messy(chicago)
    grid = events.Grid.sthsl(chicago)
    g = events.from_points(
        df,
        regions=grid,
        types="type",
        categories=CHI_TYPES,
        time_format=CHI_FORMAT,
        bbox=(-87.95, 41.6, -87.5, 42.05),
        start="2016-01-01",
        end="2018-01-01",
    )
    s = g.meta["summary"]
    assert g.meta["dropped"] == expected
    assert s["events_in"] == 20_000 == s["counted"] + sum(s["dropped"].values())
    assert float(g.x.sum()) == s["counted"]
    assert g.num_steps == 731
    # points outside the grid (no bbox given) are counted as outside_regions
    df2 = chicago.iloc[:1000].copy()
    df2.loc[df2.index[:3], "latitude"] = 43.5
    g2 = events.from_points(df2, regions=grid, types="type", time_format=CHI_FORMAT)
    assert g2.meta["dropped"]["outside_regions"] == 3 and g2.meta["summary"]["counted"] == 997
    # a stray date (year 1700) would make 168 x 2.8 million hourly bins: a clear error, and
    # start= turns it into a counted drop
    df3 = chicago.iloc[:1000].copy()
    df3.loc[df3.index[0], "time"] = "01/01/1700 10:00:00 AM"
    kw = dict(regions=grid, types="type", time_format=CHI_FORMAT, interval="1h")
    with pytest.raises(DataFormatError, match=r"times span 1700-01-01.*pass start=/end="):
        events.from_points(df3, **kw)
    g3 = events.from_points(df3, start="2016-01-01", **kw)
    assert g3.meta["dropped"]["outside_time_range"] == 1


def test_unordered_times_give_the_same_counts(chicago):
    sub = chicago.iloc[:30_000]
    grid = events.Grid.sthsl(chicago)
    kw = dict(regions=grid, types="type", categories=CHI_TYPES, time_format=CHI_FORMAT)
    a = events.from_points(sub, **kw)
    b = events.from_points(sub.sample(frac=1.0, random_state=0), **kw)
    assert torch.equal(a.x, b.x) and torch.equal(a.time, b.time)
    # inferred formats (pandas) and the explicit one (Arrow's strptime) read the same times
    small = sub.iloc[:3000]
    c = events.from_points(small, regions=grid, types="type", categories=CHI_TYPES)
    d = events.from_points(small, **kw)
    assert torch.equal(c.x, d.x) and torch.equal(c.time, d.time)


def test_missing_columns_name_the_file_and_columns(tmp_path, chicago):
    path = tmp_path / "crimes.csv"
    chicago.iloc[:50].drop(columns=["latitude"]).to_csv(path, index=False)
    with pytest.raises(DataFormatError) as err:
        events.from_points(path, regions=events.Grid.sthsl(chicago), types="type")
    assert str(path) in str(err.value) and "'latitude'" in str(err.value)


def test_projected_metres_as_lonlat_is_a_clear_error(chicago):
    from pyproj import Transformer

    sub = chicago.iloc[:5000].copy()
    x, y = Transformer.from_crs(4326, 32616, always_xy=True).transform(
        sub.longitude.values, sub.latitude.values
    )
    proj = sub.assign(longitude=x, latitude=y)
    grid = events.Grid.sthsl(chicago)
    with pytest.raises(
        DataFormatError, match=r"column 'longitude' has values in \[4\d{5}, 4\d{5}\]"
    ):
        events.from_points(proj, regions=grid, types="type", time_format=CHI_FORMAT)
    # naming the CRS converts them back: the same counts as the degrees
    a = events.from_points(sub, regions=grid, types="type", time_format=CHI_FORMAT)
    b = events.from_points(
        proj, regions=grid, types="type", time_format=CHI_FORMAT, crs="EPSG:32616"
    )
    assert torch.equal(a.x, b.x)


def test_h3_cells_match_a_direct_count(chicago):
    h3 = pytest.importorskip("h3")
    sub = chicago.iloc[:20_000]
    g = events.from_points(
        sub,
        regions=events.H3Cells(7),
        types="type",
        categories=CHI_TYPES,
        time_format=CHI_FORMAT,
        interval="7D",
    )
    cells = [h3.latlng_to_cell(a, b, 7) for a, b in zip(sub.latitude, sub.longitude, strict=True)]
    direct = pd.Series(cells).value_counts()
    got = dict(zip(g.meta["node_ids"], g.x.sum((1, 2)).tolist(), strict=True))
    assert got == {c: float(n) for c, n in direct.items()}
    src, dst = g.edge_index
    ids = g.meta["node_ids"]
    assert g.edge_index.size(1) > 0
    assert all(
        h3.are_neighbor_cells(ids[a], ids[b])
        for a, b in zip(src.tolist(), dst.tolist(), strict=True)
    )


def test_polygons_give_the_grid_counts(chicago):
    gpd = pytest.importorskip("geopandas")
    from shapely.geometry import box

    from stgraph.utils.grid import grid_edges

    sub = chicago.iloc[:20_000]
    grid = events.Grid.sthsl(chicago, km=6)
    west = grid.origin_lon + np.arange(grid.cols + 1) * grid.cell_deg_lon
    south = grid.origin_lat + np.arange(grid.rows + 1) * grid.cell_deg_lat
    cells = [(r, c) for r in range(grid.rows) for c in range(grid.cols)]
    polys = gpd.GeoDataFrame(
        {"cell": [f"r{r}c{c}" for r, c in cells]},
        geometry=[box(west[c], south[r], west[c + 1], south[r + 1]) for r, c in cells],
        crs=4326,
    )
    kw = dict(types="type", categories=CHI_TYPES, time_format=CHI_FORMAT)
    by_grid = events.from_points(sub, regions=grid, **kw)
    by_poly = events.from_points(sub, regions=polys, region_id_col="cell", **kw)
    assert by_poly.meta["node_ids"] == by_grid.meta["node_ids"]
    assert torch.equal(by_grid.x, by_poly.x)
    assert by_poly.meta["summary"]["counted"] == 20_000
    # polygons sharing a side or a corner are linked: the 8-neighbourhood of the grid
    queen = grid_edges(grid.rows, grid.cols, neighbourhood=8)
    assert set(map(tuple, by_poly.edge_index.T.tolist())) == set(map(tuple, queen.T.tolist()))
    np.testing.assert_allclose(by_poly.pos.numpy(), by_grid.pos.numpy(), atol=1e-6)


def test_road_nodes_nearest_within_max_distance(data_dir, chicago):
    """Road-graph nodes as regions. No Chicago extract exists: the Baltimore road graph, with
    Chicago crimes moved by a fixed offset so that their centre falls on Baltimore's."""
    osm = pytest.importorskip("graph_builders.osm")
    road = osm.road_graph(data_dir / "osm-baltimore" / "baltimore.osm.pbf", context=False)
    sub = chicago.iloc[:20_000].copy()
    pos = road.pos.double().numpy()
    sub["longitude"] += np.median(pos[:, 0]) - sub.longitude.median()
    sub["latitude"] += np.median(pos[:, 1]) - sub.latitude.median()
    g = events.from_points(
        sub, regions=road, types="type", time_format=CHI_FORMAT, max_dist_m=150.0
    )
    assert isinstance(g, STGraph) and g.num_nodes == road.num_nodes
    assert torch.equal(g.edge_index, road.edge_index)
    s = g.meta["summary"]
    assert s["events_in"] == s["counted"] + g.meta["dropped"]["outside_regions"]
    # brute force on 300 events, in the UTM zone of Baltimore (18N): nearest node, dropped iff
    # farther than 150 m
    from pyproj import Transformer

    probe = sub.iloc[:300]
    to_utm = Transformer.from_crs(4326, 32618, always_xy=True)
    px, py = to_utm.transform(probe.longitude.values, probe.latitude.values)
    nx_, ny_ = to_utm.transform(pos[:, 0], pos[:, 1])
    d = np.hypot(px[:, None] - nx_[None, :], py[:, None] - ny_[None, :])
    near = d.min(1) <= 150.0
    small = events.from_points(
        probe, regions=road, types="type", time_format=CHI_FORMAT, max_dist_m=150.0
    )
    assert small.meta["summary"]["counted"] == int(near.sum())
    counted_nodes = np.bincount(d.argmin(1)[near], minlength=road.num_nodes)
    assert np.array_equal(small.x.sum((1, 2)).numpy().astype(int), counted_nodes)
