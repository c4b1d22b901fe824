"""Road graphs from a place name or a bounding box through OSMnx (needs an Overpass server).

OSMnx downloads, truncates, keeps the largest component and simplifies; this module turns its
``networkx.MultiDiGraph`` into the same :class:`~graph_builders.osm.topology.RoadNet` the local
reader produces, so both paths give the same STGraph contract. Context features come from
``osmnx.features_from_polygon`` on the same area. The server is ``osmnx.settings.overpass_url``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from graph_builders.osm.context import classify_landuse, classify_poi
from graph_builders.osm.reader import ContextPoints
from graph_builders.osm.tags import (
    DEFAULT_SPEED_KPH,
    ROAD_CLASSES,
    parse_lanes,
    parse_speed,
    road_class,
)
from graph_builders.osm.topology import RoadNet, parallel_keys

if TYPE_CHECKING:
    import networkx as nx
    from shapely.geometry.base import BaseGeometry

#: Tags asked of Overpass for the context features (any value).
CONTEXT_TAGS: dict[str, bool] = {
    k: True
    for k in (
        "amenity",
        "shop",
        "tourism",
        "leisure",
        "office",
        "healthcare",
        "public_transport",
        "landuse",
        "natural",
    )
}


def _values(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, (list, tuple, set)):
        return [str(v) for v in value]
    return [str(value)]


def download_graph(
    place: str | None,
    bbox: tuple[float, float, float, float] | None,
    network: str,
    *,
    simplify: bool,
    retain_all: bool,
) -> tuple[nx.MultiDiGraph, BaseGeometry]:
    """OSMnx graph and area polygon for a place name or a ``(west, south, east, north)`` bbox."""
    import osmnx as ox
    from shapely.geometry import box

    if place is not None:
        gdf = ox.geocode_to_gdf(place)
        polygon = gdf.union_all()
        g = ox.graph_from_polygon(
            polygon, network_type=network, simplify=simplify, retain_all=retain_all
        )
    else:
        polygon = box(*bbox)
        g = ox.graph_from_bbox(
            tuple(bbox), network_type=network, simplify=simplify, retain_all=retain_all
        )
    return g, polygon


def net_from_networkx(g, *, speed_fallback: str = "impute") -> RoadNet:
    """Convert an OSMnx ``MultiDiGraph`` into a :class:`RoadNet` (attributes parsed as for files).

    Merged OSMnx attributes (lists) are combined as OSMnx's own ``add_edge_speeds`` does: the mean
    of the parsed values; a list of highway values takes the most important class.
    """
    nodes = list(g.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    lon = np.array([g.nodes[n]["x"] for n in nodes], dtype=np.float64)
    lat = np.array([g.nodes[n]["y"] for n in nodes], dtype=np.float64)
    us, vs, lengths, speeds, lanes, oneway, cls, s_tag, l_tag = ([] for _ in range(9))
    glon: list[float] = []
    glat: list[float] = []
    gptr = [0]
    n_unparse = n_missing = n_implicit = n_lanes = 0
    for a, b, data in g.edges(data=True):
        us.append(index[a])
        vs.append(index[b])
        lengths.append(float(data.get("length", 0.0)))
        codes = [road_class(h) for h in _values(data.get("highway"))] or [road_class(None)]
        cls.append(min(codes))
        parsed = []
        for val in _values(data.get("maxspeed")):
            s, how = parse_speed(val)
            if s is None:
                n_unparse += how == "unparseable"
            else:
                parsed.append(s)
                n_implicit += how == "implicit"
        if not _values(data.get("maxspeed")):
            n_missing += 1
        speeds.append(float(np.mean(parsed)) if parsed else np.nan)
        s_tag.append(1.0 if parsed else 0.0)
        ow = data.get("oneway", False)
        is_oneway = bool(ow) if not isinstance(ow, list) else all(ow)
        oneway.append(1.0 if is_oneway else 0.0)
        ln = [x for x in (parse_lanes(v) for v in _values(data.get("lanes"))) if x is not None]
        if ln:
            total = float(np.mean(ln))
            lanes.append(total if is_oneway else total / 2.0)
            l_tag.append(1.0)
        else:
            lanes.append(1.0)
            l_tag.append(0.0)
            n_lanes += 1
        geom = data.get("geometry")
        if geom is not None:
            xs, ys = geom.xy
            glon.extend(xs)
            glat.extend(ys)
        else:
            glon.extend([lon[index[a]], lon[index[b]]])
            glat.extend([lat[index[a]], lat[index[b]]])
        gptr.append(len(glon))
    cls_a = np.asarray(cls, dtype=np.int64)
    speed = np.asarray(speeds, dtype=np.float64)
    defaulted: dict[str, int] = {}
    missing = ~np.isfinite(speed)
    if missing.any():
        fill = np.array([DEFAULT_SPEED_KPH[c] for c in ROAD_CLASSES])
        n_mean = 0
        if speed_fallback == "impute":
            for c in np.unique(cls_a[missing]):
                obs = speed[(cls_a == c) & ~missing]
                if obs.size:
                    fill[c] = obs.mean()
                    n_mean += int((missing & (cls_a == c)).sum())
        speed[missing] = fill[cls_a[missing]]
        if n_mean:
            defaulted["speed_kph_from_class_mean_in_extract"] = n_mean
        if int(missing.sum()) - n_mean:
            defaulted["speed_kph_from_class_default_table"] = int(missing.sum()) - n_mean
    if n_unparse:
        defaulted["maxspeed_unparseable"] = n_unparse
    if n_implicit:
        defaulted["maxspeed_implicit_zone"] = n_implicit
    if n_lanes:
        defaulted["lanes_missing_set_to_1"] = n_lanes
    u = np.asarray(us, dtype=np.int64)
    v = np.asarray(vs, dtype=np.int64)
    attrs = np.stack(
        [
            np.asarray(lengths),
            speed,
            np.asarray(lanes),
            np.asarray(oneway),
            cls_a.astype(float),
            np.asarray(s_tag),
            np.asarray(l_tag),
        ],
        axis=1,
    )
    return RoadNet(
        node_osmid=np.asarray(nodes, dtype=np.int64),
        lon=lon,
        lat=lat,
        u=u,
        v=v,
        key=parallel_keys(u, v, len(nodes)),
        geom_ptr=np.asarray(gptr, dtype=np.int64),
        geom_lon=np.asarray(glon, dtype=np.float64),
        geom_lat=np.asarray(glat, dtype=np.float64),
        attrs=attrs,
        defaulted=defaulted,
        counts={"nodes_from_osmnx": len(nodes), "edges_from_osmnx": len(u)},
    )


def download_context(polygon) -> tuple[ContextPoints, dict[str, int]]:
    """POI and land-use points in ``polygon`` from Overpass via ``osmnx.features_from_polygon``."""
    import osmnx as ox
    import shapely

    dropped: dict[str, int] = {}
    try:
        gdf = ox.features_from_polygon(polygon, tags=CONTEXT_TAGS)
    except ox._errors.InsufficientResponseError:
        empty = np.zeros(0)
        return ContextPoints(
            empty, empty, empty.astype(np.int64), empty, empty, empty.astype(np.int64)
        ), dropped
    cols = [c for c in gdf.columns if c != "geometry"]
    records = gdf[cols].to_dict("records")
    cent = shapely.get_coordinates(shapely.centroid(gdf.geometry.values))
    is_point = np.asarray(gdf.geometry.geom_type == "Point")
    poi, lu = [], []
    for i, rec in enumerate(records):
        tags = {k: str(v) for k, v in rec.items() if isinstance(v, str)}
        c = classify_landuse(tags) if not is_point[i] else -1
        if c >= 0:
            lu.append((cent[i, 0], cent[i, 1], c))
            continue
        c = classify_poi(tags)
        if c >= 0:
            poi.append((cent[i, 0], cent[i, 1], c))
    p = np.asarray(poi, dtype=np.float64).reshape(-1, 3)
    q = np.asarray(lu, dtype=np.float64).reshape(-1, 3)
    return (
        ContextPoints(
            p[:, 0], p[:, 1], p[:, 2].astype(np.int64), q[:, 0], q[:, 1], q[:, 2].astype(np.int64)
        ),
        dropped,
    )
