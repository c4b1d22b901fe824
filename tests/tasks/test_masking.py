"""Masks of masked-reconstruction pretraining, on real Los-loop windows."""

from __future__ import annotations

import math

import pytest
import torch

from stgraph import datasets
from stgraph.tasks.masking import MASK_KINDS, hide, make_mask


@pytest.fixture(scope="module")
def window():
    g = datasets.load("los-loop").slice_time(0, 24)
    observed = g.mask.clone()
    observed[::7, 3:9] = False  # some readings missing, as in real sensor data
    return g.x.clone(), observed


@pytest.mark.parametrize("kind", MASK_KINDS)
def test_hidden_entries_were_observed_and_cover_about_ratio(window, kind):
    x, observed = window
    hidden = make_mask(kind, observed, 0.25, torch.Generator().manual_seed(0))
    assert hidden.shape == observed.shape
    assert not bool((hidden & ~observed).any())
    share = float(hidden.sum()) / float(observed.sum())
    assert 0.15 < share < 0.35, share


def test_each_strategy_has_its_shape(window):
    x, observed = window
    full = torch.ones_like(observed)
    gen = torch.Generator().manual_seed(1)
    block = make_mask("block", full, 0.25, gen)
    per_node = block.any(-1)  # [N, L]
    width = math.ceil(0.25 * full.size(1))
    assert bool((per_node.sum(1) == width).all())
    runs = per_node.int().diff(dim=1).abs().sum(1)  # a single run has at most 2 edges
    assert bool((runs <= 2).all())
    node = make_mask("node", full, 0.25, gen)
    whole = node.all(2).all(1)
    assert bool((node.any(2).any(1) == whole).all())  # a node is hidden entirely or not at all
    assert int(whole.sum()) == math.ceil(0.25 * full.size(0))
    fut = make_mask("future", full, 0.25, gen)
    assert bool(fut[:, -width:].all()) and not bool(fut[:, :-width].any())


def test_node_mask_keeps_a_node_of_every_graph_visible():
    observed = torch.ones(6, 4, 1, dtype=torch.bool)
    batch = torch.tensor([0, 1, 1, 2, 2, 2])
    hidden = make_mask("node", observed, 0.9, torch.Generator().manual_seed(0), batch)
    for g in range(3):
        nodes = batch == g
        assert not bool(hidden[nodes].all())


def test_masks_are_fixed_by_the_seed(window):
    x, observed = window
    a = make_mask("random", observed, 0.3, torch.Generator().manual_seed(5))
    b = make_mask("random", observed, 0.3, torch.Generator().manual_seed(5))
    c = make_mask("random", observed, 0.3, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_hide_zeroes_hidden_values_and_refuses_unobserved(window):
    x, observed = window
    hidden = make_mask("block", observed, 0.3, torch.Generator().manual_seed(2))
    x_in, visible = hide(x, observed, hidden)
    assert bool((x_in[hidden] == 0).all())
    assert torch.equal(visible, observed & ~hidden)
    assert torch.equal(x_in[visible], x[visible])
    with pytest.raises(ValueError, match="never observed"):
        hide(x, observed, ~observed)
    with pytest.raises(ValueError, match="mask kind"):
        make_mask("tube", observed, 0.3, torch.Generator())
    with pytest.raises(ValueError, match="ratio"):
        make_mask("random", observed, 1.5, torch.Generator())
