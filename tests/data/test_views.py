"""PyG views of an STGraph: a stock layer (GCNConv) on each equals the per-step reference."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import GCNConv

from stgraph import datasets
from stgraph.data import STGraph

T = 12  # steps of Los-loop used (one hour)
H = 8


@pytest.fixture(scope="module")
def los(data_dir) -> STGraph:
    return datasets.load("los-loop").slice_time(0, T)


@pytest.fixture(scope="module")
def conv() -> GCNConv:
    torch.manual_seed(0)
    layer = GCNConv(1, H)
    torch.nn.init.normal_(layer.bias)  # a non-zero bias, so a wrong tiling shows
    return layer.eval()


@pytest.fixture(scope="module")
def reference(los, conv) -> torch.Tensor:
    """``[T, N, H]``: the layer on each step's ``[N, 1]`` readings by hand."""
    with torch.no_grad():
        return torch.stack(
            [conv(los.x[:, t, :], los.edge_index, los.edge_weight) for t in range(T)]
        )


def test_the_pitfall_these_views_avoid(los, conv, reference):
    """On ``x [N, T, V]`` a stock layer runs and propagates along the time axis: wrong."""
    with torch.no_grad():
        wrong = conv(los.x, los.edge_index[:, los.edge_index.max(0).values < T])
    assert wrong.shape == (los.num_nodes, T, H)
    assert (wrong.transpose(0, 1) - reference).abs().max() > 1.0


def test_snapshots(los, conv, reference):
    snaps = list(los.snapshots())
    assert len(snaps) == T and snaps[0].x.shape == (los.num_nodes, 1)
    assert int(snaps[3].time) == int(los.time[3]) and int(snaps[3].step) == 3
    with torch.no_grad():
        out = torch.stack([conv(s.x, s.edge_index, s.edge_weight) for s in snaps])
    torch.testing.assert_close(out, reference)
    torch.testing.assert_close(los.snapshot(-1).x, los.x[:, -1])


def test_temporal_signal_one_lag_is_the_steps(los, conv, reference):
    signal = los.temporal_signal(lags=1, horizon=1)
    assert len(signal) == signal.snapshot_count == T - 1
    with torch.no_grad():
        out = torch.stack([conv(s.x, s.edge_index, s.edge_attr) for s in signal])
    torch.testing.assert_close(out, reference[: T - 1])
    # the target of window i is the input of window i + 1, as in PyG Temporal
    torch.testing.assert_close(signal[2].y, signal[3].x)
    assert len(signal[1:4]) == 3


def test_temporal_signal_lags_with_a_block_diagonal_layer(los, conv, reference):
    lags = 4
    signal = los.temporal_signal(lags=lags, horizon=3, stride=2)
    assert len(signal) == (T - lags - 3) // 2 + 1
    s = signal[1]
    assert s.x.shape == (los.num_nodes, lags) and s.y.shape == (los.num_nodes, 3)
    torch.testing.assert_close(s.y, los.x[:, 6:9, 0])
    wide = _block_diagonal(conv, lags)
    with torch.no_grad():
        out = wide(s.x, s.edge_index, s.edge_attr).view(-1, lags, H).transpose(0, 1)
    torch.testing.assert_close(out, reference[2 : 2 + lags])


def test_feature_view(los, conv, reference):
    view = los.feature_view()
    assert view.x.shape == (los.num_nodes, T)  # [N, T * V]
    torch.testing.assert_close(view.x[:, 5], los.x[:, 5, 0])
    wide = _block_diagonal(conv, T)
    with torch.no_grad():
        out = wide(view.x, view.edge_index, view.edge_weight).view(-1, T, H).transpose(0, 1)
    torch.testing.assert_close(out, reference)


def test_steps_first(los, conv, reference):
    xs = los.steps_first()
    assert xs.shape == (T, los.num_nodes, 1)
    with torch.no_grad():
        out = conv(xs, los.edge_index, los.edge_weight)  # time as a batch axis
    torch.testing.assert_close(out, reference)


def test_dynamic_edges_per_step(data_dir):
    """England COVID (dynamic mobility edges only): a snapshot's edges are its step's."""
    g = datasets.load("england-covid")
    s = g.snapshot(7)
    keep = g.dyn_edge_time == 7
    assert torch.equal(s.edge_index, g.dyn_edge_index[:, keep])
    assert torch.equal(s.edge_weight, g.dyn_edge_weight[keep])
    with pytest.raises(ValueError, match="edges="):
        g.snapshot(0, edges="all")


def _block_diagonal(conv: GCNConv, blocks: int) -> GCNConv:
    """A GCNConv on ``[N, blocks]`` whose weight is ``blocks`` copies of ``conv``'s."""
    wide = GCNConv(blocks, blocks * H).eval()
    with torch.no_grad():
        wide.lin.weight.copy_(torch.block_diag(*[conv.lin.weight] * blocks))
        wide.bias.copy_(conv.bias.repeat(blocks))
    return wide
