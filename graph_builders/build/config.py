"""Build configs: the dataclasses of a YAML build config, their checks, and configs from flags.

The keys, their types, unknown keys and ``--set`` overrides are checked by the one validator the
training configs use (:mod:`stgraph.utils.config`); what is particular to a build is checked here
(source kinds, sensor readers, builder options, distinct source names).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from stgraph.errors import ConfigError
from stgraph.utils.config import apply_overrides, expand_env, from_dict
from stgraph.utils.yamlio import read_yaml_mapping

__all__ = [
    "KINDS",
    "SENSOR_READERS",
    "BuildConfig",
    "BuildFlags",
    "FuseConfig",
    "RoadsConfig",
    "SourceConfig",
    "config_from_dict",
    "config_from_flags",
    "load_config",
]

KINDS = ("sensors", "raster", "trajectories", "events", "moving")
SENSOR_READERS = ("table", "uctb", "node_link")


@dataclass
class RoadsConfig:
    """The OSM road graph every source is fused onto."""

    path: str = field(
        metadata={"help": "local .osm.pbf/.osm/.osm.bz2/.osm.gz file, or a place name (online)"}
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
    source_file: str | None = field(
        default=None, init=False, metadata={"help": "the file it was read from (not a key)"}
    )


def _check_sensors(sc: SourceConfig, where: str) -> None:
    if sc.reader not in SENSOR_READERS:
        raise ConfigError(f"{where}.reader {sc.reader!r} is not one of {list(SENSOR_READERS)}")
    if sc.reader == "table" and (sc.locations is None or sc.readings is None):
        raise ConfigError(f"{where} (sensors, reader table) needs 'locations' and 'readings'")
    if sc.reader != "table" and sc.path is None:
        raise ConfigError(f"{where} (sensors, reader {sc.reader}) needs 'path'")
    if sc.reader == "uctb" and not sc.sha256:
        raise ConfigError(
            f"{where} (reader uctb) needs 'sha256': pickles are read only after a checksum"
        )


def _check_source(sc: SourceConfig, source: str, sec: str) -> None:
    """What a source needs beyond its keys and types: a known kind, its files, its options."""
    where = f"{source}: {sec}"
    if sc.kind not in KINDS:
        raise ConfigError(f"{where}.kind {sc.kind!r} is not one of {list(KINDS)}")
    if sc.kind == "sensors":
        _check_sensors(sc, where)
    elif sc.path is None:
        raise ConfigError(f"{where} ({sc.kind}) needs 'path'")
    sc.name = sc.name or sc.kind
    from graph_builders.build.sources import check_options  # imports the builder

    check_options(sc, source, sec)


def config_from_dict(
    data: dict[str, Any], *, source: str = "<dict>", overrides: Sequence[str] | None = None
) -> BuildConfig:
    """Validate a config mapping into a :class:`BuildConfig` (ConfigError naming key and file).

    Args:
        data: the mapping (the YAML schema of :mod:`graph_builders.build`); not modified.
        source: the file it came from, for errors.
        overrides: ``--set key.sub=value`` strings applied first (``sources.0.options.k=4``).
    """
    data = apply_overrides(dict(data), overrides)
    for key in ("sources", "fuse"):  # ``sources:`` or ``fuse:`` left empty
        if key in data and data[key] is None:
            del data[key]
    cfg = from_dict(BuildConfig, expand_env(data, source), source=source)
    cfg.source_file = source
    if not cfg.name.strip():
        raise ConfigError(f"{source}: 'name' must be a non-empty string")
    for i, sc in enumerate(cfg.sources):
        _check_source(sc, source, f"sources[{i}]")
    names = [s.name for s in cfg.sources]
    dup = [n for n in names if names.count(n) > 1]
    if dup:
        raise ConfigError(f"{source}: two sources are named {dup[0]!r}; give them distinct 'name's")
    if not cfg.roads and not cfg.sources:
        raise ConfigError(f"{source}: nothing to build: give 'roads' and/or 'sources'")
    return cfg


def load_config(path: str | os.PathLike, *, overrides: Sequence[str] | None = None) -> BuildConfig:
    """Read and validate a YAML build config, with ``--set`` style ``overrides``."""
    return config_from_dict(read_yaml_mapping(path), source=str(path), overrides=overrides)


# ----------------------------------------------------------------------------- from flags
@dataclass
class BuildFlags:
    """The source flags of ``stgraph build`` (see ``stgraph build --help``), as values."""

    osm: str | None = None
    node: str | None = None
    sensors: list[str] = field(default_factory=list)
    raster: list[str] = field(default_factory=list)
    trajectories: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    moving: list[str] = field(default_factory=list)
    interval: str | None = None
    time_col: str | None = None
    time_parts: str | None = None
    event_type: str | None = None
    tz: str | None = None
    start: str | None = None
    cell_m: float | None = None
    bbox: str | None = None
    name: str | None = None
    city: str | None = None


def _flag_grid(flags: BuildFlags) -> dict[str, Any] | None:
    """The grid the flag sources go onto without ``--osm``: ``{cell_m, bbox?}``."""
    if flags.osm:
        if flags.cell_m or flags.bbox:
            raise ConfigError(
                "--cell-m/--bbox apply without --osm only (with --osm sources go onto the roads)"
            )
        return None
    grid: dict[str, Any] = {"cell_m": flags.cell_m or 500.0}
    if flags.bbox:
        try:
            grid["bbox"] = [float(v) for v in flags.bbox.split(",")]
        except ValueError as exc:
            raise ConfigError(f"--bbox {flags.bbox!r}: expected W,S,E,N numbers") from exc
        if len(grid["bbox"]) != 4:
            raise ConfigError(f"--bbox {flags.bbox!r}: expected 4 numbers W,S,E,N")
    return grid


def parse_time_parts(text: str) -> dict[str, str | int]:
    """``--time year=2017,month=Month,day=Day,hour=Hour`` -> ``{"year": 2017, "month": "Month",
    ...}`` (digits are constants, anything else a column name)."""
    parts: dict[str, str | int] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not key or not value:
            raise ConfigError(
                f"--time {text!r}: expected PART=COLUMN_OR_VALUE,... e.g. "
                "year=2017,month=Month,day=Day,hour=Hour"
            )
        parts[key] = int(value) if value.isdigit() else value
    return parts


def _time_options(flags: BuildFlags, kind: str) -> dict[str, Any]:
    """The options the time flags give a sensors or events source."""
    opts: dict[str, Any] = {}
    if flags.time_col:
        opts["time_col"] = flags.time_col
    if flags.tz:
        opts["tz"] = flags.tz
    if kind == "sensors" and flags.start:
        opts["start"] = flags.start
    if kind == "events":
        if flags.time_parts:  # composed: --time-col is then the sensors' only
            if flags.time_col and not flags.sensors:
                raise ConfigError(
                    "--time and --time-col: give one for --events (--time composes the time)"
                )
            opts.pop("time_col", None)
            opts["time"] = parse_time_parts(flags.time_parts)
        if flags.event_type:
            opts["types"] = flags.event_type
    return opts


def _flag_sources(flags: BuildFlags) -> list[dict[str, Any]]:
    grid = _flag_grid(flags)
    out: list[dict[str, Any]] = []
    if flags.event_type and not flags.events:
        raise ConfigError("--event-type applies to --events")
    if flags.time_parts and not flags.events:
        raise ConfigError("--time applies to --events (sensors take --time-col)")
    for i, spec in enumerate(flags.sensors):
        if spec.count(":") != 1:
            raise ConfigError(f"--sensors {spec!r}: expected LOCATIONS.csv:READINGS.csv")
        loc, rd = spec.split(":")
        opts = _time_options(flags, "sensors")
        out.append(
            {
                "kind": "sensors",
                "name": f"sensors{i or ''}",
                "locations": loc,
                "readings": rd,
                "options": opts,
            }
        )
    for i, p in enumerate(flags.raster):
        out.append({"kind": "raster", "name": f"raster{i or ''}", "path": p})
    for kind, key in (("trajectories", "grid"), ("events", "regions")):
        for i, p in enumerate(getattr(flags, kind)):
            opts = {key: grid} if grid else {}
            if kind == "events":
                opts.update(_time_options(flags, "events"))
            out.append({"kind": kind, "name": f"{kind}{i or ''}", "path": p, "options": opts})
    alone = not flags.osm and not out and len(flags.moving) == 1
    for i, p in enumerate(flags.moving):
        # alone: a kNN graph among the moving sensors; else their values onto the common nodes
        opts = {} if alone else {"mode": "interpolate", "nodes": "roads" if flags.osm else grid}
        out.append({"kind": "moving", "name": f"moving{i or ''}", "path": p, "options": opts})
    return out


def config_from_flags(
    config: str | os.PathLike | None = None,
    flags: BuildFlags | None = None,
    *,
    overrides: Sequence[str] | None = None,
) -> BuildConfig:
    """The config given by a YAML file and/or the source flags, then ``overrides``.

    With ``config``, the flags ``interval``, ``city``, ``name`` replace the config's values and
    source flags add sources; ``overrides`` (``--set``) apply last, to the merged mapping. The
    output directory and the map colouring are options of
    :func:`~graph_builders.build.run_build`.
    """
    flags = flags or BuildFlags()
    flag_sources = _flag_sources(flags)
    if config is not None:
        data, source = read_yaml_mapping(config), str(config)
        if flags.osm:
            raise ConfigError(
                "--osm with --config: put the road graph in the config's 'roads' section"
            )
    elif not (flags.osm or flag_sources):
        raise ConfigError(
            "stgraph build: give --config FILE, or --osm and/or a source flag "
            "(--sensors, --raster, --trajectories, --events, --moving)"
        )
    else:
        data, source = {"name": flags.name or "build"}, "<command line>"
    for key in ("interval", "city", "name"):
        if getattr(flags, key):
            data[key] = getattr(flags, key)
    if flags.osm:
        data["roads"] = {"path": flags.osm, "options": {"node": flags.node} if flags.node else {}}
    if flag_sources:
        data["sources"] = [*(data.get("sources") or []), *flag_sources]
    return config_from_dict(data, source=source, overrides=overrides)
