"""Training configs: unknown keys, wrong types and overrides are errors naming the key and the file."""

from __future__ import annotations

import pytest

from stgraph.errors import ConfigError
from stgraph.train.config import dump_config, load_config

GOOD = """\
seed: 3
dataset: {name: chickenpox}
protocol: {name: pgt}
model: {name: last_value}
train: {epochs: 2, lr: 0.01}
output: {dir: OUT}
"""


def _write(tmp_path, text):
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_good_config_and_overrides(tmp_path):
    cfg = load_config(
        _write(tmp_path, GOOD),
        overrides=["train.lr=0.5", "train.grad_clip=null", "model.options={k: 2}"],
    )
    assert cfg.seed == 3 and cfg.train.lr == 0.5 and cfg.train.grad_clip is None
    assert cfg.model.options == {"k": 2} and cfg.protocol.name == "pgt" and cfg.train.epochs == 2
    again = load_config(_write(tmp_path, dump_config(cfg)))
    assert again == cfg


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD.replace("train: {epochs: 2", "train: {epoch: 2"), r"unknown key 'train.epoch'"),
        (GOOD + "extra: 1\n", r"unknown key 'extra'"),
        (GOOD.replace("lr: 0.01", "lr: fast"), r"train.lr = 'fast': expected float"),
        (GOOD.replace("epochs: 2", "epochs: 0"), r"train.epochs must be >= 1"),
        (
            GOOD.replace("epochs: 2", "epochs: 2, loss: l1"),
            r"train.loss = 'l1': expected one of mae, mse, huber, berhu",
        ),
        (
            GOOD.replace("epochs: 2", "epochs: 2, loss: huber, loss_delta: 0"),
            r"train.loss_delta = 0.0: expected > 0",
        ),
        (GOOD.replace("dataset: {name: chickenpox}\n", ""), r"missing required key 'dataset'"),
        ("seed: [1\n", "not valid YAML"),
    ],
)
def test_bad_configs_name_key_and_file(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(path) in str(info.value)


def test_bad_override():
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(raw={"dataset": {"name": "x"}, "model": {"name": "y"}}, overrides=["train.lr"])
    with pytest.raises(ConfigError, match=r"unknown key 'train.nope'"):
        load_config(
            raw={"dataset": {"name": "x"}, "model": {"name": "y"}}, overrides=["train.nope=1"]
        )


def test_task_defaults_to_forecast_and_is_recorded(tmp_path):
    cfg = load_config(_write(tmp_path, GOOD))
    assert cfg.task == "forecast"
    assert "task: forecast" in dump_config(cfg).splitlines()
    with pytest.raises(ConfigError, match=r"cfg.yaml: task = 'kriging': expected one of forecast"):
        load_config(_write(tmp_path, GOOD + "task: kriging\n"))
