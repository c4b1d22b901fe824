"""Pictures of a run: the training curve from log.csv at the end of ``stgraph train``, horizon
axes in minutes/hours/days, several models on one horizon plot, node maps on one colour scale."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from stgraph.data import StandardScaler, STGraph
from stgraph.tasks.forecaster import Forecaster
from stgraph.train import load_config, train
from stgraph.train.reports import plot_training_curve
from stgraph.train.transfer import plot_horizons, plot_node_maps
from stgraph.utils.plotting import lead_times

PNG = b"\x89PNG\r\n\x1a\n"


class CurveLinear(Forecaster):
    """A per-node linear map of the scaled lags: a real trainable model that trains in seconds."""

    name = "test_curve_linear"

    def __init__(self, input_steps: int, horizon: int, num_variables: int = 1) -> None:
        super().__init__(input_steps, horizon, num_variables)
        self.scaler = StandardScaler()
        self.lin = torch.nn.Linear(input_steps, horizon)

    def fit(self, graph: STGraph, train_range: tuple[int, int]) -> Forecaster:
        a, b = train_range
        self.scaler.fit(graph.x[:, a:b], graph.mask[:, a:b])
        return self

    def forward(self, batch: STGraph) -> torch.Tensor:
        z = self.scaler.transform(batch.x) * batch.mask
        return self.scaler.inverse_transform(self.lin(z.transpose(1, 2)).transpose(1, 2))


def test_train_writes_the_training_curve(tmp_path, data_dir):
    cfg = load_config(
        raw={
            "seed": 3,
            "dataset": {"name": "chickenpox"},
            "protocol": {"name": "pgt-80-20"},
            "model": {"name": "test_curve_linear"},
            "train": {"epochs": 3, "batch_size": 32, "lr": 0.01},
            "output": {"dir": str(tmp_path / "run"), "tensorboard": False, "progress": False},
        }
    )
    res = train(cfg)
    png = res.run_dir / "training-curve.png"
    assert png.read_bytes()[:8] == PNG
    with (res.run_dir / "log.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 3
    # a log without a finished epoch has no curve
    empty = tmp_path / "empty" / "log.csv"
    empty.parent.mkdir()
    empty.write_text("epoch,train_loss,val_mae,val_rmse,lr,seconds\n")
    assert plot_training_curve(empty) is None and not (empty.parent / "training-curve.png").exists()
    # the metrics' horizon plot sits beside it
    metrics = json.loads((res.run_dir / "metrics.json").read_text())
    assert metrics["interval_s"] == 7 * 86400
    assert (res.run_dir / "metrics-horizon.png").read_bytes()[:8] == PNG


def test_lead_times_in_the_units_a_person_reads():
    assert lead_times(12, 300) == ([5.0 * (i + 1) for i in range(12)], "lead time (minutes)")
    x, label = lead_times(12, 3600)
    assert x[-1] == 12.0 and label == "lead time (hours)"
    assert lead_times(4, 7 * 86400) == ([7.0, 14.0, 21.0, 28.0], "lead time (days)")
    assert lead_times(3, None) == ([1, 2, 3], "horizon step")


def test_several_models_one_horizon_plot_and_shared_map_scale(tmp_path, data_dir):
    from stgraph import datasets

    g = datasets.load("melbourne-pedestrian")
    n = g.num_nodes
    proto = {"units": "pedestrians"}
    results = [
        {
            "model": name,
            "dataset": "melbourne-pedestrian",
            "interval_s": 3600,
            "protocol": proto,
            "per_step": {"mae": [k * s for s in range(1, 7)]},
            "node_mae": [float(k * i) for i in range(n)],
        }
        for name, k in (("historical average", 3.0), ("stfm zero-shot", 1.0))
    ]
    out = plot_horizons(results, tmp_path / "horizon.png")
    assert out.read_bytes()[:8] == PNG
    maps = plot_node_maps(results, g, tmp_path)
    assert [p.name for p in maps] == ["historical-average-map.png", "stfm-zero-shot-map.png"]
    assert all(p.read_bytes()[:8] == PNG for p in maps)
    with pytest.raises(KeyError):
        plot_horizons([{"model": "x", "per_step": {}}], tmp_path / "bad.png")
