"""Read an OSM file (``.osm.pbf``, ``.osm``, ``.osm.bz2``, ``.osm.gz``) with pyosmium in one pass.

pyosmium's ``FileProcessor`` keeps every node location in its C++ index, and per-type
``KeyFilter``s let only the objects a road graph needs reach Python: highway ways (the network),
tagged nodes (points of interest) and area-tagged closed ways and multipolygon relations (land use,
POI buildings). Coordinates are collected as raw integers and converted, split and de-duplicated
with numpy. That is where the speed over parsing XML into networkx comes from.

Small OSM XML files (up to :data:`EXPAT_MAX_BYTES` on disk) are read instead by the standard
library's expat parser in this process: pyosmium's reader and parser threads cost a few fixed
milliseconds, more than the whole parse of a district-sized file. Both readers keep the same
objects by the same rules and return identical arrays (tested on West Oakland and on a
hand-written file with every special case).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from graph_builders.osm.context import classify_landuse, classify_poi
from graph_builders.osm.tags import BIDIRECTIONAL_NETWORKS, in_network, oneway_direction
from stgraph.errors import ConfigError, DataFormatError
from stgraph.utils.extras import require


def _osmium() -> ModuleType:
    """pyosmium (the ``[osm]`` extra), imported when a file is read: ``import graph_builders``
    works without it."""
    return require("osmium", "reading OSM files (.osm.pbf, .osm, .osm.bz2, .osm.gz)")


def _shapely() -> ModuleType:
    return require("shapely", "reading OSM files (.osm.pbf, .osm, .osm.bz2, .osm.gz)")


#: File name endings pyosmium reads (format detected from the name).
OSM_SUFFIXES: tuple[str, ...] = (".osm.pbf", ".pbf", ".osm", ".osm.bz2", ".osm.gz", ".xml")
#: Keys that make a node a point-of-interest candidate (checked in C++ before Python sees it).
_POI_NODE_KEYS = (
    "amenity",
    "shop",
    "tourism",
    "leisure",
    "office",
    "healthcare",
    "public_transport",
    "railway",
)
#: Keys that make an area (closed way or multipolygon) a land-use or POI candidate.
#: ``osmium.osm.Location().x`` of a node that is not in the file.
_UNDEFINED_COORDINATE = 2147483647
#: (``railway`` and ``waterway`` are left out: they would bring every rail and river line to Python.)
_AREA_KEYS = (*(k for k in _POI_NODE_KEYS if k != "railway"), "landuse", "natural", "water")


@dataclass
class RawWays:
    """Highway ways of one network, as node-id sequences with coordinates.

    A way whose node list references nodes missing from the file is split at those nodes
    (``parts`` > 1 for that way id); consecutive duplicate node ids are collapsed (as OSMnx does).

    Attributes:
        way_ids: int64 ``[W]`` OSM way id of each part.
        tags: ``[W]`` tag dicts.
        direction: int8 ``[W]``: 0 two-way, 1 one-way along the node order, -1 against it.
        ptr: int64 ``[W + 1]``: the nodes of part ``w`` are ``refs[ptr[w]:ptr[w + 1]]``.
        refs: int64 ``[R]`` OSM node ids; ``lon``, ``lat``: float64 ``[R]`` their coordinates.
    """

    way_ids: np.ndarray
    tags: list[dict[str, str]]
    direction: np.ndarray
    ptr: np.ndarray
    refs: np.ndarray
    lon: np.ndarray
    lat: np.ndarray


@dataclass
class ContextPoints:
    """Point features for node context: points of interest and land-use areas.

    ``lon``, ``lat``: float64 ``[F]``; ``category``: int64 ``[F]`` index into the category names of
    :mod:`graph_builders.osm.context` (POI and land-use categories are separate arrays).
    """

    poi_lon: np.ndarray
    poi_lat: np.ndarray
    poi_category: np.ndarray
    landuse_lon: np.ndarray
    landuse_lat: np.ndarray
    landuse_category: np.ndarray


@dataclass
class OSMExtract:
    """What :func:`read_osm` returns: network ways, context points and counts by reason."""

    ways: RawWays
    context: ContextPoints | None
    dropped: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def check_osm_path(path: str | Path) -> Path:
    """Return ``path`` as a ``Path`` if it exists and has an OSM suffix; else a clear error."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such OSM file")
    if not p.name.lower().endswith(OSM_SUFFIXES):
        raise DataFormatError(
            f"{p}: unknown OSM file type; expected a name ending in {', '.join(OSM_SUFFIXES)}"
        )
    if p.stat().st_size == 0:
        raise DataFormatError(f"{p}: file is empty; expected OSM data (PBF or XML)")
    return p


#: XML files up to this size (bytes on disk, compressed or not) are parsed with expat in this
#: process: pyosmium's reader and parser threads cost a fixed few milliseconds that dominate on
#: small files (a 446-node district); larger ones go to pyosmium (see ``read_osm(engine=)``).
EXPAT_MAX_BYTES = 1 << 20
_XML_SUFFIXES = (".osm", ".osm.bz2", ".osm.gz", ".xml")


def read_osm(
    path: str | Path, *, network: str, context: bool = True, engine: str = "auto"
) -> OSMExtract:
    """Read the ``network`` ways (and, with ``context``, POIs and land-use areas) of one file.

    One pass over the file: node locations go to pyosmium's C++ index; per-type ``KeyFilter``s
    let only highway and area-tagged ways, POI-tagged nodes and area-tagged relations reach
    Python. An area's position is the centroid of its boundary (closed ways), or of its outer member
    ways (multipolygon relations; a second pass reads those ways when there are any).

    ``engine``: ``"pyosmium"``, ``"expat"`` (OSM XML only: the standard library's expat parser,
    in this process, same result) or ``"auto"`` — expat for XML files up to
    :data:`EXPAT_MAX_BYTES`, pyosmium otherwise.

    Raises:
        FileNotFoundError: the file does not exist.
        DataFormatError: empty, truncated or corrupt file (the message names the file and what
            the parser reported), or no way of the network in it.
        stgraph.errors.ConfigError: unknown ``engine``, or ``"expat"`` for a file that is not OSM XML.
    """
    p = check_osm_path(path)
    _osmium(), _shapely()  # the [osm] extra: one line naming it when it is not installed
    is_xml = p.name.lower().endswith(_XML_SUFFIXES)
    if engine == "auto":
        engine = "expat" if is_xml and p.stat().st_size <= EXPAT_MAX_BYTES else "pyosmium"
    if engine not in ("pyosmium", "expat"):
        raise ConfigError(f"engine={engine!r}: expected 'auto', 'pyosmium' or 'expat'")
    if engine == "expat" and not is_xml:
        raise ConfigError(f"{p}: engine='expat' reads OSM XML ({', '.join(_XML_SUFFIXES)}) only")
    col = _Collector(network, context)
    if engine == "expat":
        _collect_expat(p, col)
    else:
        _collect_pyosmium(p, col)
    return col.finish(p)


class _Collector:
    """What one pass keeps of the objects a road graph needs, whichever parser reads them."""

    def __init__(self, network: str, context: bool) -> None:
        self.network = network
        self.context = context
        self.bidirectional = network in BIDIRECTIONAL_NETWORKS
        self.way_ids: list[int] = []
        self.way_tags: list[dict[str, str]] = []
        self.directions: list[int] = []
        self.lengths: list[int] = []
        self.refs: list[int] = []
        self.xs: list[int] = []
        self.ys: list[int] = []
        self.dropped: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.poi_xy: list[tuple[float, float, int]] = []
        self.areas = _Areas()

    def add_network_way(self, way_id: int, tag_dict: dict[str, str], n_nodes: int) -> None:
        """Record a network way whose ``n_nodes`` refs and coordinates were just appended."""
        self.way_ids.append(way_id)
        self.way_tags.append(tag_dict)
        self.directions.append(oneway_direction(tag_dict, bidirectional=self.bidirectional))
        self.lengths.append(n_nodes)

    def finish(self, p: Path) -> OSMExtract:
        network, dropped, counts = self.network, self.dropped, self.counts
        if not self.way_ids:
            raise DataFormatError(
                f"{p}: no way of the {network!r} network in the file "
                f"({counts['highway_ways']} highway ways in all)"
            )
        ways = _split_ways(
            self.way_ids,
            self.way_tags,
            self.directions,
            self.lengths,
            self.refs,
            self.xs,
            self.ys,
            dropped,
        )
        if len(ways.way_ids) == 0:
            raise DataFormatError(
                f"{p}: none of the {len(self.way_ids)} ways of the {network!r} network has two nodes "
                "located in the file"
            )
        ctx = self.areas.context_points(self.poi_xy, dropped) if self.context else None
        counts["network_ways"] = len(self.way_ids)
        if ctx is not None:
            counts["poi_features"] = len(ctx.poi_category)
            counts["landuse_features"] = len(ctx.landuse_category)
        return OSMExtract(ways=ways, context=ctx, dropped=dict(dropped), counts=dict(counts))


def _collect_pyosmium(p: Path, col: _Collector) -> None:
    osmium = _osmium()
    fp = osmium.FileProcessor(str(p)).with_locations()
    # per-type filters run in C++: only what a road graph needs reaches Python
    if col.context:
        fp = fp.with_filter(osmium.filter.KeyFilter(*_POI_NODE_KEYS).enable_for(osmium.osm.NODE))
        fp = fp.with_filter(
            osmium.filter.KeyFilter("highway", *_AREA_KEYS).enable_for(osmium.osm.WAY)
        )
        fp = fp.with_filter(osmium.filter.KeyFilter(*_AREA_KEYS).enable_for(osmium.osm.RELATION))
    else:
        fp = fp.with_filter(osmium.filter.EntityFilter(osmium.osm.WAY))
        fp = fp.with_filter(osmium.filter.KeyFilter("highway").enable_for(osmium.osm.WAY))
    network, context, areas, counts, dropped = (
        col.network,
        col.context,
        col.areas,
        col.counts,
        col.dropped,
    )
    refs = col.refs
    # bound methods: this loop runs once per object and node that reaches Python
    add_ref, add_x, add_y = refs.append, col.xs.append, col.ys.append
    try:
        for obj in fp:
            if obj.is_way():
                tags = obj.tags
                if "highway" in tags:
                    counts["highway_ways"] += 1
                    if in_network(tags, network):
                        tag_dict = dict(tags)  # osmium Tags are (k, v) named tuples
                        n_before = len(refs)
                        for nd in obj.nodes:
                            loc = nd.location
                            add_ref(nd.ref)
                            add_x(loc.x)
                            add_y(loc.y)
                        col.add_network_way(obj.id, tag_dict, len(refs) - n_before)
                    else:
                        dropped[f"way_not_in_{network}_network"] += 1
                if context:
                    nodes = obj.nodes
                    if len(nodes) >= 4 and nodes[0].ref == nodes[-1].ref:
                        areas.add_way(tags, nodes)
            elif obj.is_node():
                cat = classify_poi(obj.tags)
                if cat >= 0:
                    loc = obj.location
                    col.poi_xy.append((loc.lon, loc.lat, cat))
            elif obj.is_relation():
                areas.add_relation(obj.tags, ((m.type, m.ref, m.role) for m in obj.members))
        if areas.rel_members:
            areas.read_members(p, fp.node_location_storage)
    except RuntimeError as exc:
        raise DataFormatError(f"{p}: cannot be read as OSM data ({exc})") from exc


def _open_xml(p: Path) -> bytes:
    name = p.name.lower()
    try:
        if name.endswith(".bz2"):
            import bz2

            return bz2.decompress(p.read_bytes())
        if name.endswith(".gz"):
            import gzip

            return gzip.decompress(p.read_bytes())
    except (OSError, EOFError, ValueError) as exc:
        raise DataFormatError(f"{p}: cannot be decompressed ({exc})") from exc
    return p.read_bytes()


def _collect_expat(p: Path, col: _Collector) -> None:
    """One expat pass over an OSM XML file, then the same selection as the pyosmium filters.

    The element handler only records attributes as strings; ids and coordinates are converted
    with numpy afterwards, and only for the objects that are kept.
    """
    from xml.parsers import expat

    node_ids: list[str] = []
    node_lon: list[str] = []
    node_lat: list[str] = []
    tagged_nodes: list[tuple[int, dict[str, str]]] = []  # (node index, tags) of nodes with tags
    ways: list[tuple[int, list[str], dict[str, str]]] = []
    relations: list[tuple[list[tuple[str, str, str]], dict[str, str]]] = []
    cur: list = [None, None]  # the open object's child list (nd refs / members) and tag dict

    def start(name: str, a: dict[str, str]) -> None:
        if name == "nd":
            cur[0].append(a["ref"])
        elif name == "tag":
            cur[1][a["k"]] = a["v"]
        elif name == "node":
            i = -1  # a node without a position (e.g. a deleted one) has no index
            if "lon" in a or "lat" in a:
                i = len(node_ids)
                node_ids.append(a["id"])
                node_lon.append(a["lon"])
                node_lat.append(a["lat"])
            tags: dict[str, str] = {}
            cur[0], cur[1] = None, tags
            tagged_nodes.append((i, tags))
        elif name == "way":
            refs: list[str] = []
            tags = {}
            ways.append((int(a["id"]), refs, tags))
            cur[0], cur[1] = refs, tags
        elif name == "member":
            cur[0].append((a["type"][:1], a["ref"], a.get("role", "")))
        elif name == "relation":
            members: list[tuple[str, str, str]] = []
            tags = {}
            relations.append((members, tags))
            cur[0], cur[1] = members, tags

    parser = expat.ParserCreate()
    parser.StartElementHandler = start
    try:
        parser.Parse(_open_xml(p), True)
    except expat.ExpatError as exc:
        raise DataFormatError(f"{p}: cannot be read as OSM XML ({exc})") from exc
    except (KeyError, ValueError, AttributeError, TypeError) as exc:
        raise DataFormatError(
            f"{p}: line {parser.CurrentLineNumber}: an OSM element lacks an attribute or is out of "
            f"place ({exc!r})"
        ) from exc
    try:
        # fixed-point coordinates (1e-7 degrees, as libosmium stores them); the last row stands
        # for nodes that are not in the file
        x = np.append(
            np.rint(np.asarray(node_lon, dtype=np.float64) * 1e7).astype(np.int64),
            _UNDEFINED_COORDINATE,
        )
        y = np.append(
            np.rint(np.asarray(node_lat, dtype=np.float64) * 1e7).astype(np.int64),
            _UNDEFINED_COORDINATE,
        )
    except ValueError as exc:
        raise DataFormatError(f"{p}: a node's lon/lat is not a number ({exc})") from exc
    index = {n: i for i, n in enumerate(node_ids)}
    network, context, areas, counts, dropped = (
        col.network,
        col.context,
        col.areas,
        col.counts,
        col.dropped,
    )
    net_refs: list[str] = []
    for way_id, refs, tags in ways:
        if "highway" in tags:
            counts["highway_ways"] += 1
            if in_network(tags, network):
                net_refs += refs
                col.add_network_way(way_id, tags, len(refs))  # a fresh dict per way
            else:
                dropped[f"way_not_in_{network}_network"] += 1
        if (
            context
            and len(refs) >= 4
            and refs[0] == refs[-1]
            and ("highway" in tags or any(k in tags for k in _AREA_KEYS))
        ):
            idx = [index.get(r, -1) for r in refs]
            areas.add_way_xy(tags, [None if i < 0 else (int(x[i]), int(y[i])) for i in idx])
    idx = np.fromiter((index.get(r, -1) for r in net_refs), np.int64, len(net_refs))
    col.refs = np.asarray(net_refs, dtype=np.int64)
    col.xs, col.ys = x[idx], y[idx]
    if not context:
        return
    for i, tags in tagged_nodes:
        if tags and i >= 0 and any(k in tags for k in _POI_NODE_KEYS):
            cat = classify_poi(tags)
            if cat >= 0:
                col.poi_xy.append((int(x[i]) / 1e7, int(y[i]) / 1e7, cat))
    for members, tags in relations:
        if any(k in tags for k in _AREA_KEYS):
            areas.add_relation(tags, ((t, int(r), role) for t, r, role in members))
    if areas.rel_members:  # outer member ways of multipolygons, in file order (as pyosmium's pass)
        for way_id, refs, _ in ways:
            if way_id in areas.rel_members:
                idx = (index.get(r, -1) for r in refs)
                areas.add_member_way(way_id, [(int(x[i]), int(y[i])) for i in idx if i >= 0])


class _Areas:
    """Area features (closed ways, multipolygon relations) as WKB lines + category.

    The geometry is built in C++ (``WKBFactory.create_linestring``) and reduced with shapely in
    one vectorised call; an area's position is the centroid of its boundary line (of its outer
    member ways, length-weighted, for a relation).
    """

    def __init__(self) -> None:
        osmium = _osmium()
        self._invalid_location = osmium.InvalidLocationError
        self.wkb = osmium.geom.WKBFactory()
        self.kind: list[bool] = []  # True: land use, False: POI
        self.cat: list[int] = []
        self.lines: list[str] = []
        self.owner: list[int] = []  # feature index of each line
        self.rel_members: dict[int, list[int]] = {}  # member way id -> feature indices
        self.member_owner: list[int] = []
        self.member_xy: list[list[tuple[int, int]]] = []
        self.n_unlocated = 0

    @staticmethod
    def _classify(tags) -> tuple[bool, int]:
        lu = classify_landuse(tags)
        return (True, lu) if lu >= 0 else (False, classify_poi(tags))

    def add_way(self, tags, nodes) -> None:
        is_lu, cat = self._classify(tags)
        if cat < 0:
            return
        try:
            line = self.wkb.create_linestring(nodes)
        except (RuntimeError, self._invalid_location):
            self.n_unlocated += 1
            return
        self.owner.append(len(self.cat))
        self.lines.append(line)
        self.kind.append(is_lu)
        self.cat.append(cat)

    def add_way_xy(self, tags, xy: list[tuple[int, int] | None]) -> None:
        """A closed way given as fixed-point node coordinates (``None``: node not in the file)."""
        is_lu, cat = self._classify(tags)
        if cat < 0:
            return
        if any(c is None for c in xy):
            self.n_unlocated += 1
            return
        line = [c for i, c in enumerate(xy) if i == 0 or c != xy[i - 1]]  # as WKBFactory: unique
        if len(line) < 2:
            self.n_unlocated += 1
            return
        self.member_owner.append(len(self.cat))
        self.member_xy.append(line)
        self.kind.append(is_lu)
        self.cat.append(cat)

    def add_relation(self, tags, members) -> None:
        """A relation's tags and its ``(type letter, ref, role)`` members."""
        if tags.get("type") != "multipolygon":
            return
        is_lu, cat = self._classify(tags)
        if cat < 0:
            return
        f = len(self.cat)
        for mtype, ref, role in members:
            if mtype == "w" and role in ("outer", ""):
                self.rel_members.setdefault(ref, []).append(f)
        self.kind.append(is_lu)
        self.cat.append(cat)

    def read_members(self, path: Path, store) -> None:
        """Second, ways-only pass (when relations need it): their outer member ways, located
        with the node locations the first pass stored."""
        osmium = _osmium()
        fp = osmium.FileProcessor(str(path), osmium.osm.WAY).with_filter(
            osmium.filter.IdFilter(list(self.rel_members))
        )
        for w in fp:
            xy = []
            for nd in w.nodes:
                try:
                    loc = store.get(nd.ref)
                except KeyError:
                    continue
                xy.append((loc.x, loc.y))
            self.add_member_way(w.id, xy)

    def add_member_way(self, way_id: int, xy: list[tuple[int, int]]) -> None:
        """The located nodes of an outer member way, for every relation that holds it."""
        if len(xy) < 2:
            return
        for f in self.rel_members.get(way_id, ()):
            self.member_owner.append(f)
            self.member_xy.append(xy)

    def context_points(self, poi_xy, dropped) -> ContextPoints:
        shapely = _shapely()
        pts = np.asarray(poi_xy, dtype=np.float64).reshape(-1, 3)
        n_feat = len(self.cat)
        lon = np.full(n_feat, np.nan)
        lat = np.full(n_feat, np.nan)
        geoms = _linestrings_from_hex_wkb(self.lines)
        owner = np.asarray(self.owner, dtype=np.int64)
        if self.member_xy:
            sizes = [len(xy) for xy in self.member_xy]
            coords = np.asarray([p for xy in self.member_xy for p in xy], dtype=np.float64) / 1e7
            idx = np.repeat(np.arange(len(sizes)), sizes)
            geoms = np.concatenate([geoms, shapely.linestrings(coords, indices=idx)])
            owner = np.concatenate([owner, np.asarray(self.member_owner, dtype=np.int64)])
        if len(geoms):
            cent = shapely.get_coordinates(shapely.centroid(geoms))
            w = np.maximum(shapely.length(geoms), 1e-12)
            total = np.bincount(owner, weights=w, minlength=n_feat)
            has = total > 0
            lon[has] = (
                np.bincount(owner, weights=w * cent[:, 0], minlength=n_feat)[has] / total[has]
            )
            lat[has] = (
                np.bincount(owner, weights=w * cent[:, 1], minlength=n_feat)[has] / total[has]
            )
        ok = np.isfinite(lon)
        n_bad = self.n_unlocated + int((~ok).sum())
        if n_bad:
            dropped["area_without_located_nodes"] += n_bad
        kind = np.asarray(self.kind, dtype=bool)[ok]
        cat = np.asarray(self.cat, dtype=np.int64)[ok]
        lon, lat = lon[ok], lat[ok]
        return ContextPoints(
            poi_lon=np.concatenate([pts[:, 0], lon[~kind]]),
            poi_lat=np.concatenate([pts[:, 1], lat[~kind]]),
            poi_category=np.concatenate([pts[:, 2].astype(np.int64), cat[~kind]]),
            landuse_lon=lon[kind],
            landuse_lat=lat[kind],
            landuse_category=cat[kind],
        )


def _linestrings_from_hex_wkb(lines: list[str]) -> np.ndarray:
    """Shapely linestrings of hex WKB linestrings (as ``osmium.geom.WKBFactory`` writes them).

    Decodes the coordinates with numpy and builds all lines in one vectorised shapely call: the
    same geometries as ``shapely.from_wkb``, several times faster on thousands of small lines.
    """
    if not lines:
        return np.empty(0, dtype=object)
    shapely = _shapely()
    raw = [bytes.fromhex(h) for h in lines]
    if any(b[0] != 1 or int.from_bytes(b[1:5], "little") != 2 for b in raw):
        return shapely.from_wkb(np.asarray(lines, dtype=object))  # not little-endian 2D lines
    sizes = np.fromiter((int.from_bytes(b[5:9], "little") for b in raw), np.int64, len(raw))
    coords = np.frombuffer(b"".join(b[9:] for b in raw), dtype="<f8").reshape(-1, 2)
    return shapely.linestrings(coords, indices=np.repeat(np.arange(len(raw)), sizes))


def _split_ways(way_ids, way_tags, directions, lengths, refs, xs, ys, dropped) -> RawWays:
    """Column arrays of the ways, split at nodes missing from the file, duplicates collapsed."""
    n_way = len(way_ids)
    refs_a = np.asarray(refs, dtype=np.int64)
    x = np.asarray(xs, dtype=np.int64)
    y = np.asarray(ys, dtype=np.int64)
    way_of = np.repeat(np.arange(n_way), np.asarray(lengths, dtype=np.int64))
    valid = x != _UNDEFINED_COORDINATE
    n_missing = int((~valid).sum())
    if n_missing:
        dropped["way_node_missing_from_file"] += n_missing
    # a new part starts at each way's first node and after each missing node
    first = np.ones(len(refs_a), dtype=bool)
    first[1:] = way_of[1:] != way_of[:-1]
    after_gap = np.zeros(len(refs_a), dtype=bool)
    after_gap[1:] = ~valid[:-1]
    part = np.cumsum(first | after_gap) - 1
    keep = valid.copy()
    # consecutive duplicate node ids (within a part) are one node, as in OSMnx
    dup = np.zeros(len(refs_a), dtype=bool)
    dup[1:] = (refs_a[1:] == refs_a[:-1]) & (part[1:] == part[:-1]) & valid[:-1]
    keep &= ~dup
    part, refs_a, x, y = part[keep], refs_a[keep], x[keep], y[keep]
    # renumber parts, drop those with fewer than two nodes
    _, start, size = np.unique(part, return_index=True, return_counts=True)
    ok = size >= 2
    part_way = way_of[keep][start]
    short_ways = np.setdiff1d(np.arange(n_way), part_way[ok])
    if len(short_ways):
        dropped["way_fewer_than_2_located_nodes"] += len(short_ways)
    node_ok = np.repeat(ok, size)
    refs_a, x, y = refs_a[node_ok], x[node_ok], y[node_ok]
    sizes = size[ok]
    pw = part_way[ok]
    ptr = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=ptr[1:])
    return RawWays(
        way_ids=np.asarray(way_ids, dtype=np.int64)[pw],
        tags=[way_tags[i] for i in pw.tolist()],
        direction=np.asarray(directions, dtype=np.int8)[pw],
        ptr=ptr,
        refs=refs_a,
        lon=x / 1e7,
        lat=y / 1e7,
    )
