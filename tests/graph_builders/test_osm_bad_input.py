"""osm.road_graph on bad input: each case is a clear error naming the file or the option."""

from __future__ import annotations

import pytest

from graph_builders import osm
from stgraph.errors import DataFormatError

MONACO = "osm-monaco/monaco.osm.pbf"


def test_empty_pbf_names_the_file(tmp_path):
    path = tmp_path / "empty.osm.pbf"
    path.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty.osm.pbf.*empty"):
        osm.road_graph(path)


def test_truncated_pbf_names_the_file(data_dir, tmp_path):
    data = (data_dir / MONACO).read_bytes()
    path = tmp_path / "truncated.osm.pbf"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(DataFormatError, match=r"truncated\.osm\.pbf.*cannot be read as OSM"):
        osm.road_graph(path)


def test_corrupt_xml_names_the_file(tmp_path):
    path = tmp_path / "broken.osm"
    path.write_text(
        '<?xml version="1.0"?>\n<osm version="0.6">\n <node id="1" lat="1"', encoding="utf-8"
    )
    with pytest.raises(DataFormatError, match="broken.osm"):
        osm.road_graph(path)


def test_file_without_roads(tmp_path):
    path = tmp_path / "no_roads.osm"
    path.write_text(
        '<?xml version="1.0"?>\n<osm version="0.6">\n'
        ' <node id="1" lat="43.73" lon="7.42"/>\n <node id="2" lat="43.74" lon="7.43"/>\n'
        ' <way id="5"><nd ref="1"/><nd ref="2"/><tag k="building" v="yes"/></way>\n</osm>\n',
        encoding="utf-8",
    )
    with pytest.raises(DataFormatError, match=r"no_roads.osm: no way of the 'drive' network"):
        osm.road_graph(path)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.osm.pbf"):
        osm.road_graph(tmp_path / "nowhere.osm.pbf")
    other = tmp_path / "roads.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="roads.csv: unknown OSM file type"):
        osm.road_graph(other)


def test_bad_options(data_dir):
    path = data_dir / "osm-west-oakland/West-Oakland.osm.bz2"
    with pytest.raises(ValueError, match="network='boat'"):
        osm.road_graph(path, network="boat")
    with pytest.raises(ValueError, match="node='edge'"):
        osm.road_graph(path, node="edge")
    with pytest.raises(ValueError, match="bbox"):
        osm.road_graph(path, bbox=(1.0, 2.0, 0.5, 3.0))
    with pytest.raises(ValueError, match="speed_fallback"):
        osm.road_graph(path, speed_fallback="guess")


def test_parse_speed_units_and_defaults():
    assert osm.parse_speed("50") == (50.0, "tagged")
    assert osm.parse_speed("30 mph")[0] == pytest.approx(48.28032)
    assert osm.parse_speed("50;70") == (60.0, "tagged")
    assert osm.parse_speed("FI:urban") == (50.0, "implicit")
    assert osm.parse_speed("DE:zone30") == (30.0, "implicit")
    assert osm.parse_speed("signals") == (None, "unparseable")
    assert osm.parse_speed(None) == (None, "missing")


def test_unparseable_speed_is_defaulted_and_counted(tmp_path):
    path = tmp_path / "speeds.osm"
    nodes = "".join(f' <node id="{i}" lat="43.73{i}" lon="7.42{i}"/>\n' for i in range(1, 5))
    path.write_text(
        '<?xml version="1.0"?>\n<osm version="0.6">\n'
        + nodes
        + ' <way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/>'
        '<tag k="highway" v="residential"/><tag k="maxspeed" v="fast"/></way>\n'
        ' <way id="11"><nd ref="3"/><nd ref="4"/>'
        '<tag k="highway" v="residential"/><tag k="maxspeed" v="40"/></way>\n</osm>\n',
        encoding="utf-8",
    )
    g = osm.road_graph(path, simplify=False, context=False)
    speed = g.edge_attr[:, g.meta["edge_attr_names"].index("speed_kph")]
    # the unparseable way takes the mean of the tagged residential ways (40), and it is counted
    assert sorted(set(speed.tolist())) == [40.0]
    assert g.meta["defaulted"]["maxspeed_unparseable"] == 1
    assert g.meta["defaulted"]["speed_kph_from_class_mean_in_extract"] == 1
    table = osm.road_graph(path, simplify=False, context=False, speed_fallback="class")
    s2 = table.edge_attr[:, 1].tolist()
    assert sorted(set(s2)) == [osm.DEFAULT_SPEED_KPH["residential"], 40.0]
