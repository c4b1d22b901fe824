"""Gridded (raster) data: ERA5 2 m temperature over the UK and Ireland, via xarray + cfgrib."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stgraph.data.stgraph import STGraph
from stgraph.datasets._common import sources
from stgraph.datasets._graphs import degree_cell_metres, grid_edges
from stgraph.datasets.registry import register
from stgraph.errors import DataFormatError

ERA5 = "era5-uk-t2m/era5-2mt-2019-03-uk.grib"
ERA5_MD5 = "era5-uk-t2m/era5-2mt-2019-03-uk.grib.md5"


def _import_pyproj_first() -> None:
    """Load pyproj's PROJ library before cfgrib loads eccodes.

    With the PyPI wheels of eccodes (eccodeslib 2.50) and pyproj 3.7, importing cfgrib first
    breaks every later pyproj call in the process ("proj_create: no database context specified",
    then a crash at exit); importing pyproj first avoids it.
    """
    try:
        import pyproj  # noqa: F401
    except ImportError:
        pass


@register(
    "era5-uk-t2m",
    title="ERA5 2 m temperature, UK & Ireland, March 2019: hourly, 0.25° grid (33 × 49)",
    files=(ERA5, ERA5_MD5),
    needs=lambda options: (ERA5,),
    facts={
        "N": 33 * 49,
        "T": 744,
        "V": 1,
        "interval": 3600,
        "span": ["2019-03-01T00:00Z", "2019-03-31T23:00Z"],
        "missing_share": 0.0,
        "variables": [{"name": "t2m", "unit": "K"}],
        "domain": "weather",
        "city": "United Kingdom and Ireland",
        "source": "pydata/xarray-data era5-2mt-2019-03-uk.grib (xarray tutorial data); "
        "upstream Copernicus C3S ERA5",
        "license": "Copernicus licence (attribution required); not stated in the repository",
    },
)
def load_era5_uk_t2m(paths: dict[str, Path]) -> STGraph:
    """ERA5 reanalysis 2 m temperature over the UK and Ireland, March 2019 (xarray tutorial).

    Dataset information:
        + Nodes: 1617 grid cells (33 latitudes 58.0 → 50.0 × 49 longitudes −10.0 → 2.0, step
          0.25°; node = lat_index · 49 + lon_index, north row first, as in the file)
        + Time steps: 744
        + Variables: 1 (``t2m``, K)
        + Sampling rate: 1 hour
        + Span: 2019-03-01 00:00 .. 2019-03-31 23:00 UTC (true UTC)
        + Missing values: 0.00 % (land and sea both have values)
        + Coordinates: cell centres (the GRIB's latitude/longitude)
        + Edges: 4-neighbour grid, both directions
        + Spatial scale: the geometric mean of a cell's east-west and north-south sides at the
          grid's central latitude (54° N): sqrt(16.3 km × 27.8 km) ≈ 21.3 km, on a sphere of
          radius 6371.0088 km
        + Source: github.com/pydata/xarray-data ``era5-2mt-2019-03-uk.grib``; Copernicus C3S

    Read with ``xarray.open_dataset(engine="cfgrib", backend_kwargs={"indexpath": ""})``: no
    ``.idx`` file is written beside the data.
    """
    _import_pyproj_first()
    from stgraph.utils.extras import require

    xr = require("xarray", "the era5-uk-t2m data set (a GRIB file)")
    require("cfgrib", "the era5-uk-t2m data set (a GRIB file)")

    path = paths[ERA5]
    try:
        ds = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    except Exception as exc:  # cfgrib/eccodes raise many types
        raise DataFormatError(f"{path}: cannot be read as GRIB with cfgrib ({exc})") from exc
    with ds:
        if "t2m" not in ds:
            raise DataFormatError(f"{path}: no variable 't2m' (has {list(ds.data_vars)})")
        da = ds["t2m"].transpose("time", "latitude", "longitude")
        values = da.to_numpy().astype(np.float32)
        lats = ds["latitude"].to_numpy().astype(np.float64)
        lons = ds["longitude"].to_numpy().astype(np.float64)
        times = ds["valid_time"].to_numpy() if "valid_time" in ds.coords else ds["time"].to_numpy()
        units = str(da.attrs.get("units", "K"))
    t, nlat, nlon = values.shape
    steps = np.diff(times.astype("datetime64[s]").astype(np.int64))
    if steps.size and not (steps == steps[0]).all():
        raise DataFormatError(f"{path}: time steps are not regular")
    interval = int(steps[0]) if steps.size else None
    dlat = float(np.abs(np.diff(lats)).mean()) if nlat > 1 else 0.25
    ew, ns = degree_cell_metres(dlat, float(lats.mean()))
    la, lo = np.meshgrid(lats, lons, indexing="ij")
    x = values.reshape(t, nlat * nlon).T[:, :, None]
    meta = {
        "variables": [{"name": "t2m", "unit": units}],
        "domain": "weather",
        "city": "United Kingdom and Ireland",
        "crs": "EPSG:4326",
        "interval": interval,
        "spatial_scale": float(np.sqrt(ew * ns)),
        "timezone": "UTC",
        "time_reference": "utc",
        "node_ids": [f"{a:.2f},{b:.2f}" for a, b in zip(la.ravel(), lo.ravel(), strict=True)],
        "grid": {
            "rows": nlat,
            "cols": nlon,
            "step_deg": dlat,
            "node": "lat_index * cols + lon_index",
            "cell_m": {"east_west": ew, "north_south": ns},
        },
        "graph": {"kind": "grid 4-neighbour", "self_loops": "none", "directed": False},
        "sources": sources(
            "era5-uk-t2m",
            [ERA5],
            citation="Hersbach et al., ERA5, QJRMS 2020 (Copernicus C3S); xarray tutorial data",
            license="Copernicus licence",
        ),
        "provenance": [
            "stgraph.datasets.load('era5-uk-t2m'): xarray + cfgrib (indexpath='')",
            "x: t2m (time, latitude, longitude) -> nodes = latitude-major cells",
            "spatial_scale = sqrt(east-west * north-south cell side) at the mean latitude",
            "edges: 4-neighbour grid, both directions",
        ],
    }
    return STGraph(
        x=x,
        mask=np.isfinite(x),
        time=times.astype("datetime64[s]").astype(np.int64),
        pos=np.stack([lo.ravel(), la.ravel()], axis=1).astype(np.float32),
        edge_index=grid_edges(nlat, nlon),
        meta=meta,
    )
