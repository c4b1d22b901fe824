"""graph_builders: turn a city's raw data (OSM, sensors, rasters, trajectories, events) into STGraphs."""

from graph_builders import build, fusion, mapmatch, moving, osm, plot, proximity, trajectories
from graph_builders.fusion import fuse

__all__ = ["osm", "plot", "proximity"]
__all__ += ["build", "fuse", "fusion", "mapmatch", "moving", "trajectories"]

from graph_builders import events, raster, sensors  # noqa: E402

__all__ += ["events", "raster", "sensors"]
