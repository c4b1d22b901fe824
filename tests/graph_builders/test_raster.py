"""raster.from_grid on real rasters: ERA5 2 m temperature (GRIB) and the STHSL crime grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from graph_builders import raster
from stgraph.data import load
from stgraph.datasets._pickle import load_verified_pickle
from stgraph.errors import DataFormatError

xr = pytest.importorskip("xarray")
pytest.importorskip("cfgrib")

GRIB = "era5-uk-t2m/era5-2mt-2019-03-uk.grib"
CHI_TRN_SHA = "2a54c528a79031ba13ce17ca3002cd608557bd62bef8fae3285a5fb437100fca"


@pytest.fixture(scope="module")
def era5(data_dir):
    ds = raster.open_raster(data_dir / GRIB)
    return ds.load()


def _block_means(a: np.ndarray, f: int) -> np.ndarray:
    """Reference: nan-mean of f x f blocks of a (lat, lon, T) array, partial blocks at the end."""
    rows, cols = -(-a.shape[0] // f), -(-a.shape[1] // f)
    out = np.full((rows, cols, a.shape[2]), np.nan)
    for i in range(rows):
        for j in range(cols):
            blk = a[i * f : (i + 1) * f, j * f : (j + 1) * f]
            ok = np.isfinite(blk).any(axis=(0, 1))
            out[i, j, ok] = np.nanmean(blk[:, :, ok], axis=(0, 1))
    return out


def test_era5_from_grib_path_shapes_time_scale(data_dir, tmp_path):
    g = raster.from_grid(data_dir / GRIB)
    assert g.num_nodes == 33 * 49 == 1617
    assert tuple(g.x.shape) == (1617, 744, 1)
    back = load(g.save(tmp_path / "era5"))
    assert torch.equal(back.x, g.x) and back.meta == g.meta
    assert bool(g.mask.all())
    assert g.meta["variables"] == [{"name": "t2m", "unit": "K"}]
    assert g.interval == 3600
    start = int(pd.Timestamp("2019-03-01T00:00", tz="UTC").timestamp())
    assert int(g.time[0]) == start and int(g.time[-1]) == start + 743 * 3600
    # 4-neighbour edges of a 33 x 49 grid, both directions
    assert g.edge_index.size(1) == 2 * (33 * 48 + 32 * 49)
    # cell size at the mean latitude (54 N): 0.25 deg of latitude / longitude
    r, lat0 = 6_371_008.8, np.radians(54.0)
    assert g.meta["cell_size_m"]["y"] == pytest.approx(r * np.radians(0.25), rel=1e-6)
    assert g.meta["cell_size_m"]["x"] == pytest.approx(
        r * np.radians(0.25) * np.cos(lat0), rel=1e-6
    )
    assert g.meta["spatial_scale"] == pytest.approx(
        np.sqrt(g.meta["cell_size_m"]["x"] * g.meta["cell_size_m"]["y"])
    )
    # node 0 is the north-west cell (58 N, 10 W), values straight from the GRIB
    assert g.pos[0].tolist() == [-10.0, 58.0]


@pytest.mark.parametrize(
    "factor,boundary,shape",
    [
        (1, "pad", (33, 49)),
        (2, "pad", (17, 25)),
        (4, "pad", (9, 13)),
        (2, "trim", (16, 24)),
        (4, "trim", (8, 12)),
    ],
)
def test_era5_coarsen_node_counts_and_block_means(era5, factor, boundary, shape):
    g = raster.from_grid(era5, coarsen=factor, boundary=boundary, neighbourhood=8)
    rows, cols = shape
    assert g.num_nodes == rows * cols
    assert g.meta["grid"]["shape"] == [rows, cols]
    fine = np.transpose(era5["t2m"].values, (1, 2, 0)).astype(np.float64)  # (lat, lon, T)
    ref = _block_means(fine, factor)[:rows, :cols].reshape(rows * cols, -1)
    np.testing.assert_allclose(g.x[:, :, 0].double().numpy(), ref, rtol=1e-6)
    # the mean is preserved: block means weighted by their valid cells give the fine mean
    n_cells = g.node_attr[:, 2].double().numpy()
    covered = fine[: rows * factor, : cols * factor]
    total = (g.x[:, :, 0].double().numpy() * n_cells[:, None]).sum(0)
    np.testing.assert_allclose(total, covered.sum(axis=(0, 1)), rtol=1e-6)
    if boundary == "trim":  # every block is full: plain mean over nodes = mean over cells
        np.testing.assert_allclose(
            g.x[:, :, 0].double().mean(0).numpy(), covered.mean(axis=(0, 1)), rtol=1e-6
        )
    # 8-neighbourhood edge count of a rows x cols grid
    assert g.edge_index.size(1) == 2 * (
        rows * (cols - 1) + (rows - 1) * cols + 2 * (rows - 1) * (cols - 1)
    )
    assert float(g.edge_weight.max()) == pytest.approx(1.0) and float(g.edge_weight.min()) > 0
    r, lat0 = 6_371_008.8, np.radians(54.0)  # mean latitude of the fine grid
    side = r * np.radians(0.25 * factor)
    assert g.meta["spatial_scale"] == pytest.approx(side * np.sqrt(np.cos(lat0)), rel=1e-6)


def test_nan_cells_masked_and_all_nan_cells_dropped_or_kept(era5):
    da = era5["t2m"].copy()
    vals = da.values.copy()
    vals[:, 0:3, 0:2] = np.nan  # 6 cells with no data at all (a "sea" patch)
    vals[:10, 20, 30] = np.nan  # one cell missing at the first 10 steps
    da.values = vals
    g = raster.from_grid(da)
    assert g.num_nodes == 1617 - 6
    assert g.meta["dropped"] == {"all_nan_cells": 6}
    node = g.meta["node_ids"].index("r20c30")
    assert not bool(g.mask[node, :10].any()) and bool(g.mask[node, 10:].all())
    assert int((~g.mask).sum()) == 10 and float(g.x[node, :10].abs().sum()) == 0.0
    kept = raster.from_grid(da, drop_empty=False)
    assert kept.num_nodes == 1617 and kept.meta["all_nan_cells"] == 6
    assert int((~kept.mask.view(1617, -1).any(1)).sum()) == 6
    # coarsened: block means over the valid cells only
    g2 = raster.from_grid(da, coarsen=2)
    ref = _block_means(np.transpose(vals, (1, 2, 0)).astype(np.float64), 2).reshape(17 * 25, -1)
    keep = np.isfinite(ref).any(1)
    assert g2.num_nodes == int(keep.sum())
    np.testing.assert_allclose(
        np.where(g2.mask[:, :, 0].numpy(), g2.x[:, :, 0].double().numpy(), np.nan),
        ref[keep],
        rtol=1e-6,
    )


def test_all_nan_raster_is_a_clear_error(era5):
    da = era5["t2m"].isel(time=slice(0, 3)) * np.nan
    with pytest.raises(DataFormatError, match="no finite value"):
        raster.from_grid(da)


def test_projected_coordinates_are_a_clear_error(era5):
    da = era5["t2m"].isel(time=slice(0, 2))
    da = da.assign_coords(
        latitude=6_100_000 + 27_800.0 * np.arange(33), longitude=400_000 + 16_300.0 * np.arange(49)
    )
    with pytest.raises(DataFormatError, match=r"'latitude'.*\[6\.1e\+06"):
        raster.from_grid(da)


def test_netcdf_and_zarr_round_trip(era5, tmp_path):
    sub = era5.isel(time=slice(0, 24))[["t2m"]]
    sub = sub.drop_vars([c for c in sub.coords if c not in ("time", "latitude", "longitude")])
    ref = raster.from_grid(sub, coarsen=2)
    nc = tmp_path / "t2m.nc"
    sub.to_netcdf(nc, engine="scipy")
    from_nc = raster.from_grid(nc, coarsen=2)
    assert torch.allclose(from_nc.x, ref.x) and torch.equal(from_nc.time, ref.time)
    assert from_nc.meta["sources"][0]["files"] == [str(nc)]
    pytest.importorskip("zarr")
    store = tmp_path / "t2m.zarr"
    sub.to_zarr(store)
    from_zarr = raster.from_grid(store, coarsen=2)
    assert torch.allclose(from_zarr.x, ref.x) and torch.equal(from_zarr.edge_index, ref.edge_index)


def test_numpy_input_needs_coordinates(era5):
    arr = era5["t2m"].values[:5]
    with pytest.raises(ValueError, match="coords\\['latitude'\\]"):
        raster.from_grid(arr)
    g = raster.from_grid(
        arr, coords={"latitude": era5.latitude.values, "longitude": era5.longitude.values}
    )
    assert tuple(g.x.shape) == (1617, 5, 1) and g.time is None


def test_global_0_360_grid_is_wrapped_and_sorted_west_to_east(era5):
    # a 5 x 12 global grid, longitudes 0, 30, .., 330 (the ERA5 / GRIB convention), filled
    # with real 2 m temperatures of the first 3 hours
    t2m = era5["t2m"].isel(time=slice(0, 3))
    vals = t2m.values[:, :5, :12].astype(np.float64)
    lon = np.arange(0.0, 360.0, 30.0)
    lat = np.array([60.0, 30.0, 0.0, -30.0, -60.0])
    grid = xr.DataArray(
        vals,
        dims=("time", "latitude", "longitude"),
        coords={"time": t2m.time.values, "latitude": lat, "longitude": lon},
        name="t2m",
    )
    g = raster.from_grid(grid)
    assert g.num_nodes == 5 * 12
    assert g.edge_index.size(1) == 2 * (5 * 11 + 4 * 12)
    lons = g.pos[:, 0].double().numpy().reshape(5, 12)  # row-major: one row per latitude
    assert (lons >= -180).all() and (lons < 180).all()
    assert (np.diff(lons, axis=1) > 0).all()
    assert lons[0].tolist() == np.arange(-180.0, 180.0, 30.0).tolist()
    # each node keeps its own column: 330 E is 30 W, 180 E is 180 W
    for src_lon, node_lon in ((330.0, -30.0), (180.0, -180.0), (0.0, 0.0)):
        j = int(np.flatnonzero(lon == src_lon)[0])
        node = 2 * 12 + int(np.flatnonzero(lons[2] == node_lon)[0])  # equator row
        assert float(g.pos[node, 1]) == 0.0
        np.testing.assert_allclose(g.x[node, :, 0].double().numpy(), vals[:, 2, j], rtol=1e-6)


def test_era5_in_0_360_convention_gives_the_same_graph(era5):
    # the UK grid (-10 .. 2 E) written as 0 .. 2 then 350 .. 359.75: increasing as given, not
    # after wrapping to -180 .. 180 — sorted, it is the original grid again
    sub = era5["t2m"].isel(time=slice(0, 24))
    ref = raster.from_grid(sub)
    shifted = sub.assign_coords(longitude=sub.longitude.values % 360).sortby("longitude")
    assert shifted.longitude.values[0] == 0.0 and shifted.longitude.values[-1] == 359.75
    g = raster.from_grid(shifted)
    assert torch.equal(g.pos, ref.pos) and torch.equal(g.x, ref.x)
    assert torch.equal(g.edge_index, ref.edge_index) and g.meta["grid"] == ref.meta["grid"]


def test_regional_grid_across_180_is_a_clear_error(era5):
    sub = era5["t2m"].isel(time=slice(0, 2))
    sub = sub.assign_coords(longitude=170.0 + 0.25 * np.arange(sub.sizes["longitude"]))
    with pytest.raises(DataFormatError, match="cross 180"):
        raster.from_grid(sub)


def test_grid_edges_is_the_shared_implementation():
    # the grid-edge convention is pinned in tests/utils/test_grid.py; raster re-exports it
    from stgraph.utils import grid

    assert raster.grid_edges is grid.grid_edges


@pytest.mark.parametrize("factor,nodes", [(1, 168), (2, 42), (4, 12)])
def test_chicago_crime_grid_coarsened(data_dir, factor, nodes):
    path = data_dir / "chicago-crime" / "trn.pkl"
    trn = load_verified_pickle(path, sha256=CHI_TRN_SHA, source=str(path))  # checked, numpy only
    assert trn.shape == (14, 12, 609, 4)
    # cell centres of the STHSL grid (3 km: 3/111 deg of latitude, 3/84 of longitude)
    lat = 41.644604096 + (np.arange(14) + 0.5) * 3 / 111
    lon = -87.927881741 + (np.arange(12) + 0.5) * 3 / 84
    days = pd.date_range("2016-01-01", periods=609, freq="D")
    g = raster.from_grid(
        trn,
        dims=("latitude", "longitude", "time", "variable"),
        reduce="sum",
        coarsen=factor,
        coords={
            "latitude": lat,
            "longitude": lon,
            "time": days,
            "variable": ["THEFT", "BATTERY", "ASSAULT", "CRIMINAL DAMAGE"],
        },
        units="count",
    )
    assert g.num_nodes == nodes and tuple(g.x.shape[1:]) == (609, 4)
    assert g.variables == ["THEFT", "BATTERY", "ASSAULT", "CRIMINAL DAMAGE"]
    # counts are conserved by the block sums, per day and category
    np.testing.assert_array_equal(g.x.double().sum(0).numpy(), trn.sum(axis=(0, 1)))
    assert g.meta["cell_size_m"]["y"] == pytest.approx(6_371_008.8 * np.radians(3 / 111) * factor)
    assert g.interval == 86400
