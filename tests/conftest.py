"""Shared fixtures: the real data folder ($STGRAPH_DATA, else ../shared/data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path | None:
    env = os.environ.get("STGRAPH_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand.resolve()
    return None


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The directory with the real data sets; tests needing it skip when it is absent."""
    d = _data_dir()
    if d is None:
        pytest.skip("real data not found: set STGRAPH_DATA to the folder of MANIFEST.md")
    return d


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory, monkeypatch):
    """Tests never write into the user's cache and never reach the internet.

    The registry finds the real data through ``$STGRAPH_DATA`` (set here when the data folder is
    found and the variable is not), and a missing file would be "downloaded" from the discard
    port on 127.0.0.1, which fails at once, instead of from the public source.
    """
    monkeypatch.setenv("STGRAPH_CACHE", str(tmp_path_factory.getbasetemp() / "stgraph-cache"))
    d = _data_dir()
    if d is not None and not os.environ.get("STGRAPH_DATA"):
        monkeypatch.setenv("STGRAPH_DATA", str(d))
    if not os.environ.get("STGRAPH_MIRROR"):
        monkeypatch.setenv("STGRAPH_MIRROR", "http://127.0.0.1:9")


@pytest.fixture(scope="session")
def tiny_pretrained(tmp_path_factory) -> Path:
    """A pretraining run of the tiny backbone on chickenpox and PedalMe (6 steps): a real
    checkpoint directory for the transfer tests, made once per session."""
    from stgraph.train.pretrainer import load_pretrain_config, pretrain

    out = tmp_path_factory.mktemp("pretrained") / "run"
    raw = {
        "corpus": {"sources": [{"dataset": "chickenpox"}, {"dataset": "pedalme"}]},
        "windows": {"input_steps": [6, 8], "horizon": [1, 3], "batch_size": 4},
        "model": {"config": str(REPO / "configs/model/tiny.yaml"), "options": {"season": True}},
        "train": {
            "steps": 6,
            "checkpoint_every": 3,
            "log_every": 3,
            "warmup_steps": 1,
            "num_threads": 1,
        },
        "output": {"dir": str(out), "tensorboard": False, "progress": False},
    }
    pretrain(load_pretrain_config(raw=raw))
    return out
