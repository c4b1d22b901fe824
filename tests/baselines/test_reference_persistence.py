"""The parameter-free floor: adaptive reference plus the share of the last gap that persisted on
the backtest (``reference_persistence``) and the shares themselves (``anomaly_persistence``)."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.loader import DataLoader

from stgraph import datasets
from stgraph.baselines import LastValue, ReferencePersistence
from stgraph.data import SlidingWindows, anomaly_persistence
from stgraph.data.windows import PERSISTENCE, adaptive_reference
from stgraph.errors import ConfigError


@pytest.fixture
def load(data_dir):
    return datasets.load


def test_persistence_never_reads_the_window_or_its_future(load):
    g = load("los-loop")
    start = 1500
    before = anomaly_persistence(g, start, 12)
    g2 = g.clone()
    g2.x[:, start:] = 1e6
    after = anomaly_persistence(g2, start, 12)
    assert torch.equal(before, after)
    assert set(before.unique().tolist()) <= set(PERSISTENCE)


def test_a_jam_persists_and_sparse_counts_do_not(load):
    """Los-loop speeds: a gap to the daily profile 5 minutes on is at least half of itself at
    most sensors, and much less of it an hour on; Chicago's daily crime counts per cell: noise,
    no share."""
    road = anomaly_persistence(load("los-loop"), 1500, 12)[..., 0]  # [N, 12]
    assert float((road[:, 0] >= 0.5).float().mean()) >= 0.75
    assert float(road[:, 11].mean()) < 0.5 * float(road[:, 0].mean())
    crime = anomaly_persistence(load("chicago-crime"), 1500, 3)
    assert float((crime == 0).float().mean()) >= 0.8


def test_forecast_is_reference_plus_persisting_gap(load):
    g = load("los-loop")
    w = SlidingWindows(g, 12, 6, start=1400, stop=1500)
    model = ReferencePersistence(12, 6).fit(g, (0, 1400))
    item = w[3]
    s = w.window_start(3)
    pred = model(item)
    ref, ok = adaptive_reference(g, s, s + 18)
    assert bool(ok.all())
    gap = item.x[:, -1:] - ref[:, 11:12]  # every input observed here: the last step's gap
    assert bool(item.mask[:, -1].all())
    phi = anomaly_persistence(g, s, 6)
    torch.testing.assert_close(pred, ref[:, 12:] + phi * gap)


def test_masked_inputs_and_targets_do_not_reach_the_forecast(load):
    g = load("los-loop")
    w = SlidingWindows(g, 12, 6, start=1400, stop=1500)
    model = ReferencePersistence(12, 6).fit(g, (0, 1400))
    batch = next(iter(DataLoader(w, batch_size=4)))
    base = model(batch)
    changed = batch.clone()
    changed.mask[:, -2:] = False  # the last two input steps go missing ...
    changed.x[:, -2:] = 1e6  # ... so their values must not count
    changed.y = torch.full_like(changed.y, 1e6)  # nor may the targets
    out = model(changed)
    assert torch.isfinite(out).all() and float(out.abs().max()) < 1e3
    assert not torch.equal(out, base)  # the gap is now read 2 steps earlier


def test_beats_last_value_and_needs_the_reference(load):
    """On Los-loop's held-out days an hour ahead the reference's share of a jam beats
    persistence; windows without a reference are refused with the fix."""
    g = load("los-loop")
    a = int(0.8 * g.num_steps)
    w = SlidingWindows(g, 12, 12, start=a, stop=g.num_steps, stride=5)
    batch = next(iter(DataLoader(w, batch_size=len(w))))
    rp = ReferencePersistence(12, 12).fit(g, (0, a))(batch)
    lv = LastValue(12, 12).fit(g, (0, a))(batch)
    m = batch.y_mask[:, -1]
    err = lambda p: float(((p[:, -1] - batch.y[:, -1]).abs() * m).sum() / m.sum())  # noqa: E731
    assert err(rp) < err(lv)
    w.reference = False
    with pytest.raises(ConfigError, match="reference=True"):
        ReferencePersistence(12, 12)(w[0])
