"""``stgraph build``: a city's raw data -> one STGraph directory, a map and a summary.

A build is described by a YAML config (``configs/build/<name>.yaml``) or by command-line flags::

    stgraph build --config configs/build/helsinki-roads.yaml
    stgraph build --osm roads.osm.pbf --trajectories gps.csv --interval 1h -o out/

Config schema (every key is checked; an unknown key is a :class:`~stgraph.errors.ConfigError`
naming the key and the file)::

    name: geolife                # required
    city: Beijing
    description: free text
    interval: 1h                 # passed to every builder that takes one, and to fuse
    output: build-output/geolife # default build-output/<name>; -o overrides
    color_by: count              # variable (or node attribute) colouring the map
    roads:                       # optional: an OSM road graph all sources are fused onto
      path: ${STGRAPH_DATA}/osm-helsinki/Helsinki.osm.pbf
      options: {node: intersection, network: drive}   # osm.road_graph keywords
    sources:                     # zero or more
      - kind: trajectories       # sensors | raster | trajectories | events | moving
        name: gps                # default: the kind
        path: ${STGRAPH_DATA}/geolife-sample/geolife_sample.txt.gz
        options: {grid: {cell_m: 1000, bbox: [116.2, 39.85, 116.5, 40.05]}}
    fuse: {how: nearest, max_dist_m: 500, times: union}   # fusion.fuse keywords

Sensors take ``locations`` + ``readings`` (``reader: table``), or one ``path`` read by
``reader: uctb`` (with ``sha256``) or ``reader: node_link``. Paths may use environment variables
(``${STGRAPH_DATA}``), expanded when the config is read; an unset variable is an error.

Grid options (``grid`` of trajectories, ``regions`` of events, ``nodes`` of moving sensors) take
``{cell_m, bbox}``, ``{cell_m}`` alone (bbox = the 0.5–99.5 % extent of the data's points;
points outside are dropped and counted), ``{sthsl_km}`` (events: the STHSL crime grid) or
``"roads"`` (the road graph).

Outputs in the output directory: ``graph/`` (``meta.json`` + ``tensors.safetensors``),
``map.png`` and ``summary.json`` (nodes, edges, variables, steps, records dropped by reason, per
source reports). Every write is atomic.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError
from stgraph.utils.atomic import atomic_write_text
from stgraph.utils.yamlio import read_yaml_mapping

__all__ = [
    "BuildConfig",
    "BuildResult",
    "FuseConfig",
    "RoadsConfig",
    "SourceConfig",
    "add_build_arguments",
    "build_from_args",
    "load_config",
    "run_build",
]

KINDS = ("sensors", "raster", "trajectories", "events", "moving")
SENSOR_READERS = ("table", "uctb", "node_link")


# ----------------------------------------------------------------------------- config schema
@dataclass
class RoadsConfig:
    """The OSM road graph every source is fused onto."""

    path: str = field(
        metadata={"help": "local .osm.pbf/.osm/.osm.bz2 file, or a place name (online)"}
    )
    options: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "osm.road_graph keywords"}
    )


@dataclass
class SourceConfig:
    """One data source and the builder options it is built with."""

    kind: str = field(metadata={"help": "sensors | raster | trajectories | events | moving"})
    name: str | None = field(default=None, metadata={"help": "source name (default: the kind)"})
    path: str | None = field(
        default=None, metadata={"help": "the data file (all kinds but table sensors)"}
    )
    locations: str | None = field(default=None, metadata={"help": "sensors: locations table"})
    readings: str | None = field(default=None, metadata={"help": "sensors: readings table"})
    reader: str = field(default="table", metadata={"help": "sensors: table | uctb | node_link"})
    sha256: str | None = field(
        default=None, metadata={"help": "expected sha256 (required by uctb)"}
    )
    options: dict[str, Any] = field(default_factory=dict, metadata={"help": "builder keywords"})


@dataclass
class FuseConfig:
    """Options of :func:`graph_builders.fusion.fuse` (when there are roads or several sources)."""

    how: str = "nearest"
    max_dist_m: float | None = None
    times: str = "union"
    agg: dict[str, str] = field(default_factory=dict)


@dataclass
class BuildConfig:
    """A whole build: roads, sources, fusion and outputs."""

    name: str = field(metadata={"help": "build name (output folder default build-output/<name>)"})
    city: str | None = None
    description: str | None = None
    interval: str | int | None = field(default=None, metadata={"help": "common step, e.g. '1h'"})
    output: str | None = None
    color_by: str | None = field(default=None, metadata={"help": "variable colouring the map"})
    roads: RoadsConfig | None = None
    sources: list[SourceConfig] = field(default_factory=list)
    fuse: FuseConfig = field(default_factory=FuseConfig)
    source_file: str | None = field(default=None, metadata={"help": "set by load_config"})


def _expand(value: Any, where: str) -> Any:
    """Expand ``$VAR`` / ``${VAR}`` in every string; an unset variable is an error."""
    if isinstance(value, str):
        out = os.path.expandvars(value)
        left = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", out)
        if left:
            raise ConfigError(
                f"{where}: environment variable {left[0]} is not set (in {value!r}); e.g. export "
                f"{left[0]}=/path/to/data"
            )
        return out
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, where) for k, v in value.items()}
    return value


def _check_keys(data: Any, cls: type, where: str, section: str) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: {section} must be a mapping, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls) if f.name != "source_file"]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} in {section}; allowed keys are {names}"
        )
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [k for k in required if k not in data]
    if missing:
        raise ConfigError(f"{where}: {section} lacks the required key {missing[0]!r}")
    return dict(data)


def config_from_dict(data: Mapping[str, Any], *, source: str = "<dict>") -> BuildConfig:
    """Validate a config mapping into a :class:`BuildConfig` (ConfigError naming key and file)."""
    data = _expand(dict(_check_keys(data, BuildConfig, source, "the config")), source)
    if not isinstance(data["name"], str) or not data["name"].strip():
        raise ConfigError(f"{source}: 'name' must be a non-empty string")
    roads = None
    if data.get("roads") is not None:
        r = _check_keys(data["roads"], RoadsConfig, source, "roads")
        roads = RoadsConfig(**r)
        if not isinstance(roads.options, dict):
            raise ConfigError(f"{source}: roads.options must be a mapping")
    sources = []
    raw_sources = data.get("sources") or []
    if not isinstance(raw_sources, list):
        raise ConfigError(f"{source}: 'sources' must be a list of mappings")
    for i, s in enumerate(raw_sources):
        sec = f"sources[{i}]"
        sc = SourceConfig(**_check_keys(s, SourceConfig, source, sec))
        if sc.kind not in KINDS:
            raise ConfigError(f"{source}: {sec}.kind {sc.kind!r} is not one of {list(KINDS)}")
        if not isinstance(sc.options, dict):
            raise ConfigError(f"{source}: {sec}.options must be a mapping")
        if sc.kind == "sensors":
            if sc.reader not in SENSOR_READERS:
                raise ConfigError(
                    f"{source}: {sec}.reader {sc.reader!r} is not one of {list(SENSOR_READERS)}"
                )
            if sc.reader == "table" and (sc.locations is None or sc.readings is None):
                raise ConfigError(
                    f"{source}: {sec} (sensors, reader table) needs 'locations' and 'readings'"
                )
            if sc.reader != "table" and sc.path is None:
                raise ConfigError(f"{source}: {sec} (sensors, reader {sc.reader}) needs 'path'")
            if sc.reader == "uctb" and not sc.sha256:
                raise ConfigError(
                    f"{source}: {sec} (reader uctb) needs 'sha256': pickles are read only after a checksum"
                )
        elif sc.path is None:
            raise ConfigError(f"{source}: {sec} ({sc.kind}) needs 'path'")
        sc.name = sc.name or sc.kind
        _check_options(sc, source, sec)
        sources.append(sc)
    names = [s.name for s in sources]
    dup = [n for n in names if names.count(n) > 1]
    if dup:
        raise ConfigError(f"{source}: two sources are named {dup[0]!r}; give them distinct 'name's")
    fuse_cfg = FuseConfig(**_check_keys(data.get("fuse") or {}, FuseConfig, source, "fuse"))
    if not roads and not sources:
        raise ConfigError(f"{source}: nothing to build: give 'roads' and/or 'sources'")
    return BuildConfig(
        name=data["name"],
        city=data.get("city"),
        description=data.get("description"),
        interval=data.get("interval"),
        output=data.get("output"),
        color_by=data.get("color_by"),
        roads=roads,
        sources=sources,
        fuse=fuse_cfg,
        source_file=source,
    )


def load_config(path: str | os.PathLike) -> BuildConfig:
    """Read and validate a YAML build config."""
    return config_from_dict(read_yaml_mapping(path), source=str(path))


# ----------------------------------------------------------------------------- builders
def _builder(kind: str) -> Callable[..., STGraph]:
    if kind == "sensors":
        from graph_builders.sensors import from_table

        return from_table
    if kind == "raster":
        from graph_builders.raster import from_grid

        return from_grid
    if kind == "trajectories":
        from graph_builders.trajectories import from_points

        return from_points
    if kind == "events":
        from graph_builders.events import from_points

        return from_points
    from graph_builders.moving import from_tracks

    return from_tracks


def _check_options(sc: SourceConfig, where: str, sec: str) -> None:
    params = inspect.signature(_builder(sc.kind)).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    reserved = {"table", "data", "locations", "readings", "road_graph"}
    for key in sc.options:
        if key not in params or key in reserved:
            allowed = sorted(
                k for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY
            )
            raise ConfigError(
                f"{where}: unknown option {key!r} in {sec}.options for {sc.kind}; allowed: {allowed}"
            )


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params


def _auto_bbox(lon: np.ndarray, lat: np.ndarray) -> list[float]:
    ok = np.isfinite(lon) & np.isfinite(lat) & (np.abs(lon) <= 180) & (np.abs(lat) <= 90)
    if not ok.any():
        raise ConfigError("grid: no valid coordinates to take the extent from")
    lo_lon, hi_lon = np.percentile(lon[ok], [0.5, 99.5])
    lo_lat, hi_lat = np.percentile(lat[ok], [0.5, 99.5])
    pad_lat = max((hi_lat - lo_lat) * 1e-3, 1e-5)
    pad_lon = max((hi_lon - lo_lon) * 1e-3, 1e-5)
    return [lo_lon - pad_lon, lo_lat - pad_lat, hi_lon + pad_lon, hi_lat + pad_lat]


def _resolve_grid(
    spec: Any, points: Callable[[], tuple[np.ndarray, np.ndarray]], where: str
) -> Any:
    """A grid spec from the config -> an ``events.Grid``."""
    from graph_builders.events import Grid
    from graph_builders.trajectories import as_grid

    if isinstance(spec, Grid):
        return spec
    if not isinstance(spec, Mapping):
        raise ConfigError(
            f"{where}: a grid is {{cell_m, bbox}}, {{cell_m}} or {{sthsl_km}}, got {spec!r}"
        )
    spec = dict(spec)
    if "sthsl_km" in spec:
        extra = set(spec) - {"sthsl_km"}
        if extra:
            raise ConfigError(f"{where}: unknown grid key {sorted(extra)[0]!r} next to sthsl_km")
        lon, lat = points()
        frame = {"longitude": lon, "latitude": lat}
        import pandas as pd

        return Grid.sthsl(pd.DataFrame(frame), km=float(spec["sthsl_km"]))
    unknown = set(spec) - {"cell_m", "bbox"}
    if unknown or "cell_m" not in spec:
        raise ConfigError(
            f"{where}: a grid is {{cell_m, bbox}} or {{cell_m}}; got keys {sorted(spec)}"
        )
    if spec.get("bbox") is None:
        spec["bbox"] = _auto_bbox(*points())
    try:
        return as_grid({"bbox": spec["bbox"], "cell_m": spec["cell_m"]})
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _point_reader(sc: SourceConfig) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    def read() -> tuple[np.ndarray, np.ndarray]:
        opts = sc.options
        if sc.kind == "events":
            from graph_builders.events import read_events

            df = read_events(sc.path, names=opts.get("names"))
            lon = df[opts.get("lon_col", "longitude")].to_numpy(np.float64, na_value=np.nan)
            lat = df[opts.get("lat_col", "latitude")].to_numpy(np.float64, na_value=np.nan)
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


def build_source(
    sc: SourceConfig,
    *,
    roads: STGraph | None,
    interval: Any,
    city: str | None,
    where: str = "<config>",
) -> STGraph:
    """Build one source's STGraph with its builder (roads and grids resolved)."""
    fn = _builder(sc.kind)
    opts = dict(sc.options)
    sec = f"source {sc.name!r}"
    if interval is not None and _accepts(fn, "interval") and "interval" not in opts:
        opts["interval"] = interval
    if city is not None and _accepts(fn, "city") and "city" not in opts:
        opts["city"] = city
    if _accepts(fn, "name") and "name" not in opts:
        opts["name"] = sc.name
    if sc.kind == "sensors":
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
    if sc.kind == "raster":
        return fn(sc.path, **opts)
    if sc.kind == "trajectories":
        grid = opts.pop("grid", None)
        if grid is None or grid == "roads":
            if roads is None:
                raise ConfigError(
                    f"{where}: {sec} (trajectories) needs options.grid or a 'roads' section"
                )
            return fn(sc.path, road_graph=roads, **opts)
        return fn(sc.path, grid=_resolve_grid(grid, _point_reader(sc), f"{where}: {sec}"), **opts)
    if sc.kind == "events":
        regions = opts.pop("regions", None)
        if regions is None or regions == "roads":
            if roads is None:
                raise ConfigError(
                    f"{where}: {sec} (events) needs options.regions or a 'roads' section"
                )
            return fn(sc.path, regions=roads, **opts)
        if isinstance(regions, int) and not isinstance(regions, bool):
            from graph_builders.events import H3Cells

            return fn(sc.path, regions=H3Cells(regions), **opts)
        return fn(
            sc.path, regions=_resolve_grid(regions, _point_reader(sc), f"{where}: {sec}"), **opts
        )
    # moving sensors
    mode = opts.get("mode", "knn")
    if mode == "interpolate":
        nodes = opts.pop("nodes", None)
        if nodes is None or nodes == "roads":
            if roads is None:
                raise ConfigError(
                    f"{where}: {sec} (moving, interpolate) needs options.nodes or 'roads'"
                )
            return fn(sc.path, nodes=roads, **opts)
        from graph_builders.regions import grid_nodes

        grid = _resolve_grid(nodes, _point_reader(sc), f"{where}: {sec}")
        return fn(sc.path, nodes=grid_nodes(grid).pos, **opts)
    return fn(sc.path, **opts)


# ----------------------------------------------------------------------------- run
@dataclass
class BuildResult:
    """What a build produced."""

    graph: STGraph
    output_dir: Path
    graph_dir: Path
    map_path: Path | None
    summary_path: Path
    summary: dict[str, Any]


def _graph_summary(g: STGraph) -> dict[str, Any]:
    meta = g.meta or {}
    out: dict[str, Any] = {
        "nodes": int(g.num_nodes),
        "edges": int(g.edge_index.size(1)) if g.edge_index is not None else 0,
        "dyn_edges": int(g.dyn_edge_index.size(1)) if g.dyn_edge_index is not None else 0,
        "steps": int(g.num_steps),
        "variables": [
            {k: v for k, v in var.items() if k in ("name", "unit", "agg", "source")}
            for var in meta.get("variables", [])
        ],
        "interval_s": meta.get("interval"),
    }
    if g.time is not None and g.time.numel():
        from datetime import datetime, timezone

        fmt = "%Y-%m-%dT%H:%M:%SZ"
        out["time_start"] = datetime.fromtimestamp(int(g.time[0]), timezone.utc).strftime(fmt)
        out["time_end"] = datetime.fromtimestamp(int(g.time[-1]), timezone.utc).strftime(fmt)
    if g.mask is not None and g.mask.numel():
        out["observed_share"] = float(g.mask.float().mean())
    return out


def _reports(g: STGraph) -> dict[str, Any]:
    meta = g.meta or {}
    keys = ("matching", "moving", "fusion", "summary", "snap", "counts", "defaulted")
    return {k: meta[k] for k in keys if k in meta}


def _color_default(g: STGraph) -> str | None:
    if g.num_variables:
        return g.variables[0]
    return None


def run_build(
    config: BuildConfig | Mapping[str, Any] | str | os.PathLike,
    *,
    output: str | os.PathLike | None = None,
    color_by: str | None = None,
    verbose: bool = True,
) -> BuildResult:
    """Build the STGraph a config describes, and write it, its map and its summary.

    Args:
        config: a :class:`BuildConfig`, a mapping with the config schema, or a YAML path.
        output: output directory (overrides the config's ``output``).
        color_by: map colouring (overrides the config's ``color_by``).
        verbose: print the summary.

    Returns:
        :class:`BuildResult` with the graph, the paths written and the summary.
    """
    if isinstance(config, (str, os.PathLike)):
        config = load_config(config)
    elif isinstance(config, Mapping):
        config = config_from_dict(config)
    where = config.source_file or "<config>"
    out_dir = Path(output or config.output or Path("build-output") / config.name)
    started = time.perf_counter()
    roads = None
    source_rows: list[dict[str, Any]] = []
    dropped: dict[str, int] = {}
    if config.roads is not None:
        from graph_builders import osm

        t = time.perf_counter()
        opts = dict(config.roads.options)
        if config.city and "city" not in opts:
            opts["city"] = config.city
        roads = osm.road_graph(config.roads.path, **opts)
        row = {"name": "roads", "kind": "roads", "file": config.roads.path, **_graph_summary(roads)}
        row["seconds"] = round(time.perf_counter() - t, 3)
        row["dropped"] = dict((roads.meta or {}).get("dropped") or {})
        source_rows.append(row)
        for k, v in row["dropped"].items():
            dropped[f"roads.{k}"] = int(v)
    graphs: dict[str, STGraph] = {}
    for sc in config.sources:
        t = time.perf_counter()
        g = build_source(sc, roads=roads, interval=config.interval, city=config.city, where=where)
        graphs[sc.name] = g
        row = {
            "name": sc.name,
            "kind": sc.kind,
            "file": sc.path or f"{sc.locations} : {sc.readings}",
            **_graph_summary(g),
            "dropped": {k: int(v) for k, v in ((g.meta or {}).get("dropped") or {}).items()},
            "report": _reports(g),
            "seconds": round(time.perf_counter() - t, 3),
        }
        source_rows.append(row)
    if graphs and (roads is not None or len(graphs) > 1):
        from graph_builders.fusion import fuse

        fz = config.fuse
        graph = fuse(
            graphs,
            on=roads,
            how=fz.how,
            max_dist_m=fz.max_dist_m,
            interval=config.interval,
            times=fz.times,
            agg=fz.agg,
            city=config.city,
        )
        dropped.update(graph.meta.get("dropped", {}))
    elif graphs:
        name, graph = next(iter(graphs.items()))
        for k, v in ((graph.meta or {}).get("dropped") or {}).items():
            dropped[f"{name}.{k}"] = int(v)
    else:
        graph = roads
    if config.city and not (graph.meta or {}).get("city"):
        graph.meta["city"] = config.city
    graph.meta["provenance"] = [
        *graph.meta.get("provenance", []),
        f"stgraph build {config.name} ({where})",
    ]
    graph.meta["build"] = config.name

    graph_dir = out_dir / "graph"
    graph.save(graph_dir)
    color = color_by or config.color_by or _color_default(graph)
    map_path = out_dir / "map.png"
    _plot(graph, map_path, color)
    summary = {
        "name": config.name,
        "city": config.city or (graph.meta or {}).get("city"),
        "config": config.source_file,
        **_graph_summary(graph),
        "dropped": dropped,
        "dropped_total": int(sum(dropped.values())),
        "sources": source_rows,
        "color_by": color,
        "files": {
            "graph": str(graph_dir),
            "map": str(map_path),
            "summary": str(out_dir / "summary.json"),
        },
        "seconds": round(time.perf_counter() - started, 3),
    }
    summary_path = atomic_write_text(
        out_dir / "summary.json", json.dumps(summary, indent=1, default=str)
    )
    if verbose:
        print(format_summary(summary))
    return BuildResult(graph, out_dir, graph_dir, map_path, summary_path, summary)


def _plot(graph: STGraph, path: Path, color_by: str | None) -> None:
    from graph_builders.plot import plot_graph  # writes atomically

    plot_graph(graph, path, color_by=color_by)


def format_summary(summary: Mapping[str, Any]) -> str:
    """The printed summary of a build."""
    lines = [
        f"stgraph build {summary['name']}"
        + (f" ({summary['city']})" if summary.get("city") else ""),
        f"  nodes {summary['nodes']:,}  edges {summary['edges']:,}  dynamic edges {summary['dyn_edges']:,}"
        f"  steps {summary['steps']:,}"
        + (f" x {summary['interval_s']} s" if summary.get("interval_s") else ""),
    ]
    if summary.get("time_start"):
        lines.append(f"  time {summary['time_start']} .. {summary['time_end']}")
    if summary["variables"]:
        lines.append(
            "  variables "
            + ", ".join(f"{v['name']} [{v.get('unit') or '-'}]" for v in summary["variables"])
        )
    for row in summary["sources"]:
        lines.append(
            f"  source {row['name']} ({row['kind']}): {row['nodes']:,} nodes, {row['steps']:,} steps, "
            f"{row['seconds']:.2f} s"
        )
        match = (row.get("report") or {}).get("matching")
        if match:
            d = match["distance_m"]
            lines.append(
                f"    matched {match['points_matched']:,} of {match['points_in']:,} points "
                f"({100 * match['share_matched']:.1f} %), distance median {d['median']:.1f} m, "
                f"p90 {d['p90']:.1f} m, max {d['max']:.1f} m"
            )
    nonzero = {k: v for k, v in summary["dropped"].items() if v}
    lines.append(f"  dropped {summary['dropped_total']:,} records" + (":" if nonzero else ""))
    for k, v in sorted(nonzero.items()):
        lines.append(f"    {k}: {v:,}")
    files = summary["files"]
    lines.append(f"  graph {files['graph']}\n  map {files['map']}\n  summary {files['summary']}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line
def add_build_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``stgraph build`` options to ``parser``."""
    parser.add_argument("--config", help="YAML build config (configs/build/NAME.yaml)")
    parser.add_argument(
        "--osm", help="OSM extract (.osm.pbf/.osm/.osm.bz2): the road graph sources are fused onto"
    )
    parser.add_argument(
        "--node",
        choices=("intersection", "segment"),
        default=None,
        help="road graph nodes (default intersection)",
    )
    parser.add_argument(
        "--sensors",
        action="append",
        default=[],
        metavar="LOC.csv:READINGS.csv",
        help="sensor locations (sensor_id, latitude, longitude) and wide readings",
    )
    parser.add_argument(
        "--raster", action="append", default=[], metavar="PATH", help="netCDF/GRIB/zarr raster"
    )
    parser.add_argument(
        "--trajectories", action="append", default=[], metavar="PATH", help="GPS points table"
    )
    parser.add_argument(
        "--events",
        action="append",
        default=[],
        metavar="PATH",
        help="events table with longitude, latitude, time columns",
    )
    parser.add_argument(
        "--moving",
        action="append",
        default=[],
        metavar="PATH",
        help="moving-sensor reports (track id, time, lon, lat; speed derived): a kNN "
        "graph per step when alone, else interpolated onto the roads/grid",
    )
    parser.add_argument("--interval", help="time step, e.g. 15min, 1h, 1D")
    parser.add_argument("--start", help="first time of sensor readings without a time column")
    parser.add_argument(
        "--cell-m",
        type=float,
        default=None,
        help="grid cell size (m) for trajectories/events/moving without --osm (default 500)",
    )
    parser.add_argument(
        "--bbox", help="grid extent W,S,E,N in degrees (default: the data's extent)"
    )
    parser.add_argument("-o", "--output", help="output directory (graph/, map.png, summary.json)")
    parser.add_argument("--color-by", help="variable (or node attribute) colouring the map")
    parser.add_argument("--name", help="build name (default: from the config or 'build')")
    parser.add_argument("--city", help="city name for the metadata")
    return parser


def _flags_sources(args: argparse.Namespace) -> list[dict[str, Any]]:
    grid: dict[str, Any] | None = None
    if not args.osm:
        grid = {"cell_m": args.cell_m or 500.0}
        if args.bbox:
            try:
                grid["bbox"] = [float(v) for v in args.bbox.split(",")]
            except ValueError as exc:
                raise ConfigError(f"--bbox {args.bbox!r}: expected W,S,E,N numbers") from exc
            if len(grid["bbox"]) != 4:
                raise ConfigError(f"--bbox {args.bbox!r}: expected 4 numbers W,S,E,N")
    elif args.cell_m or args.bbox:
        raise ConfigError(
            "--cell-m/--bbox apply without --osm only (with --osm sources go onto the roads)"
        )
    out: list[dict[str, Any]] = []
    for i, spec in enumerate(args.sensors):
        if spec.count(":") != 1:
            raise ConfigError(f"--sensors {spec!r}: expected LOCATIONS.csv:READINGS.csv")
        loc, rd = spec.split(":")
        opts: dict[str, Any] = {}
        if args.start:
            opts["start"] = args.start
        out.append(
            {
                "kind": "sensors",
                "name": f"sensors{i or ''}",
                "locations": loc,
                "readings": rd,
                "options": opts,
            }
        )
    for i, p in enumerate(args.raster):
        out.append({"kind": "raster", "name": f"raster{i or ''}", "path": p})
    for i, p in enumerate(args.trajectories):
        out.append(
            {
                "kind": "trajectories",
                "name": f"trajectories{i or ''}",
                "path": p,
                "options": {"grid": grid} if grid else {},
            }
        )
    for i, p in enumerate(args.events):
        out.append(
            {
                "kind": "events",
                "name": f"events{i or ''}",
                "path": p,
                "options": {"regions": grid} if grid else {},
            }
        )
    alone = not args.osm and not out and len(args.moving) == 1
    for i, p in enumerate(args.moving):
        # alone: a kNN graph among the moving sensors; else their values onto the common nodes
        opts = {} if alone else {"mode": "interpolate", "nodes": "roads" if args.osm else grid}
        out.append({"kind": "moving", "name": f"moving{i or ''}", "path": p, "options": opts})
    return out


def config_from_args(args: argparse.Namespace) -> BuildConfig:
    """The config given by ``--config`` and/or the source flags.

    With ``--config``, the flags ``--interval``, ``--city``, ``--name`` replace the config's values
    and source flags add sources; ``-o`` and ``--color-by`` are applied by :func:`run_build`.
    """
    flag_sources = _flags_sources(args)
    if args.config:
        data = read_yaml_mapping(args.config)
        source = str(args.config)
        if args.osm:
            raise ConfigError(
                "--osm with --config: put the road graph in the config's 'roads' section"
            )
    else:
        if not (args.osm or flag_sources):
            raise ConfigError(
                "stgraph build: give --config FILE, or --osm and/or a source flag "
                "(--sensors, --raster, --trajectories, --events, --moving)"
            )
        data, source = {"name": args.name or "build"}, "<command line>"
    for key in ("interval", "city", "name"):
        value = getattr(args, key, None)
        if value:
            data[key] = value
    if args.osm:
        data["roads"] = {"path": args.osm, "options": {"node": args.node} if args.node else {}}
    if flag_sources:
        data["sources"] = [*(data.get("sources") or []), *flag_sources]
    return config_from_dict(data, source=source)


def build_from_args(args: argparse.Namespace) -> int:
    """Run ``stgraph build`` from parsed arguments; returns the exit status."""
    try:
        config = config_from_args(args)
        run_build(config, output=args.output, color_by=args.color_by)
    except ConfigError as exc:
        print(f"stgraph build: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m graph_builders.build ...`` (same options as ``stgraph build``)."""
    parser = add_build_arguments(argparse.ArgumentParser(prog="stgraph build"))
    return build_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
