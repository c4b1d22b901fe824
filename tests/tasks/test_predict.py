"""Forecast tables: the model's own forecasts of the right window, timed and labelled, written as
parquet that reads back identical."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.data import Batch

from stgraph import datasets
from stgraph.baselines import LastValue
from stgraph.data import SlidingWindows
from stgraph.errors import ConfigError
from stgraph.nn import STFM
from stgraph.tasks.predict import FORECAST_COLUMNS, forecast_table, write_forecasts

OPTIONS = {"channels": 32, "depth": 1, "heads": 2, "patch_len": 3, "levels": 1}


@pytest.fixture(scope="module")
def los_loop(data_dir):
    return datasets.load("los-loop")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return STFM(**OPTIONS).eval()


def _own_forecast(model, graph, first: int, input_steps: int, horizon: int) -> torch.Tensor:
    """The model on the sliding window whose inputs start at step ``first``."""
    windows = SlidingWindows(
        graph, input_steps, horizon, start=first, stop=first + input_steps + horizon
    )
    with torch.no_grad():
        return model(Batch.from_data_list([windows[0]]), horizon=horizon)


def test_table_after_the_last_observation(los_loop, model):
    df = forecast_table(model, los_loop, input_steps=12, horizon=3)
    n, t = los_loop.num_nodes, los_loop.num_steps
    assert list(df.columns) == list(FORECAST_COLUMNS) and len(df) == n * 3
    assert str(df["time"].dtype) == "datetime64[ns, UTC]"
    assert df["step"].tolist()[:6] == [1, 2, 3, 1, 2, 3]
    ids = los_loop.meta["node_ids"]
    assert df["node"].tolist()[::3] == ids
    np.testing.assert_array_equal(df["lon"].to_numpy()[::3], los_loop.pos[:, 0].double().numpy())
    np.testing.assert_array_equal(df["lat"].to_numpy()[::3], los_loop.pos[:, 1].double().numpy())
    last = int(los_loop.time[-1])
    expected = pd.to_datetime([last + 300 * k for k in (1, 2, 3)], unit="s", utc=True)
    assert list(df["time"][:3]) == list(expected)
    assert set(df["variable"]) == {"speed"} and set(df["unit"]) == {"mph"}
    # the values are the model's forecast of the last 12 steps (window inputs [T-12, T))
    with torch.no_grad():
        own = model(Batch.from_data_list([los_loop.slice_time(t - 12, t)]), horizon=3)
    np.testing.assert_array_equal(df["value"].to_numpy(), own.double().numpy().reshape(-1))
    assert df.attrs["time_reference"] == "local" and df.attrs["timezone"] == "America/Los_Angeles"
    assert df.attrs["input_end"] == pd.Timestamp(last, unit="s").isoformat()


def test_values_equal_the_model_on_the_same_window(los_loop, model):
    k = 1000  # forecast from step k: inputs are steps [k - 12, k)
    start = pd.Timestamp(int(los_loop.time[k]), unit="s")
    df = forecast_table(model, los_loop, input_steps=12, horizon=6, start=str(start))
    own = _own_forecast(model, los_loop, k - 12, 12, 6)
    np.testing.assert_array_equal(df["value"].to_numpy(), own.double().numpy().reshape(-1))
    assert df["time"].iloc[0] == start.tz_localize("UTC")
    # a start between two steps forecasts from the step after it, as the step itself does
    between = forecast_table(
        model, los_loop, input_steps=12, horizon=6, start=start - pd.Timedelta(minutes=2)
    )
    pd.testing.assert_frame_equal(between, df)


def test_a_forecaster_runs_too(los_loop):
    lv = LastValue(12, 3).fit(los_loop, (0, 1411))
    df = forecast_table(lv, los_loop, input_steps=12, horizon=3)
    last = los_loop.x[:, -1, 0].double().numpy()
    np.testing.assert_array_equal(df["value"].to_numpy()[::3], last)
    with pytest.raises(ValueError, match="forecasts 3 steps, not horizon=6"):
        forecast_table(lv, los_loop, input_steps=12, horizon=6)


def test_model_mode_is_restored(los_loop):
    torch.manual_seed(0)
    net = STFM(**OPTIONS).train()
    forecast_table(net, los_loop, input_steps=12, horizon=3)
    assert net.training and all(p.grad is None for p in net.parameters())


def test_parquet_round_trip(los_loop, model, tmp_path):
    df = forecast_table(model, los_loop, input_steps=12, horizon=3)
    path = tmp_path / "out" / "forecasts.parquet"
    assert write_forecasts(df, path) == path
    back = pd.read_parquet(path)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert dict(back.dtypes) == dict(df.dtypes) and back.attrs == df.attrs
    # replacing a file is atomic: a failed write leaves the old one, and no temporary file
    with pytest.raises(ValueError, match="no columns"):
        write_forecasts(df.drop(columns=["unit"]), path)
    pd.testing.assert_frame_equal(pd.read_parquet(path), df)
    assert sorted(p.name for p in path.parent.iterdir()) == ["forecasts.parquet"]


def test_graph_without_coordinates_and_weekly_steps(data_dir, model, tmp_path):
    g = datasets.load("chickenpox")  # no pos, weekly, county names as node ids
    df = forecast_table(model, g, input_steps=8, horizon=2)
    assert df["lon"].isna().all() and df["lat"].isna().all()
    assert df["node"].tolist()[::2] == g.meta["node_ids"]
    gap = df["time"].iloc[1] - df["time"].iloc[0]
    assert gap == pd.Timedelta(weeks=1)
    write_forecasts(df, tmp_path / "pox.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "pox.parquet"), df, check_exact=True)


def test_two_variables_and_node_indices(data_dir, model):
    g = copy.copy(datasets.load("hangzhou-metro"))  # inflow and outflow
    g.meta = {k: v for k, v in g.meta.items() if k != "node_ids"}
    df = forecast_table(model, g, input_steps=12, horizon=2)
    assert len(df) == g.num_nodes * 2 * 2
    assert df["variable"].tolist()[:4] == [g.variables[0], g.variables[1]] * 2
    assert df["node"].dtype == np.int64 and df["node"].tolist()[:4] == [0, 0, 0, 0]


def test_start_with_a_zone_is_read_in_the_graph_clock(data_dir, model):
    g = datasets.load("melbourne-pedestrian")  # local clock labels (Australia/Melbourne)
    naive = forecast_table(model, g, input_steps=24, horizon=2, start="2022-06-01 10:00")
    zoned = forecast_table(
        model, g, input_steps=24, horizon=2, start=pd.Timestamp("2022-06-01 00:00", tz="UTC")
    )  # 10:00 in Melbourne (AEST, UTC+10)
    pd.testing.assert_frame_equal(naive, zoned)
    assert naive["time"].iloc[0] == pd.Timestamp("2022-06-01 10:00", tz="UTC")  # the label


def test_clear_errors(los_loop, model):
    short = los_loop.slice_time(0, 5)
    with pytest.raises(ValueError, match="5 steps, fewer than input_steps=12"):
        forecast_table(model, short, input_steps=12, horizon=3)
    with pytest.raises(ValueError, match="at or before the first observation"):
        forecast_table(model, los_loop, input_steps=12, horizon=3, start="2012-02-01")
    with pytest.raises(ValueError, match="only 6 steps before it"):
        forecast_table(model, los_loop, input_steps=12, horizon=3, start="2012-03-01 00:30")
    with pytest.raises(ValueError, match="after the step following the last observation"):
        forecast_table(model, los_loop, input_steps=12, horizon=3, start="2012-04-01")
    with pytest.raises(ConfigError, match="not a number"):
        forecast_table(model, los_loop, input_steps=12, horizon=3, start=1000)
    with pytest.raises(ValueError, match="not readable as a time"):
        forecast_table(model, los_loop, input_steps=12, horizon=3, start="next tuesday")
    with pytest.raises(ValueError, match="horizon=0"):
        forecast_table(model, los_loop, input_steps=12, horizon=0)
