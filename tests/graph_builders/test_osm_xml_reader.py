"""The expat reader of OSM XML gives exactly what the pyosmium reader gives, and fails as clearly."""

from __future__ import annotations

import bz2

import numpy as np
import pytest

from graph_builders import osm
from graph_builders.osm import reader
from stgraph.errors import DataFormatError

WEST_OAKLAND = "osm-west-oakland/West-Oakland.osm.bz2"

# Single and double quotes, an escaped tag value, a way through a node missing from the file
# (split there), a closed land-use way, a multipolygon whose outer way carries no tags, a POI node,
# a bus-stop node without POI keys (not a POI for either reader: the node filter keys exclude
# it), a closed highway way tagged as a railway halt (a transit POI for both), and a node
# given only by its id (as in an osmChange delete).
HAND_XML = """<?xml version='1.0' encoding='UTF-8'?>
<osm version="0.6" generator="hand">
 <bounds minlat="60.16" minlon="24.93" maxlat="60.18" maxlon="24.96"/>
 <node id="1" lat="60.1700000" lon="24.9400000"/>
 <node id='2' lon='24.9410000' lat='60.1705000'/>
 <node id="3" lat="60.1710000" lon="24.9420000"><tag k="amenity" v="cafe"/></node>
 <node id="4" lat="60.1715000" lon="24.9430000"><tag k="highway" v="bus_stop"/></node>
 <node id="5" lat="60.1720000" lon="24.9440000"/>
 <node id="6" lat="60.1700000" lon="24.9500000"/>
 <node id="7" lat="60.1700000" lon="24.9510000"/>
 <node id="8" lat="60.1710000" lon="24.9510000"/>
 <node id="9" lat="60.1710000" lon="24.9500000"/>
 <node id="10" lat="60.1650000" lon="24.9350000"/>
 <node id="11" lat="60.1650000" lon="24.9360000"/>
 <node id="12" lat="60.1660000" lon="24.9360000"/>
 <node id="13" version="2"/>
 <way id="100"><nd ref="1"/><nd ref="2"/><nd ref="3"/><tag k="highway" v="primary"/>
  <tag k="name" v="Mannerheimintie &amp; &quot;Esplanadi&quot;"/><tag k="maxspeed" v="40"/></way>
 <way id="101"><nd ref="3"/><nd ref="999"/><nd ref="4"/><nd ref="5"/><nd ref="5"/>
  <tag k="highway" v="residential"/><tag k="oneway" v="-1"/></way>
 <way id="102"><nd ref="5"/><nd ref="1"/><tag k="highway" v="footway"/></way>
 <way id="103"><nd ref="6"/><nd ref="7"/><nd ref="8"/><nd ref="9"/><nd ref="6"/>
  <tag k="landuse" v="residential"/></way>
 <way id="104"><nd ref="10"/><nd ref="11"/><nd ref="12"/><nd ref="10"/></way>
 <way id="105"><nd ref="6"/><nd ref="7"/><nd ref="8"/><nd ref="6"/>
  <tag k="highway" v="platform"/><tag k="railway" v="halt"/></way>
 <way id="106"><nd ref="1"/><nd ref="2"/><nd ref="13"/><nd ref="1"/><tag k="shop" v="bakery"/></way>
 <relation id="200"><member type="way" ref="104" role="outer"/>
  <member type="node" ref="3" role=""/><tag k="type" v="multipolygon"/><tag k="leisure" v="park"/></relation>
</osm>
"""


def _assert_same(a: reader.OSMExtract, b: reader.OSMExtract) -> None:
    for f in ("way_ids", "direction", "ptr", "refs", "lon", "lat"):
        np.testing.assert_array_equal(getattr(a.ways, f), getattr(b.ways, f), err_msg=f)
    assert a.ways.tags == b.ways.tags
    assert a.dropped == b.dropped and a.counts == b.counts
    assert (a.context is None) == (b.context is None)
    if a.context is not None:
        for f in a.context.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(a.context, f), getattr(b.context, f), err_msg=f)


@pytest.mark.parametrize("context", [True, False])
def test_expat_reads_west_oakland_like_pyosmium(data_dir, context):
    path = data_dir / WEST_OAKLAND
    a = reader.read_osm(path, network="drive", context=context, engine="pyosmium")
    b = reader.read_osm(path, network="drive", context=context, engine="expat")
    _assert_same(a, b)
    assert b.counts["network_ways"] == 17 and b.counts["highway_ways"] == 31
    if context:
        assert b.counts["poi_features"] > 0 and b.counts["landuse_features"] > 0


@pytest.mark.parametrize("suffix", [".osm", ".osm.bz2"])
def test_expat_reads_hand_written_xml_like_pyosmium(tmp_path, suffix):
    path = tmp_path / f"hand{suffix}"
    raw = HAND_XML.encode("utf-8")
    path.write_bytes(bz2.compress(raw) if suffix.endswith(".bz2") else raw)
    a = reader.read_osm(path, network="drive", context=True, engine="pyosmium")
    b = reader.read_osm(path, network="drive", context=True, engine="expat")
    _assert_same(a, b)
    # what the file holds, checked by hand: way 101 is split at the missing node 999 (its first
    # part has one node and is dropped), the repeated node 5 is collapsed, the footway and the
    # platform are left out
    assert b.ways.way_ids.tolist() == [100, 101]
    assert b.ways.refs.tolist() == [1, 2, 3, 4, 5]
    assert b.ways.direction.tolist() == [0, -1]
    assert b.ways.tags[0]["name"] == 'Mannerheimintie & "Esplanadi"'
    assert b.dropped == {
        "way_not_in_drive_network": 2,
        "way_node_missing_from_file": 1,
        "area_without_located_nodes": 1,
    }
    ctx = b.context
    # POIs: the cafe node, then the platform (transit); the bakery has an unlocated node
    assert len(ctx.poi_category) == 2
    np.testing.assert_allclose(ctx.poi_lon[0], 24.942)
    # land use: the residential square (centroid of its boundary) and the park multipolygon
    assert len(ctx.landuse_category) == 2
    np.testing.assert_allclose([ctx.landuse_lon[0], ctx.landuse_lat[0]], [24.9505, 60.1705])


def test_auto_engine_reads_small_xml_with_expat_and_large_with_pyosmium(data_dir, monkeypatch):
    path = data_dir / WEST_OAKLAND
    used = []
    for name in ("_collect_expat", "_collect_pyosmium"):
        real = getattr(reader, name)
        monkeypatch.setattr(
            reader, name, lambda p, c, _r=real, _n=name: (used.append(_n), _r(p, c))
        )
    reader.read_osm(path, network="drive")
    monkeypatch.setattr(reader, "EXPAT_MAX_BYTES", path.stat().st_size - 1)
    reader.read_osm(path, network="drive")
    reader.read_osm(data_dir / "osm-monaco/monaco.osm.pbf", network="drive", context=False)
    assert used == ["_collect_expat", "_collect_pyosmium", "_collect_pyosmium"]


def test_expat_errors_name_the_file_and_line(data_dir, tmp_path):
    bad_bz2 = tmp_path / "cut.osm.bz2"
    bad_bz2.write_bytes((data_dir / WEST_OAKLAND).read_bytes()[:2000])
    with pytest.raises(DataFormatError, match=r"cut\.osm\.bz2: cannot be decompressed"):
        osm.road_graph(bad_bz2)
    half = tmp_path / "half.osm"
    half.write_text('<osm version="0.6">\n <node id="1" lat="60.17"/>\n</osm>\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"half\.osm: line 2: .*'lon'"):
        reader.read_osm(half, network="drive", engine="expat")
    nan = tmp_path / "nan.osm"
    nan.write_text(
        '<osm version="0.6">\n <node id="1" lat="60.17" lon="east"/>\n</osm>\n', encoding="utf-8"
    )
    with pytest.raises(DataFormatError, match=r"nan\.osm: a node's lon/lat is not a number"):
        reader.read_osm(nan, network="drive", engine="expat")
    with pytest.raises(ValueError, match="engine='fast'"):
        reader.read_osm(half, network="drive", engine="fast")
    with pytest.raises(ValueError, match="reads OSM XML"):
        reader.read_osm(data_dir / "osm-monaco/monaco.osm.pbf", network="drive", engine="expat")
