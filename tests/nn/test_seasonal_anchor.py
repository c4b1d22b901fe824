"""STFM(season=True): the window's seasonal reference reaches the tokens and the forecast level."""

from __future__ import annotations

import copy

import pytest
import torch
from torch_geometric.data import Batch

from stgraph import datasets
from stgraph.data import SlidingWindows
from stgraph.nn import STFM
from stgraph.tasks.pretrain import masked_view


@pytest.fixture(scope="module")
def batch(data_dir):
    g = datasets.load("melbourne-pedestrian").slice_time(0, 2000)
    torch.manual_seed(0)
    model = STFM(channels=16, depth=1, heads=2, levels=1, season=True).eval()
    w = SlidingWindows(model.transform(g), 12, 6)
    return model, Batch.from_data_list([w[900], w[1500]])


def test_no_reference_is_the_same_as_an_unobserved_one(batch):
    model, b = batch
    assert bool(b.season_mask.all())  # a month of history: every slot has a lag
    plain = copy.copy(b)
    del plain.season, plain.season_mask
    unseen = copy.copy(b)
    unseen.season_mask = torch.zeros_like(b.season_mask)
    with torch.no_grad():
        assert torch.allclose(model(plain), model(unseen), atol=1e-5)
        assert not torch.allclose(model(plain), model(b), atol=1e-3)


def test_an_open_gate_moves_the_level_onto_the_reference(batch):
    model, b = batch
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.seasonal.bias.bias.fill_(1e4)  # g = 1 wherever a reference is observed
        shifted = copy.copy(b)
        shifted.season = b.season.clone()
        shifted.season[:, 12:] += 5.0  # the targets' reference only: the tokens are unchanged
        diff = model(shifted) - model(b)
    assert torch.allclose(diff, torch.full_like(diff, 5.0), atol=1e-3)
    # where a target step has no reference the gate is shut whatever its logit
    with torch.no_grad():
        closed = copy.copy(shifted)
        closed.season_mask = b.season_mask.clone()
        closed.season_mask[:, 12:] = False
        ref = copy.copy(b)
        ref.season_mask = closed.season_mask
        assert torch.allclose(model(closed), model(ref), atol=1e-5)


def test_a_node_hidden_whole_loses_its_reference(batch):
    _, b = batch
    visible = b.mask.clone()
    visible[:5] = False
    view = masked_view(b, b.x, visible)
    assert not bool(view.season_mask[:5].any())
    seen = b.mask[5:].flatten(1).any(1).view(-1, 1, 1)  # sensors with no reading keep none either
    assert bool(seen.any())
    assert torch.equal(view.season_mask[5:], b.season_mask[5:] & seen)
    assert bool(b.season_mask[:5].all())  # the batch itself is untouched


@pytest.fixture(scope="module")
def anomaly_batch(data_dir):
    g = datasets.load("melbourne-pedestrian").slice_time(0, 2000)
    torch.manual_seed(0)
    model = STFM(channels=16, depth=1, heads=2, levels=1, season="anomaly").eval()
    w = SlidingWindows(model.transform(g), 12, 6)
    return model, Batch.from_data_list([w[900], w[1500]])


def test_anomaly_forecast_moves_one_for_one_with_the_targets_reference(anomaly_batch):
    """season="anomaly": reference + gated last gap + residual in the gap's scale, so shifting
    the targets' reference (not the inputs': tokens, gate and gap stay) shifts the forecast by
    exactly as much, whatever the gate, and a step without a reference falls back to the
    window's own level."""
    model, b = anomaly_batch
    assert repr(model.seasonal).endswith("mode='anomaly')")
    shifted = copy.copy(b)
    shifted.season = b.season.clone()
    shifted.season[:, 12:] += 5.0
    with torch.no_grad():
        diff = model(shifted) - model(b)
    assert torch.allclose(diff, torch.full_like(diff, 5.0), atol=1e-3)
    none = copy.copy(shifted)
    none.season_mask = b.season_mask.clone()
    none.season_mask[:, 12:] = False
    ref = copy.copy(b)
    ref.season_mask = none.season_mask
    with torch.no_grad():
        assert torch.allclose(model(none), model(ref), atol=1e-5)


def test_anomaly_gap_is_the_last_observed_one_and_its_scale_the_mean_gap():
    from stgraph.nn.layers.seasonal import SeasonalAnchor

    x = torch.tensor([[1.0, 4.0, 9.0, 7.0], [2.0, 2.0, 2.0, 2.0]]).view(2, 4, 1)
    season = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.0, 0.0]]).view(2, 4, 1)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]]).view(2, 4, 1)
    scale = torch.tensor([10.0, 3.0]).view(2, 1, 1)
    gap, spread = SeasonalAnchor.input_anomaly(x, mask, season, torch.ones_like(mask), scale)
    # node 0: gaps 0, 2, 6 observed (step 3 is masked): last 6, mean 8/3
    # node 1: one observed step: gap 2, too few for a spread -> the window's scale 3
    assert gap.view(-1).tolist() == [6.0, 2.0]
    assert spread.view(-1).tolist() == pytest.approx([8 / 3, 3.0])
    flat = torch.zeros_like(x)
    _, floor = SeasonalAnchor.input_anomaly(flat, mask, flat, torch.ones_like(mask), scale)
    assert floor.view(-1).tolist() == pytest.approx([0.5, 3.0])  # at least 5 % of the scale
