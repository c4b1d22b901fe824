"""SIGKILL ``stgraph train``, ``pretrain``, ``finetune`` and ``build`` at the checkpoint writer's
rename points (``STGRAPH_FAULT``, see :mod:`stgraph.utils.atomic`) and at random times, then run
the same command again: it resumes, and ends with the same weights as an uninterrupted run of
the same seed (issue 16). The issue's own case (a kill between the two renames of the resume
swap) runs by default; the other points are marked slow."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stgraph.train import checkpoint as ckpt

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "model" / "tiny.yaml"


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stgraph.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        cwd=REPO,
    )


def _killed(*args: str, fault: str, exchange: bool = True) -> subprocess.CompletedProcess:
    env = {"STGRAPH_FAULT": fault, "STGRAPH_RENAME_EXCHANGE": "1" if exchange else "0"}
    return _cli(*args, env=env)


def _train_args(tmp: Path, run: Path, epochs: int = 3) -> list[str]:
    cfg = tmp / "train.yaml"
    cfg.write_text(
        "seed: 5\ndataset: {name: chickenpox}\nprotocol: {name: pgt-80-20}\n"
        "model: {name: dcrnn, options: {hidden: 8, num_layers: 1, K: 1}}\n"
        f"train: {{epochs: {epochs}, batch_size: 32, lr: 0.01, num_threads: 1}}\n"
        "output: {dir: runs/unused, tensorboard: false, progress: false}\n"
    )
    return ["train", "--config", str(cfg), "-o", str(run)]


def _pretrain_args(tmp: Path, run: Path) -> list[str]:
    cfg = tmp / "pretrain.yaml"
    cfg.write_text(
        "corpus: {sources: [{dataset: chickenpox}, {dataset: pedalme}]}\n"
        "windows: {input_steps: [6, 8], horizon: [1, 3], batch_size: 4}\n"
        f"model: {{config: {TINY}}}\n"
        "train: {steps: 6, checkpoint_every: 2, log_every: 2, warmup_steps: 1, num_threads: 1}\n"
        "output: {dir: runs/unused, tensorboard: false, progress: false}\nseed: 2\n"
    )
    return ["pretrain", "--config", str(cfg), "-o", str(run)]


def _weights(run: Path) -> dict[str, bytes]:
    names = ["model.safetensors", "resume/last.safetensors", "resume/trainer_state.json"]
    return {n: (run / n).read_bytes() for n in names}


def _losses(run: Path) -> list[str]:
    rows = (run / "log.csv").read_text().splitlines()
    return [",".join(r.split(",")[:2]) for r in rows]  # epoch/step and loss, not the seconds


def _consistent(run: Path) -> None:
    """What a kill leaves is a complete state: resume/ (if any) reads back whole."""
    state = ckpt.read_state(run)
    if state is not None:
        ckpt.read_weights(run / ckpt.RESUME_DIR / ckpt.LAST_FILE)


def _same_as(ref: Path, run: Path) -> None:
    assert _weights(run) == _weights(ref)
    assert _losses(run) == _losses(ref)
    assert not [p.name for p in run.iterdir() if p.name.endswith(".tmp") or ".old-" in p.name]


@pytest.fixture(scope="module")
def train_ref(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("train-ref")
    out = _cli(*_train_args(tmp, tmp / "run"))
    assert out.returncode == 0, out.stderr
    return tmp / "run"


def test_train_killed_between_the_two_renames_resumes_identically(tmp_path, train_ref):
    """The issue's case: the old resume/ moved aside, the new one not yet in: a rerun used to
    find no resume/ and restart from epoch 0."""
    run = tmp_path / "run"
    args = _train_args(tmp_path, run)
    out = _killed(*args, fault="dir:between_renames@1", exchange=False)  # epoch 2's swap
    assert out.returncode == -signal.SIGKILL
    assert "starting fresh: no resume state" in out.stdout
    assert not (run / "resume").exists()
    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    assert "resuming" in again.stdout and "from epoch 1" in again.stdout
    assert "put back resume/" in again.stderr
    _same_as(train_ref, run)
    metrics = [json.loads((d / "metrics.json").read_text())["average"] for d in (train_ref, run)]
    assert metrics[0] == metrics[1]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "exchange"),
    [
        ("dir:before_swap@1", True),
        ("dir:after_swap@1", True),
        ("dir:after_swap@2", True),
        ("dir:between_renames@2", False),
        *[(f"file:before_rename@{k}", True) for k in (1, 2, 4, 7, 11, 16, 22)],
        *[(f"file:after_rename@{k}", True) for k in (3, 9, 18)],
    ],
)
def test_train_killed_at_a_rename_point_resumes_identically(tmp_path, train_ref, fault, exchange):
    run = tmp_path / "run"
    args = _train_args(tmp_path, run)
    out = _killed(*args, fault=fault, exchange=exchange)
    assert out.returncode in (-signal.SIGKILL, 0), out.stderr
    _consistent(run)
    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    assert "starting fresh" in again.stdout or "resuming" in again.stdout
    _same_as(train_ref, run)


@pytest.mark.slow
def test_train_killed_at_random_times_resumes_identically(tmp_path, train_ref):
    run = tmp_path / "run"
    args = _train_args(tmp_path, run)
    rng = random.Random(16)
    kills = 0
    for _ in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-m", "stgraph.cli", *args],
            env={**os.environ, "OMP_NUM_THREADS": "1"},
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(3.0, 8.0))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        _consistent(run)
    assert kills >= 1
    assert _cli(*args).returncode == 0
    _same_as(train_ref, run)


@pytest.fixture(scope="module")
def pretrain_ref(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("pretrain-ref")
    out = _cli(*_pretrain_args(tmp, tmp / "run"))
    assert out.returncode == 0, out.stderr
    return tmp / "run"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "exchange"),
    [
        ("dir:between_renames@1", False),
        ("dir:before_swap@2", True),
        ("dir:after_swap@1", True),
        ("file:before_rename@5", True),
        ("file:before_rename@12", True),
    ],
)
def test_pretrain_killed_at_a_rename_point_resumes_identically(
    tmp_path, pretrain_ref, fault, exchange
):
    run = tmp_path / "run"
    args = _pretrain_args(tmp_path, run)
    out = _killed(*args, fault=fault, exchange=exchange)
    assert out.returncode == -signal.SIGKILL, out.stderr
    _consistent(run)
    again = _cli(*args)
    assert again.returncode == 0, again.stderr
    _same_as(pretrain_ref, run)


def _finetune_args(run: Path, checkpoint: Path) -> list[str]:
    return [
        "finetune",
        "--checkpoint",
        str(checkpoint),
        "--dataset",
        "chickenpox",
        "--mode",
        "head",
        "--epochs",
        "3",
        "--input-steps",
        "6",
        "--horizon",
        "3",
        "--set",
        "train.batch_size=64",
        "--set",
        "train.num_threads=1",
        "--set",
        "output.progress=false",
        "-o",
        str(run),
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "exchange"),
    [
        ("dir:between_renames@1", False),
        ("dir:after_swap@1", True),
        ("file:before_rename@6", True),  # before the first resume state: epoch 0's weights
        ("file:before_rename@15", True),  # after it: epoch 1's metrics or weights
    ],
)
def test_finetune_killed_at_a_rename_point_resumes_identically(
    tmp_path, tiny_pretrained, fault, exchange
):
    ref, run = tmp_path / "ref", tmp_path / "run"
    out = _cli(*_finetune_args(ref, tiny_pretrained))
    assert out.returncode == 0, out.stderr
    killed = _killed(*_finetune_args(run, tiny_pretrained), fault=fault, exchange=exchange)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    _consistent(run)
    again = _cli(*_finetune_args(run, tiny_pretrained))
    assert again.returncode == 0, again.stderr
    fresh = fault == "file:before_rename@6"  # killed before the first resume state was written
    assert ("starting fresh: no resume state" if fresh else "resuming") in again.stdout
    _same_as(ref, run)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fault", "exchange"),
    [("dir:between_renames@1", False), ("dir:before_swap@1", True), ("file:before_rename@2", True)],
)
def test_build_killed_while_replacing_its_graph_keeps_a_whole_one(tmp_path, fault, exchange):
    from stgraph.data import load

    config = str(REPO / "configs" / "build" / "liverpool-bus.yaml")
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert _cli("build", "--config", config, "-o", str(ref)).returncode == 0
    assert _cli("build", "--config", config, "-o", str(out)).returncode == 0
    killed = _killed("build", "--config", config, "-o", str(out), fault=fault, exchange=exchange)
    assert killed.returncode == -signal.SIGKILL
    g = load(out / "graph")  # the previous complete graph is in place (put back if moved aside)
    assert g.num_nodes == load(ref / "graph").num_nodes
    assert _cli("build", "--config", config, "-o", str(out)).returncode == 0
    for name in ("meta.json", "tensors.safetensors"):
        assert (out / "graph" / name).read_bytes() == (ref / "graph" / name).read_bytes()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
