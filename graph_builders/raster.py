"""Rasters (gridded fields: reanalysis, satellite, gridded counts) → grid graphs.

One node per grid cell, or per block of ``coarsen × coarsen`` cells (the mean, or sum, over the
valid cells of the block, computed by :meth:`xarray.DataArray.coarsen`). Cells are linked to their
4 (rook) or 8 (queen) neighbours. NaN cells are masked; cells that are NaN over the whole period
are dropped (or kept, fully masked) and counted in ``meta["dropped"]``.

Example::

    from graph_builders import raster
    g = raster.from_grid("era5-2mt-2019-03-uk.grib", coarsen=2, neighbourhood=8)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch

from graph_builders._inputs import MAX_DROP_SHARE, report_dropped, source_name
from graph_builders.regions import cell_ids
from stgraph.data.stgraph import STGraph
from stgraph.errors import ChecksumError, ConfigError, DataFormatError
from stgraph.utils.extras import require
from stgraph.utils.geo import EARTH_RADIUS_M, haversine_m
from stgraph.utils.grid import NEIGHBOUR_OFFSETS, grid_edges
from stgraph.utils.memory import check_memory

LOGGER = logging.getLogger("stgraph.builders")

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["check_grib", "from_grid", "grid_edges", "open_raster"]

_GRIB_SUFFIXES = (".grib", ".grib1", ".grib2", ".grb", ".grb2")
_NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".hdf5")


def open_raster(path: str | os.PathLike, *, engine: str | None = None) -> xr.Dataset:
    """Open a netCDF, GRIB or zarr file as an :class:`xarray.Dataset` (lazily where possible).

    GRIB is read through cfgrib without writing an index file beside the data
    (``backend_kwargs={"indexpath": ""}``), so read-only data folders work. A GRIB file is checked
    first (:func:`check_grib`): a file that ends inside a message, or holds none, is refused
    (cfgrib would skip the cut message and return the steps before it), and a ``.md5`` or
    ``.sha256`` file beside it, when there is one, must match.

    Raises:
        FileNotFoundError: no such path.
        DataFormatError: the file cannot be read as a raster, or a GRIB file is truncated.
        ChecksumError: a GRIB file does not match the checksum file beside it.
    """
    xr = require("xarray", "raster sources (graph_builders.raster)")

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    suffix = path.suffix.lower()
    grib = engine == "cfgrib" or (engine is None and suffix in _GRIB_SUFFIXES)
    if grib:
        check_grib(path)
    try:
        if grib:
            return xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
        if engine == "zarr" or (engine is None and (suffix == ".zarr" or path.is_dir())):
            return xr.open_zarr(path)
        return xr.open_dataset(path, engine=engine)
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DataFormatError(f"{path}: cannot be opened as a raster ({exc})") from exc


def _grib_message_length(head: bytes) -> int | None:
    """Total length of the GRIB message whose first 16 bytes are ``head`` (``None``: a GRIB 1
    message of ECMWF's large-message encoding, whose length needs its later sections)."""
    edition = head[7]
    if edition == 1:
        length = int.from_bytes(head[4:7], "big")
        return None if length & 0x800000 else length
    if edition == 2:
        return int.from_bytes(head[8:16], "big")
    raise DataFormatError(f"GRIB edition {edition}")


def check_grib(path: str | os.PathLike) -> int:
    """Check that a GRIB file is whole: every message it starts ends inside the file with
    ``7777``; and, when a ``<file>.md5`` or ``<file>.sha256`` sits beside it, that it matches.

    A file cut exactly between two messages is a valid shorter GRIB file: only the checksum file
    can tell it was cut.

    Returns:
        The number of messages (0 when a large GRIB 1 message stopped the count early).

    Raises:
        DataFormatError: no GRIB message, or a message cut short (with its number and offset).
        ChecksumError: the checksum file beside it does not match.
    """
    import mmap

    path = Path(path)
    _check_sidecar_checksum(path)
    n, pos = 0, 0
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise DataFormatError(f"{path}: empty file; expected GRIB messages")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            while (start := data.find(b"GRIB", pos)) >= 0:
                try:
                    length = _grib_message_length(data[start : start + 16])
                except (DataFormatError, IndexError):
                    length = -1
                if length is None:
                    return 0  # cannot size it without decoding; eccodes will read the rest
                end = start + length
                if length < 16 or end > size or data[end - 4 : end] != b"7777":
                    raise DataFormatError(
                        f"{path}: truncated or corrupt GRIB file: message {n + 1} at byte "
                        f"{start} declares {length} bytes but the file has {size - start} "
                        f"from there{' ending without 7777' if end <= size else ''}; "
                        f"the {n} messages before it are whole"
                    )
                n, pos = n + 1, end
    if n == 0:
        raise DataFormatError(f"{path}: no GRIB message found ({size} bytes)")
    return n


def _check_sidecar_checksum(path: Path) -> None:
    import hashlib

    for suffix, algo in ((".md5", "md5"), (".sha256", "sha256")):
        side = path.with_name(path.name + suffix)
        if not side.is_file():
            continue
        words = side.read_text(encoding="ascii", errors="replace").split()
        if not words:
            continue
        digest = hashlib.new(algo)
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        if digest.hexdigest() != words[0].lower():
            raise ChecksumError(
                f"{path}: {algo} {digest.hexdigest()} does not match {side.name} ({words[0]}); "
                "the file is truncated or changed"
            )


def _as_dataarray(
    data: Any,
    *,
    variable: str | Sequence[str] | None,
    dims: Sequence[str] | None,
    coords: Mapping[str, Any] | None,
    lat_dim: str,
    lon_dim: str,
    time_dim: str,
    var_dim: str,
    engine: str | None,
) -> tuple[Any, str, list[str]]:
    """Normalise the accepted inputs to one DataArray; returns (array, name, files)."""
    xr = require("xarray", "raster sources (graph_builders.raster)")

    files: list[str] = []
    if isinstance(data, (str, os.PathLike)):
        files = [str(data)]
        data = open_raster(data, engine=engine)
    name = files[0] if files else f"<{type(data).__name__}>"
    if isinstance(data, np.ndarray) or torch.is_tensor(data):
        arr = np.asarray(data.numpy() if torch.is_tensor(data) else data)
        if dims is None:
            defaults = {2: (lat_dim, lon_dim), 3: (time_dim, lat_dim, lon_dim)}
            if arr.ndim not in defaults:
                raise ConfigError(
                    f"{name}: a {arr.ndim}-d array needs dims=... naming each axis "
                    f"(e.g. ({lat_dim!r}, {lon_dim!r}, {time_dim!r}, {var_dim!r}))"
                )
            dims = defaults[arr.ndim]
        if len(dims) != arr.ndim:
            raise ConfigError(
                f"{name}: dims {tuple(dims)} do not match an array of shape {arr.shape}"
            )
        coords = dict(coords or {})
        for d in (lat_dim, lon_dim):
            if d not in coords:
                raise ConfigError(
                    f"{name}: coords[{d!r}] is required for a numpy raster (cell centres, degrees)"
                )
        data = xr.DataArray(
            arr, dims=tuple(dims), coords={k: v for k, v in coords.items() if k in dims}
        )
    if isinstance(data, xr.Dataset):
        if variable is None:
            names = [
                v for v, da in data.data_vars.items() if lat_dim in da.dims and lon_dim in da.dims
            ]
        else:
            names = [variable] if isinstance(variable, str) else list(variable)
        missing = [v for v in names if v not in data.data_vars]
        if missing or not names:
            raise DataFormatError(
                f"{name}: variable(s) {missing or names} not found with dims ({lat_dim}, {lon_dim}); "
                f"data variables: {list(data.data_vars)}"
            )
        unit_attrs = [
            str(data[v].attrs.get("units", data[v].attrs.get("GRIB_units", ""))) for v in names
        ]
        data = data[names].to_array(dim=var_dim)
        data.attrs["units"] = unit_attrs
    elif isinstance(data, xr.DataArray):
        if variable is not None and var_dim in data.dims:
            data = data.sel({var_dim: [variable] if isinstance(variable, str) else list(variable)})
    else:
        raise DataFormatError(
            f"from_grid: expected an xarray DataArray/Dataset, a numpy array or a path, got {type(data).__name__}"
        )
    missing_dims = [d for d in (lat_dim, lon_dim) if d not in data.dims]
    if missing_dims:
        raise DataFormatError(
            f"{name}: dimension(s) {missing_dims} not found; dims are {list(data.dims)} "
            "(pass lat_dim=/lon_dim= to name them)"
        )
    extra = [d for d in data.dims if d not in (lat_dim, lon_dim, time_dim, var_dim)]
    if extra:
        raise DataFormatError(
            f"{name}: unexpected dimension(s) {extra} (sizes {[data.sizes[d] for d in extra]}); "
            "select one level first, e.g. data.isel(level=0)"
        )
    if var_dim not in data.dims:
        label = data.name if data.name is not None else "value"
        data = data.expand_dims({var_dim: [label]})
    if time_dim not in data.dims:
        data = data.expand_dims({time_dim: 1})
    return data.transpose(lat_dim, lon_dim, time_dim, var_dim), name, files


def _regular_coord(values: np.ndarray, dim: str, name: str, limit: float) -> float:
    """Check a 1-d cell-centre coordinate (degrees, monotone); return the cell size (deg)."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 2 or not np.isfinite(v).all():
        raise DataFormatError(f"{name}: coordinate {dim!r} must be 1-d, finite, with >= 2 cells")
    if np.abs(v).max() > limit:
        raise DataFormatError(
            f"{name}: coordinate {dim!r} has values in [{v.min():.6g}, {v.max():.6g}]; expected "
            f"degrees within ±{limit:g} (EPSG:4326). Reproject the raster to lon/lat first"
        )
    step = np.diff(v)
    if not ((step > 0).all() or (step < 0).all()):
        raise DataFormatError(f"{name}: coordinate {dim!r} is not strictly monotone")
    return float(np.median(np.abs(step)))


def _units(da: Any, var_dim: str, units: str | Sequence[str] | None) -> list[dict[str, str]]:
    labels = (
        [str(v) for v in da[var_dim].values]
        if var_dim in da.coords
        else [f"var{i}" for i in range(da.sizes[var_dim])]
    )
    if units is None:
        unit = da.attrs.get("units", da.attrs.get("GRIB_units", ""))
        unit_list = [str(u) for u in unit] if isinstance(unit, list) else [str(unit)] * len(labels)
    elif isinstance(units, str):
        unit_list = [units] * len(labels)
    else:
        unit_list = list(units)
        if len(unit_list) != len(labels):
            raise ConfigError(f"units: {len(unit_list)} given for {len(labels)} variables {labels}")
    return [{"name": n, "unit": u} for n, u in zip(labels, unit_list, strict=True)]


def from_grid(
    data: Any,
    *,
    variable: str | Sequence[str] | None = None,
    coarsen: int = 1,
    neighbourhood: Literal[4, 8] = 4,
    time_dim: str = "time",
    lat_dim: str = "latitude",
    lon_dim: str = "longitude",
    var_dim: str = "variable",
    dims: Sequence[str] | None = None,
    coords: Mapping[str, Any] | None = None,
    reduce: Literal["mean", "sum"] = "mean",
    boundary: Literal["pad", "trim"] = "pad",
    drop_empty: bool = True,
    edge_weight: Literal["inverse_distance", "binary"] = "inverse_distance",
    units: str | Sequence[str] | None = None,
    domain: str | None = None,
    city: str | None = None,
    engine: str | None = None,
    strict: bool = False,
    max_drop_share: float = MAX_DROP_SHARE,
    partial: bool = False,
) -> STGraph:
    r"""A grid graph from a raster: one node per cell (or per ``coarsen × coarsen`` block).

    Args:
        data: an :class:`xarray.DataArray` or ``Dataset``; a numpy array (with ``coords`` giving
            cell-centre latitudes/longitudes, and ``dims`` unless it is ``(time, lat, lon)`` or
            ``(lat, lon)``); or a path to a netCDF, GRIB (via cfgrib, no index file written) or
            zarr store.
        variable (str or list, optional): data variable(s) of a Dataset (default: all with the
            lat/lon dims); each becomes one variable of the graph.
        coarsen (int): block size; each node is the ``reduce`` over the valid (non-NaN) cells of a
            ``coarsen × coarsen`` block (default ``1``: one node per cell).
        neighbourhood (int): ``4`` (rook: cells sharing a side) or ``8`` (queen: also corners).
        time_dim, lat_dim, lon_dim, var_dim (str): dimension names. Coordinates are cell centres
            in degrees (EPSG:4326); longitudes in [0, 360) are wrapped to [-180, 180) and sorted west
            to east (a regional grid crossing 180° is refused: it would split in two).
        dims, coords: axis names and coordinates of a numpy input.
        reduce (str): ``"mean"`` (default) or ``"sum"`` (e.g. for counts) over a block.
        boundary (str): when the grid is not a multiple of ``coarsen``: ``"pad"`` (default: the
            last blocks are partial, reduced over the cells they have) or ``"trim"`` (drop them).
        drop_empty (bool): drop cells that are NaN at every step and in every variable (default),
            or keep them with ``mask`` all ``False``. Either way they are counted in
            ``meta["dropped"]["all_nan_cells"]`` / ``meta["all_nan_cells"]``.
        edge_weight (str): ``"inverse_distance"`` (default): ``min(1, s / d)`` for an edge of
            centre-to-centre length ``d`` (haversine), ``s`` the shortest nominal block side in
            the grid, so the nearest regular neighbours weigh 1 and all weights lie in (0, 1];
            or ``"binary"``: all 1. ``edge_attr`` holds ``d`` in metres.
        units: unit(s) of the variable(s); default the raster's ``units`` attribute.
        domain, city (str, optional): metadata.
        engine (str, optional): xarray engine for a path (default: from the suffix).
        strict, max_drop_share: the builders' drop rule
            (:func:`graph_builders._inputs.report_dropped`): more than ``max_drop_share`` of the
            (coarsened) cells NaN at every step is a warning on stderr (a land/sea mask: raise
            ``max_drop_share``), with ``strict=True`` an error.
        partial (bool): accept a GRIB file whose steps start at midnight but stop inside a day
            (what a file cut between two messages looks like: every message is whole, so
            :func:`check_grib` cannot tell), with a warning that counts its steps; by default
            that is an error.

    Returns:
        STGraph with ``x`` ``[N, T, V]`` (``mask`` False where NaN), ``pos`` = block centres
        (lon, lat), nodes in row-major order of the (coarsened) grid; ``node_attr`` =
        ``[cell_width_m, cell_height_m, valid_cells]`` (``valid_cells``: cells of the block with
        any data); ``meta["spatial_scale"]`` = ``sqrt(width · height)`` of a block at the grid's
        mean latitude, ``meta["cell_size_m"]`` = ``{"x", "y"}``, ``meta["grid"]`` = shape,
        factor, cell size in degrees and each node's ``[row, col]``.

    Raises:
        DataFormatError: missing dimensions, coordinates that are not degrees, a raster with no
            finite value at all, a truncated GRIB file (:func:`check_grib`), a GRIB file whose
            sub-daily steps start at midnight and stop inside a day (unless ``partial=True``).
        TooManyDroppedError: ``strict=True`` and too many all-NaN cells.
    """
    _check_grid_options(coarsen, neighbourhood, reduce, boundary, edge_weight)
    da, name, files = _as_dataarray(
        data,
        variable=variable,
        dims=dims,
        coords=coords,
        lat_dim=lat_dim,
        lon_dim=lon_dim,
        time_dim=time_dim,
        var_dim=var_dim,
        engine=engine,
    )
    variables = _units(da, var_dim, units)
    _check_size(da, name)
    dlat, dlon, mean_lat, da = _cell_sizes(da, lat_dim, lon_dim, coarsen, name)
    da, valid = _coarsen(da, coarsen, lat_dim, lon_dim, time_dim, var_dim, reduce, boundary, name)
    c = _cells(da, lat_dim, lon_dim, drop_empty)
    if drop_empty:
        _report_empty(name, c, strict, max_drop_share)
    ei, dist, w = _edges(c, dlat, dlon, neighbourhood, edge_weight)
    width, height, node_attr = _cell_attributes(c, dlat, dlon, mean_lat, valid)
    times, interval = _times(da, time_dim, name)
    if any(Path(f).suffix.lower() in _GRIB_SUFFIXES or engine == "cfgrib" for f in files):
        _check_whole_days(times, interval, name, partial)
    meta = {
        "variables": variables,
        "domain": domain,
        "city": city,
        "crs": "EPSG:4326",
        "interval": interval,
        "spatial_scale": float(np.sqrt(width * height)),
        "cell_size_m": {"x": float(width), "y": float(height)},
        **_grid_meta(c, coarsen, boundary, reduce, neighbourhood, dlat, dlon),
        "edge_weight": edge_weight,
        "all_nan_cells": c.n_empty,
        "dropped": {"all_nan_cells": c.n_empty} if drop_empty else {},
        "sources": [
            {"name": source_name(data) if not files else Path(files[0]).name, "files": files}
        ],
        "provenance": [_provenance(coarsen, neighbourhood, reduce, boundary, drop_empty)],
    }
    return _graph(c, (ei, dist, w), node_attr, times, meta)


def _graph(
    c: _Cells,
    edges: tuple[np.ndarray, np.ndarray, np.ndarray],
    node_attr: np.ndarray,
    times: np.ndarray | None,
    meta: dict[str, Any],
) -> STGraph:
    ei, dist, w = edges
    return STGraph(
        x=torch.from_numpy(np.where(c.observed, c.flat, 0.0)[c.keep].astype(np.float32)),
        mask=torch.from_numpy(np.ascontiguousarray(c.observed[c.keep])),
        time=None if times is None else torch.from_numpy(times),
        pos=torch.from_numpy(np.stack([c.node_lon, c.node_lat], 1)),
        edge_index=torch.from_numpy(ei),
        edge_weight=torch.from_numpy(w.astype(np.float32)),
        edge_attr=torch.from_numpy(dist.astype(np.float32)[:, None]),
        node_attr=torch.from_numpy(node_attr.astype(np.float32)),
        meta=meta,
    )


def _cell_attributes(
    c: _Cells, dlat: float, dlon: float, mean_lat: float, valid: Any
) -> tuple[float, float, np.ndarray]:
    """Block width and height (m) at the mean latitude, and ``node_attr`` ``[cell_width_m`` (at
    the node's latitude), ``cell_height_m, valid_cells]``."""
    rad = np.pi / 180.0
    height = EARTH_RADIUS_M * dlat * rad
    width = EARTH_RADIUS_M * dlon * rad * np.cos(mean_lat * rad)
    width_at = EARTH_RADIUS_M * dlon * rad * np.cos(c.node_lat * rad)
    n_valid = np.asarray(valid.values, dtype=np.float64).reshape(-1)[c.keep]
    return width, height, np.stack([width_at, np.full(c.node_lat.shape, height), n_valid], axis=1)


def _check_whole_days(
    times: np.ndarray | None, interval: int | None, name: str, partial: bool
) -> None:
    """A GRIB file of sub-daily steps that starts at midnight (UTC) must end with the last step
    of a day: a cut only ever removes the tail, and a cut between two messages leaves a valid
    file that :func:`check_grib` cannot tell from a whole one."""
    if times is None or len(times) < 2 or not interval or interval >= 86_400:
        return
    if 86_400 % interval or times[0] % 86_400 or (times[-1] + interval) % 86_400 == 0:
        return
    first, last = (pd.Timestamp(int(t), unit="s") for t in (times[0], times[-1]))
    whole = (len(times) * interval) // 86_400
    text = (
        f"{name}: the GRIB steps start at midnight ({first}) but stop inside a day: the last "
        f"of the {len(times):,} steps of {interval} s is {last}, {len(times) - whole * 86_400 // interval} "
        f"steps after the last whole day; a GRIB file cut between two messages reads as a "
        f"shorter valid file like this"
    )
    if not partial:
        raise DataFormatError(
            text + "; if the file is whole, pass partial=True (options: {partial: true} in a "
            "build config) to build its steps anyway"
        )
    LOGGER.warning("%s; building its %d steps (partial=True)", text, len(times))


def _check_size(da: Any, name: str) -> None:
    """Refuse an empty raster, and one whose arrays (the values, their float64 copies while
    coarsening and flattening, the float32 ``x`` and the masks) would exceed the memory budget,
    before the file is read."""
    empty = [d for d, s in da.sizes.items() if s == 0]
    if empty:
        raise DataFormatError(f"{name}: empty raster: no cell along {empty} ({dict(da.sizes)})")
    n = int(np.prod([int(s) for s in da.shape], dtype=object))
    check_memory(
        f"raster.from_grid({name}): {' x '.join(f'{d}={s:,}' for d, s in da.sizes.items())}",
        n * (np.dtype(da.dtype).itemsize + 3 * 8 + 4 + 2),
        hint="select a variable, a time range (da.sel(time=...)) or a smaller region first",
    )


def _report_empty(name: str, c: _Cells, strict: bool, max_share: float) -> None:
    """The builders' drop rule on the cells dropped as NaN at every step."""
    total = c.rows * c.cols
    dropped = {"all_nan_cells": c.n_empty}
    report_dropped(name, dropped, total, what="grid cells", strict=strict, max_share=max_share)


def _provenance(coarsen: int, neighbourhood: int, reduce: str, boundary: str, drop: bool) -> str:
    return (
        f"raster.from_grid(coarsen={coarsen}, neighbourhood={neighbourhood}, reduce={reduce!r}, "
        f"boundary={boundary!r}, drop_empty={drop})"
    )


def _grid_meta(
    c: _Cells,
    coarsen: int,
    boundary: str,
    reduce: str,
    neighbourhood: int,
    dlat: float,
    dlon: float,
) -> dict[str, Any]:
    """``meta["grid"]``, the node ids and the attribute names of a raster graph."""
    return {
        "grid": {
            "shape": [c.rows, c.cols],
            "coarsen": int(coarsen),
            "boundary": boundary,
            "reduce": reduce,
            "neighbourhood": int(neighbourhood),
            "cell_deg": {"lat": dlat, "lon": dlon},
            "cells": np.stack([c.row, c.col], 1).tolist(),
        },
        "node_ids": cell_ids(c.row, c.col),
        "node_attr_names": ["cell_width_m", "cell_height_m", "valid_cells"],
        "edge_attr_names": ["distance_m"],
    }


def _cell_sizes(
    da: Any, lat_dim: str, lon_dim: str, coarsen: int, name: str
) -> tuple[float, float, float, Any]:
    """Checked coordinates: block size in degrees (lat, lon), the fine grid's mean latitude,
    and the array with longitudes wrapped to [-180, 180)."""
    for d in (lat_dim, lon_dim):
        if d not in da.coords:
            raise DataFormatError(
                f"{name}: dimension {d!r} has no coordinate (cell centres in degrees)"
            )
    dlat = _regular_coord(da[lat_dim].values, lat_dim, name, 90.0) * coarsen
    da = _wrap_longitudes(da, lon_dim, name)
    dlon = _regular_coord(da[lon_dim].values, lon_dim, name, 180.0) * coarsen
    mean_lat = float(np.mean(da[lat_dim].values))  # of the fine grid: the same for every factor
    return dlat, dlon, mean_lat, da


@dataclass
class _Cells:
    """The (coarsened) grid's cells, row-major, and which of them become nodes."""

    lat: np.ndarray  # [rows] centre latitudes
    flat: np.ndarray  # [rows * cols, T, V] values (NaN = missing)
    observed: np.ndarray  # [rows * cols, T, V] finite
    keep: np.ndarray  # [rows * cols] cells that become nodes
    n_empty: int  # cells NaN at every step and variable
    node_lon: np.ndarray  # [N]
    node_lat: np.ndarray  # [N]
    row: np.ndarray  # [N]
    col: np.ndarray  # [N]
    rows: int
    cols: int


def _cells(da: Any, lat_dim: str, lon_dim: str, drop_empty: bool) -> _Cells:
    lat = np.asarray(da[lat_dim].values, dtype=np.float64)
    lon = np.asarray(da[lon_dim].values, dtype=np.float64)
    rows, cols = lat.size, lon.size
    arr = np.asarray(da.values, dtype=np.float64)  # (rows, cols, T, V)
    flat = arr.reshape(rows * cols, arr.shape[2], arr.shape[3])
    observed = np.isfinite(flat)
    has_data = observed.any(axis=(1, 2))
    keep = has_data if drop_empty else np.ones(rows * cols, dtype=bool)
    lat_grid, lon_grid = np.meshgrid(lat, lon, indexing="ij")
    rr, cc = np.divmod(np.flatnonzero(keep), cols)
    return _Cells(
        lat=lat,
        flat=flat,
        observed=observed,
        keep=keep,
        n_empty=int((~has_data).sum()),
        node_lon=lon_grid.reshape(-1)[keep],
        node_lat=lat_grid.reshape(-1)[keep],
        row=rr,
        col=cc,
        rows=rows,
        cols=cols,
    )


def _check_grid_options(
    coarsen: int, neighbourhood: int, reduce: str, boundary: str, edge_weight: str
) -> None:
    if not isinstance(coarsen, (int, np.integer)) or coarsen < 1:
        raise ConfigError(f"coarsen: expected an integer >= 1, got {coarsen!r}")
    if neighbourhood not in NEIGHBOUR_OFFSETS:
        raise ConfigError(f"neighbourhood: expected 4 or 8, got {neighbourhood!r}")
    if reduce not in ("mean", "sum"):
        raise ConfigError(f"reduce: expected 'mean' or 'sum', got {reduce!r}")
    if boundary not in ("pad", "trim"):
        raise ConfigError(f"boundary: expected 'pad' or 'trim', got {boundary!r}")
    if edge_weight not in ("inverse_distance", "binary"):
        raise ConfigError(
            f"edge_weight: expected 'inverse_distance' or 'binary', got {edge_weight!r}"
        )


def _wrap_longitudes(da: Any, lon_dim: str, name: str) -> Any:
    """Longitudes in [0, 360) wrapped to [-180, 180) and sorted west to east (if needed)."""
    lon_vals = np.asarray(da[lon_dim].values, dtype=np.float64)
    if not (
        np.isfinite(lon_vals).all()
        and lon_vals.max() > 180
        and lon_vals.min() >= 0
        and lon_vals.max() < 360
    ):
        return da
    # 0..360 → -180..180, then sorted west → east: the wrapped axis would otherwise jump
    # from 179.x to -180 (e.g. a global 0..359.75 grid, or 0..2 followed by 350..359.75)
    wrapped = ((lon_vals + 180.0) % 360.0) - 180.0
    before, after = np.diff(np.sort(lon_vals)), np.diff(np.sort(wrapped))
    if (
        after.size
        and after.max() > 1.5 * np.median(after)
        and before.max() <= 1.5 * np.median(before)
    ):
        raise DataFormatError(
            f"{name}: longitudes {lon_vals.min():.6g}..{lon_vals.max():.6g} cross 180°; "
            "wrapped to [-180, 180) the grid splits in two pieces, which a grid graph cannot "
            "join. Select one side of the antimeridian"
        )
    return da.assign_coords({lon_dim: wrapped}).sortby(lon_dim)


def _coarsen(
    da: Any,
    coarsen: int,
    lat_dim: str,
    lon_dim: str,
    time_dim: str,
    var_dim: str,
    reduce: str,
    boundary: str,
    name: str,
) -> tuple[Any, Any]:
    """Finite values (NaN elsewhere) reduced over ``coarsen x coarsen`` blocks, and the count of
    cells with any data per block."""
    da = da.astype(np.float64)
    values = da.values  # (lat, lon, T, V); loads lazily opened files once
    if not np.isfinite(values).any():
        raise DataFormatError(
            f"{name}: the raster has no finite value (all {values.size} entries are NaN/inf)"
        )
    da = da.copy(data=np.where(np.isfinite(values), values, np.nan))
    valid = da.notnull().any(dim=(time_dim, var_dim)).astype(np.int64)
    if coarsen > 1:
        window = {lat_dim: int(coarsen), lon_dim: int(coarsen)}
        n_ok = da.notnull().coarsen(window, boundary=boundary, coord_func="mean").sum()
        block = da.fillna(0.0).coarsen(window, boundary=boundary, coord_func="mean").sum()
        # sum over the valid cells, then / their count: NaN cells neither count nor weigh
        n_ok = n_ok.astype(np.float64).where(n_ok > 0)  # NaN where a block has no valid cell
        da = (block / n_ok if reduce == "mean" else block).where(n_ok > 0)
        valid = valid.coarsen(window, boundary=boundary, coord_func="mean").sum()
    if da.sizes[lat_dim] < 1 or da.sizes[lon_dim] < 1:
        raise DataFormatError(
            f"{name}: no cells left after coarsening by {coarsen} with boundary={boundary!r}"
        )
    return da, valid


def _edges(
    c: _Cells, dlat: float, dlon: float, neighbourhood: int, edge_weight: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbour edges of the kept cells, their lengths (m, haversine) and weights."""
    ei = grid_edges(c.rows, c.cols, neighbourhood=neighbourhood, keep=c.keep)
    lon, lat = c.node_lon, c.node_lat
    dist = haversine_m(lon[ei[0]], lat[ei[0]], lon[ei[1]], lat[ei[1]])
    if edge_weight == "binary" or dist.size == 0:
        return ei, dist, np.ones(dist.size)
    # shortest nominal block side (width shrinks towards the pole): regular neighbours weigh
    # 1 along that side; partial edge blocks (boundary="pad") sit closer and are clipped to 1
    rad = np.pi / 180.0
    height = EARTH_RADIUS_M * dlat * rad
    side = min(height, EARTH_RADIUS_M * dlon * rad * np.cos(np.abs(c.lat).max() * rad))
    return ei, dist, np.minimum(1.0, side / np.maximum(dist, 1e-9))


def _times(da: Any, time_dim: str, name: str) -> tuple[np.ndarray | None, int | None]:
    """Unix seconds of the steps and the interval, when the time coordinate has them."""
    if time_dim not in da.coords:
        return None, None
    values = np.asarray(da[time_dim].values)
    if np.issubdtype(values.dtype, np.datetime64):
        stamps = pd.DatetimeIndex(values)
        if stamps.tz is not None:
            stamps = stamps.tz_convert("UTC").tz_localize(None)
        times = stamps.to_numpy().astype("datetime64[s]").astype(np.int64)
        steps = np.diff(times)
        if steps.size and (steps <= 0).any():
            i = int(np.flatnonzero(steps <= 0)[0]) + 1
            raise DataFormatError(
                f"{name}: {time_dim!r} must strictly increase; step {i} ({stamps[i]}) is not after "
                f"step {i - 1} ({stamps[i - 1]})"
            )
        return times, int(np.median(steps)) if steps.size else None
    if np.issubdtype(values.dtype, np.integer):
        raw = values.astype(np.int64)
        if raw.size > 1 and np.diff(raw).min() > 0 and raw.min() > 10**8:  # unix seconds
            return raw, int(np.median(np.diff(raw)))
    return None, None
