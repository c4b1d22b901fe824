"""DCRNN: the diffusion convolution against a dense reference, the cell, and the model on Los-loop."""

from __future__ import annotations

import pytest
import torch
from _los_loop import TRAIN_STEPS, load_los_loop
from torch_geometric.loader import DataLoader

from stgraph.baselines import DCRNN
from stgraph.data import SlidingWindows
from stgraph.nn.layers.dcgru_cell import DCGRUCell
from stgraph.nn.layers.diffusion_conv import DiffusionConv, diffusion_supports
from stgraph.tasks import build_model


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One intra-op thread: on a shared, oversubscribed CPU, thread hand-offs cost more than they
    save on these small tensors (measured 25x slower DCRNN steps with two threads under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# A directed, weighted 4-node graph: node 3 has no incoming edge, node 0 -> 2 and 2 -> 0 differ.
EDGE_INDEX = torch.tensor([[0, 1, 2, 0, 3, 1], [1, 2, 0, 2, 1, 0]])
EDGE_WEIGHT = torch.tensor([1.0, 2.0, 0.5, 1.5, 1.0, 0.25])


def _dense_reference(conv: DiffusionConv, x: torch.Tensor) -> torch.Tensor:
    """The paper's formula with dense matrices: sum_k (D_O^-1 W)^k X T_k1 + (D_I^-1 W^T)^k X T_k2."""
    n = x.size(0)
    w = torch.zeros(n, n)
    w[EDGE_INDEX[0], EDGE_INDEX[1]] = EDGE_WEIGHT  # W[i, j]: weight of edge i -> j
    d_out, d_in = w.sum(1), w.sum(0)
    inv = lambda d: torch.where(d > 0, 1 / d, torch.zeros_like(d))  # noqa: E731
    p_out = inv(d_out).view(-1, 1) * w
    p_in = inv(d_in).view(-1, 1) * w.T
    theta = conv.lin.weight.view(conv.out_channels, 2 * conv.K + 1, conv.in_channels)
    out = x @ theta[:, 0].T + conv.lin.bias
    for j, p in enumerate((p_out, p_in)):
        h = x
        for k in range(conv.K):
            h = p @ h
            out = out + h @ theta[:, 1 + j * conv.K + k].T
    return out


def test_diffusion_conv_repr_shapes_and_dense_reference():
    torch.manual_seed(0)
    conv = DiffusionConv(3, 5, K=2)
    assert repr(conv) == "DiffusionConv(3, 5, K=2)"
    assert conv.lin.weight.shape == (5, 5 * 3)
    x = torch.randn(4, 3)
    ref = _dense_reference(conv, x)
    out_mp = conv(x, EDGE_INDEX, EDGE_WEIGHT)  # message passing (propagate) path
    out_sp = conv(x, diffusion_supports(EDGE_INDEX, EDGE_WEIGHT, 4))  # sparse CSR path
    assert out_mp.shape == out_sp.shape == (4, 5)
    torch.testing.assert_close(out_mp, ref)
    torch.testing.assert_close(out_sp, ref)
    # Unweighted graphs use weight 1 on every edge.
    torch.testing.assert_close(
        conv(x, EDGE_INDEX), conv(x, EDGE_INDEX, torch.ones(EDGE_INDEX.size(1)))
    )
    # The two directions are not interchangeable on a directed graph: the check has teeth.
    assert not torch.allclose(conv(x, EDGE_INDEX.flip(0), EDGE_WEIGHT), ref)


def test_diffusion_conv_sparse_backward_matches_message_passing():
    torch.manual_seed(1)
    conv = DiffusionConv(2, 3, K=3)
    supports = diffusion_supports(EDGE_INDEX, EDGE_WEIGHT, 4)
    grads = []
    for graph in ((EDGE_INDEX, EDGE_WEIGHT), (supports,)):
        x = torch.randn(4, 2, generator=torch.Generator().manual_seed(2), requires_grad=True)
        conv.zero_grad()
        (conv(x, *graph) ** 2).sum().backward()
        grads.append((x.grad.clone(), conv.lin.weight.grad.clone()))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1])


def test_diffusion_conv_k0_is_a_linear_layer():
    conv = DiffusionConv(3, 2, K=0)
    x = torch.randn(4, 3)
    torch.testing.assert_close(conv(x, EDGE_INDEX, EDGE_WEIGHT), conv.lin(x))


def test_dcgru_cell_precomputed_inputs_match_stepwise():
    torch.manual_seed(3)
    cell = DCGRUCell(3, 6, K=2)
    assert repr(cell) == "DCGRUCell(3, 6, K=2)"
    supports = diffusion_supports(EDGE_INDEX, EDGE_WEIGHT, 4)
    seq = torch.randn(4, 5, 3)
    pre = cell.input_part(seq, supports)
    h1 = h2 = torch.zeros(4, 6)
    for t in range(5):
        h1 = cell(seq[:, t], h1, supports)
        h2 = cell(pre[:, t], h2, supports, precomputed=True)
    assert h1.shape == (4, 6)
    torch.testing.assert_close(h1, h2)
    # A GRU state is a convex mix of tanh outputs: it stays in (-1, 1).
    assert float(h1.abs().max()) < 1


# ---------------------------------------------------------------------------- Los-loop


@pytest.fixture(scope="module")
def los_loop(data_dir):
    return load_los_loop(data_dir)


@pytest.fixture(scope="module")
def batch(los_loop):
    windows = SlidingWindows(los_loop, 12, 12, start=TRAIN_STEPS, stop=los_loop.num_steps)
    return next(iter(DataLoader(windows, batch_size=4)))


def _model(los_loop, **options) -> DCRNN:
    torch.manual_seed(0)
    model = build_model("dcrnn", input_steps=12, horizon=12, num_variables=1, **options)
    return model.fit(los_loop, (0, TRAIN_STEPS))


def test_dcrnn_shapes_units_and_scaler_fitted_on_training_steps(los_loop, batch):
    model = _model(los_loop, hidden=8, num_layers=2, K=1)
    assert repr(model) == (
        "DCRNN(input_steps=12, horizon=12, num_variables=1, hidden=8, num_layers=2, K=1)"
    )
    with torch.no_grad():
        pred = model(batch)
    assert pred.shape == (4 * 207, 12, 1) and torch.isfinite(pred).all()
    train_mean = los_loop.x[:, :TRAIN_STEPS].double().mean()
    torch.testing.assert_close(model.scaler.loc.view(()).double(), train_mean)
    # A zero output layer predicts 0 in scaled units, i.e. the training mean in mph.
    torch.nn.init.zeros_(model.head.weight)
    torch.nn.init.zeros_(model.head.bias)
    with torch.no_grad():
        flat = model(batch)
    torch.testing.assert_close(flat, torch.full_like(flat, float(train_mean)))


def test_dcrnn_masked_inputs_do_not_change_predictions(los_loop, batch):
    model = _model(los_loop, hidden=8, num_layers=1)
    hide = torch.rand(batch.mask.shape, generator=torch.Generator().manual_seed(4)) < 0.3
    hide[:3] = True
    masked = batch.clone()
    masked.mask = batch.mask & ~hide
    masked.x = torch.where(hide, torch.zeros_like(batch.x), batch.x)
    garbage = masked.clone()
    garbage.x = torch.where(hide, torch.full_like(batch.x, -1e4), batch.x)
    with torch.no_grad():
        p0, p1, full = model(masked), model(garbage), model(batch)
    torch.testing.assert_close(p0, p1, rtol=0, atol=0)
    assert not torch.allclose(p0, full)  # the mask is an input: hiding values does change things


def test_dcrnn_training_steps_reduce_the_loss(los_loop):
    model = _model(los_loop, hidden=16, num_layers=1, K=1)
    windows = SlidingWindows(los_loop, 12, 12, start=0, stop=TRAIN_STEPS, stride=97)
    train = next(iter(DataLoader(windows, batch_size=4)))
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(12):
        loss = (model(train) - train.y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.6 * losses[0]


def test_dcrnn_state_dict_round_trip(los_loop, batch):
    model = _model(los_loop, hidden=8, num_layers=1, scaler="minmax")
    fresh = build_model(
        "dcrnn",
        input_steps=12,
        horizon=12,
        num_variables=1,
        hidden=8,
        num_layers=1,
        scaler="minmax",
    )
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(fresh(batch), model(batch))
