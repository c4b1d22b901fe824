"""The training loop end to end on real chickenpox data: checkpoints, determinism, resume."""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from stgraph.data import StandardScaler, STGraph
from stgraph.errors import ConfigError
from stgraph.tasks import TASKS, ForecastTask
from stgraph.tasks.forecaster import Forecaster
from stgraph.train import checkpoint as ckpt
from stgraph.train import load_config, train
from stgraph.train import trainer as trainer_mod


class LinearLags(Forecaster):
    """A per-node linear map of the scaled lags (shared weights): small and fast to train."""

    name = "test_linear_lags"

    def __init__(
        self, input_steps: int, horizon: int, num_variables: int = 1, dropout: float = 0.1
    ) -> None:
        super().__init__(input_steps, horizon, num_variables)
        self.scaler = StandardScaler()
        self.lin = torch.nn.Linear(input_steps, horizon)
        self.drop = torch.nn.Dropout(dropout)  # exercises the RNG state across resume

    def fit(self, graph: STGraph, train_range: tuple[int, int]) -> Forecaster:
        a, b = train_range
        self.scaler.fit(graph.x[:, a:b], graph.mask[:, a:b])
        return self

    def forward(self, batch: STGraph) -> torch.Tensor:
        z = self.scaler.transform(batch.x) * batch.mask  # [BN, L, V]
        out = self.lin(self.drop(z.transpose(1, 2))).transpose(1, 2)  # [BN, H, V]
        return self.scaler.inverse_transform(out)


@pytest.fixture(scope="module")
def pox(data_dir) -> STGraph:
    d = json.loads((data_dir / "pgt-chickenpox" / "chickenpox.json").read_text())
    x = torch.tensor(d["FX"], dtype=torch.float32).t()[:, :, None]
    ei = torch.tensor(d["edges"]).t()
    return STGraph(
        x=x,
        time=1104710400 + 7 * 86400 * torch.arange(x.size(1)),
        edge_index=ei,
        meta={"variables": [{"name": "cases", "unit": "standardised"}], "interval": 7 * 86400},
    )


def _cfg(tmp_path, name="run", epochs=4, protocol="pgt-80-20", model="test_linear_lags", **train):
    return load_config(
        raw={
            "seed": 7,
            "dataset": {"name": "chickenpox"},
            "protocol": {"name": protocol},
            "model": {"name": model},
            "train": {"epochs": epochs, "batch_size": 32, "lr": 0.01, **train},
            "output": {"dir": str(tmp_path / name), "tensorboard": True, "progress": False},
        }
    )


def test_run_writes_checkpoint_and_metrics(tmp_path, pox):
    res = train(_cfg(tmp_path), graph=pox)
    d = res.run_dir
    for f in (
        "config.yaml",
        "model.safetensors",
        "resume/last.safetensors",
        "resume/optimizer.pt",
        "resume/trainer_state.json",
        "log.csv",
        "metrics.json",
        "metrics.md",
        "metrics-horizon.png",
    ):
        assert (d / f).is_file(), f
    assert any((d / "tensorboard").iterdir())
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["protocol"]["name"] == "pgt-80-20" and metrics["num_windows"] == 104
    assert set(metrics["horizons"]["1"]) == {"mae", "rmse", "mape", "mse"}
    assert len((d / "log.csv").read_text().splitlines()) == 1 + 4
    assert "lin.weight" in load_file(str(d / "model.safetensors"))
    # the optimizer state is readable with weights_only=True
    assert "optimizer" in torch.load(d / "resume" / "optimizer.pt", weights_only=True)
    assert oct((d / "metrics.json").stat().st_mode & 0o777) != oct(0o600)  # not owner-only


def test_same_seed_same_result(tmp_path, pox):
    a = train(_cfg(tmp_path, "a", epochs=2), graph=pox).metrics["average"]
    b = train(_cfg(tmp_path, "b", epochs=2), graph=pox).metrics["average"]
    assert a == b


@pytest.mark.parametrize("crash", ["after_epoch_2", "while_saving_epoch_3", "ema_after_epoch_2"])
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, pox, monkeypatch, crash):
    extra = {"ema_decay": 0.9} if crash.startswith("ema") else {}
    full = train(_cfg(tmp_path, "full", epochs=4, **extra), graph=pox)
    if crash.endswith("after_epoch_2"):
        real = trainer_mod._write_state

        def fake(run_dir, model, opt, state, *rest):
            real(run_dir, model, opt, state, *rest)
            if state["epoch"] == 2 and not state["finished"]:
                raise KeyboardInterrupt

        monkeypatch.setattr(trainer_mod, "_write_state", fake)
    else:  # dies half-way through writing the resume files of epoch 3
        real = ckpt.save_optimizer
        calls = {"n": 0}

        def fake(optimizer, path):
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
            return real(optimizer, path)

        monkeypatch.setattr(ckpt, "save_optimizer", fake)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tmp_path, "cut", epochs=4, **extra), graph=pox)
    monkeypatch.undo()
    state = json.loads((tmp_path / "cut" / "resume" / "trainer_state.json").read_text())
    assert state["epoch"] == 2 and not state["finished"]
    if extra:  # 13 training batches of 32 per epoch, one average update after each
        assert (
            state["ema_steps"] == 2 * 13
            and (tmp_path / "cut" / "resume" / "ema.safetensors").is_file()
        )
    resumed = train(_cfg(tmp_path, "cut", epochs=4, **extra), graph=pox)
    w_full = load_file(str(full.run_dir / "model.safetensors"))
    w_cut = load_file(str(resumed.run_dir / "model.safetensors"))
    assert all(torch.equal(w_full[k], w_cut[k]) for k in w_full)
    assert resumed.metrics["average"] == full.metrics["average"]
    epochs = [
        line.split(",")[0] for line in (resumed.run_dir / "log.csv").read_text().splitlines()[1:]
    ]
    assert epochs == ["1", "2", "3", "4"]


@pytest.mark.parametrize("monitor", ["mae", "rmse"])
def test_validation_selects_best_epoch_and_stops_early(tmp_path, pox, monitor):
    cfg = _cfg(tmp_path, "es", epochs=60, protocol="default", patience=2, lr=0.3, monitor=monitor)
    cfg.protocol.overrides = {"input_steps": 4, "horizon": 1, "report_steps": [1]}
    res = train(cfg, graph=pox)
    with (res.run_dir / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    vals = [float(r[f"val_{monitor}"]) for r in rows]
    assert res.epochs < 60 and len(vals) == res.epochs
    best = min(range(len(vals)), key=vals.__getitem__)
    assert len(vals) - 1 - best == 2  # stopped exactly `patience` epochs after the best
    state = json.loads((res.run_dir / "resume" / "trainer_state.json").read_text())
    assert state["best_val"] == pytest.approx(vals[best], abs=1e-6)


def test_monitor_must_be_a_validation_metric(tmp_path):
    with pytest.raises(ConfigError, match=r"train.monitor = 'loss': expected one of mae, rmse"):
        _cfg(tmp_path, monitor="loss")


def test_statistical_model_needs_no_epochs(tmp_path, pox):
    res = train(_cfg(tmp_path, "lv", model="last_value", protocol="pgt"), graph=pox)
    assert res.epochs == 0 and res.metrics["num_windows"] == 414
    # last value on the PGT split = mean of squared week-to-week changes over the test targets
    x = pox.x[:, :, 0]
    diffs = (x[:, 107:] - x[:, 106:-1]) ** 2
    assert res.metrics["average"]["mse"] == pytest.approx(float(diffs.double().mean()), rel=1e-5)


def test_bad_config_writes_nothing(tmp_path, pox):
    with pytest.raises(ConfigError, match="unknown model"):
        train(_cfg(tmp_path, "bad", model="no_such_model"), graph=pox)
    assert not (tmp_path / "bad").exists()
    cfg = _cfg(tmp_path, "long", protocol="default")
    cfg.protocol.overrides = {"input_steps": 600, "horizon": 1, "report_steps": [1]}
    with pytest.raises(ValueError, match="longer than"):
        train(cfg, graph=pox)
    assert not (tmp_path / "long").exists()


def test_changed_config_does_not_overwrite_a_run(tmp_path, pox):
    train(_cfg(tmp_path, "x", epochs=1), graph=pox)
    with pytest.raises(ConfigError, match="different"):
        train(_cfg(tmp_path, "x", epochs=2), graph=pox)


def test_protocol_scaler_is_the_one_used(tmp_path, pox):
    cfg = _cfg(tmp_path, "dc", model="dcrnn", protocol="pgt", epochs=1)
    cfg.model.options = {"hidden": 8, "num_layers": 1, "K": 1}
    res = train(cfg, graph=pox)
    assert res.metrics["protocol"]["scaler"] == "none"
    assert type(res.model.scaler).__name__ == "IdentityScaler"


@pytest.mark.parametrize("kind", ["mae", "mse", "huber", "berhu"])
def test_loss_kinds_leave_out_masked_targets(kind):
    pred = torch.tensor([[1.0, 5.0, 0.0]])
    batch = SimpleNamespace(
        y=torch.tensor([[0.0, 1.0, 100.0]]), y_mask=torch.tensor([[True, True, False]])
    )
    got = float(ForecastTask(3, loss=kind, loss_delta=2.0).loss_of(pred, batch))
    # errors 1 and 4 (the masked 100 never counts)
    want = {
        "mae": (1 + 4) / 2,
        "mse": (1 + 16) / 2,
        "huber": (0.5 + 2 * (4 - 1)) / 2,
        "berhu": (1 + (16 + 4) / 4) / 2,
    }[kind]
    assert got == pytest.approx(want)


def test_huber_loss_trains_by_config(tmp_path, pox):
    res = train(_cfg(tmp_path, "huber", epochs=2, loss="huber", loss_delta=0.5), graph=pox)
    log = (res.run_dir / "log.csv").read_text().splitlines()
    assert len(log) == 3 and "huber" in (res.run_dir / "config.yaml").read_text()


def test_weight_average_follows_the_formula():
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.fill_(1.0)
        lin.bias.fill_(0.0)
    avg = trainer_mod.WeightAverage(lin, decay=0.5)
    expected = torch.ones(1, 2)
    for step, value in enumerate([3.0, -1.0, 5.0], start=1):
        with torch.no_grad():
            lin.weight.fill_(value)
        avg.update(lin)
        d = min(0.5, (1 + step) / (10 + step))
        expected = d * expected + (1 - d) * value
        assert torch.allclose(avg.model.weight, expected)
    assert not avg.model.weight.requires_grad and lin.weight.requires_grad


def test_ema_weights_are_the_ones_kept_and_tested(tmp_path, pox):
    plain = train(_cfg(tmp_path, "plain", epochs=3), graph=pox)
    res = train(_cfg(tmp_path, "ema", epochs=3, ema_decay=0.8), graph=pox)
    kept = load_file(str(res.run_dir / "model.safetensors"))
    last = load_file(str(res.run_dir / "resume" / "last.safetensors"))
    ema = load_file(str(res.run_dir / "resume" / "ema.safetensors"))
    # no validation part: every epoch is kept, so the kept weights are the final average
    assert torch.equal(kept["lin.weight"], ema["lin.weight"])
    assert not torch.equal(kept["lin.weight"], last["lin.weight"])
    # the scaler statistics (buffers) are copied, not averaged
    assert torch.equal(kept["scaler.loc"], last["scaler.loc"])
    # the raw trajectory is the same as without averaging; only the kept model differs
    assert torch.equal(
        last["lin.weight"], load_file(str(plain.run_dir / "model.safetensors"))["lin.weight"]
    )
    assert res.metrics["average"] != plain.metrics["average"]


def test_ema_decay_must_be_a_fraction(tmp_path):
    with pytest.raises(ConfigError, match="ema_decay"):
        _cfg(tmp_path, ema_decay=1.0)


def test_the_trainer_takes_its_loss_from_the_task(tmp_path, pox, monkeypatch):
    class DoubledForecast(ForecastTask):
        """The forecast loss times two (registered by hand below, for this test only)."""

        def loss(self, model, batch):
            return 2.0 * super().loss(model, batch)

    monkeypatch.setitem(TASKS, "test_doubled", DoubledForecast)
    plain = train(_cfg(tmp_path, "plain", epochs=1, max_batches_per_epoch=1), graph=pox)
    cfg = _cfg(tmp_path, "doubled", epochs=1, max_batches_per_epoch=1)
    cfg.task = "test_doubled"
    doubled = train(cfg, graph=pox)
    loss = {}
    for res in (plain, doubled):
        with (res.run_dir / "log.csv").open() as fh:
            loss[res.run_dir.name] = float(next(csv.DictReader(fh))["train_loss"])
    # one batch, one step: the logged loss is the task's loss of the first batch
    assert loss["doubled"] == pytest.approx(2 * loss["plain"], rel=1e-5)
    assert "task: test_doubled" in (doubled.run_dir / "config.yaml").read_text()
