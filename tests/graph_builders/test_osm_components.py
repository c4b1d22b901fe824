"""What osm.road_graph reports for the components it leaves out: graph nodes and edges (what
``retain_all=True`` keeps beyond the largest component), not raw OSM way nodes (issue 15)."""

from __future__ import annotations

import pytest

from graph_builders import osm


@pytest.mark.parametrize("name", ["osm-monaco/monaco.osm.pbf", "osm-andorra/andorra.osm.pbf"])
def test_outside_largest_component_counts_graph_nodes(data_dir, name):
    path = data_dir / name
    g = osm.road_graph(path, context=False)
    everything = osm.road_graph(path, context=False, retain_all=True)
    dropped, counts = g.meta["dropped"], g.meta["counts"]
    assert dropped["node_outside_largest_component"] == everything.num_nodes - g.num_nodes > 0
    assert (
        dropped["edge_outside_largest_component"]
        == everything.edge_index.shape[1] - g.edge_index.shape[1]
    )
    # the raw OSM way nodes of those components are reported apart, under their own name
    raw = counts["osm_nodes_outside_largest_component"]
    assert raw > dropped["node_outside_largest_component"]
    assert (
        counts["osm_segments_outside_largest_component"]
        >= dropped["edge_outside_largest_component"]
    )


def test_graph_counts_unchanged_on_monaco(data_dir):
    # the road graph itself (checked against OSMnx elsewhere) keeps its nodes and edges
    g = osm.road_graph(data_dir / "osm-monaco" / "monaco.osm.pbf", context=False)
    assert (g.num_nodes, g.edge_index.shape[1]) == (1274, 2543)
    unsimplified = osm.road_graph(
        data_dir / "osm-monaco" / "monaco.osm.pbf", context=False, simplify=False
    )
    full = osm.road_graph(
        data_dir / "osm-monaco" / "monaco.osm.pbf", context=False, simplify=False, retain_all=True
    )
    d = unsimplified.meta["dropped"]
    assert d["node_outside_largest_component"] == full.num_nodes - unsimplified.num_nodes
