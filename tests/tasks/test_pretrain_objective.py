"""The pretraining objective: hidden values never reach the model and only they are scored."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from stgraph import datasets
from stgraph.data import SlidingWindows
from stgraph.errors import ConfigError
from stgraph.nn import STFM
from stgraph.tasks.masking import hide, make_mask
from stgraph.tasks.pretrain import ObjectiveMix, masked_view, pretrain_loss, scaled_huber


@pytest.fixture(scope="module")
def batch():
    g = datasets.load("chickenpox")
    w = SlidingWindows(g, 12, 3, stop=200)
    return Batch.from_data_list([w[i] for i in (0, 40, 80)])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return STFM(
        channels=32, depth=1, heads=2, patch_len=3, levels=1, tasks=["reconstruction"]
    ).eval()


def test_hidden_values_never_reach_the_model(batch, model):
    hidden = make_mask("block", batch.mask, 0.4, torch.Generator().manual_seed(0), batch.batch)
    x_in, visible = hide(batch.x, batch.mask, hidden)
    tampered = batch.x.clone()
    tampered[hidden] = 1e6  # a leak of the hidden values would change every output
    x_in2, visible2 = hide(tampered, batch.mask, hidden)
    with torch.no_grad():
        a = model.reconstruct(model.encode_data(masked_view(batch, x_in, visible)))
        b = model.reconstruct(model.encode_data(masked_view(batch, x_in2, visible2)))
    assert torch.equal(a, b)


def test_loss_reads_only_hidden_entries(batch, model):
    hidden = make_mask("random", batch.mask, 0.3, torch.Generator().manual_seed(1), batch.batch)
    scale = torch.ones(1)
    with torch.no_grad():
        recon = model.reconstruct(
            model.encode_data(masked_view(batch, *hide(batch.x, batch.mask, hidden)))
        )
    base = scaled_huber(recon, batch.x, hidden, scale, 1.0)
    other = batch.x.clone()
    other[~hidden] += 100.0  # visible targets are not part of the reconstruction loss
    assert torch.equal(scaled_huber(recon, other, hidden, scale, 1.0), base)
    other = batch.x.clone()
    other[hidden] += 100.0
    assert not torch.equal(scaled_huber(recon, other, hidden, scale, 1.0), base)


def test_loss_is_in_units_of_the_scale(batch, model):
    mix = ObjectiveMix(masks={"random": 1.0}, forecast_weight=0.0)
    a, _ = pretrain_loss(model, batch, torch.ones(1), mix, torch.Generator().manual_seed(2))
    scaled = masked_view(batch, batch.x * 10, batch.mask)
    scaled.y = batch.y * 10
    b, _ = pretrain_loss(
        model, scaled, torch.full((1,), 10.0), mix, torch.Generator().manual_seed(2)
    )
    # instance normalisation makes the model scale-equivariant, the scale undoes the units
    assert torch.allclose(a, b, rtol=1e-3, atol=1e-5)


def test_gradients_flow_and_parts_are_logged(batch, model):
    m = STFM(channels=32, depth=1, heads=2, patch_len=3, levels=1, tasks=["reconstruction"])
    loss, parts = pretrain_loss(
        m, batch, torch.ones(1), ObjectiveMix(masks={"node": 1.0}), torch.Generator().manual_seed(3)
    )
    loss.backward()
    assert parts["kind"] == "node" and parts["reconstruction"] > 0 and parts["forecast"] > 0
    assert m.reconstruction_head is not None
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in m.reconstruction_head.parameters()
    )


@pytest.mark.parametrize(
    "kw",
    [
        {"masks": {"tube": 1.0}},
        {"masks": {"random": 0.0}},
        {"mask_ratio": (0.5, 0.2)},
        {"huber_delta": 0.0},
    ],
)
def test_bad_mix_is_refused(kw):
    with pytest.raises(ConfigError):
        ObjectiveMix(**kw)
