"""Optional dependencies (the ``pyproject.toml`` extras): import one, or say in one line which extra
installs it.

``pip install stgraph`` leaves out the packages of the ``[osm]`` extra (pyosmium, shapely, OSMnx,
geopandas, pyrosm, h3) and of the ``[raster]`` extra (xarray, cfgrib, eccodes, zarr). The code that
needs one imports it through :func:`require` when it runs, never at module import, so that
``import stgraph`` and ``import graph_builders`` work without them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from stgraph.errors import STGraphError

__all__ = ["EXTRA_OF", "MissingExtraError", "require"]

#: The extra of ``pyproject.toml`` that installs each optional package (by import name).
EXTRA_OF = {
    "osmium": "osm",
    "pyrosm": "osm",
    "osmnx": "osm",
    "geopandas": "osm",
    "shapely": "osm",
    "h3": "osm",
    "xarray": "raster",
    "cfgrib": "raster",
    "eccodes": "raster",
    "gribapi": "raster",
    "zarr": "raster",
    "torch_scatter": "fast",
}


class MissingExtraError(STGraphError, ImportError):
    """An optional package is not installed; the message names the extra that installs it."""


def require(module: str, what: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming the extra to install.

    Args:
        module: the import name (``"osmium"``, ``"xarray"``, ``"shapely.geometry"``).
        what: what needs it, in the user's words (``"reading .osm.pbf files"``).

    Returns:
        The module.

    Raises:
        MissingExtraError: one line, e.g. ``reading .osm.pbf files needs osmium, which is not
            installed: pip install 'stgraph[osm]'``. An ImportError raised inside an installed
            package (a broken install) is kept as it is.
    """
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing is not None and missing.split(".")[0] != top:
            raise  # the package is there but something it imports is broken: keep the cause
        extra = EXTRA_OF.get(top)
        hint = f"pip install 'stgraph[{extra}]'" if extra else f"pip install {top}"
        raise MissingExtraError(f"{what} needs {top}, which is not installed: {hint}") from None
