"""The seasonal reference windows carry (stgraph.data.windows.seasonal_reference)."""

from __future__ import annotations

import pytest
import torch

from stgraph import datasets
from stgraph.data import SlidingWindows, adaptive_reference, seasonal_reference
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
    values, found = adaptive_reference(g, s, s + 12)
    assert item.season.shape == (g.num_nodes, 12, 1)
    assert torch.equal(item.season, values) and torch.equal(item.season_mask, found)
    assert bool(item.season_mask.any()) == (start > 0)


def test_adaptive_reference_never_reads_the_window_or_its_future(dataset):
    g = dataset("los-loop")
    start, stop = 1500, 1524
    before = adaptive_reference(g, start, stop)
    g2 = g.clone()
    g2.x[:, start:] = 1e6
    g2.mask[:, start:] = True
    after = adaptive_reference(g2, start, stop)
    assert torch.equal(before[0], after[0]) and torch.equal(before[1], after[1])
    assert bool(before[1].all())


@pytest.mark.parametrize(
    ("name", "candidate", "share"),
    [("melbourne-pedestrian", 0, 0.6), ("chickenpox", 2, 0.8)],
)
def test_adaptive_reference_takes_the_candidate_that_did_best(dataset, name, candidate, share):
    """Footfall around the 2021-22 lockdowns keeps the last 4 weeks' profile at most sensors;
    weekly chickenpox counts (a yearly period with few years behind) the median level at most
    counties. Each node's values are exactly its chosen candidate's."""
    from stgraph.data.windows import SEASONAL_CANDIDATES, _choice_for, _level, season_periods

    g = dataset(name)
    periods = season_periods(g.interval)
    block = max(1, periods[0] // 7)
    start = int(0.8 * g.num_steps) // block * block
    best = _choice_for(g, start, periods).best
    assert float((best == candidate).float().mean()) >= share
    values, found = adaptive_reference(g, start, start + 12)
    cands = [
        seasonal_reference(g, start, start + 12, lags=k, stat=st) for k, st in SEASONAL_CANDIDATES
    ]
    level, ok = _level(g, start, 8 * periods[0], "median")
    cands.append((level.unsqueeze(1).expand_as(values), ok.unsqueeze(1).expand_as(found)))
    for node in range(g.num_nodes):
        value, seen = cands[int(best[node, 0])]
        if bool(seen[node].all()):
            assert torch.equal(values[node], value[node])


def test_median_reference_of_sparse_counts(dataset):
    """stat="median": the middle observed lag, not pulled up by a burst (a 0, 0, 0, 5 slot is
    0, its mean 1.25)."""
    g = dataset("chicago-crime")
    start = 600
    med, _ = seasonal_reference(g, start, start + 1, lags=4, stat="median")
    mean, _ = seasonal_reference(g, start, start + 1, lags=4)
    lags = [start - 7 * k for k in range(1, 5)]
    assert bool(g.mask[:, lags].all())
    want = g.x[:, lags].median(1).values  # torch's lower middle of an even count
    assert torch.equal(med[:, 0], want)
    assert float((med < mean).float().mean()) > 0.3  # bursts pull many a mean above the median
