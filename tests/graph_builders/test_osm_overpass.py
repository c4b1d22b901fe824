"""road_graph(bbox=...) through OSMnx, offline: a local Overpass-compatible server on 127.0.0.1.

The server holds one of our extracts (the Helsinki PBF, converted to OSM XML with pyosmium and
read back) and answers OSMnx's Overpass QL queries: ``way``/``node``/``relation`` statements with
tag filters (``["k"]``, ``["k"="v"]``, ``["k"~"re"]``, ``["k"!~"re"]``) inside ``(poly:"...")``, and
the ``>`` recursion to way nodes. OSMnx 2 reads Overpass answers as JSON (``[out:json]``), so the
server answers in Overpass JSON.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import numpy as np
import osmium
import pytest
import shapely

from graph_builders import osm

pytestmark = pytest.mark.network
ox = pytest.importorskip("osmnx")

_STMT = re.compile(r"(node|way|relation)((?:\[[^\]]*\])*)\(poly:['\"]([^'\"]*)['\"]\)")
_FILT = re.compile(r"\[\s*(['\"])(.+?)\1\s*(?:(!~|~|!=|=)\s*(['\"])(.*?)\4)?\s*\]")


class _OSMStore:
    """The objects of an OSM file, in memory, queried like Overpass."""

    def __init__(self, path):
        self.nodes: dict[int, tuple[float, float, dict]] = {}
        self.ways: dict[int, tuple[list[int], dict]] = {}
        self.rels: dict[int, tuple[list[tuple[str, int, str]], dict]] = {}
        for o in osmium.FileProcessor(str(path)):
            tags = {t.k: t.v for t in o.tags}
            if o.is_node():
                self.nodes[o.id] = (o.location.lat, o.location.lon, tags)
            elif o.is_way():
                self.ways[o.id] = ([n.ref for n in o.nodes], tags)
            elif o.is_relation():
                self.rels[o.id] = ([(m.type, m.ref, m.role) for m in o.members], tags)
        self.requests: list[str] = []

    @staticmethod
    def _passes(tags: dict, filters: list[tuple]) -> bool:
        for key, op, value in filters:
            have = tags.get(key)
            if op is None:
                ok = have is not None
            elif op == "=":
                ok = have == value
            elif op == "!=":
                ok = have != value
            elif op == "~":
                ok = have is not None and re.search(value, have) is not None
            else:  # "!~": absent or not matching
                ok = have is None or re.search(value, have) is None
            if not ok:
                return False
        return True

    def _inside(self, ids, poly) -> set[int]:
        ids = [i for i in ids if i in self.nodes]
        if not ids:
            return set()
        lon = np.array([self.nodes[i][1] for i in ids])
        lat = np.array([self.nodes[i][0] for i in ids])
        return {i for i, ok in zip(ids, shapely.contains_xy(poly, lon, lat), strict=True) if ok}

    def query(self, ql: str) -> dict:
        self.requests.append(ql)
        nodes: set[int] = set()
        ways: set[int] = set()
        rels: set[int] = set()
        for kind, filt, coords in _STMT.findall(ql):
            nums = [float(x) for x in coords.split()]
            poly = shapely.Polygon(list(zip(nums[1::2], nums[0::2], strict=True)))  # lat lon pairs
            filters = [(m[1], m[2] or None, m[4]) for m in _FILT.findall(filt)]
            if kind == "node":
                cand = [i for i, (_, _, t) in self.nodes.items() if t and self._passes(t, filters)]
                nodes |= self._inside(cand, poly)
            elif kind == "way":
                for wid, (refs, tags) in self.ways.items():
                    if self._passes(tags, filters) and self._inside(refs, poly):
                        ways.add(wid)
            else:
                for rid, (members, tags) in self.rels.items():
                    if not self._passes(tags, filters):
                        continue
                    refs = [r for t, r, _ in members if t == "n"]
                    for t, r, _ in members:
                        if t == "w" and r in self.ways:
                            refs.extend(self.ways[r][0])
                    if self._inside(refs, poly):
                        rels.add(rid)
        # ">": recurse down to member ways and to every way's nodes
        for rid in rels:
            for t, r, _ in self.rels[rid][0]:
                if t == "w" and r in self.ways:
                    ways.add(r)
                elif t == "n" and r in self.nodes:
                    nodes.add(r)
        for wid in ways:
            nodes.update(r for r in self.ways[wid][0] if r in self.nodes)
        elements = []
        for i in sorted(nodes):
            lat, lon, tags = self.nodes[i]
            el = {"type": "node", "id": i, "lat": lat, "lon": lon}
            if tags:
                el["tags"] = tags
            elements.append(el)
        for i in sorted(ways):
            refs, tags = self.ways[i]
            elements.append(
                {
                    "type": "way",
                    "id": i,
                    "nodes": [r for r in refs if r in self.nodes],
                    "tags": tags,
                }
            )
        kinds = {"n": "node", "w": "way", "r": "relation"}
        for i in sorted(rels):
            members, tags = self.rels[i]
            elements.append(
                {
                    "type": "relation",
                    "id": i,
                    "members": [
                        {"type": kinds[t], "ref": r, "role": role} for t, r, role in members
                    ],
                    "tags": tags,
                }
            )
        return {"version": 0.6, "generator": "stgraph test server", "elements": elements}


@pytest.fixture(scope="module")
def overpass(tmp_path_factory):
    """Serve the Helsinki extract (PBF -> XML with pyosmium) on 127.0.0.1; point OSMnx at it."""
    xml = tmp_path_factory.mktemp("overpass") / "helsinki.osm"
    with osmium.SimpleWriter(str(xml)) as writer:
        for obj in osmium.FileProcessor(str(osm.helsinki_sample_path())):
            writer.add(obj)
    store = _OSMStore(xml)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
            if not self.path.rstrip("/").endswith("/interpreter"):
                self.send_error(404)
                return
            data = json.dumps(store.query(parse_qs(body)["data"][0])).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    saved = {
        k: getattr(ox.settings, k) for k in ("overpass_url", "overpass_rate_limit", "use_cache")
    }
    ox.settings.overpass_url = f"http://127.0.0.1:{server.server_address[1]}/api"
    ox.settings.overpass_rate_limit = False  # no /status round trip
    ox.settings.use_cache = False
    try:
        yield store
    finally:
        for k, v in saved.items():
            setattr(ox.settings, k, v)
        server.shutdown()
        thread.join(timeout=5)


BOX = (24.938, 60.166, 24.951, 60.177)  # (west, south, east, north) inside the extract


def test_bbox_through_osmnx_matches_local_file(overpass):
    g = osm.road_graph(bbox=BOX, network="drive", retain_all=True)
    assert any('way["highway"]' in q for q in overpass.requests)
    assert any("amenity" in q for q in overpass.requests)  # the context features were asked for
    # the same STGraph contract as a local file
    n, e = g.num_nodes, g.edge_index.size(1)
    assert n > 20 and e > 20
    assert g.x.shape == (n, 0, 0)
    assert g.meta["domain"] == "road" and g.meta["edge_attr_names"][:5] == [
        "length_m",
        "speed_kph",
        "lanes",
        "oneway",
        "road_class",
    ]
    pos = g.pos.double().numpy()
    assert (pos[:, 0] >= BOX[0]).all() and (pos[:, 0] <= BOX[2]).all()
    assert (pos[:, 1] >= BOX[1]).all() and (pos[:, 1] <= BOX[3]).all()
    assert (g.edge_weight > 0).all() and bool(g.edge_attr.isfinite().all())
    assert g.node_attr.shape[1] == len(g.meta["node_attr_names"]) > 1
    assert float(g.node_attr[:, g.meta["node_attr_names"].index("poi_food")].sum()) > 0
    assert "127.0.0.1" in g.meta["sources"][0]["url"]
    # the same intersections as the local file clipped to the same box (OSMnx keeps a few extra
    # nodes where a road leaves the box: it simplifies before its final clip)
    local = osm.road_graph(osm.helsinki_sample_path(), bbox=BOX, retain_all=True, context=False)
    a, b = set(g.meta["node_ids"]), set(local.meta["node_ids"])
    print(f"osmnx {len(a)} nodes, local {len(b)}, shared {len(a & b)}")
    assert len(a & b) / len(a | b) > 0.8
    # one-way streets stay one-way
    ow = g.edge_attr[:, 3].numpy() == 1
    ei = g.edge_index.numpy()
    pairs = set(zip(ei[0].tolist(), ei[1].tolist(), strict=True))
    assert ow.any() and sum((b_, a_) in pairs for a_, b_ in ei[:, ow].T.tolist()) < ow.sum()
