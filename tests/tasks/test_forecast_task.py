"""The task contract with the forecasting task on real chickenpox windows: what the model is
fed, the masked loss in original units, metrics accumulated over batches, the registry."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.loader import DataLoader

from stgraph import datasets
from stgraph.baselines import LastValue
from stgraph.data import SlidingWindows
from stgraph.tasks import (
    TASKS,
    ForecastMetrics,
    ForecastTask,
    MetricAccumulator,
    Task,
    get_task,
    masked_mae,
    task_names,
)


@pytest.fixture(scope="module")
def pox(data_dir):
    return datasets.load("chickenpox", root=data_dir, download=False)


@pytest.fixture(scope="module")
def batches(pox):
    windows = SlidingWindows(pox, 4, 3, start=200, stop=pox.num_steps)
    return list(DataLoader(windows, batch_size=32))


@pytest.fixture(scope="module")
def last_value(pox):
    return LastValue(4, 3, 1).fit(pox, (0, 200))


def test_registry_builds_forecast_by_name():
    assert "forecast" in task_names() and TASKS["forecast"] is ForecastTask
    task = get_task("forecast", horizon=3, null_value=0.0, loss="huber", loss_delta=0.5)
    assert isinstance(task, Task) and (task.horizon, task.null_value) == (3, 0.0)
    assert (task.loss_kind, task.loss_delta) == ("huber", 0.5)
    with pytest.raises(KeyError, match="registered: .*forecast"):
        get_task("kriging", horizon=3)
    with pytest.raises(ValueError, match="loss 'l1'"):
        get_task("forecast", horizon=3, loss="l1")


def test_loss_is_masked_and_in_original_units(batches):
    batch = batches[0].clone()
    batch.y_mask = batch.y_mask.clone()
    batch.y_mask[:7] = False  # unobserved targets: their error must not count
    pred = batch.y + 2.5
    pred[:7] += 1e3
    task = ForecastTask(3)
    assert float(task.loss_of(pred, batch)) == pytest.approx(2.5, rel=1e-6)
    mse = ForecastTask(3, loss="mse").loss_of(pred, batch)
    assert float(mse) == pytest.approx(2.5**2, rel=1e-6)


def test_loss_of_a_model_has_gradients_and_feeds_the_batch(batches, pox):
    lin = torch.nn.Linear(4, 3)

    class Lags(torch.nn.Module):
        def forward(self, batch):
            return lin(batch.x.transpose(1, 2)).transpose(1, 2)

    task = ForecastTask(3)
    loss = task.loss(Lags(), batches[0])
    loss.backward()
    assert lin.weight.grad is not None and float(lin.weight.grad.abs().sum()) > 0
    want = masked_mae(Lags()(batches[0]), batches[0].y, batches[0].y_mask)
    assert float(loss.detach()) == pytest.approx(float(want.detach()))


def test_predict_refuses_a_wrong_shape(batches):
    class Short(torch.nn.Module):
        def forward(self, batch):
            return batch.x[:, :2]

    with pytest.raises(ValueError, match=r"Short returned \(\d+, 2, 1\), expected \(\d+, 3, 1\)"):
        ForecastTask(3).predict(Short(), batches[0])


def test_metrics_over_batches_equal_metrics_over_all_windows(pox, batches, last_value):
    task = ForecastTask(3)
    acc = task.score(last_value, batches, task.metrics(num_nodes=pox.num_nodes))
    assert isinstance(acc, ForecastMetrics) and not last_value.training
    with torch.no_grad():
        pred = torch.cat([last_value(b) for b in batches])
    y = torch.cat([b.y for b in batches])
    whole = MetricAccumulator(3)
    whole.update(pred, y)
    assert acc.summary() == pytest.approx(whole.average(), rel=1e-12)
    for step in (1, 3):
        assert acc.at([step])[step] == pytest.approx(whole.at([step])[step], rel=1e-12)
    n = pox.num_nodes
    per_node = (pred - y).abs().view(-1, n, 3).double().mean(dim=(0, 2))
    assert acc.node_mae() == pytest.approx(per_node.tolist(), rel=1e-9)
    # the last value of a weekly change series is a poor forecast: worse than the mean change 0
    assert acc.summary()["mae"] > float(y.abs().mean())
