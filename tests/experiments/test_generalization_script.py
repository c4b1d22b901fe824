"""experiments/generalization.py: the scale transforms and the few-shot budgets it reports on."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from stgraph import datasets

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "generalization.py"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location("generalization_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_coarsened_crime_grid_keeps_every_count(gen, data_dir):
    g = datasets.load("chicago-crime")
    for f in (2, 4):
        c = gen.coarsen(g, f, total=True)
        assert c.num_nodes == ((14 + f - 1) // f) * ((12 + f - 1) // f)
        assert torch.allclose(c.x.sum((0, 2)).double(), g.x.sum((0, 2)).double(), rtol=1e-5)
        assert c.edge_index.max() < c.num_nodes and c.edge_index.size(1) > 0
        c.validate()


def test_resampled_series_averages_observed_steps(gen, data_dir):
    g = datasets.load("los-loop")
    r = gen.resample(g, 3)
    assert r.num_steps == g.num_steps // 3 and r.interval == 900
    x, m = g.x[:, :3], g.mask[:, :3]
    expected = (x * m).sum(1) / m.sum(1).clamp_min(1)
    assert torch.allclose(r.x[:, 0], expected)
    assert torch.equal(r.time[:2], g.time[[0, 3]])


def test_short_budget_holds_a_window(gen, data_dir):
    assert gen.short_budget(datasets.load("los-loop")) == "1d"
    assert gen.short_budget(datasets.load("chicago-crime")) == "4w"
    assert gen.short_budget(datasets.load("chickenpox")) == "30w"
    assert gen.lengths(datasets.load("pedalme")) == (4, 2)
