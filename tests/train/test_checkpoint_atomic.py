"""Atomic writes (stgraph.utils.atomic, checkpoint.save_resume): killed at every rename point,
a directory is the old one or the new one, never none and never half-written; every file is
fsync-ed before its rename; one mode rule for every file written (issue 16)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stgraph.train import checkpoint as ckpt
from stgraph.utils import atomic

REPO = Path(__file__).resolve().parents[2]

#: Writes resume/ twice (state 1 then state 2) under the lock, as a training run does.
_WRITER = """
import sys, torch
from stgraph.train import checkpoint as ckpt
run = sys.argv[1]
with ckpt.open_run(run, "test"):
    for step in (1, 2):
        torch.manual_seed(step)
        m = torch.nn.Linear(3, 2)
        opt = torch.optim.Adam(m.parameters())
        ckpt.save_resume(run, m, opt, {"step": step}, extra={"note.txt": b"step %d" % step})
"""


def _write(run: Path, **env: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-c", _WRITER, str(run)],
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
        cwd=REPO,
        capture_output=True,
    )
    return proc.returncode


def _resume_step(run: Path) -> int | None:
    state = ckpt.read_state(run)
    if state is None:
        return None
    note = (run / "resume" / "note.txt").read_bytes()
    assert note == b"step %d" % state["step"]  # the files of resume/ belong to one state
    ckpt.read_weights(run / "resume" / "last.safetensors")
    return state["step"]


@pytest.mark.parametrize(
    ("fault", "exchange", "expected"),
    [
        ("dir:before_swap@1", "1", 1),  # the second swap: the old state stays
        ("dir:after_swap@1", "1", 2),  # swapped, the old copy not yet deleted
        ("dir:between_renames@1", "0", 1),  # the two-rename fallback, killed between them
        ("file:before_rename@6", "1", 1),  # inside the second state's temp directory
    ],
)
def test_killed_swap_leaves_old_or_new_state(tmp_path, fault, exchange, expected):
    run = tmp_path / "run"
    rc = _write(run, STGRAPH_FAULT=fault, STGRAPH_RENAME_EXCHANGE=exchange)
    assert rc == -signal.SIGKILL
    leftovers = sorted(p.name for p in run.iterdir() if p.name.startswith(".resume"))
    assert leftovers  # what the kill interrupted is still there
    if fault.startswith("dir:between"):
        assert not (run / "resume").exists()  # the window: only the moved-aside copy is left
        assert atomic.recover_dir(run / "resume")
    assert _resume_step(run) == expected
    with ckpt.open_run(run, "test"):  # the next run tidies up
        assert not [p for p in run.iterdir() if p.name.startswith(".resume")]
    assert _resume_step(run) == expected


def test_open_run_puts_back_a_moved_aside_resume_and_removes_temps(tmp_path, capsys):
    run = tmp_path / "run"
    assert _write(run, STGRAPH_FAULT="dir:between_renames@1", STGRAPH_RENAME_EXCHANGE="0") < 0
    (run / ".model.safetensors.x1y2.tmp").write_bytes(b"half")
    with ckpt.open_run(run, "test"):
        assert _resume_step(run) == 1
        assert sorted(p.name for p in run.iterdir()) == [".stgraph.lock", "resume"]
    err = capsys.readouterr().err
    assert "put back resume/" in err and "taking over the stale lock" in err
    assert "removed 2 leftover(s)" in err  # the temp file and the new state never swapped in
    assert not (run / ".stgraph.lock").exists()


def test_every_file_is_fsynced_before_its_rename(tmp_path, monkeypatch):
    synced: list[str] = []
    events: list[tuple[str, str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    def replace(src, dst, **kw):
        events.append((str(src), str(dst), "|".join(synced)))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setenv("STGRAPH_RENAME_EXCHANGE", "0")  # os.replace for the directory too
    m = torch.nn.Linear(2, 2)
    ckpt.save_resume(tmp_path, m, torch.optim.SGD(m.parameters(), lr=0.1), {"epoch": 1})
    ckpt.save_resume(tmp_path, m, torch.optim.SGD(m.parameters(), lr=0.1), {"epoch": 2})
    assert len(events) >= 8
    for src, _dst, before in events:
        if Path(src).name.startswith(".") and src.endswith(".tmp"):
            assert src in before.split("|"), src  # the file or directory itself, then renamed
            for f in Path(_dst).rglob("*") if Path(_dst).is_dir() else []:
                assert str(f).replace(_dst, src) in before.split("|"), f
    assert str(tmp_path) in synced  # the directory holding the renamed entries


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_one_mode_rule_for_every_file(tmp_path, umask):
    old = os.umask(umask)
    try:
        m = torch.nn.Linear(2, 2)
        ckpt.save_weights(m, tmp_path / "model.safetensors")
        ckpt.save_resume(tmp_path, m, torch.optim.SGD(m.parameters(), lr=0.1), {"epoch": 1})
        ckpt.write_json(tmp_path / "metrics.json", {"a": 1})
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) == 5
    for p in files:
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p  # safetensors alone made 0o600
    assert (tmp_path / "resume").stat().st_mode & 0o777 == 0o777 & ~umask


def test_truncated_or_foreign_weights_are_checkpoint_errors(tmp_path):
    from stgraph.errors import CheckpointError

    m = torch.nn.Linear(3, 2)
    path = ckpt.save_weights(m, tmp_path / "model.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors: cannot be read"):
        ckpt.load_weights(m, path)
    ckpt.save_weights(torch.nn.Linear(5, 2), path)
    with pytest.raises(CheckpointError, match="model.safetensors: weights do not fit"):
        ckpt.load_weights(m, path)
    (tmp_path / "resume").mkdir()
    (tmp_path / "resume" / "trainer_state.json").write_text(json.dumps([1]))
    with pytest.raises(CheckpointError, match="trainer_state.json: expected a JSON object"):
        ckpt.read_state(tmp_path)


def test_disk_full_while_saving_keeps_the_previous_files(tmp_path, monkeypatch):
    """safetensors reports ENOSPC as its own SafetensorError (seen on a full 64 KiB tmpfs);
    both writers turn it into an OSError naming the path and keep what was there."""
    import safetensors.torch
    from safetensors import SafetensorError

    from stgraph.data import STGraph, serialization

    m = torch.nn.Linear(2, 2)
    path = ckpt.save_weights(m, tmp_path / "model.safetensors")
    before = path.read_bytes()
    g = STGraph(x=torch.ones(2, 3, 1))
    gdir = g.save(tmp_path / "g")

    def full(*args, **kw):
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    monkeypatch.setattr(ckpt, "save_file", full)
    monkeypatch.setattr(serialization, "save_file", full)
    with pytest.raises(OSError, match=r"model\.safetensors: cannot write the weights .*os error"):
        ckpt.save_weights(torch.nn.Linear(5, 5), path)
    with pytest.raises(OSError, match=r"g: cannot write the tensors"):
        STGraph(x=torch.zeros(4, 3, 1)).save(gdir)
    assert path.read_bytes() == before
    assert STGraph.load(gdir).x.shape == (2, 3, 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g", "model.safetensors"]
    assert safetensors.torch.save_file is not full
