"""Sliding windows, splits and scalers on real series."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from stgraph.data import (
    SlidingWindows,
    StandardScaler,
    STGraph,
    chronological_split,
    windows_for_split,
)
from stgraph.train.protocols import get_protocol


@pytest.fixture(scope="module")
def los(data_dir) -> STGraph:
    speed = pd.read_csv(data_dir / "los-loop" / "los_speed.csv")
    x = torch.tensor(speed.to_numpy().T[:, :, None], dtype=torch.float32)
    return STGraph(x=x, time=1330560000 + 300 * torch.arange(x.size(1)))


@pytest.fixture(scope="module")
def pox(data_dir) -> STGraph:
    fx = json.loads((data_dir / "pgt-chickenpox" / "chickenpox.json").read_text())["FX"]
    return STGraph(x=torch.tensor(fx, dtype=torch.float32).t()[:, :, None])


def test_window_count_and_content(los):
    w = SlidingWindows(los, 12, 12, stride=3)
    assert len(w) == (2016 - 24) // 3 + 1
    item = w[5]
    s = 15
    assert torch.equal(item.x, los.x[:, s : s + 12]) and torch.equal(
        item.y, los.x[:, s + 12 : s + 24]
    )
    assert torch.equal(item.y_time, los.time[s + 12 : s + 24])
    assert int(w[-1].window) == w.window_start(len(w) - 1) <= 2016 - 24


def test_windows_are_views_not_copies(los):
    w = SlidingWindows(los, 12, 12)
    item = w[100]
    assert item.x.untyped_storage().data_ptr() == los.x.untyped_storage().data_ptr()


def test_dense_matches_items(los):
    w = SlidingWindows(los, 6, 3, start=100, stop=300)
    d = w.dense([0, 7, len(w) - 1])
    for b, i in enumerate([0, 7, len(w) - 1]):
        assert torch.equal(d["x"][b], w[i].x) and torch.equal(d["y_mask"][b], w[i].y_mask)


def test_no_window_crosses_a_split_boundary(los):
    split = chronological_split(los, ratios=(0.7, 0.1, 0.2))
    assert split.train == (0, 1411) and split.val == (1411, 1612) and split.test == (1612, 2016)
    wins = windows_for_split(los, split, 12, 12)
    for part, w in wins.items():
        a, b = split[part]
        starts = [w.window_start(i) for i in range(len(w))]
        assert min(starts) == a and max(starts) + 24 <= b
        assert len(w) == b - a - 24 + 1


def test_split_by_dates(los):
    split = chronological_split(los, dates=("2012-03-06", "2012-03-07"))
    assert (
        split.train == (0, 5 * 288)
        and split.val == (5 * 288, 6 * 288)
        and split.test == (6 * 288, 2016)
    )


def test_window_longer_than_series_is_a_clear_error(los):
    short = los.slice_time(0, 20)
    with pytest.raises(
        ValueError, match=r"12 input \+ 12 horizon = 24 steps is longer than the 20 steps"
    ):
        SlidingWindows(short, 12, 12)
    with pytest.raises(ValueError, match="not inside the series"):
        SlidingWindows(los, 12, 12, start=0, stop=5000)


def test_pgt_protocol_reproduces_temporal_signal_split(pox):
    # PyG Temporal: 521 weeks, 4 lags -> 517 snapshots; train_ratio 0.2 -> 103 train, 414 test
    split, wins = get_protocol("pgt").windows(pox)
    assert len(wins["train"]) == 103 and len(wins["test"]) == 414 and wins["val"] is None
    first_test = wins["test"][0]
    assert torch.equal(first_test.x, pox.x[:, 103:107]) and torch.equal(
        first_test.y, pox.x[:, 107:108]
    )
    # targets of the test part never lie in the training steps
    assert split.test[0] == 107 and int(first_test.window) + 4 == split.test[0]


def test_scaler_fitted_on_training_part_only(los):
    split = chronological_split(los, ratios=(0.8, 0.0, 0.2))
    a, b = split.train
    sc = StandardScaler().fit(los.x[:, a:b], los.mask[:, a:b])
    train_vals = los.x[:, a:b].double()
    assert float(sc.loc) == pytest.approx(float(train_vals.mean()), rel=1e-6)
    assert float(sc.loc) != pytest.approx(float(los.x.double().mean()), rel=1e-6)
    z = sc.transform(los.x[:, a:b])
    assert float(z.mean()) == pytest.approx(0.0, abs=1e-4) and float(z.std()) == pytest.approx(
        1.0, abs=1e-3
    )
    assert torch.allclose(sc.inverse_transform(z), los.x[:, a:b], atol=1e-4)
    # per-node statistics, and reloading fitted statistics into a fresh scaler
    per_node = StandardScaler(axis="node").fit(los.x[:, a:b])
    fresh = StandardScaler(axis="node")
    fresh.load_state_dict(per_node.state_dict())
    assert torch.equal(fresh.loc, per_node.loc) and fresh.loc.shape == (207, 1, 1)


def test_scaler_ignores_missing_values():
    x = torch.tensor([[[1.0], [3.0], [1000.0]]])
    mask = torch.tensor([[[True], [True], [False]]])
    sc = StandardScaler().fit(x, mask)
    assert float(sc.loc) == pytest.approx(2.0) and float(sc.scale) == pytest.approx(1.0)


def test_validation_held_out_from_training_keeps_the_test_part(pox, los):
    _, pgt = get_protocol("pgt").windows(pox)
    split, held = get_protocol("pgt-val").windows(pox)
    assert len(held["test"]) == len(pgt["test"]) == 414
    assert torch.equal(held["test"][0].x, pgt["test"][0].x)
    # 103 PGT training windows: the last int(0.2 * 103) = 20 become validation windows
    assert len(held["train"]) == 83 and len(held["val"]) == 20
    assert held["val"][0].window.item() + 4 == split.val[0] == held["train"][-1].window.item() + 5
    tg = get_protocol("tgcn-val").split(los)
    assert tg.train == (0, 1451) and tg.val == (1451, 1612) and tg.test == (1612, 2016)
