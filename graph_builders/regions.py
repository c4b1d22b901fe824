"""Regions shared by the builders: the regular lon/lat :class:`Grid`, H3 cells, grid nodes.

A :class:`Grid` numbers its cells row-major from the south-west corner (row 0 = southernmost
row, ``node = row * cols + col``); its edges come from :func:`stgraph.utils.grid.grid_edges`,
the one grid-edge implementation (the registry uses it too). :func:`grid_nodes` gives the nodes
and edges of a graph on a grid, numbered as ``events.from_points`` and
``trajectories.from_points`` number them; :func:`as_grid` reads a grid spec
(``{"bbox": (w, s, e, n), "cell_m": metres}``); :func:`cell_ids` names cells ``"r{row}c{col}"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from graph_builders._inputs import check_lonlat
from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError, DataFormatError
from stgraph.utils.geo import EARTH_RADIUS_M
from stgraph.utils.grid import grid_edges

__all__ = ["Grid", "GridNodes", "H3Cells", "as_grid", "cell_ids", "grid_nodes"]

_RAD = math.pi / 180.0


@dataclass(frozen=True)
class Grid:
    """A regular lon/lat grid: ``rows × cols`` cells of ``cell_deg_lat × cell_deg_lon`` degrees.

    Cell ``(row, col)`` covers ``origin_lat + row · cell_deg_lat <= lat < ... + cell_deg_lat``
    (and likewise for longitude); row 0 is the southernmost row. Nodes of a graph built on it are
    numbered row-major: ``node = row · cols + col``.
    """

    origin_lon: float
    origin_lat: float
    cell_deg_lat: float
    cell_deg_lon: float
    rows: int
    cols: int

    def __post_init__(self) -> None:
        if self.rows < 1 or self.cols < 1:
            raise ConfigError(f"Grid: rows and cols must be >= 1, got {self.rows} x {self.cols}")
        if not (self.cell_deg_lat > 0 and self.cell_deg_lon > 0):
            raise ConfigError(
                "Grid: cell sizes must be positive degrees, got "
                f"cell_deg_lat={self.cell_deg_lat}, cell_deg_lon={self.cell_deg_lon}"
            )

    @classmethod
    def sthsl(
        cls,
        table: pd.DataFrame,
        *,
        km: float = 3.0,
        lon_col: str = "longitude",
        lat_col: str = "latitude",
        km_per_deg_lat: float = 111.0,
        km_per_deg_lon: float = 84.0,
    ) -> Grid:
        """The ST-SHN/STHSL crime grid: ``km``-sized cells anchored at the data's south-west corner.

        ``row = floor((lat - min_lat) · 111 / km)``, ``col = floor((lon - min_lon) · 84 / km)``;
        the grid spans the data's extent (14 × 12 cells for Chicago 2016–17 at 3 km, 16 × 16 for
        NYC 2014–15). The 84 km per degree of longitude is the recipe's constant, whatever the
        city's latitude.
        """
        lon = pd.to_numeric(table[lon_col], errors="coerce").to_numpy(np.float64)
        lat = pd.to_numeric(table[lat_col], errors="coerce").to_numpy(np.float64)
        ok = np.isfinite(lon) & np.isfinite(lat)
        if not ok.any():
            raise DataFormatError(f"Grid.sthsl: no finite ({lon_col}, {lat_col}) in the table")
        check_lonlat(lon[ok], lat[ok], lon_col=lon_col, lat_col=lat_col, name="Grid.sthsl")
        dlat, dlon = km / km_per_deg_lat, km / km_per_deg_lon
        lat0, lon0 = float(lat[ok].min()), float(lon[ok].min())
        rows = int(np.floor((lat[ok].max() - lat0) / dlat)) + 1
        cols = int(np.floor((lon[ok].max() - lon0) / dlon)) + 1
        return cls(lon0, lat0, dlat, dlon, rows, cols)

    @classmethod
    def from_bbox(
        cls, min_lon: float, min_lat: float, max_lon: float, max_lat: float, *, cell_m: float
    ) -> Grid:
        """Square-ish cells of ``cell_m`` metres (at the bbox's mid-latitude) covering a bbox."""
        if not (max_lon > min_lon and max_lat > min_lat and cell_m > 0):
            raise ConfigError(
                "grid: expected bbox (west, south, east, north) with west < east, south < north "
                f"and cell_m > 0, got bbox ({min_lon}, {min_lat}, {max_lon}, {max_lat}), "
                f"cell_m {cell_m}"
            )
        dlat = cell_m / (EARTH_RADIUS_M * _RAD)
        dlon = dlat / math.cos((min_lat + max_lat) / 2 * _RAD)
        rows = max(1, math.ceil((max_lat - min_lat) / dlat))
        cols = max(1, math.ceil((max_lon - min_lon) / dlon))
        return cls(min_lon, min_lat, dlat, dlon, rows, cols)

    @property
    def num_cells(self) -> int:
        return self.rows * self.cols

    @property
    def cell_size_m(self) -> tuple[float, float]:
        """(width, height) of a cell in metres at the grid's mid-latitude."""
        mid = self.origin_lat + self.rows * self.cell_deg_lat / 2
        h = EARTH_RADIUS_M * self.cell_deg_lat * _RAD
        return EARTH_RADIUS_M * self.cell_deg_lon * _RAD * math.cos(mid * _RAD), h

    def cell_of(self, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        """Row-major cell index of each point, ``-1`` outside the grid (or not finite)."""
        lon = np.asarray(lon, dtype=np.float64)
        lat = np.asarray(lat, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            r = np.floor((lat - self.origin_lat) / self.cell_deg_lat)
            c = np.floor((lon - self.origin_lon) / self.cell_deg_lon)
        inside = (r >= 0) & (r < self.rows) & (c >= 0) & (c < self.cols)
        out = np.full(lon.shape, -1, dtype=np.int64)
        out[inside] = r[inside].astype(np.int64) * self.cols + c[inside].astype(np.int64)
        return out

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """(lon, lat) of the cell centres, row-major, each ``[rows · cols]``."""
        r, c = np.divmod(np.arange(self.num_cells), self.cols)
        return (
            self.origin_lon + (c + 0.5) * self.cell_deg_lon,
            self.origin_lat + (r + 0.5) * self.cell_deg_lat,
        )

    def to_array(self, graph: STGraph) -> np.ndarray:
        """A graph built on this grid as a dense array ``(rows, cols, T, V)``."""
        if graph.num_nodes != self.num_cells:
            raise DataFormatError(
                f"to_array: graph has {graph.num_nodes} nodes, grid has {self.num_cells} cells"
            )
        return graph.x.numpy().reshape(self.rows, self.cols, graph.num_steps, graph.num_variables)


@dataclass(frozen=True)
class H3Cells:
    """H3 hexagons at ``resolution`` (0–15; 8 ≈ 0.74 km², 9 ≈ 0.1 km²) as regions."""

    resolution: int

    def __post_init__(self) -> None:
        if not 0 <= int(self.resolution) <= 15:
            raise ConfigError(f"H3Cells: resolution must lie in [0, 15], got {self.resolution}")


def cell_ids(rows: np.ndarray, cols: np.ndarray) -> list[str]:
    """Node ids ``"r{row}c{col}"`` of grid cells (the ids every grid builder writes)."""
    return [
        f"r{r}c{c}"
        for r, c in zip(np.asarray(rows).tolist(), np.asarray(cols).tolist(), strict=True)
    ]


def as_grid(grid: Grid | Mapping[str, object]) -> Grid:
    """A :class:`Grid` from ``grid``: a Grid, or ``{"bbox": (w, s, e, n), "cell_m": metres}``."""
    if isinstance(grid, Grid):
        return grid
    if isinstance(grid, Mapping):
        if set(grid) != {"bbox", "cell_m"}:
            raise ConfigError(
                "grid: expected a dict with exactly the keys 'bbox' (west, south, east, north) and "
                f"'cell_m' (metres), got keys {sorted(grid)}"
            )
        try:
            w, s, e, n = (float(v) for v in grid["bbox"])
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"grid: bbox {grid['bbox']!r} must be 4 numbers (west, south, east, north)"
            ) from exc
        return Grid.from_bbox(w, s, e, n, cell_m=float(grid["cell_m"]))
    raise ConfigError(
        f"grid: expected an events.Grid or a dict {{'bbox', 'cell_m'}}, got {type(grid).__name__}"
    )


@dataclass(frozen=True)
class GridNodes:
    """The nodes and edges of a graph on a :class:`Grid` (all cells, row-major).

    ``pos`` ``[N, 2]`` cell centres (lon, lat); ``edge_index`` the 4/8-neighbour links (both
    directions, sorted), ``edge_weight`` all 1; ``node_ids`` ``"r{row}c{col}"``;
    ``spatial_scale`` ``sqrt(width * height)`` of a cell (m); ``cell_size_m`` ``{"x", "y"}``;
    ``grid`` the grid's description for ``meta["grid"]``.
    """

    pos: np.ndarray
    edge_index: torch.Tensor
    edge_weight: torch.Tensor
    node_ids: list[str]
    spatial_scale: float
    cell_size_m: dict[str, float]
    grid: dict[str, object]


def grid_nodes(grid: Grid, neighbourhood: int = 4) -> GridNodes:
    """Nodes and edges of a grid graph, numbered row-major (see :class:`GridNodes`)."""
    clon, clat = grid.centres()
    ei = grid_edges(grid.rows, grid.cols, neighbourhood=neighbourhood)
    w, h = grid.cell_size_m
    r, c = np.divmod(np.arange(grid.num_cells), grid.cols)
    return GridNodes(
        pos=np.stack([clon, clat], 1),
        edge_index=torch.from_numpy(ei),
        edge_weight=torch.ones(ei.shape[1]),
        node_ids=cell_ids(r, c),
        spatial_scale=float(math.sqrt(w * h)),
        cell_size_m={"x": w, "y": h},
        grid={
            "origin_lon": grid.origin_lon,
            "origin_lat": grid.origin_lat,
            "cell_deg_lat": grid.cell_deg_lat,
            "cell_deg_lon": grid.cell_deg_lon,
            "shape": [grid.rows, grid.cols],
            "neighbourhood": int(neighbourhood),
        },
    )
