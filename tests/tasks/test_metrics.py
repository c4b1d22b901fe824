"""Masked metrics against hand computation; batch accumulation equals the whole-set value."""

from __future__ import annotations

import math

import pytest
import torch

from stgraph.tasks.metrics import (
    MetricAccumulator,
    masked_berhu,
    masked_huber,
    masked_mae,
    masked_mape,
    masked_mse,
    masked_rmse,
)


def test_masked_metrics_by_hand():
    pred = torch.tensor([1.0, 2.0, 3.0, 10.0])
    y = torch.tensor([2.0, 2.0, 1.0, 0.0])
    mask = torch.tensor([True, True, True, False])
    assert float(masked_mae(pred, y, mask)) == pytest.approx((1 + 0 + 2) / 3)
    assert float(masked_mse(pred, y, mask)) == pytest.approx((1 + 0 + 4) / 3)
    assert float(masked_rmse(pred, y, mask)) == pytest.approx(math.sqrt(5 / 3))
    assert float(masked_mape(pred, y, mask)) == pytest.approx(100 * (0.5 + 0 + 2) / 3)
    # Huber, delta 1.5: errors 1 (squared half: 0.5), 0, 2 (linear: 1.5 * (2 - 0.75) = 1.875)
    assert float(masked_huber(pred, y, mask, delta=1.5)) == pytest.approx((0.5 + 0 + 1.875) / 3)
    # berHu, delta 1.5: errors 1 (absolute: 1), 0, 2 (quadratic: (4 + 2.25) / 3 = 2.0833)
    assert float(masked_berhu(pred, y, mask, delta=1.5)) == pytest.approx((1 + 0 + 6.25 / 3) / 3)
    # null value 1.0 removes the third entry as well
    assert float(masked_mae(pred, y, mask, null_value=1.0)) == pytest.approx(0.5)
    # nothing valid -> nan, not 0
    assert math.isnan(float(masked_mae(pred, y, torch.zeros(4, dtype=torch.bool))))


def test_accumulator_equals_whole_set_and_per_step():
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(50, 7, 4, 2, generator=g)  # [B, N, H, V]
    y = torch.randn(50, 7, 4, 2, generator=g)
    mask = torch.rand(50, 7, 4, 2, generator=g) > 0.2
    acc = MetricAccumulator(horizon=4)
    for chunk in range(0, 50, 13):  # uneven batches
        acc.update(pred[chunk : chunk + 13], y[chunk : chunk + 13], mask[chunk : chunk + 13])
    avg = acc.average()
    assert avg["mae"] == pytest.approx(float(masked_mae(pred, y, mask)), rel=1e-6)
    assert avg["rmse"] == pytest.approx(float(masked_rmse(pred, y, mask)), rel=1e-6)
    per = acc.per_step()
    for h in range(4):
        sl = (slice(None), slice(None), h)
        assert per["mae"][h] == pytest.approx(
            float(masked_mae(pred[sl], y[sl], mask[sl])), rel=1e-6
        )
        assert per["mape"][h] == pytest.approx(
            float(masked_mape(pred[sl], y[sl], mask[sl])), rel=1e-6
        )
    assert acc.at([2])[2]["mse"] == pytest.approx(per["mse"][1])
    assert acc.count == int(mask.sum())


def test_accumulator_rejects_shape_mismatch():
    acc = MetricAccumulator(horizon=3)
    with pytest.raises(ValueError, match="differ in shape"):
        acc.update(torch.zeros(2, 3, 1), torch.zeros(2, 4, 1))
    with pytest.raises(ValueError, match="horizon step 4"):
        acc.at([4])
