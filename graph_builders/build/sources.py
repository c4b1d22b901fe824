"""One source of a build -> its STGraph: the builder of its kind, its reader, its grid or roads."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from graph_builders.build.config import SourceConfig
from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError

if TYPE_CHECKING:
    from graph_builders.regions import Grid

__all__ = ["build_source", "check_options"]

Points = Callable[[], tuple[np.ndarray, np.ndarray]]
#: Builder arguments a config may not set in ``options`` (the build passes them itself).
_RESERVED = {"table", "data", "locations", "readings", "road_graph"}


def _builder(kind: str) -> Callable[..., STGraph]:
    if kind == "sensors":
        from graph_builders.sensors import from_table

        return from_table
    if kind == "raster":
        from graph_builders.raster import from_grid
        from stgraph.utils.extras import require

        require("xarray", "raster sources (netCDF, GRIB, zarr files)")

        return from_grid
    if kind == "trajectories":
        from graph_builders.trajectories import from_points

        return from_points
    if kind == "events":
        from graph_builders.events import from_points

        return from_points
    from graph_builders.moving import from_tracks

    return from_tracks


def check_options(sc: SourceConfig, where: str, sec: str) -> None:
    """Raise :class:`ConfigError` for an ``options`` key the source's builder does not take."""
    params = inspect.signature(_builder(sc.kind)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key in sc.options:
        if key not in params or key in _RESERVED:
            allowed = sorted(
                k for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
            )
            raise ConfigError(
                f"{where}: unknown option {key!r} in {sec}.options for {sc.kind}; allowed: {allowed}"
            )


#: What a grid without ``bbox`` covers (said in ``stgraph build --help`` and the summary).
AUTO_EXTENT_RULE = "the 0.5-99.5 % extent of the points, padded 0.1 %"


def _auto_bbox(lon: np.ndarray, lat: np.ndarray) -> tuple[list[float], np.ndarray]:
    """The 0.5-99.5 % extent of the valid points, padded by 0.1 % (W, S, E, N), and which points
    are valid."""
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    if not ok.any():
        raise ConfigError("grid: no valid coordinates to take the extent from")
    lo_lon, hi_lon = np.percentile(lon[ok], [0.5, 99.5])
    lo_lat, hi_lat = np.percentile(lat[ok], [0.5, 99.5])
    pad_lat = max((hi_lat - lo_lat) * 1e-3, 1e-5)
    pad_lon = max((hi_lon - lo_lon) * 1e-3, 1e-5)
    return [lo_lon - pad_lon, lo_lat - pad_lat, hi_lon + pad_lon, hi_lat + pad_lat], ok


def _resolve_grid(
    spec: object, points: Points, where: str
) -> tuple[Grid, dict[str, object] | None]:
    """A grid spec from the config (``{cell_m, bbox}``, ``{cell_m}``, ``{sthsl_km}``) -> a Grid,
    and the report of its automatic extent (``None`` when the bbox was given)."""
    from graph_builders.regions import Grid, as_grid

    if isinstance(spec, Grid):
        return spec, None
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where}: a grid is {{cell_m, bbox}}, {{cell_m}} or {{sthsl_km}}, got {spec!r}"
        )
    spec = dict(spec)
    if "sthsl_km" in spec:
        extra = set(spec) - {"sthsl_km"}
        if extra:
            raise ConfigError(f"{where}: unknown grid key {sorted(extra)[0]!r} next to sthsl_km")
        import pandas as pd

        lon, lat = points()
        frame = pd.DataFrame({"longitude": lon, "latitude": lat})
        return Grid.sthsl(frame, km=float(spec["sthsl_km"])), None
    unknown = set(spec) - {"cell_m", "bbox"}
    if unknown or "cell_m" not in spec:
        raise ConfigError(
            f"{where}: a grid is {{cell_m, bbox}} or {{cell_m}}; got keys {sorted(spec)}"
        )
    auto = spec.get("bbox") is None
    if auto:
        lon, lat = points()
        spec["bbox"], ok = _auto_bbox(lon, lat)
    try:
        grid = as_grid({"bbox": spec["bbox"], "cell_m": spec["cell_m"]})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    if not auto:
        return grid, None
    outside = grid.cell_of(lon[ok], lat[ok]) < 0
    extent = {
        "rule": AUTO_EXTENT_RULE,
        "bbox": [float(v) for v in spec["bbox"]],
        "points": int(ok.sum()),
        "outside": int(outside.sum()),
    }
    return grid, extent


def _point_reader(sc: SourceConfig) -> Points:
    """Reads the source's lon/lat (only when a grid needs the data's extent)."""

    def read() -> tuple[np.ndarray, np.ndarray]:
        opts = sc.options
        if sc.kind == "events":
            import pandas as pd

            from graph_builders._inputs import match_columns
            from graph_builders.events import read_events

            df = read_events(sc.path, names=opts.get("names"))
            wanted = {
                "lon_col": opts.get("lon_col", "longitude"),
                "lat_col": opts.get("lat_col", "latitude"),
            }
            cols = match_columns(df, wanted, str(sc.path))
            lon = pd.to_numeric(df[cols["lon_col"]], errors="coerce").to_numpy(np.float64)
            lat = pd.to_numeric(df[cols["lat_col"]], errors="coerce").to_numpy(np.float64)
            return lon, lat
        from graph_builders.trajectories import read_points

        pts, _ = read_points(
            sc.path,
            lon_col=opts.get("lon_col"),
            lat_col=opts.get("lat_col"),
            time_col=opts.get("time_col"),
            id_col=opts.get("id_col"),
        )
        return pts["lon"].to_numpy(), pts["lat"].to_numpy()

    return read


def _sensors(
    sc: SourceConfig, fn: Callable[..., STGraph], opts: dict, roads: STGraph | None
) -> STGraph:
    from graph_builders import sensors

    if roads is not None and "road_graph" not in opts:
        opts["road_graph"] = roads
    if sc.reader == "table":
        return fn(sc.locations, sc.readings, **opts)
    if sc.reader == "uctb":
        loc, rd, _info = sensors.read_uctb(sc.path, sha256=sc.sha256)
        opts.setdefault("time_col", "time")
        return fn(loc, rd, **opts)
    loc, rd, _links = sensors.read_node_link(sc.path)
    opts.setdefault("lon_col", "x")
    opts.setdefault("lat_col", "y")
    return fn(loc, rd, **opts)


def _on_roads(roads: STGraph | None, where: str, needs: str) -> STGraph:
    if roads is None:
        raise ConfigError(f"{where} needs {needs} or a 'roads' section")
    return roads


def _gridded(
    sc: SourceConfig, fn: Callable[..., STGraph], opts: dict, roads: STGraph | None, where: str
) -> STGraph:
    """Trajectories, events and interpolated moving sensors: onto the roads or a grid."""
    key = {"trajectories": "grid", "events": "regions", "moving": "nodes"}[sc.kind]
    spec = opts.pop(key, None)
    if spec is None or spec == "roads":
        what = f"{where} ({sc.kind}{', interpolate' if sc.kind == 'moving' else ''})"
        on = _on_roads(roads, what, f"options.{key}")
        return fn(sc.path, **{"road_graph" if sc.kind == "trajectories" else key: on}, **opts)
    if sc.kind == "events" and isinstance(spec, int) and not isinstance(spec, bool):
        from graph_builders.regions import H3Cells

        return fn(sc.path, regions=H3Cells(spec), **opts)
    grid, extent = _resolve_grid(spec, _point_reader(sc), where)
    if sc.kind == "moving":
        from graph_builders.regions import grid_nodes

        graph = fn(sc.path, nodes=grid_nodes(grid).pos, **opts)
    else:
        graph = fn(sc.path, **{key: grid}, **opts)
    if extent is not None:
        graph.meta["grid_extent"] = extent  # the summary says what the default grid left out
    return graph


def build_source(
    sc: SourceConfig,
    *,
    roads: STGraph | None,
    interval: str | int | None,
    city: str | None,
    where: str = "<config>",
) -> STGraph:
    """Build one source's STGraph with its builder (roads and grids resolved).

    The build's ``interval``, ``city`` and the source's name are passed to builders that take
    them, unless the source's ``options`` set them.
    """
    fn = _builder(sc.kind)
    params = inspect.signature(fn).parameters
    opts = dict(sc.options)
    for key, value in (("interval", interval), ("city", city), ("name", sc.name)):
        if value is not None and key in params and key not in opts:
            opts[key] = value
    if sc.kind == "sensors":
        return _sensors(sc, fn, opts, roads)
    gridded = sc.kind in ("trajectories", "events") or (
        sc.kind == "moving" and opts.get("mode", "knn") == "interpolate"
    )
    if gridded:
        return _gridded(sc, fn, opts, roads, f"{where}: source {sc.name!r}")
    return fn(sc.path, **opts)
