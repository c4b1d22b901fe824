"""Foundation pretraining: a short real run, resume after SIGKILL to the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from stgraph.errors import ConfigError
from stgraph.train.pretrainer import load_pretrain_config, pretrain

REPO = Path(__file__).resolve().parents[2]


def _raw(out: Path, steps: int = 40) -> dict:
    return {
        "corpus": {
            "sources": [
                {"dataset": "chickenpox"},
                {"dataset": "pedalme", "weight": 0.5},
                {"dataset": "los-loop", "nodes": "east"},
            ],
            "held_out": [{"dataset": "los-loop", "nodes": "west"}],
        },
        "windows": {"input_steps": [6, 12], "horizon": [1, 4], "batch_size": 4, "node_budget": 512},
        "model": {"config": str(REPO / "configs/model/tiny.yaml")},
        "train": {
            "steps": steps,
            "checkpoint_every": 5,
            "log_every": 5,
            "warmup_steps": 5,
            "num_threads": 1,
        },
        "output": {"dir": str(out), "tensorboard": False, "progress": False},
        "seed": 3,
    }


def test_short_run_writes_weights_logs_and_facts(tmp_path):
    res = pretrain(load_pretrain_config(raw=_raw(tmp_path / "a", steps=15)))
    assert res.steps == 15
    names = {s["name"] for s in res.sources}
    assert names == {"chickenpox", "pedalme", "los-loop[east]"}
    assert sum(s["batches"] for s in res.sources) == 15
    for f in (
        "config.yaml",
        "model.yaml",
        "model.safetensors",
        "log.csv",
        "sources.json",
        "loss_curves.png",
    ):
        assert (tmp_path / "a" / f).is_file(), f
    state = load_file(str(tmp_path / "a" / "model.safetensors"))
    assert any(k.startswith("reconstruction_head") for k in state)
    rows = (tmp_path / "a" / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,source,objective") and len(rows) == 4


def _state_step(run: Path) -> int:
    p = run / "resume" / "trainer_state.json"
    try:
        return int(json.loads(p.read_text())["step"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def test_sigkill_then_resume_reaches_the_same_weights(tmp_path):
    ref = tmp_path / "ref"
    pretrain(load_pretrain_config(raw=_raw(ref)))
    run = tmp_path / "killed"
    code = (
        "import json,sys; from stgraph.train.pretrainer import *; "
        "pretrain(load_pretrain_config(raw=json.loads(sys.argv[1])))"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    kills = 0
    for target in (10, 25):  # two kills at different points of the run
        proc = subprocess.Popen(
            [sys.executable, "-c", code, json.dumps(_raw(run))],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        t0 = time.time()
        while proc.poll() is None and _state_step(run) < target and time.time() - t0 < 300:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 1
    assert 0 < _state_step(run) < 40
    pretrain(load_pretrain_config(raw=_raw(run)))  # resumes and finishes
    a = load_file(str(ref / "model.safetensors"))
    b = load_file(str(run / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(bool((a[k] == b[k]).all()) for k in a)


def test_changed_config_is_refused_on_resume(tmp_path):
    pretrain(load_pretrain_config(raw=_raw(tmp_path / "r", steps=5)))
    raw = _raw(tmp_path / "r", steps=5)
    raw["train"]["lr"] = 0.01
    with pytest.raises(ConfigError, match="different config"):
        pretrain(load_pretrain_config(raw=raw))


@pytest.mark.parametrize(
    "path, value, match",
    [
        (("train", "steps"), 0, "steps"),
        (("train", "grad_clip"), -1.0, "grad_clip"),
        (("windows", "horizon"), [3, 1], "horizon"),
        (("objectives", "masks"), {"tube": 1.0}, "tube"),
        (("corpus", "sources"), [{"dataset": "los-loop"}], "overlaps held-out"),
    ],
)
def test_bad_config_names_the_field(tmp_path, path, value, match):
    raw = _raw(tmp_path / "x")
    raw.setdefault(path[0], {})[path[1]] = value
    with pytest.raises(ConfigError, match=match):
        cfg = load_pretrain_config(raw=raw)
        pretrain(cfg)
