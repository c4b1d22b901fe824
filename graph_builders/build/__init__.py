"""``stgraph build``: a city's raw data -> one STGraph directory, a map and a summary.

A build is described by a YAML config (``configs/build/<name>.yaml``) or by command-line flags
(the ``stgraph build`` argparse lives in :mod:`stgraph.cli`)::

    stgraph build --config configs/build/helsinki-roads.yaml --set fuse.max_dist_m=300
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

``--set key.sub=value`` (repeatable, values read as YAML) changes the merged config before it is
checked, like ``stgraph train --set``; a numeric part indexes a list
(``--set sources.0.options.grid.cell_m=250``).

Outputs in the output directory: ``graph/`` (``meta.json`` + ``tensors.safetensors``),
``map.png`` and ``summary.json`` (nodes, edges, variables, steps, records dropped by reason, per
source reports). Every write is atomic.

Modules: :mod:`~graph_builders.build.config` (the schema and its checks, configs from flags),
:mod:`~graph_builders.build.sources` (one source -> its graph), :mod:`~graph_builders.build.pipeline`
(:func:`run_build`), :mod:`~graph_builders.build.summary` (summary and map).
"""

from graph_builders.build.config import (
    BuildConfig,
    BuildFlags,
    FuseConfig,
    RoadsConfig,
    SourceConfig,
    config_from_dict,
    config_from_flags,
    load_config,
)
from graph_builders.build.pipeline import BuildResult, run_build
from graph_builders.build.sources import build_source
from graph_builders.build.summary import format_summary

__all__ = [
    "BuildConfig",
    "BuildFlags",
    "BuildResult",
    "FuseConfig",
    "RoadsConfig",
    "SourceConfig",
    "build_source",
    "config_from_dict",
    "config_from_flags",
    "format_summary",
    "load_config",
    "run_build",
]
