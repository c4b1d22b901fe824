"""Model-level tests of the STFM backbone: transfer across graphs, equivariance, masks, io."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file
from scipy.spatial import cKDTree
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from stgraph.data import SlidingWindows, STGraph
from stgraph.errors import STGraphValidationError
from stgraph.nn import STFM, AddGraphStructure, GraphStructure, compute_structure
from stgraph.tasks import build_model

T0 = 1330560000  # 2012-03-01 00:00 UTC
CONFIGS = __import__("pathlib").Path(__file__).resolve().parents[2] / "configs" / "model"


def knn_graph(pos: np.ndarray, k: int = 8) -> torch.Tensor:
    _, nb = cKDTree(pos).query(pos, k=k + 1)
    src = nb[:, 1:].reshape(-1)
    dst = np.repeat(np.arange(len(pos)), k)
    return torch.from_numpy(np.stack([src, dst])).long()


def make_graph(
    n: int, v: int, interval: int, steps: int = 30, seed: int = 0, dyn: bool = False
) -> STGraph:
    g = torch.Generator().manual_seed(seed)
    lon = -118.5 + 0.5 * torch.rand(n, generator=g, dtype=torch.float64)
    lat = 34.0 + 0.3 * torch.rand(n, generator=g, dtype=torch.float64)
    pos = torch.stack([lon, lat], 1).float()
    ei = knn_graph(pos.double().numpy(), k=min(8, n - 1))
    t = torch.arange(steps, dtype=torch.float32)
    x = 50 + 10 * torch.sin(t / 6).view(1, -1, 1) + torch.randn(n, steps, v, generator=g)
    mask = torch.rand(n, steps, v, generator=g) > 0.1
    names = ["speed", "flow", "occupancy", "temperature"][:v]
    kwargs = {}
    if dyn:
        kwargs = dict(
            dyn_edge_index=ei[:, :20],
            dyn_edge_time=torch.arange(20) % steps,
            dyn_edge_weight=torch.rand(20, generator=g),
        )
    return STGraph(
        x=x,
        mask=mask,
        time=T0 + torch.arange(steps) * interval,
        pos=pos,
        edge_index=ei,
        edge_weight=torch.rand(ei.size(1), generator=g) + 0.1,
        node_attr=torch.randn(n, 3, generator=g),
        meta={
            "variables": [{"name": s, "unit": ""} for s in names],
            "interval": interval,
            "node_attr_names": ["lanes", "speed_limit", "poi_count"],
        },
        **kwargs,
    )


def window_batch(g: STGraph, batch_size: int = 1, horizon: int = 12):
    return next(iter(DataLoader(SlidingWindows(g, 12, horizon), batch_size=batch_size)))


@pytest.fixture(scope="module")
def model() -> STFM:
    torch.manual_seed(0)
    m = STFM(
        **yaml.safe_load((CONFIGS / "tiny.yaml").read_text()), tasks=["reconstruction", "kriging"]
    )
    return m.eval()


@pytest.mark.parametrize("n", [20, 207, 2000])
@pytest.mark.parametrize("v", [1, 4])
@pytest.mark.parametrize("interval", [300, 3600])
def test_same_weights_any_graph_variables_interval(model, n, v, interval):
    g = make_graph(n, v, interval)
    b = window_batch(g, batch_size=2 if n < 2000 else 1)
    with torch.no_grad():
        y = model(b)
    assert y.shape == (b.num_nodes, 12, v)
    assert bool(torch.isfinite(y).all())
    # predictions are in original units (around the series' level of ~50), not normalised ones
    assert 20 < float(y.mean()) < 80


def test_parameters_do_not_depend_on_graph(model):
    shapes = {k: tuple(p.shape) for k, p in model.state_dict().items()}
    for n in (20, 207):
        with torch.no_grad():
            model(window_batch(make_graph(n, 2, 300)))
    assert {k: tuple(p.shape) for k, p in model.state_dict().items()} == shapes


def test_permutation_equivariance_over_nodes(model):
    g = make_graph(60, 2, 300, dyn=True)
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(1))
    inv = torch.argsort(perm)
    gp = g.select_nodes(perm)
    with torch.no_grad():
        y = model(window_batch(g, 1))
        yp = model(window_batch(gp, 1))
    assert torch.allclose(yp, y[perm], atol=1e-4), float((yp - y[perm]).abs().max())
    assert torch.allclose(yp[inv], y, atol=1e-4)


def test_variable_order_equivariance(model):
    g = make_graph(30, 3, 300)
    order = [2, 0, 1]
    g2 = STGraph(
        x=g.x[:, :, order],
        mask=g.mask[:, :, order],
        time=g.time,
        pos=g.pos,
        edge_index=g.edge_index,
        edge_weight=g.edge_weight,
        node_attr=g.node_attr,
        meta={**g.meta, "variables": [g.meta["variables"][i] for i in order]},
    )
    with torch.no_grad():
        y, y2 = model(window_batch(g)), model(window_batch(g2))
    assert torch.allclose(y2, y[:, :, order], atol=1e-4)


def test_masked_inputs_never_leak(model):
    g = make_graph(40, 2, 300)
    b = window_batch(g, 2)
    b2 = b.clone()
    b2.x = torch.where(b.mask, b.x, torch.full_like(b.x, 1e4))
    with torch.no_grad():
        assert torch.allclose(model(b), model(b2), atol=1e-5)
        # a node with no observation at all still gets a finite forecast (from its neighbours)
        b2.mask[5] = False
        assert bool(torch.isfinite(model(b2)[5]).all())


def test_dynamic_edges_change_only_with_dynamic_edges(model):
    g = make_graph(30, 1, 300, dyn=True)
    b = window_batch(g)
    with torch.no_grad():
        y = model(b)
        b.dyn_edge_index = b.dyn_edge_index[:, :0]
        b.dyn_edge_time, b.dyn_edge_weight = b.dyn_edge_time[:0], b.dyn_edge_weight[:0]
        y0 = model(b)
    assert not torch.allclose(y, y0)


def test_any_horizon_and_heads(model):
    b = window_batch(make_graph(25, 2, 3600), horizon=5)
    with torch.no_grad():
        state = model.encode_data(b)
        assert model.forecast(state, horizon=3).shape == (25, 3, 2)
        assert model.forecast(state, y_time=b.y_time).shape == (25, 5, 2)
        assert model.reconstruct(state).shape == (25, 12, 2)
        assert model.krige(state, torch.tensor([0, 3])).shape == (2, 12, 2)
    with pytest.raises(RuntimeError, match="anomaly"):
        model.anomaly_score(state)


def test_safetensors_roundtrip_identical(tmp_path, model):
    b = window_batch(make_graph(50, 2, 300), 2)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    torch.manual_seed(123)
    other = STFM(
        **yaml.safe_load((CONFIGS / "tiny.yaml").read_text()), tasks=["reconstruction", "kriging"]
    )
    other.load_state_dict(load_file(str(path)))
    other.eval()
    with torch.no_grad():
        assert torch.equal(model(b), other(b))


def test_structure_transform_once_per_graph_and_batched_with_offsets():
    g = make_graph(100, 1, 300)
    tf = AddGraphStructure(rwse_steps=6, cluster_size=16, kd_levels=4)
    tg = tf(g)
    assert g.kd_cell is None  # PyG's contract: a transformed shallow copy, the input untouched
    assert tg.rwse.shape == (100, 6) and tg.kd_cell.shape == (100, 4)
    assert tf.matches(tg) and tf.matches(g) is None
    assert AddGraphStructure(cluster_size=8).matches(tg) is False
    one = GraphStructure.from_data(tg)
    full = compute_structure(g.edge_index, 100, g.pos, cluster_size=16)
    assert one.sizes == full.sizes and all(
        torch.equal(a, b) for a, b in zip(one.assign, full.assign, strict=True)
    )
    # windows carry the structure as it is (shared tensors), and a batch offsets it per level
    w = SlidingWindows(tg, 12, 12)
    assert w[0].kd_cell is tg.kd_cell and w[3].rwse is tg.rwse
    other = tf(make_graph(10, 1, 300, seed=1))  # one KD cell: its hierarchy ends at level 1
    from torch_geometric.data import Batch

    b = Batch.from_data_list([w[0], w[1], SlidingWindows(other, 12, 12)[0]])
    bs = GraphStructure.from_data(b)
    o = GraphStructure.from_data(other)
    assert bs.num_nodes == 210 and bs.sizes[1] == 2 * one.sizes[1] + o.sizes[1]
    assert torch.equal(bs.assign[0][:100], one.assign[0])
    assert torch.equal(bs.assign[0][200:], o.assign[0] + 2 * one.sizes[1])
    # cells never mix graphs of a batch
    graph_of_cell = torch.zeros(bs.sizes[1], dtype=torch.long).index_reduce_(
        0, bs.assign[0], b.batch, "amax", include_self=False
    )
    assert torch.equal(graph_of_cell[bs.assign[0]], b.batch)
    # a graph whose hierarchy ends lower carries its root up: one item per level
    assert o.depth == 1 < bs.depth == one.depth == 2
    assert bs.sizes == [210, 2 * one.sizes[1] + 1, 3]
    # the batch forward equals the per-graph forwards, with or without the transform
    torch.manual_seed(0)
    m = STFM(**yaml.safe_load((CONFIGS / "tiny.yaml").read_text())).eval()
    with torch.no_grad():
        y = m(Batch.from_data_list([SlidingWindows(m.transform(g), 12, 12)[0]]))
        y_raw = m(window_batch(g, 1))
    torch.testing.assert_close(y, y_raw)


def test_transformed_graph_saves_and_loads_with_its_structure(tmp_path, model):
    g = model.transform(make_graph(40, 1, 300))
    back = STGraph.load(g.save(tmp_path / "g"))
    assert model.transform.matches(back)
    with torch.no_grad():
        assert torch.equal(model(window_batch(g, 2)), model(window_batch(back, 2)))


def test_model_refuses_structure_of_other_options(model):
    g = AddGraphStructure(rwse_steps=3, cluster_size=16, kd_levels=4)(make_graph(30, 1, 300))
    with pytest.raises(ValueError, match="other options"):
        model(window_batch(g))


def test_interval_one_rule_and_a_clear_error_without_one(model):
    g = make_graph(30, 1, 600)
    assert g.interval == 600 and g.intervals.tolist() == [600]
    b = window_batch(g, 3)
    assert b.intervals.tolist() == [600, 600, 600] and b.interval == 600
    # declared first, then the median step of the timestamps
    g.meta["interval"] = None
    assert g.interval == 600
    g.meta["interval"] = 900
    assert g.interval == 900
    bare = STGraph(x=g.x, edge_index=g.edge_index, meta={"interval": None})
    assert bare.interval is None
    with pytest.raises(STGraphValidationError, match="meta\\['interval'\\]"):
        _ = bare.intervals
    with pytest.raises(STGraphValidationError, match="no timestamps"):
        model(SlidingWindows(bare, 12, 12)[0])


def test_forecaster_registered_and_trains():
    torch.manual_seed(0)
    opts = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    m = build_model("stfm", input_steps=12, horizon=12, num_variables=1, **opts)
    g = make_graph(30, 1, 300, steps=60)
    m.fit(g, (0, 48))
    b = next(iter(DataLoader(SlidingWindows(g, 12, 12, stop=48), batch_size=8)))
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        y = m(b)
        assert y.shape == (b.num_nodes, 12, 1)
        loss = ((y - b.y).abs() * b.y_mask).sum() / b.y_mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < 0.8 * losses[0]
    # the wrapper binds no variable count: the same weights fit and forecast a 2-variable graph
    other = make_graph(30, 2, 300)
    m.fit(other, (0, 10))
    with torch.no_grad():
        y2 = m(Batch.from_data_list([SlidingWindows(other, 12, 12)[0]]))
    assert y2.shape == (30, 12, 2) and bool(torch.isfinite(y2).all())


def test_runs_on_real_los_loop(data_dir):
    speed = pd.read_csv(data_dir / "los-loop" / "los_speed.csv")
    loc = pd.read_csv(data_dir / "metr-la-graph" / "graph_sensor_locations.csv")
    loc = loc.set_index(loc["sensor_id"].astype(str)).loc[list(speed.columns)]
    adj = pd.read_csv(data_dir / "los-loop" / "los_adj.csv", header=None).to_numpy()
    src, dst = np.nonzero(adj)
    x = torch.tensor(speed.to_numpy()[:48].T, dtype=torch.float32).unsqueeze(-1)
    g = STGraph(
        x=x,
        time=T0 + 300 * torch.arange(48),
        pos=loc[["longitude", "latitude"]].to_numpy(),
        edge_index=torch.tensor(np.stack([src, dst])),
        edge_weight=torch.tensor(adj[src, dst]),
        meta={"variables": [{"name": "speed", "unit": "mph"}], "interval": 300},
    )
    m = build_model(
        "stfm",
        input_steps=12,
        horizon=12,
        num_variables=1,
        **yaml.safe_load((CONFIGS / "small.yaml").read_text()),
    ).eval()
    with torch.no_grad():
        y = m(window_batch(g, 4))
    assert y.shape == (4 * 207, 12, 1) and bool(torch.isfinite(y).all())
    assert 1 <= float(y.mean()) <= 100  # mph, not normalised units


def test_single_window_without_batching(model):
    g = make_graph(30, 2, 300)
    item = SlidingWindows(g, 12, 12)[0]  # an STGraph, not a Batch: no batch/ptr, time is [L]
    with torch.no_grad():
        y = model(item)
        yb = model(window_batch(g, 1))
    assert y.shape == (30, 12, 2)
    assert torch.allclose(y, yb, atol=1e-5)


def test_global_residual_forecast_is_node_plus_graph_scale_term():
    torch.manual_seed(0)
    cfg = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    m = STFM(**{**cfg, "global_residual": True, "anchor": "mean"}).eval()  # level = loc (no blend)
    assert "global_residual" not in repr(m) and "global_residual=False" in repr(STFM(**cfg))
    b = window_batch(make_graph(40, 2, 300), batch_size=2)
    with torch.no_grad():
        state = m.encode_data(b)
        # the graph-level scale is each window's std of the observed values, per graph and variable
        for g in range(2):
            sel = b.batch == g
            xv, mv = b.x[sel], b.mask[sel]
            for v in range(2):
                obs = xv[..., v][mv[..., v]]
                want = obs.double().std(unbiased=False).float()
                assert torch.allclose(
                    state.global_scale[sel, 0, v], want.expand(int(sel.sum())), rtol=1e-4
                )
        out = m.forecast(state, horizon=4)
        # zeroing the second readout leaves the usual de-normalised forecast: loc + scale * z
        head = m.forecast_head
        query = m.time_encoding(
            state.last_time.view(-1, 1)
            + torch.arange(1, 5).view(1, -1) * state.interval.view(-1, 1),
            state.interval,
            (torch.arange(1, 5) * state.interval.view(-1, 1)).float(),
        )
        z = head(state.tokens, query, state.var_emb, state.batch)
        assert z.shape == (80, 4, 2, 2)
        want = z[..., 0] * state.scale + state.loc + z[..., 1] * state.global_scale
        assert torch.allclose(out, want, atol=1e-5)
        assert not torch.allclose(out, z[..., 0] * state.scale + state.loc, atol=1e-3)
    with pytest.raises(ValueError, match="outputs=3"):
        type(head)(16, outputs=3)


def batch_with_masked_tails():
    """Two windows of a 40-node, 2-variable graph: node 3's variable 0 last observed 3 steps
    before the end, node 4's variable 1 never observed."""
    b = window_batch(make_graph(40, 2, 300), batch_size=2)
    b.mask[3, -2:, 0] = False
    b.mask[4, :, 1] = False
    return b


def assert_last_observed(state, b) -> None:
    assert state.last_value[3, 0, 0] == b.x[3, -3, 0]
    assert state.last_value[4, 0, 1] == state.loc[4, 0, 1]  # never observed -> its loc


@pytest.mark.parametrize("anchor", ["last", "blend"])
def test_anchor_moves_the_forecast_level_towards_the_last_observed_value(anchor):
    torch.manual_seed(0)
    cfg = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    with pytest.raises(ValueError, match="anchor"):
        STFM(**{**cfg, "anchor": "median"})
    m = STFM(**{**cfg, "anchor": anchor}).eval()
    ref = STFM(**{**cfg, "anchor": "mean"}).eval()
    ref.load_state_dict(m.state_dict(), strict=False)  # same weights, mean anchor
    assert ("anchor" in repr(m)) == (anchor != "blend") and "anchor='mean'" in repr(ref)
    b = batch_with_masked_tails()
    with torch.no_grad():
        state = m.encode_data(b)
        assert_last_observed(state, b)
        out = m.forecast(state, horizon=5)
        base = ref.forecast(ref.encode_data(b), horizon=5)  # loc + scale * z
        shift = out - base  # what the anchor adds: a * (last - loc), a = 1 for "last"
        gap = (state.last_value - state.loc).expand_as(shift)
        a = shift / gap.where(gap.abs() > 1e-3, torch.ones_like(gap))
        big = gap.abs() > 1e-3
        if anchor == "last":
            assert torch.allclose(a[big], torch.ones_like(a[big]), atol=1e-3)
        else:  # one weight in (0, 1) per target step and variable, shared by the nodes
            assert 0 < float(a[big].min()) and float(a[big].max()) < 1
            per_step = a[:, :, 0][big[:, :, 0].all(1)]
            assert torch.allclose(per_step, per_step[:1].expand_as(per_step), atol=1e-3)
        assert torch.allclose(shift[4, :, 1], torch.zeros(5), atol=1e-4)  # unobserved: no shift


def test_decoder_hops_keep_equivariance_and_run_on_any_graph():
    torch.manual_seed(0)
    cfg = yaml.safe_load((CONFIGS / "tiny.yaml").read_text())
    m = STFM(**{**cfg, "decoder_hops": 1}).eval()
    assert "decoder_hops" not in repr(m) and m.forecast_head.graph_hops == 1
    assert repr(STFM(**cfg)).endswith("decoder_hops=0)")
    for w in (*m.forecast_head.hop_in, *m.forecast_head.hop_out):
        torch.nn.init.normal_(w.weight, std=0.5)  # trained weights are not zero
    g = make_graph(60, 2, 300)
    perm = torch.randperm(60, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y, yp = m(window_batch(g, 1)), m(window_batch(g.select_nodes(perm), 1))
        assert torch.allclose(yp, y[perm], atol=1e-4)
        plain = STFM(**cfg).eval()
        plain.load_state_dict(m.state_dict(), strict=False)
        assert not torch.allclose(y, plain(window_batch(g, 1)), atol=1e-3)
        assert m(window_batch(make_graph(207, 1, 3600), 2)).shape == (414, 12, 1)
