"""Build maps a person can read (dense graphs faded or thinned, ticks that do not overlap) and
the sparse default proximity graph of sensors (the registry's kNN recipe)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from graph_builders import proximity
from graph_builders.plot import _edge_alpha, _edge_lines, _thin, plot_graph
from stgraph import datasets
from stgraph.datasets._graphs import proximity_edges
from stgraph.utils.plotting import map_figsize, style_map_axes

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "build"


@pytest.fixture(scope="module")
def los(data_dir):
    return datasets.load("los-loop")


def test_sensor_default_is_the_registry_recipe(data_dir):
    """kNN (k=8, directed) with DCRNN-sigma Gaussian weights: the registry's Melbourne graph."""
    g = datasets.load("melbourne-pedestrian", graph="knn", k=8)
    pos = g.pos.double().numpy()
    ei, w, info = proximity_edges(pos[:, 0], pos[:, 1], method="knn", k=8)
    e = proximity.connect(g.pos, **proximity.SENSOR_DEFAULTS)
    assert torch.equal(e.edge_index, ei) and torch.equal(e.edge_index, g.edge_index)
    torch.testing.assert_close(e.edge_weight, w, rtol=1e-5, atol=1e-6)
    assert e.summary["sigma"] == pytest.approx(info["sigma_m"], rel=1e-5)


def test_los_loop_build_default_is_sparse(los):
    """Before: the DCRNN threshold linked 21,910 pairs; after: 1,656 edges, 75 % of them in the
    registry's T-GCN graph (2,626 edges)."""
    dense = proximity.connect(los.pos, method="gaussian")
    sparse = proximity.connect(los.pos, **proximity.SENSOR_DEFAULTS)
    assert dense.edge_index.size(1) == 21910 and sparse.edge_index.size(1) == 8 * 207
    ref = set(map(tuple, los.edge_index.t().tolist()))
    hits = sum(tuple(p) in ref for p in sparse.edge_index.t().tolist())
    assert hits / sparse.edge_index.size(1) > 0.7
    opts = yaml.safe_load((CONFIGS / "los-loop.yaml").read_text())["sources"][0]["options"]
    assert {k: opts[k] for k in proximity.SENSOR_DEFAULTS} == proximity.SENSOR_DEFAULTS


def test_dense_graphs_fade_and_thin(los, tmp_path):
    lines, n_edges = _edge_lines(los, los.pos.double().numpy())
    assert n_edges == 2626 and len(lines) == 1313  # i -> j and j -> i drawn once
    dense = proximity.connect_graph(los, method="gaussian")
    lines, _ = _edge_lines(dense, dense.pos.double().numpy())
    thinned, cut = _thin(lines, 5000)
    assert cut and len(thinned) == 5000 and _thin(lines, 5000)[0].tolist() == thinned.tolist()
    assert _edge_alpha(300) == 0.9 and _edge_alpha(5000) < 0.35 and _edge_alpha(10**6) == 0.1
    out = plot_graph(dense, tmp_path / "dense.png", color_by="speed", vmin=0, vmax=70)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _overlaps(boxes) -> bool:
    boxes = sorted(boxes, key=lambda b: b.x0)
    return any(
        a.x1 > b.x0 and a.y1 > b.y0 and b.y1 > a.y0 for a, b in zip(boxes, boxes[1:], strict=False)
    )


def test_map_ticks_do_not_overlap(data_dir):
    """Central Helsinki spans 0.02 deg: the default locator's 24.9375-style labels overlapped."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from graph_builders import osm

    g = osm.road_graph(data_dir / "osm-helsinki" / "Helsinki.osm.pbf", context=False)
    lon, lat = g.pos[:, 0].double().numpy(), g.pos[:, 1].double().numpy()
    fig = Figure(figsize=map_figsize(lon, lat))
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(lon, lat)
    style_map_axes(ax, lon, lat)
    fig.tight_layout()
    canvas.draw()
    r = canvas.get_renderer()
    xl = [t for t in ax.get_xticklabels() if t.get_text()]
    yl = [t for t in ax.get_yticklabels() if t.get_text()]
    assert len(xl) >= 3 and len(yl) >= 3
    assert not _overlaps([t.get_window_extent(r) for t in xl])
    texts = [t.get_text() for t in xl]
    assert all(len(s.split(".")[1]) <= 3 for s in texts), texts  # 24.935, not 24.9375
