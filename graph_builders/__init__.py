"""graph_builders: turn a city's raw data (OSM, sensors, rasters, trajectories, events) into STGraphs."""

from graph_builders import (
    build,
    events,
    fusion,
    mapmatch,
    moving,
    osm,
    plot,
    proximity,
    raster,
    sensors,
    trajectories,
)
from graph_builders.fusion import fuse

__all__ = [
    "build",
    "events",
    "fuse",
    "fusion",
    "mapmatch",
    "moving",
    "osm",
    "plot",
    "proximity",
    "raster",
    "sensors",
    "trajectories",
]
