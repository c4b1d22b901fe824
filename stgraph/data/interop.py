"""Conversions between :class:`~stgraph.data.STGraph` and what the ecosystem holds.

In: a networkx/OSMnx graph (:func:`from_networkx`), a pandas wide table with a ``DatetimeIndex``
(:func:`from_pandas`), numpy ``[T, N]`` / ``[T, N, V]`` arrays with an adjacency as PyG Temporal
and tsl users hold them (:func:`from_numpy`), an xarray ``(node, time)`` Dataset
(:func:`from_xarray`), and point GeoDataFrames for the builders (:func:`points_to_columns`).

Out: an OSMnx-ready ``networkx.MultiDiGraph`` (:func:`to_networkx`), GeoDataFrames of nodes and
edges (:func:`to_geopandas`), an xarray Dataset (:func:`to_xarray`: a ``(time, latitude,
longitude)`` grid for raster graphs, ``(node, time)`` otherwise) and a wide pandas table
(:func:`to_pandas_wide`).

The libraries are imported when a conversion is called; a missing one is a
:class:`~stgraph.utils.extras.MissingExtraError` of one line naming the extra that installs it. The methods of the same names on
:class:`~stgraph.data.STGraph` call these functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch
from torch_geometric.data import Data

from stgraph.errors import DataFormatError
from stgraph.utils.extras import require

if TYPE_CHECKING:
    import geopandas as gpd
    import networkx as nx
    import pandas as pd
    import xarray as xr

#: The graph class a ``from_*`` function builds: :class:`~stgraph.data.STGraph` passes itself
#: (this module never imports it, so that STGraph's methods can call this module).
G = TypeVar("G", bound=Data)

__all__ = [
    "from_networkx",
    "from_numpy",
    "from_pandas",
    "from_xarray",
    "geodataframe_table",
    "grid_cells",
    "is_point_geodataframe",
    "is_wgs84",
    "points_to_columns",
    "to_geopandas",
    "to_networkx",
    "to_pandas_wide",
    "to_xarray",
]

#: OSM editing metadata (pyrosm, OSMnx): numbers that are not features.
_OSM_META = {"version", "timestamp", "changeset", "visible", "uid"}
#: Node attributes that hold coordinates or identity, not context features.
_NODE_RESERVED = {"x", "y", "lon", "lat", "pos", "node_id", "osmid", "geometry"} | _OSM_META
#: Edge attributes that are not features: identity, geometry, time of dynamic edges.
_EDGE_RESERVED = {"osmid", "key", "u", "v", "geometry", "step", "time", "reversed"} | _OSM_META


def _jsonable(meta: dict) -> dict:
    """The items of ``meta`` that JSON can hold (what ``meta.json`` can keep)."""
    out = {}
    for k, v in meta.items():
        try:
            json.dumps(v)
        except (TypeError, ValueError):
            continue
        out[str(k)] = v
    return out


def is_wgs84(crs: Any) -> bool:
    """Whether ``crs`` (anything pyproj reads; ``None`` counts as lon/lat) is WGS84 lon/lat."""
    if crs is None or str(crs).upper() in ("EPSG:4326", "WGS84", "OGC:CRS84"):
        return True
    from pyproj import CRS

    return CRS.from_user_input(crs).equals(CRS.from_epsg(4326))


def _to_lonlat(x: np.ndarray, y: np.ndarray, crs: Any) -> tuple[np.ndarray, np.ndarray]:
    if is_wgs84(crs):
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.asarray(lon), np.asarray(lat)


def _scalar(value: Any) -> float | None:
    """A number from a bool/int/float attribute (``None`` for anything else, lists included)."""
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    return None


def _numeric_keys(records: Sequence[dict], reserved: set[str]) -> list[str]:
    """Attribute names that are numbers on every record, in first-seen order."""
    if not records:
        return []
    keys = [k for k in records[0] if k not in reserved]
    return [k for k in keys if all(_scalar(r.get(k)) is not None for r in records)]


def _pick_names(declared: Any, records: Sequence[dict], reserved: set[str]) -> list[str]:
    """The declared names (``meta[..._attr_names]``) when every record has them, else the
    numeric attributes common to all records."""
    if isinstance(declared, (list, tuple)) and all(
        all(_scalar(r.get(k)) is not None for r in records) for k in declared
    ):
        return [str(k) for k in declared]
    return _numeric_keys(records, reserved)


# ---------------------------------------------------------------------------------- networkx


def to_networkx(graph: Data, *, dynamic: bool = False) -> nx.MultiDiGraph:
    """An OSMnx-ready ``networkx.MultiDiGraph`` of ``graph``.

    Nodes are ``0 .. N-1`` with ``x``/``y`` (coordinates in ``meta["crs"]``, lon/lat degrees by
    default), ``node_id`` (``meta["node_ids"]``) and one attribute per ``node_attr`` column
    (``meta["node_attr_names"]``, e.g. ``street_count``). Each static edge has key ``0`` (road
    graphs: ``0, 1, ...`` per parallel pair), ``weight`` (``edge_weight``), one attribute per
    ``edge_attr`` column (``meta["edge_attr_names"]``), ``length`` in metres (``length_m``, a
    distance ``edge_weight``, else the great-circle length) and, for road graphs, ``geometry``
    (a shapely ``LineString`` of the road), ``highway`` (the OSM class), ``oneway`` as a bool and
    ``travel_time`` (seconds, from ``speed_kph``). ``graph.graph`` holds the JSON-able metadata with
    ``crs``, so ``osmnx.graph_to_gdfs`` and ``osmnx.routing.shortest_path`` take it as it is.

    Args:
        graph: the graph.
        dynamic: also add the dynamic edges, each with its ``step`` (and ``time`` when known).
    """
    nx = require("networkx", "to_networkx")
    from stgraph.utils.geo import haversine_m

    meta = graph.meta or {}
    n = graph.num_nodes
    g = nx.MultiDiGraph()
    g.graph.update(_jsonable({k: v for k, v in meta.items() if k != "node_ids"}))
    g.graph["crs"] = meta.get("crs") or "EPSG:4326"
    # which attributes are features (from_networkx reads exactly these back; length is derived)
    g.graph["node_attr_names"] = graph.node_attr_names if graph.node_attr is not None else []
    g.graph["edge_attr_names"] = _edge_names(graph)
    ids = meta.get("node_ids")
    pos = None if graph.pos is None else graph.pos.detach().cpu().double().numpy()
    na = None if graph.node_attr is None else graph.node_attr.detach().cpu().double().numpy()
    na_names = graph.node_attr_names if na is not None else []
    for i in range(n):
        attrs: dict[str, Any] = {}
        if pos is not None:
            attrs["x"], attrs["y"] = float(pos[i, 0]), float(pos[i, 1])
        if ids is not None:
            attrs["node_id"] = ids[i]
        if na is not None:
            attrs.update(zip(na_names, na[i].tolist(), strict=True))
        g.add_node(i, **attrs)
    if graph.edge_index is not None and graph.edge_index.numel():
        _add_static_edges(g, graph, pos, haversine_m)
    if dynamic and graph.dyn_edge_index is not None:
        for e, (s, d) in enumerate(graph.dyn_edge_index.t().tolist()):
            step = int(graph.dyn_edge_time[e])
            attrs = {"step": step}
            if graph.time is not None:
                attrs["time"] = int(graph.time[step])
            if graph.dyn_edge_weight is not None:
                attrs["weight"] = float(graph.dyn_edge_weight[e])
            g.add_edge(s, d, **attrs)
    return g


def _edge_names(graph: Data) -> list[str]:
    if graph.edge_attr is None:
        return []
    width = 1 if graph.edge_attr.dim() == 1 else int(graph.edge_attr.size(1))
    names = list((graph.meta or {}).get("edge_attr_names") or [])
    return names if len(names) == width else [f"edge_attr{j}" for j in range(width)]


def _road_lines(graph: Data) -> list[np.ndarray] | None:
    """The polyline of each static edge, when the graph carries road geometry for its edges."""
    geom, ptr = getattr(graph, "road_geom", None), getattr(graph, "road_geom_ptr", None)
    if geom is None or ptr is None or (graph.meta or {}).get("road_node") == "segment":
        return None
    if ptr.numel() != graph.edge_index.size(1) + 1:
        return None
    c, p = geom.detach().cpu().double().numpy(), ptr.numpy()
    return [c[p[e] : p[e + 1]] for e in range(len(p) - 1)]


def _add_static_edges(g: Any, graph: Data, pos: np.ndarray | None, haversine_m: Any) -> None:
    ei = graph.edge_index.numpy()
    e = ei.shape[1]
    cols: dict[str, np.ndarray] = {}
    if graph.edge_weight is not None:
        cols["weight"] = graph.edge_weight.detach().cpu().double().numpy()
    if graph.edge_attr is not None:
        ea = graph.edge_attr.detach().cpu().double().numpy().reshape(e, -1)
        cols.update({name: ea[:, j] for j, name in enumerate(_edge_names(graph))})
    if "length" not in cols:
        if "length_m" in cols:
            cols["length"] = cols["length_m"]
        elif "weight" in cols and (graph.meta or {}).get("edge_weight") == "distance_m":
            cols["length"] = cols["weight"]
        elif pos is not None and is_wgs84((graph.meta or {}).get("crs")):
            cols["length"] = haversine_m(*pos[ei[0]].T, *pos[ei[1]].T)
    if "length" in cols and "speed_kph" in cols:  # OSMnx's add_edge_travel_times, seconds
        with np.errstate(divide="ignore"):
            cols["travel_time"] = cols["length"] / (cols["speed_kph"] / 3.6)
    classes = (graph.meta or {}).get("road_classes")
    highway = None
    if classes and "road_class" in cols:  # the OSM highway value, as OSMnx names it
        highway = [
            classes[int(c)] if 0 <= int(c) < len(classes) else None for c in cols["road_class"]
        ]
    lines = _road_lines(graph)
    line_string = None
    if lines is not None:
        try:
            from shapely.geometry import LineString as line_string
        except ImportError:  # geometry is optional: OSMnx draws straight lines without it
            lines = None
    names = list(cols)
    table = np.stack([cols[k] for k in names], 1) if names else np.zeros((e, 0))
    for j, (s, d) in enumerate(ei.T.tolist()):
        attrs = dict(zip(names, table[j].tolist(), strict=True))
        if "oneway" in attrs:  # OSMnx's oneway is a bool
            attrs["oneway"] = bool(attrs["oneway"])
        if highway is not None:
            attrs["highway"] = highway[j]
        if lines is not None and len(lines[j]) >= 2:
            attrs["geometry"] = line_string(lines[j])
        g.add_edge(s, d, **attrs)


def from_networkx(
    g: nx.Graph,
    *,
    cls: type[G],
    weight: str | None = None,
    node_attrs: Sequence[str] | None = None,
    edge_attrs: Sequence[str] | None = None,
    x: Any = None,
    mask: Any = None,
    time: Any = None,
    meta: dict | None = None,
) -> G:
    """An STGraph from a networkx graph: an OSMnx ``MultiDiGraph``, :func:`to_networkx`'s output,
    or any graph with coordinates.

    Nodes keep the graph's order. Coordinates come from ``x``/``y`` (OSMnx), ``lon``/``lat`` or
    a ``pos`` pair, in ``g.graph["crs"]`` (reprojected to lon/lat; the original CRS is kept in
    ``meta["source_crs"]``). ``meta["node_ids"]`` are the ``node_id`` attributes when every node
    has one, else the node keys (OSMnx: the OSM ids). Undirected graphs become both directions.
    Edges with a ``step`` attribute (``to_networkx(dynamic=True)``) become dynamic edges.

    For a road graph with the full road contract (parsed speeds, lanes, classes, context counts)
    use :func:`graph_builders.osm.road_graph` on the OSMnx graph instead.

    Args:
        g: the graph.
        cls: the class to build (``STGraph.from_*`` passes itself).
        weight: edge attribute for ``edge_weight`` (default ``"weight"`` when every edge has one,
            else ``"length"`` — metres, recorded as ``meta["edge_weight"] = "distance_m"``).
        node_attrs: numeric node attributes for ``node_attr`` (default ``g.graph``'s
            ``node_attr_names`` when present, else every attribute that is a number on all nodes).
        edge_attrs: numeric edge attributes for ``edge_attr`` (default likewise, from
            ``edge_attr_names``; the weight attribute is not repeated).
        x, mask, time: readings ``[N, T, V]`` on the nodes, in node order (default: none, ``x`` of
            shape ``[N, 0, 0]`` as a road graph).
        meta: metadata merged over the graph's own (``g.graph``).

    Raises:
        DataFormatError: a node without coordinates while others have them, dynamic edges without
            ``x``, or an attribute named that some node or edge lacks.
    """
    nodes = list(g.nodes)
    n = len(nodes)
    index = {k: i for i, k in enumerate(nodes)}
    ndata = [g.nodes[k] for k in nodes]
    info = dict(g.graph)
    pos, source_crs = _node_positions(ndata, info.get("crs"))
    if node_attrs is None:
        node_attrs = _pick_names(info.get("node_attr_names"), ndata, _NODE_RESERVED)
    node_attr = _attr_table(ndata, node_attrs, "node") if node_attrs else None
    if g.is_multigraph():
        edges = list(g.edges(keys=False, data=True))
    else:
        edges = list(g.edges(data=True))
    if not g.is_directed():
        edges = edges + [(b, a, d) for a, b, d in edges if a != b]
    static = [(a, b, d) for a, b, d in edges if "step" not in d]
    dyn = [(a, b, d) for a, b, d in edges if "step" in d]
    edata = [d for _, _, d in static]
    if weight is None:
        weight = next(
            (w for w in ("weight", "length") if edata and all(w in d for d in edata)), None
        )
    if edge_attrs is None:
        edge_attrs = _pick_names(info.get("edge_attr_names"), edata, _EDGE_RESERVED | {weight})
        if info.get("edge_attr_names") is None:  # OSMnx's length is the weight or a feature
            edge_attrs = [k for k in edge_attrs if k != "length" or weight != "length"]
    ei = np.array([[index[a] for a, _, _ in static], [index[b] for _, b, _ in static]])
    fields: dict[str, Any] = {
        "edge_index": torch.from_numpy(ei.reshape(2, -1).astype(np.int64)),
        "edge_weight": _attr_column(edata, weight) if weight else None,
        "edge_attr": _attr_table(edata, edge_attrs, "edge") if edge_attrs else None,
    }
    fields.update(_edge_geometry(static, ndata, index, pos, source_crs))
    base = _jsonable(info)
    base.update(
        crs="EPSG:4326" if pos is not None else base.get("crs", "EPSG:4326"),
        node_ids=[d.get("node_id") for d in ndata]
        if ndata and all("node_id" in d for d in ndata)
        else [k if isinstance(k, (int, str)) else str(k) for k in nodes],
    )
    if source_crs is not None and not is_wgs84(source_crs):
        base["source_crs"] = str(source_crs)
    if node_attrs:
        base["node_attr_names"] = list(node_attrs)
    if edge_attrs:
        base["edge_attr_names"] = list(edge_attrs)
    if weight == "length":
        base["edge_weight"] = "distance_m"
    base["provenance"] = [
        *base.get("provenance", []),
        f"STGraph.from_networkx({type(g).__name__}: {n} nodes, {len(static)} edges)",
    ]
    base.update(meta or {})
    if x is None:
        x, mask = torch.zeros((n, 0, 0)), torch.zeros((n, 0, 0), dtype=torch.bool)
    if dyn:
        fields.update(_dynamic_edges(dyn, index))
    return cls(
        x=x,
        mask=mask,
        time=time,
        pos=None if pos is None else torch.from_numpy(pos),
        node_attr=node_attr,
        meta=base,
        **fields,
    )


def _node_positions(ndata: Sequence[dict], crs: Any) -> tuple[np.ndarray | None, Any]:
    """``[N, 2]`` lon/lat of the nodes (``None`` when no node has coordinates) and the CRS read."""

    def xy(d: dict) -> tuple[Any, Any] | None:
        for a, b in (("x", "y"), ("lon", "lat")):
            if a in d and b in d and _scalar(d[a]) is not None:
                return d[a], d[b]
        p = d.get("pos")
        return (p[0], p[1]) if isinstance(p, (tuple, list, np.ndarray)) and len(p) == 2 else None

    found = [xy(d) for d in ndata]
    if not found or all(f is None for f in found):
        return None, crs
    if any(f is None for f in found):
        i = next(i for i, f in enumerate(found) if f is None)
        raise DataFormatError(f"from_networkx: node {i} has no coordinates (x/y, lon/lat or pos)")
    arr = np.asarray(found, dtype=np.float64)
    lon, lat = _to_lonlat(arr[:, 0], arr[:, 1], crs)
    return np.stack([lon, lat], 1), crs


def _attr_column(records: Sequence[dict], key: str) -> torch.Tensor:
    vals = [_scalar(r.get(key)) for r in records]
    if any(v is None for v in vals):
        i = vals.index(None)
        raise DataFormatError(f"from_networkx: edge {i} has no numeric {key!r}")
    return torch.tensor(vals, dtype=torch.float32)


def _attr_table(records: Sequence[dict], keys: Sequence[str], what: str) -> torch.Tensor:
    out = np.zeros((len(records), len(keys)), dtype=np.float32)
    for j, k in enumerate(keys):
        for i, r in enumerate(records):
            v = _scalar(r.get(k))
            if v is None:
                raise DataFormatError(f"from_networkx: {what} {i} has no numeric attribute {k!r}")
            out[i, j] = v
    return torch.from_numpy(out)


def _edge_geometry(
    static: Sequence[tuple], ndata: Sequence[dict], index: dict, pos: np.ndarray | None, crs: Any
) -> dict[str, torch.Tensor]:
    """``road_geom``/``road_geom_ptr`` from shapely edge geometries (straight where missing)."""
    if pos is None or not any(hasattr(d.get("geometry"), "coords") for _, _, d in static):
        return {}
    coords, ptr = [], [0]
    for a, b, d in static:
        geom = d.get("geometry")
        if hasattr(geom, "coords"):
            c = np.asarray(geom.coords, dtype=np.float64)[:, :2]
            lon, lat = _to_lonlat(c[:, 0], c[:, 1], crs)
            c = np.stack([lon, lat], 1)
        else:
            c = pos[[index[a], index[b]]]
        coords.append(c)
        ptr.append(ptr[-1] + len(c))
    return {
        "road_geom": torch.from_numpy(np.concatenate(coords)),
        "road_geom_ptr": torch.tensor(ptr, dtype=torch.long),
    }


def _dynamic_edges(dyn: Sequence[tuple], index: dict) -> dict[str, torch.Tensor]:
    ei = [[index[a] for a, _, _ in dyn], [index[b] for _, b, _ in dyn]]
    out = {
        "dyn_edge_index": torch.tensor(ei, dtype=torch.long),
        "dyn_edge_time": torch.tensor([int(d["step"]) for _, _, d in dyn], dtype=torch.long),
    }
    if all("weight" in d for _, _, d in dyn):
        out["dyn_edge_weight"] = torch.tensor([float(d["weight"]) for _, _, d in dyn])
    return out


# ---------------------------------------------------------------------------------- geopandas


def to_geopandas(graph: Data) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """``(nodes, edges)`` GeoDataFrames in ``meta["crs"]``.

    ``nodes``: one row per node (index ``node`` = ``0 .. N-1``), ``node_id``, one column per
    ``node_attr`` column and a ``Point`` geometry. ``edges``: one row per static edge with
    ``source``, ``target`` (node indices), ``weight``, one column per ``edge_attr`` column and a
    ``LineString`` geometry (the road's polyline for road graphs, else the straight segment).

    Raises:
        DataFormatError: the graph has no ``pos``.
    """
    gpd = require("geopandas", "to_geopandas")
    import pandas as pd

    if graph.pos is None:
        raise DataFormatError("to_geopandas: the graph has no pos (node coordinates)")
    meta = graph.meta or {}
    crs = meta.get("crs") or "EPSG:4326"
    pos = graph.pos.detach().cpu().double().numpy()
    cols: dict[str, Any] = {}
    if meta.get("node_ids") is not None:
        cols["node_id"] = list(meta["node_ids"])
    if graph.node_attr is not None:
        na = graph.node_attr.detach().cpu().numpy()
        cols.update({k: na[:, j] for j, k in enumerate(graph.node_attr_names)})
    nodes = gpd.GeoDataFrame(
        pd.DataFrame(cols, index=pd.RangeIndex(len(pos), name="node")),
        geometry=gpd.points_from_xy(pos[:, 0], pos[:, 1]),
        crs=crs,
    )
    return nodes, _edges_frame(graph, pos, crs, gpd)


def _edges_frame(graph: Data, pos: np.ndarray, crs: Any, gpd: Any) -> gpd.GeoDataFrame:
    import pandas as pd

    shapely = require("shapely", "to_geopandas")
    ei = (
        graph.edge_index.numpy()
        if graph.edge_index is not None
        else np.zeros((2, 0), dtype=np.int64)
    )
    e = ei.shape[1]
    cols: dict[str, Any] = {"source": ei[0], "target": ei[1]}
    if graph.edge_weight is not None:
        cols["weight"] = graph.edge_weight.detach().cpu().numpy()
    if graph.edge_attr is not None:
        ea = graph.edge_attr.detach().cpu().numpy().reshape(e, -1)
        cols.update({k: ea[:, j] for j, k in enumerate(_edge_names(graph))})
    lines = _road_lines(graph) if e else None
    if lines is None:
        lines = list(np.stack([pos[ei[0]], pos[ei[1]]], 1))
    sizes = np.array([len(c) for c in lines], dtype=np.int64)
    geometry = (
        shapely.linestrings(np.concatenate(lines), indices=np.repeat(np.arange(e), sizes))
        if e
        else []
    )
    return gpd.GeoDataFrame(
        pd.DataFrame(cols, index=pd.RangeIndex(e, name="edge")), geometry=geometry, crs=crs
    )


def is_point_geodataframe(obj: Any) -> bool:
    """Whether ``obj`` is a GeoDataFrame (without importing geopandas when it is not loaded)."""
    import sys

    gpd = sys.modules.get("geopandas")
    return gpd is not None and isinstance(obj, gpd.GeoDataFrame)


def points_to_columns(
    frame: gpd.GeoDataFrame, *, lon_col: str = "longitude", lat_col: str = "latitude"
) -> pd.DataFrame:
    """A plain DataFrame with ``lon_col``/``lat_col`` (EPSG:4326 degrees) from point geometry.

    What the sensor and event builders read when they are given a GeoDataFrame of points instead
    of a table with coordinate columns: the geometry is reprojected from the frame's CRS and
    replaced by the two columns (existing columns of those names are replaced too).

    Raises:
        DataFormatError: the frame has no CRS, or a geometry that is neither a point nor empty.
    """
    import pandas as pd

    name = frame.geometry.name
    if frame.crs is None:
        raise DataFormatError(
            "GeoDataFrame: no CRS; set one (e.g. gdf.set_crs(4326)) before building"
        )
    kinds = frame.geometry.geom_type
    bad = kinds.notna() & (kinds != "Point")
    if bool(bad.any()):
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFormatError(
            f"GeoDataFrame: row {i} has a {kinds.iloc[i]} geometry; sensors and events need "
            "points (use the centroids, or pass polygons as regions=)"
        )
    geo = frame.geometry.to_crs(4326)
    empty = geo.is_empty.to_numpy() | geo.isna().to_numpy()
    lon = np.where(empty, np.nan, geo.x.where(~empty).to_numpy(dtype=np.float64))
    lat = np.where(empty, np.nan, geo.y.where(~empty).to_numpy(dtype=np.float64))
    out = pd.DataFrame(frame.drop(columns=[name]))
    out[lon_col] = lon
    out[lat_col] = lat
    return out


def geodataframe_table(frame: gpd.GeoDataFrame, required: Sequence[str] = ()) -> pd.DataFrame:
    """What a builder's table reader makes of a GeoDataFrame of points: :func:`points_to_columns`
    into the two coordinate columns the builder asks for — the two ``required`` columns the frame
    lacks, longitude first as the builders list them — else ``longitude``/``latitude``."""
    missing = [c for c in required if c is not None and c not in frame.columns]
    lon_col, lat_col = missing if len(missing) == 2 else ("longitude", "latitude")
    return points_to_columns(frame, lon_col=lon_col, lat_col=lat_col)


# ---------------------------------------------------------------------------------- xarray


def grid_cells(graph: Data) -> tuple[np.ndarray, np.ndarray, tuple[int, int]] | None:
    """``(row, col, (rows, cols))`` of every node of a grid graph (``meta["grid"]``), else ``None``.

    Read from ``meta["grid"]["cells"]`` (raster builder), ``"r{row}c{col}"`` node ids (regions,
    crime grids), or the row-major order of a full grid (``rows * cols`` nodes).
    """
    grid = (graph.meta or {}).get("grid")
    if not isinstance(grid, dict):
        return None
    shape = grid.get("shape") or [grid.get("rows"), grid.get("cols")]
    if len(shape) != 2 or shape[0] is None or shape[1] is None:
        return None
    rows, cols = int(shape[0]), int(shape[1])
    n = graph.num_nodes
    if isinstance(grid.get("cells"), list) and len(grid["cells"]) == n:
        rc = np.asarray(grid["cells"], dtype=np.int64).reshape(n, 2)
        return rc[:, 0], rc[:, 1], (rows, cols)
    ids = (graph.meta or {}).get("node_ids") or []
    parsed = [re.fullmatch(r"r(\d+)c(\d+)", str(i)) for i in ids]
    if len(ids) == n and all(parsed):
        rc = np.array([[int(m.group(1)), int(m.group(2))] for m in parsed], dtype=np.int64)
        return rc[:, 0], rc[:, 1], (rows, cols)
    if n == rows * cols:
        r, c = np.divmod(np.arange(n), cols)
        return r, c, (rows, cols)
    return None


def to_xarray(graph: Data, *, grid: bool | None = None) -> xr.Dataset:
    """An ``xarray.Dataset``: one data variable per graph variable, NaN where not observed.

    Raster and grid graphs (``meta["grid"]``) give ``(time, latitude, longitude)`` when the cell
    centres lie on a lon/lat lattice (ERA5, raster builds), else ``(time, row, col)`` with 2-D
    ``lon``/``lat`` coordinates (metric grids). Other graphs give ``(node, time)`` with the node
    ids as the ``node`` coordinate and ``lon``/``lat`` on it. ``time`` is ``datetime64`` (UTC) when
    the graph has timestamps, else the step index. Each variable carries ``units``; the dataset
    carries ``crs``, ``interval_s``, ``city``, ``domain`` and a CF ``spatial_ref`` coordinate
    (``crs_wkt``) that rioxarray and GIS tools read.

    Args:
        graph: the graph.
        grid: force (``True``) or refuse (``False``) the grid layout; ``None``: grid when the
            graph is one.
    """
    xr = require("xarray", "to_xarray")
    from pyproj import CRS

    meta = graph.meta or {}
    cells = grid_cells(graph) if grid is not False else None
    if grid and cells is None:
        raise DataFormatError("to_xarray(grid=True): the graph has no meta['grid'] with rows/cols")
    values = graph.x.detach().cpu().double().numpy().copy()
    values[~graph.mask.cpu().numpy()] = np.nan
    if graph.time is not None:
        tcoord = ("time", graph.time.numpy().astype("datetime64[s]").astype("datetime64[ns]"))
    else:
        tcoord = ("time", np.arange(graph.num_steps))
    crs = meta.get("crs") or "EPSG:4326"
    attrs = {
        "crs": crs,
        "interval_s": graph.interval,
        "city": meta.get("city"),
        "domain": meta.get("domain"),
    }
    attrs = {k: v for k, v in attrs.items() if v is not None}
    spatial_ref = xr.DataArray(0, attrs={"crs_wkt": CRS.from_user_input(crs).to_wkt()})
    if cells is not None:
        data_vars, coords = _grid_arrays(graph, values, cells)
    else:
        data_vars, coords = _node_arrays(graph, values)
    coords["time"] = tcoord
    coords["spatial_ref"] = spatial_ref
    ds = xr.Dataset(
        {
            name: (dims, arr, {"units": unit, "grid_mapping": "spatial_ref"})
            for name, unit, (dims, arr) in zip(graph.variables, graph.units, data_vars, strict=True)
        },
        coords=coords,
        attrs=attrs,
    )
    return ds


def _node_arrays(graph: Data, values: np.ndarray) -> tuple[list, dict]:
    meta = graph.meta or {}
    ids = meta.get("node_ids")
    coords: dict[str, Any] = {
        "node": ("node", np.asarray(ids if ids is not None else np.arange(graph.num_nodes)))
    }
    if graph.pos is not None:
        pos = graph.pos.detach().cpu().double().numpy()
        coords["lon"], coords["lat"] = ("node", pos[:, 0]), ("node", pos[:, 1])
    data = [(("node", "time"), values[:, :, v]) for v in range(values.shape[2])]
    return data, coords


def _grid_arrays(
    graph: Data, values: np.ndarray, cells: tuple[np.ndarray, np.ndarray, tuple[int, int]]
) -> tuple[list, dict]:
    row, col, (rows, cols) = cells
    t, v = values.shape[1], values.shape[2]
    cube = np.full((v, t, rows, cols), np.nan)
    cube[:, :, row, col] = values.transpose(2, 1, 0)
    pos = graph.pos.detach().cpu().double().numpy() if graph.pos is not None else None
    if pos is None:
        return [(("time", "row", "col"), cube[i]) for i in range(v)], {}
    lon2 = np.full((rows, cols), np.nan)
    lat2 = np.full((rows, cols), np.nan)
    lon2[row, col], lat2[row, col] = pos[:, 0], pos[:, 1]
    lon1, lat1 = np.nanmean(lon2, 0), np.nanmean(lat2, 1)
    tol = 1e-6 * max(1.0, float(np.nanmax(np.abs(pos))))
    lattice = (
        np.all(np.isnan(lon2) | (np.abs(lon2 - lon1[None, :]) <= tol))
        and np.all(np.isnan(lat2) | (np.abs(lat2 - lat1[:, None]) <= tol))
        and np.isfinite(lon1).all()
        and np.isfinite(lat1).all()
    )
    if lattice:
        coords = {"latitude": ("latitude", lat1), "longitude": ("longitude", lon1)}
        return [(("time", "latitude", "longitude"), cube[i]) for i in range(v)], coords
    coords = {"lon": (("row", "col"), lon2), "lat": (("row", "col"), lat2)}
    return [(("time", "row", "col"), cube[i]) for i in range(v)], coords


def from_xarray(ds: xr.Dataset | xr.DataArray, *, cls: type[G], meta: dict | None = None) -> G:
    """An STGraph (no edges) from a ``(node, time)`` Dataset such as :func:`to_xarray` writes.

    Each data variable with dims ``node`` and ``time`` becomes a variable (``units`` from its
    attributes); ``lon``/``lat`` coordinates on ``node`` give ``pos``; NaN is missing. For a
    ``(time, latitude, longitude)`` grid use :func:`graph_builders.raster.from_grid`.
    ``cls`` is the class to build (``STGraph.from_xarray`` passes itself).

    Raises:
        DataFormatError: no data variable has both ``node`` and ``time`` dims.
    """
    if hasattr(ds, "to_dataset") and not hasattr(ds, "data_vars"):
        ds = ds.to_dataset(name=ds.name or "value")
    names = [k for k, a in ds.data_vars.items() if {"node", "time"} <= set(a.dims)]
    if not names:
        raise DataFormatError(
            f"from_xarray: no data variable with dims ('node', 'time') (found "
            f"{ {k: a.dims for k, a in ds.data_vars.items()} }); a grid goes through "
            "graph_builders.raster.from_grid"
        )
    x = np.stack([ds[k].transpose("node", "time").to_numpy() for k in names], axis=-1)
    time = ds["time"].to_numpy()
    pos = None
    if "lon" in ds.coords and "lat" in ds.coords:
        pos = np.stack([ds["lon"].to_numpy(), ds["lat"].to_numpy()], 1)
    base = {
        "variables": [{"name": k, "unit": str(ds[k].attrs.get("units", ""))} for k in names],
        "node_ids": [v.item() if hasattr(v, "item") else v for v in ds["node"].to_numpy()],
        "crs": ds.attrs.get("crs", "EPSG:4326"),
        "interval": ds.attrs.get("interval_s"),
        "city": ds.attrs.get("city"),
        "domain": ds.attrs.get("domain"),
        "provenance": [f"STGraph.from_xarray({len(names)} variables)"],
    }
    base.update(meta or {})
    return cls(
        x=x.astype(np.float32),
        time=time if np.issubdtype(time.dtype, np.datetime64) else None,
        pos=pos,
        meta=base,
    )


# ---------------------------------------------------------------------------------- pandas/numpy


def to_pandas_wide(graph: Data) -> pd.DataFrame:
    """A wide table: a UTC ``DatetimeIndex`` (or the step index) by one column per node id.

    One variable gives one column per node (``meta["node_ids"]``, else the node index); several
    give a two-level column index ``(variable, node)``. NaN where not observed.
    """
    import pandas as pd

    values = graph.x.detach().cpu().double().numpy().copy()
    values[~graph.mask.cpu().numpy()] = np.nan
    ids = (graph.meta or {}).get("node_ids")
    nodes = list(ids) if ids is not None else list(range(graph.num_nodes))
    if graph.time is not None:
        index = pd.DatetimeIndex(
            pd.to_datetime(graph.time.numpy(), unit="s", utc=True), name="time"
        )
    else:
        index = pd.RangeIndex(graph.num_steps, name="step")
    if graph.num_variables == 1:
        return pd.DataFrame(values[:, :, 0].T, index=index, columns=pd.Index(nodes, name="node"))
    columns = pd.MultiIndex.from_product([graph.variables, nodes], names=["variable", "node"])
    flat = values.transpose(1, 2, 0).reshape(graph.num_steps, -1)
    return pd.DataFrame(flat, index=index, columns=columns)


def _adjacency_edges(adjacency: Any, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(edge_index, edge_weight)`` from a dense ``[N, N]`` matrix, a scipy sparse matrix or an
    ``(edge_index [2, E], edge_weight [E])`` pair (tsl's ``layout="edge_index"``)."""
    if isinstance(adjacency, tuple) and len(adjacency) == 2:
        ei, ew = adjacency
        ei = torch.as_tensor(np.asarray(ei), dtype=torch.long)
        if ei.dim() != 2 or ei.size(0) != 2:
            raise DataFormatError(f"adjacency: edge_index must be [2, E], got {tuple(ei.shape)}")
        return ei, None if ew is None else torch.as_tensor(np.asarray(ew), dtype=torch.float32)
    if hasattr(adjacency, "tocoo"):
        coo = adjacency.tocoo()
        if coo.shape != (n, n):
            raise DataFormatError(f"adjacency: shape {coo.shape}; expected ({n}, {n})")
        ei = np.stack([coo.row, coo.col]).astype(np.int64)
        return torch.from_numpy(ei), torch.from_numpy(coo.data.astype(np.float32))
    a = np.asarray(adjacency.detach().cpu() if isinstance(adjacency, torch.Tensor) else adjacency)
    if a.shape != (n, n):
        raise DataFormatError(f"adjacency: shape {a.shape}; expected ({n}, {n}) for {n} nodes")
    src, dst = np.nonzero(a)
    return (
        torch.from_numpy(np.stack([src, dst]).astype(np.int64)),
        torch.from_numpy(a[src, dst].astype(np.float32)),
    )


def from_numpy(
    x: Any,
    adjacency: Any = None,
    *,
    cls: type[G],
    mask: Any = None,
    time: Any = None,
    pos: Any = None,
    node_ids: Sequence | None = None,
    variables: Sequence[str] | None = None,
    units: Sequence[str] | str | None = None,
    self_loops: bool = False,
    meta: dict | None = None,
) -> G:
    """An STGraph from time-major arrays, as PyG Temporal and tsl hold them.

    Args:
        cls: the class to build (``STGraph.from_*`` passes itself).
        x: ``[T, N]`` or ``[T, N, V]`` readings (tsl's ``dataset.numpy()``, PyG Temporal's
            stacked ``features``); NaN is missing.
        adjacency: a dense ``[N, N]`` matrix (``A[i, j]`` is the edge ``i -> j``), a scipy sparse
            matrix, or an ``(edge_index [2, E], edge_weight [E])`` pair (tsl's
            ``get_connectivity(layout="edge_index")``, PyG Temporal's ``_edges`` and
            ``_edge_weights``); ``None``: no edges.
        mask: ``[T, N]`` / ``[T, N, V]`` bool, ``True`` where observed (tsl's ``mask``).
        time: ``[T]`` times (unix seconds, ``datetime64``, a ``DatetimeIndex``).
        pos: ``[N, 2]`` lon/lat degrees.
        node_ids, variables, units: names for ``meta``.
        self_loops: keep the diagonal of a dense adjacency (default: dropped, as PyG does).
        meta: further metadata.
    """
    arr = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float32)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise DataFormatError(f"x: expected [T, N] or [T, N, V], got shape {arr.shape}")
    t, n, v = arr.shape
    m = None
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        m = m[:, :, None] if m.ndim == 2 else m
        if m.shape != arr.shape:
            raise DataFormatError(f"mask: shape {m.shape}; expected {arr.shape} like x")
        m = np.ascontiguousarray(m.transpose(1, 0, 2)) & np.isfinite(arr.transpose(1, 0, 2))
    fields: dict[str, Any] = {}
    if adjacency is not None:
        ei, ew = _adjacency_edges(adjacency, n)
        if not self_loops and ei.numel():
            keep = ei[0] != ei[1]
            ei, ew = ei[:, keep], None if ew is None else ew[keep]
        fields = {"edge_index": ei, "edge_weight": ew}
    names = list(variables) if variables is not None else [f"var{i}" for i in range(v)]
    unit_list = [units] * v if isinstance(units, str) or units is None else list(units)
    base: dict[str, Any] = {
        "variables": [{"name": a, "unit": b or ""} for a, b in zip(names, unit_list, strict=True)],
        "provenance": [f"STGraph.from_numpy(x [T={t}, N={n}, V={v}])"],
    }
    if node_ids is not None:
        base["node_ids"] = list(node_ids)
    base.update(meta or {})
    return cls(
        x=np.ascontiguousarray(arr.transpose(1, 0, 2)),
        mask=m,
        time=time,
        pos=pos,
        meta=base,
        **fields,
    )


def from_pandas(
    frame: pd.DataFrame,
    *,
    cls: type[G],
    pos: Any = None,
    adjacency: Any = None,
    variable: str = "value",
    unit: str = "",
    meta: dict | None = None,
) -> G:
    """An STGraph from a wide table: a ``DatetimeIndex`` (or a time column as index) by one column
    per node (``meta["node_ids"]`` = the column names as strings), or a two-level
    ``(variable, node)`` column index as :func:`to_pandas_wide` writes. ``interval`` is the
    median step of the index.

    Args:
        frame: the table; non-numeric entries are missing.
        cls: the class to build (``STGraph.from_*`` passes itself).
        pos: ``[N, 2]`` lon/lat in column order, or a DataFrame indexed by node id with
            ``lon``/``lat`` (or ``longitude``/``latitude``) columns.
        adjacency: as in :func:`from_numpy`.
        variable, unit: the variable of a single-level table.
        meta: further metadata.

    Raises:
        DataFormatError: the index is not made of times, or ``pos`` lacks a node of the table.
    """
    import pandas as pd

    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        try:
            index = pd.DatetimeIndex(pd.to_datetime(index))
        except (TypeError, ValueError) as exc:
            raise DataFormatError(
                f"from_pandas: the index must hold times (a DatetimeIndex), got {index.dtype} ({exc})"
            ) from None
    numeric = frame.apply(pd.to_numeric, errors="coerce")
    if isinstance(frame.columns, pd.MultiIndex):
        variables = list(dict.fromkeys(frame.columns.get_level_values(0)))
        nodes = list(dict.fromkeys(frame.columns.get_level_values(1)))
        cube = np.stack([numeric[var][nodes].to_numpy(np.float64) for var in variables], -1)
        units: Iterable[str] = [unit] * len(variables)
    else:
        variables, nodes = [variable], list(frame.columns)
        cube = numeric.to_numpy(np.float64)[:, :, None]
        units = [unit]
    ids = [str(c) for c in nodes]
    if isinstance(pos, pd.DataFrame):
        table = pos.set_axis([str(i) for i in pos.index])
        lon_col = next(c for c in ("lon", "longitude", "x") if c in table.columns)
        lat_col = next(c for c in ("lat", "latitude", "y") if c in table.columns)
        missing = [i for i in ids if i not in table.index]
        if missing:
            raise DataFormatError(f"from_pandas: pos has no row for node(s) {missing[:10]}")
        pos = table.loc[ids, [lon_col, lat_col]].to_numpy(np.float64)
    base = {"provenance": [f"STGraph.from_pandas(wide: {len(index)} steps x {len(ids)} nodes)"]}
    base.update(meta or {})
    return from_numpy(
        cube,
        adjacency,
        cls=cls,
        time=index,
        pos=pos,
        node_ids=ids,
        variables=variables,
        units=list(units),
        meta=base,
    )
