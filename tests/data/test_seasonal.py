"""The seasonal reference windows carry (stgraph.data.windows.seasonal_reference)."""

from __future__ import annotations

import pytest
import torch

from stgraph import datasets
from stgraph.data import SlidingWindows, seasonal_reference
from stgraph.data.windows import season_periods


@pytest.fixture
def dataset(data_dir):
    return datasets.load


def test_periods_follow_the_interval():
    assert season_periods(3600) == (168, 24)
    assert season_periods(300) == (2016, 288)
    assert season_periods(86_400) == (7,)
    assert season_periods(7 * 86_400) == (52,)
    assert season_periods(7 * 3600) == ()  # does not divide a day
    assert season_periods(None) == ()


def test_reference_is_the_mean_of_the_same_hour_of_the_last_weeks(dataset):
    g = dataset("melbourne-pedestrian")
    start, stop = 5000, 5036
    values, found = seasonal_reference(g, start, stop)
    for j in (start, start + 23, stop - 1):
        k0 = (j - start) // 168 + 1
        lags = [j - 168 * k for k in range(k0, k0 + 4)]
        m = g.mask[:, lags]
        ref = (g.x[:, lags] * m).sum(1) / m.sum(1).clamp_min(1)
        assert torch.allclose(values[:, j - start], ref)
        assert bool(found[:, j - start].all())


def test_reference_never_reads_the_window_or_its_future(dataset):
    g = dataset("los-loop")
    start, stop = 600, 624
    before = seasonal_reference(g, start, stop)
    g2 = g.clone()
    g2.x[:, start:] = 1e6  # anything from the window on
    g2.mask[:, start:] = True
    after = seasonal_reference(g2, start, stop)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    # unobserved lags are left out: hide every lag one day back, the next days are averaged
    g3 = g.clone()
    g3.mask[:, start - 288 : stop - 288] = False
    v3, f3 = seasonal_reference(g3, start, stop)
    ref = g.x[:, start - 2 * 288]  # 2016 steps: no weekly lag; 3 days back is before step 0
    assert not bool(g.mask[:, start - 2 * 288].logical_not().any())
    assert torch.allclose(v3[:, 0], ref, atol=1e-4) and bool(f3[:, 0].all())


def test_no_history_no_reference(dataset):
    g = dataset("chickenpox")
    values, found = seasonal_reference(g, 10, 22)  # less than a year of history
    assert not bool(found.any()) and float(values.abs().sum()) == 0.0


@pytest.mark.parametrize("start", [0, 400])
def test_windows_carry_the_reference_of_inputs_and_targets(dataset, start):
    g = dataset("chickenpox")
    w = SlidingWindows(g, 8, 4)
    item = w[start]
    s = w.window_start(start)
    values, found = seasonal_reference(g, s, s + 12)
    assert item.season.shape == (g.num_nodes, 12, 1)
    assert torch.equal(item.season, values) and torch.equal(item.season_mask, found)
    assert bool(item.season_mask.any()) == (start > 0)
