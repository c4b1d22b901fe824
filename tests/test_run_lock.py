"""One writer per run directory (issue 16): a second live run is refused with a clear one-line
error, a lock left by a killed run is taken over, and the first run finishes intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stgraph.errors import RunLockedError
from stgraph.utils.lock import LOCK_FILE, RunLock

REPO = Path(__file__).resolve().parents[1]
_HOLD = (
    "import sys; from stgraph.utils.lock import RunLock\n"
    "with RunLock(sys.argv[1], 'holder'):\n"
    "    print('locked', flush=True); sys.stdin.read()\n"
)


def _holder(run: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(run)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _stgraph(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stgraph.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=REPO,
        **kw,
    )


def _train_config(tmp_path: Path, run: Path, seed: int, epochs: int = 3) -> Path:
    cfg = tmp_path / f"train-{seed}.yaml"
    cfg.write_text(
        f"seed: {seed}\ndataset: {{name: chickenpox}}\nprotocol: {{name: pgt-80-20}}\n"
        "model: {name: dcrnn, options: {hidden: 8, num_layers: 1, K: 1}}\n"
        f"train: {{epochs: {epochs}, batch_size: 32, lr: 0.01, num_threads: 1}}\n"
        f"output: {{dir: {run}, tensorboard: false, progress: false}}\n"
    )
    return cfg


def test_a_live_owner_refuses_a_second_lock_naming_its_pid(tmp_path):
    run = tmp_path / "run"
    holder = _holder(run)
    try:
        with pytest.raises(RunLockedError, match=rf"run: in use by pid {holder.pid} .*holder"):
            RunLock(run, "second").acquire()
    finally:
        holder.communicate("")
    with RunLock(run, "third") as lock:  # released on a normal exit
        assert lock.took_over is None
        assert json.loads((run / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (run / LOCK_FILE).exists()


def test_a_killed_owners_lock_is_stale_and_taken_over(tmp_path, capsys):
    run = tmp_path / "run"
    holder = _holder(run)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert json.loads((run / LOCK_FILE).read_text())["pid"] == holder.pid  # left behind
    with RunLock(run, "next") as lock:
        assert lock.took_over["pid"] == holder.pid
    assert f"taking over the stale lock of pid {holder.pid}" in capsys.readouterr().err


def test_nested_lock_in_one_process_is_reentrant(tmp_path):
    with RunLock(tmp_path, "outer"), RunLock(tmp_path, "inner"):
        assert (tmp_path / LOCK_FILE).exists()
    assert not (tmp_path / LOCK_FILE).exists()


def test_stgraph_train_on_a_held_directory_is_one_line_exit_1(tmp_path):
    run = tmp_path / "run"
    holder = _holder(run)
    try:
        out = _stgraph("train", "--config", str(_train_config(tmp_path, run, seed=1)))
    finally:
        holder.communicate("")
    assert out.returncode == 1
    assert out.stderr.startswith("stgraph train: error: ")
    assert f"in use by pid {holder.pid}" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in run.iterdir()) == []  # nothing written by the refused run


def test_output_dir_that_is_a_file_is_one_line(tmp_path):
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0\n")
    out = _stgraph(
        "train", "--config", str(_train_config(tmp_path, target, seed=1)), "-o", str(target)
    )
    assert out.returncode == 1 and "passwd: exists and is not a directory" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert target.read_text() == "root:x:0:0\n"


@pytest.mark.slow
def test_two_concurrent_trains_second_refused_first_intact(tmp_path):
    ref = tmp_path / "ref"
    assert _stgraph("train", "--config", str(_train_config(tmp_path, ref, 1, 25))).returncode == 0
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "stgraph.cli", "train", "--config"]
        + [str(_train_config(tmp_path, run, 1, 25))],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    t0 = time.time()
    while not (run / LOCK_FILE).exists() and time.time() - t0 < 120:
        time.sleep(0.05)
    second = _stgraph("train", "--config", str(_train_config(tmp_path, run, seed=2)))
    still_running = first.poll() is None
    _, err = first.communicate()
    assert first.returncode == 0, err
    assert still_running  # the refusal happened while the first run lived
    assert second.returncode == 1 and "in use by pid" in second.stderr
    a = json.loads((ref / "metrics.json").read_text())["average"]
    b = json.loads((run / "metrics.json").read_text())["average"]
    assert a == b  # the first run finished as if alone
    assert (ref / "model.safetensors").read_bytes() == (run / "model.safetensors").read_bytes()
