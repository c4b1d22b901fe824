"""Edge weights that are distances reach the models as Gaussian affinities (DCRNN's kernel)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import yaml
from torch_geometric.loader import DataLoader

from graph_builders import osm
from stgraph.baselines.dcrnn import DCRNN
from stgraph.data import DISTANCE_M, SlidingWindows, STGraph, gaussian_affinity, model_edge_weights
from stgraph.nn import STFM

CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[2] / "configs" / "model"


@pytest.fixture(scope="module")
def road_series(data_dir) -> STGraph:
    """The West Oakland road graph (lengths in metres) with a day of 5-minute readings per node."""
    road = osm.road_graph(data_dir / "osm-west-oakland" / "West-Oakland.osm.bz2")
    n, t = road.num_nodes, 40
    gen = torch.Generator().manual_seed(0)
    x = (
        50
        + 10 * torch.sin(torch.arange(t) / 5.0).view(1, -1, 1)
        + torch.randn(n, t, 1, generator=gen)
    )
    meta = copy.deepcopy(road.meta)
    meta.update(variables=[{"name": "speed", "unit": "mph"}], interval=300)
    return STGraph(
        x=x,
        time=1_600_000_000 + 300 * torch.arange(t),
        pos=road.pos,
        edge_index=road.edge_index,
        edge_weight=road.edge_weight,
        meta=meta,
    )


def test_gaussian_affinity_follows_the_formula():
    d = torch.tensor([100.0, 200.0, 400.0, 0.0])
    sigma = float(np.std([100.0, 200.0, 400.0, 0.0]))
    assert torch.allclose(gaussian_affinity(d), torch.exp(-((d / sigma) ** 2)))
    assert torch.allclose(gaussian_affinity(d, sigma=100.0), torch.exp(-((d / 100.0) ** 2)))
    w = gaussian_affinity(d)
    assert w[3] == 1 and bool((w[:-1].diff() < 0).all())  # nearer is stronger
    assert torch.equal(
        gaussian_affinity(torch.full((3,), 50.0)), torch.full((3,), float(np.exp(-1.0)))
    )
    assert torch.equal(gaussian_affinity(torch.zeros(2)), torch.ones(2))


def test_road_graph_declares_distances_and_models_read_affinities(road_series):
    g = road_series
    assert g.meta["edge_weight"] == DISTANCE_M and float(g.edge_weight.min()) > 0
    w, dw = model_edge_weights(g)
    d = g.edge_weight.double()
    assert dw is None
    assert torch.allclose(w.double(), torch.exp(-((d / d.std(unbiased=False)) ** 2)), atol=1e-6)
    # a batch of windows of the graph: the same affinities, repeated per window
    batch = next(iter(DataLoader(SlidingWindows(g, 12, 3), batch_size=3)))
    bw, _ = model_edge_weights(batch)
    assert torch.allclose(bw, w.repeat(3), atol=1e-6)
    # affinities pass through untouched
    aff = g.clone()
    aff.meta = {k: v for k, v in g.meta.items() if k != "edge_weight"}
    assert model_edge_weights(aff)[0] is aff.edge_weight


def test_a_batch_mixing_distances_and_affinities_raises(road_series):
    other = road_series.clone()
    other.meta = {**road_series.meta, "edge_weight": "gaussian"}
    windows = [SlidingWindows(road_series, 12, 3)[0], SlidingWindows(other, 12, 3)[0]]
    batch = next(iter(DataLoader(windows, batch_size=2)))
    with pytest.raises(ValueError, match="distances and affinities"):
        model_edge_weights(batch)


@pytest.mark.parametrize("kind", ["stfm", "dcrnn"])
def test_models_see_the_kernel_not_the_metres(road_series, kind):
    """Same outputs as on the graph whose weights are the kernel already; different from
    reading the metres as affinities."""
    torch.manual_seed(0)
    if kind == "stfm":
        model = STFM(**yaml.safe_load((CONFIGS / "tiny.yaml").read_text())).eval()
    else:
        model = DCRNN(12, 3, 1, hidden=8).fit(road_series, (0, 30)).eval()
    as_kernel = road_series.clone()
    as_kernel.meta = {k: v for k, v in road_series.meta.items() if k != "edge_weight"}
    as_kernel.edge_weight = model_edge_weights(road_series)[0]
    as_metres = as_kernel.clone()
    as_metres.edge_weight = road_series.edge_weight

    def run(g):
        batch = next(iter(DataLoader(SlidingWindows(g, 12, 3), batch_size=2)))
        with torch.no_grad():
            return model(batch)

    out = run(road_series)
    assert torch.allclose(out, run(as_kernel), atol=1e-5)
    assert not torch.allclose(out, run(as_metres), atol=1e-4)


def test_affinity_once_per_graph_and_carried_by_windows(road_series):
    """AddEdgeAffinity writes the kernel of the whole graph's distances; windows and batches
    carry that tensor instead of recomputing a kernel of their own edges."""
    from stgraph.data import AddEdgeAffinity

    g = road_series
    t = AddEdgeAffinity()(g)
    assert g.edge_affinity is None  # PyG's contract: the input is left as it was
    d = g.edge_weight.double()
    torch.testing.assert_close(
        t.edge_affinity.double(), torch.exp(-((d / d.std(unbiased=False)) ** 2)), atol=1e-6, rtol=0
    )
    windows = SlidingWindows(t, 12, 3)
    assert windows[5].edge_affinity is t.edge_affinity
    batch = next(iter(DataLoader(windows, batch_size=3)))
    bw, _ = model_edge_weights(batch)
    assert torch.equal(bw, t.edge_affinity.repeat(3))
    # a stored affinity wins over the weights: the kernel is not recomputed from the batch
    batch.edge_affinity = torch.full_like(batch.edge_affinity, 0.5)
    assert bool((model_edge_weights(batch)[0] == 0.5).all())
    # graphs whose weights are affinities already get no copy
    aff = g.clone()
    aff.meta = {k: v for k, v in g.meta.items() if k != "edge_weight"}
    assert AddEdgeAffinity()(aff).edge_affinity is None


def test_dynamic_affinity_sigma_of_the_whole_graph_sliced_per_window():
    from stgraph.data import AddEdgeAffinity

    gen = torch.Generator().manual_seed(0)
    n, t = 6, 20
    dyn = torch.randint(0, n, (2, 60), generator=gen)
    dist = 100 + 900 * torch.rand(60, generator=gen)
    g = STGraph(
        x=torch.randn(n, t, 1, generator=gen),
        time=300 * torch.arange(t),
        dyn_edge_index=dyn,
        dyn_edge_time=torch.arange(60) % t,
        dyn_edge_weight=dist,
        meta={"dyn_edge_weight": DISTANCE_M, "interval": 300},
    )
    tg = AddEdgeAffinity()(g)
    torch.testing.assert_close(tg.dyn_edge_affinity, gaussian_affinity(dist))
    w = SlidingWindows(tg, 4, 2)[3]  # steps 3..6: the dynamic edges of those steps
    keep = (g.dyn_edge_time >= 3) & (g.dyn_edge_time < 7)
    assert torch.equal(w.dyn_edge_affinity, tg.dyn_edge_affinity[keep])
    assert torch.equal(model_edge_weights(w)[1], tg.dyn_edge_affinity[keep])
    sliced = tg.slice_time(3, 7)
    assert torch.equal(sliced.dyn_edge_affinity, tg.dyn_edge_affinity[keep])
    # select_nodes drops what was derived from the whole graph
    assert tg.select_nodes([0, 1, 2]).dyn_edge_affinity is None
