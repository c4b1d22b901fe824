"""Statistical baselines: exact answers on hand-made series, and behaviour on Los-loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _los_loop import TRAIN_STEPS, load_los_loop
from torch_geometric.loader import DataLoader

from stgraph.baselines import VAR, HistoricalAverage, LastValue, SeasonalNaive
from stgraph.baselines._batch import masked_node_mean
from stgraph.data import SlidingWindows, STGraph
from stgraph.errors import ConfigError
from stgraph.tasks import MODELS, build_model


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """One intra-op thread: on a shared, oversubscribed CPU, thread hand-offs cost more than they
    save on these small tensors (measured 25x slower DCRNN steps with two threads under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


T0 = 1_330_560_000  # 2012-03-01 00:00 UTC, a Thursday
DAY = 86_400


def _series(x: torch.Tensor, *, interval: int = 300, mask: torch.Tensor | None = None) -> STGraph:
    n, t, _ = x.shape
    ring = torch.arange(n)
    return STGraph(
        x=x,
        mask=mask,
        time=T0 + interval * torch.arange(t),
        edge_index=torch.stack([ring, (ring + 1) % n]),
        meta={"interval": interval},
    )


def _batches(graph: STGraph, input_steps: int, horizon: int, start: int, stop: int, bs: int = 16):
    windows = SlidingWindows(graph, input_steps, horizon, start=start, stop=stop)
    return list(DataLoader(windows, batch_size=bs))


def _predict_all(model, batches) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        pred = torch.cat([model(b) for b in batches])
    return pred, torch.cat([b.y for b in batches])


# ---------------------------------------------------------------------------- registry


def test_all_baselines_registered_and_built_by_name():
    assert {"historical_average", "last_value", "seasonal_naive", "var", "dcrnn"} <= set(MODELS)
    m = build_model("var", input_steps=12, horizon=3, num_variables=2, lags=2, ridge=0.1)
    assert isinstance(m, VAR) and (m.lags, m.ridge, m.horizon) == (2, 0.1, 3)
    assert not m.trainable and MODELS["dcrnn"].trainable
    with pytest.raises(TypeError):
        build_model("last_value", input_steps=12, horizon=3, num_variables=1, season_steps=4)
    with pytest.raises(ConfigError, match="lags=13"):
        build_model("var", input_steps=12, horizon=3, lags=13)
    with pytest.raises(ValueError, match="seasonality"):
        build_model("historical_average", input_steps=12, horizon=3, seasonality="month")


# ---------------------------------------------------------------------------- constant series


@pytest.mark.parametrize("name", ["historical_average", "last_value", "seasonal_naive", "var"])
def test_constant_series_predicted_exactly(name):
    levels = torch.tensor([3.0, -1.5, 40.0, 7.25])
    x = levels.view(4, 1, 1).expand(4, 3 * 288, 1).clone()
    g = _series(x)
    model = build_model(name, input_steps=12, horizon=6, num_variables=1).fit(g, (0, 2 * 288))
    pred, y = _predict_all(model, _batches(g, 12, 6, 2 * 288, 3 * 288))
    assert pred.shape == y.shape
    torch.testing.assert_close(pred, y, atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------- historical average


def test_historical_average_recovers_weekly_profile_and_ignores_missing():
    # Hourly data, 3 weeks; value = f(node, weekday, hour) + alternating noise that averages out.
    t = 3 * 7 * 24
    hours = torch.arange(t)
    dow = ((hours // 24) + 3) % 7  # T0 is a Thursday; Monday = 0
    hod = hours % 24
    profile = torch.randn(2, 7, 24)
    week = hours // (7 * 24)
    noise = torch.where(week == 0, 1.0, torch.where(week == 1, -1.0, 0.0))
    x = (profile[:, dow, hod] + noise).unsqueeze(-1)
    # Week 2 is only kept in the test part; the noise of weeks 0 and 1 cancels in the mean.
    mask = torch.ones_like(x, dtype=torch.bool)
    s0 = 2 * 24 + 5  # Saturday 05:00 of week 0
    mask[0, s0] = False  # a missing reading must not count (its x is 0)
    x[0, s0] = 0.0
    mask[0, s0 + 7 * 24] = False  # ... in week 1 as well: that slot is then unobserved
    g = _series(x, interval=3600, mask=mask)
    ha = HistoricalAverage(24, 24, 1).fit(g, (0, 2 * 7 * 24))
    assert ha.table.shape == (2, 7 * 24, 1)
    assert ha.fit_summary["week_slots_filled_by_fallback"] == 1
    pred, _ = _predict_all(ha, _batches(g, 24, 24, 2 * 7 * 24, t))
    batches = _batches(g, 24, 24, 2 * 7 * 24, t)
    y_time = torch.cat([b.y_time for b in batches])  # [W, H]
    slot_dow = ((y_time // DAY) + 3) % 7
    slot_hod = (y_time % DAY) // 3600
    expected = profile[:, slot_dow, slot_hod]  # [2, W, H]
    # The unobserved slot (node 0, Saturday 05:00) falls back to that hour's mean.
    hole = (slot_dow == int(dow[s0])) & (slot_hod == int(hod[s0]))
    hod_mean = torch.stack([profile[0, d, int(hod[s0])] for d in range(7)]).mean()
    obs_days = [d for d in range(7) if d != int(dow[s0])]
    # The hour-of-day fallback averages the 12 observed readings at that hour (2 weeks x 7 days,
    # less the 2 missing); the +1/-1 noise of the two weeks cancels.
    fallback = 2 * sum(profile[0, d, int(hod[s0])] for d in obs_days) / 12
    assert hole.any()
    expected[0][hole] = fallback
    got = pred.view(-1, 2, 24).permute(1, 0, 2)  # [2, W, H]
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    assert not math.isclose(float(fallback), float(hod_mean))  # the check would see a wrong mean


def test_historical_average_without_time_is_node_mean():
    x = torch.arange(40, dtype=torch.float32).view(2, 20, 1)
    g = STGraph(x=x)
    ha = HistoricalAverage(4, 2, 1).fit(g, (0, 10))
    batch = next(iter(DataLoader(SlidingWindows(g, 4, 2, start=10, stop=20), batch_size=3)))
    pred = ha(batch)
    expected = x[:, :10].mean(1).view(1, 2, 1, 1).expand(3, 2, 2, 1).reshape(6, 2, 1)
    torch.testing.assert_close(pred, expected)


# ---------------------------------------------------------------------------- last value


def test_last_value_skips_missing_and_falls_back_to_training_mean():
    x = torch.arange(3 * 30, dtype=torch.float32).view(3, 30, 1)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[0, 22:24] = False  # node 0: the last two inputs of the window [12, 24) are missing
    mask[1, 12:24] = False  # node 1: the whole window is missing
    g = _series(x, mask=mask)
    model = LastValue(12, 4, 1).fit(g, (0, 12))
    batch = next(iter(DataLoader(SlidingWindows(g, 12, 4, start=12, stop=30), batch_size=1)))
    pred = model(batch)
    assert pred.shape == (3, 4, 1)
    torch.testing.assert_close(pred[0], torch.full((4, 1), float(x[0, 21, 0])))
    torch.testing.assert_close(pred[1], torch.full((4, 1), float(x[1, :12].mean())))
    torch.testing.assert_close(pred[2], torch.full((4, 1), float(x[2, 23, 0])))
    with pytest.raises(RuntimeError, match="fit"):
        LastValue(12, 4, 1)(batch)


# ---------------------------------------------------------------------------- seasonal naive


def test_seasonal_naive_exact_on_daily_sine_even_beyond_one_season():
    # Hourly sine with a one-day period; horizon 30 > season 24 reaches two seasons back.
    t = 10 * 24
    phase = torch.tensor([0.0, 1.0, 2.5]).view(3, 1)
    hours = torch.arange(t).view(1, -1)
    x = (10 + 5 * torch.sin(2 * math.pi * hours / 24 + phase)).unsqueeze(-1)
    g = _series(x, interval=3600)
    model = SeasonalNaive(12, 30, 1).fit(g, (0, 5 * 24))
    assert int(model.season) == 24
    pred, y = _predict_all(model, _batches(g, 12, 30, 5 * 24, t))
    torch.testing.assert_close(pred, y, atol=1e-4, rtol=0)
    # Last value would be far off on the same windows: the check has teeth.
    lv, _ = _predict_all(LastValue(12, 30, 1).fit(g, (0, 5 * 24)), _batches(g, 12, 30, 5 * 24, t))
    assert float((lv - y).abs().mean()) > 1.0


def test_seasonal_naive_reads_inside_window_through_the_batch_mask():
    # season 4 < L: the seasonal value is in the window; a masked one falls back to last value.
    x = torch.arange(40, dtype=torch.float32).view(1, 40, 1)
    g = _series(x)
    model = SeasonalNaive(8, 2, 1, season_steps=4).fit(g, (0, 20))
    batch = next(iter(DataLoader(SlidingWindows(g, 8, 2, start=20, stop=40), batch_size=1)))
    torch.testing.assert_close(model(batch).view(-1), torch.tensor([24.0, 25.0]))
    batch.mask[0, 4] = False  # step 24, the seasonal value of the first target (28)
    batch.x[0, 4] = 1e6
    torch.testing.assert_close(model(batch).view(-1), torch.tensor([27.0, 25.0]))


def test_seasonal_naive_before_series_start_and_wrong_series():
    x = torch.arange(60, dtype=torch.float32).view(1, 60, 1)
    g = _series(x)
    model = SeasonalNaive(4, 2, 1, season_steps=20).fit(g, (0, 30))
    first = next(iter(DataLoader(SlidingWindows(g, 4, 2, start=0, stop=30), batch_size=1)))
    # Targets 4, 5 would need steps -16, -15: unavailable, so the last input (3) is repeated.
    torch.testing.assert_close(first.x.new_tensor([3.0, 3.0]), model(first).view(-1))
    other = _series(x + 1.0, interval=600)
    wrong = next(iter(DataLoader(SlidingWindows(other, 4, 2, start=30, stop=60), batch_size=1)))
    with pytest.raises(ValueError, match="does not match the series"):
        model(wrong)
    with pytest.raises(ValueError, match="interval"):
        SeasonalNaive(4, 2, 1).fit(STGraph(x=x), (0, 30))


# ---------------------------------------------------------------------------- VAR


def test_var_recovers_ar1_coefficients_and_forecasts_by_iterating():
    gen = torch.Generator().manual_seed(0)
    n, t = 4, 30_000
    a = torch.tensor(
        [[0.5, 0.2, 0.0, 0.0], [0.0, 0.4, -0.3, 0.0], [0.1, 0.0, 0.6, 0.1], [0.0, -0.2, 0.0, 0.3]],
        dtype=torch.float64,
    )
    b = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    scales = torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64)
    shocks = (scales * torch.randn(t, n, generator=gen, dtype=torch.float64) + b).numpy()
    a_np = a.numpy()
    s = np.zeros((t, n))
    s[0] = np.linalg.solve(np.eye(n) - a_np, b.numpy())
    for i in range(1, t):
        s[i] = a_np @ s[i - 1] + shocks[i]
    g = _series(torch.from_numpy(s.T).unsqueeze(-1).float())
    model = VAR(4, 3, 1, lags=1, ridge=0.0).fit(g, (0, t - 100))
    coef, intercept = model.coefficients()
    torch.testing.assert_close(coef[0], a, atol=0.04, rtol=0)
    torch.testing.assert_close(intercept, b, atol=0.15, rtol=0)
    # forward() iterates the fitted model: x_{t+h} = A x_{t+h-1} + b from the last input.
    batch = next(iter(DataLoader(SlidingWindows(g, 4, 3, start=t - 100, stop=t), batch_size=5)))
    pred = model(batch).view(5, n, 3).double()
    state = batch.x.view(5, n, 4)[:, :, -1].double()
    for h in range(3):
        state = state @ coef[0].T + intercept
        torch.testing.assert_close(pred[:, :, h], state, atol=1e-3, rtol=1e-4)


def test_var_refuses_graphs_too_large_for_dense_least_squares():
    g = STGraph(x=torch.zeros(7000, 10, 1))
    with pytest.raises(ConfigError, match="regressors"):
        VAR(4, 2, 1, lags=3).fit(g, (0, 10))


# ---------------------------------------------------------------------------- Los-loop


@pytest.fixture(scope="module")
def los_loop(data_dir):
    return load_los_loop(data_dir)


@pytest.fixture(scope="module")
def fitted(los_loop):
    train = (0, TRAIN_STEPS)
    return {
        name: build_model(name, input_steps=12, horizon=12, num_variables=1).fit(los_loop, train)
        for name in ("historical_average", "last_value", "seasonal_naive", "var")
    }


@pytest.fixture(scope="module")
def test_batches(los_loop):
    windows = SlidingWindows(los_loop, 12, 12, start=TRAIN_STEPS, stop=los_loop.num_steps)
    return list(DataLoader(windows, batch_size=64))


@pytest.mark.parametrize("name", ["historical_average", "last_value", "seasonal_naive", "var"])
def test_los_loop_masked_inputs_do_not_change_predictions(fitted, test_batches, name):
    model = fitted[name]
    batch = test_batches[1]
    gen = torch.Generator().manual_seed(1)
    hide = torch.rand(batch.mask.shape, generator=gen) < 0.3
    hide[:5] = True  # some nodes with no observed input at all
    masked = batch.clone()
    masked.mask = batch.mask & ~hide
    masked.x = torch.where(hide, torch.zeros_like(batch.x), batch.x)
    garbage = masked.clone()
    garbage.x = torch.where(hide, torch.full_like(batch.x, 1e4), batch.x)
    with torch.no_grad():
        p0, p1 = model(masked), model(garbage)
    assert p0.shape == (64 * 207, 12, 1)
    assert torch.isfinite(p0).all()
    torch.testing.assert_close(p0, p1, rtol=0, atol=0)


def test_los_loop_predictions_plausible(los_loop, fitted, test_batches):
    lo, hi = float(los_loop.x[:, :TRAIN_STEPS].min()), float(los_loop.x[:, :TRAIN_STEPS].max())
    y = torch.cat([b.y for b in test_batches])
    mae = {}
    with torch.no_grad():
        for name, model in fitted.items():
            pred = torch.cat([model(b) for b in test_batches])
            assert pred.shape == y.shape
            if name != "var":  # averages and copies of observed speeds stay inside their range
                assert lo - 1e-3 <= float(pred.min()) and float(pred.max()) <= hi + 1e-3
            mae[name] = (pred - y).abs().mean(dim=(0, 2))  # per horizon step
    # Five minutes ahead, persistence beats the time-of-day mean on freeway speeds; and the
    # persistence error grows with the horizon while the historical average's does not depend on it.
    assert mae["last_value"][0] < mae["historical_average"][0]
    assert mae["last_value"][11] > 1.5 * mae["last_value"][0]
    assert float(mae["var"].mean()) < float(mae["historical_average"].mean())


def test_fit_reads_only_the_training_steps(los_loop):
    train = (0, TRAIN_STEPS)
    changed = los_loop.clone()
    changed.x = los_loop.x.clone()
    changed.x[:, TRAIN_STEPS:] += 25.0
    for name in ("historical_average", "last_value", "var"):
        a = build_model(name, input_steps=12, horizon=12).fit(los_loop, train).state_dict()
        b = build_model(name, input_steps=12, horizon=12).fit(changed, train).state_dict()
        for key in a:
            torch.testing.assert_close(a[key], b[key], msg=f"{name}.{key}")


@pytest.mark.parametrize("name", ["historical_average", "last_value", "seasonal_naive", "var"])
def test_state_dict_round_trip(los_loop, fitted, test_batches, name):
    fresh = build_model(name, input_steps=12, horizon=12, num_variables=1)
    fresh.load_state_dict(fitted[name].state_dict())
    if name == "seasonal_naive":  # the series itself is not saved: fit again to attach it
        fresh.fit(los_loop, (0, TRAIN_STEPS))
    with torch.no_grad():
        torch.testing.assert_close(fresh(test_batches[0]), fitted[name](test_batches[0]))


# ---------------------------------------------------------------------------- masked node mean


def test_masked_node_mean_convention_on_los_loop(los_loop):
    """One convention for a node's typical value: mean of its observed steps per variable, the
    variable's mean over all observed entries when the node never observed it, 0 when nobody did."""
    speed = los_loop.x[:6, :TRAIN_STEPS, 0]
    x = torch.stack([speed, 2.0 * speed + 1.0, speed], dim=-1)  # [6, T, 3]
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[1, :, 0] = False  # node 1 never saw variable 0 (but saw variable 1)
    mask[2, ::3, 1] = False  # node 2 saw two steps in three of variable 1
    mask[:, :, 2] = False  # nobody saw variable 2
    x = torch.where(mask, x, torch.full_like(x, 1e6))  # hidden entries must not count
    got = masked_node_mean(x, mask)

    assert got.shape == (6, 3) and got.dtype == torch.float64
    obs0 = x[:, :, 0][mask[:, :, 0]].double()
    assert got[1, 0] == pytest.approx(float(obs0.mean()), rel=1e-12)  # fallback: variable mean
    assert got[1, 1] == pytest.approx(float(x[1, :, 1].double().mean()), rel=1e-12)
    assert got[2, 1] == pytest.approx(float(x[2, :, 1][mask[2, :, 1]].double().mean()), rel=1e-12)
    assert got[0, 0] == pytest.approx(float(speed[0].double().mean()), rel=1e-12)
    assert torch.equal(got[:, 2], torch.zeros(6, dtype=torch.float64))

    # the three baselines that need a node's mean use exactly this one
    g = STGraph(x=x, mask=mask, time=los_loop.time[:TRAIN_STEPS], meta={"interval": 300})
    for model in (HistoricalAverage(12, 3, 3), LastValue(12, 3, 3), SeasonalNaive(12, 3, 3)):
        model.fit(g, (0, TRAIN_STEPS))
        torch.testing.assert_close(model.node_mean, got.float(), rtol=0, atol=0)


def test_baselines_take_the_interval_of_the_graph(los_loop):
    """The sampling interval is STGraph's (declared, else the median step of the timestamps):
    Los-loop without its declared 300 s gets the same seasonal table, season and time features."""
    undeclared = los_loop.clone()
    undeclared.meta = {k: v for k, v in (los_loop.meta or {}).items() if k != "interval"}
    assert undeclared.interval == los_loop.interval == 300
    train = (0, TRAIN_STEPS)
    for name in ("historical_average", "seasonal_naive", "dcrnn"):
        a = build_model(name, input_steps=12, horizon=12).fit(los_loop, train).state_dict()
        b = build_model(name, input_steps=12, horizon=12).fit(undeclared, train).state_dict()
        key = {"historical_average": "table", "seasonal_naive": "season", "dcrnn": "interval"}[name]
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert (
        int(build_model("seasonal_naive", input_steps=12, horizon=12).fit(los_loop, train).season)
        == 288
    )
