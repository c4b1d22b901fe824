"""from_pretrained: a pretraining run directory loads offline; mismatched tensors are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch_geometric.data import Batch

from stgraph import datasets
from stgraph.data import SlidingWindows
from stgraph.errors import CheckpointError
from stgraph.pretrained import from_pretrained

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tiny_pretrained):
    return tiny_pretrained


def test_loads_and_runs_on_a_graph_it_never_saw(run_dir):
    model = from_pretrained(run_dir)
    assert not model.training
    stored = load_file(str(run_dir / "model.safetensors"))
    assert all(torch.equal(stored[k], v) for k, v in model.state_dict().items())
    g = datasets.load("los-loop")  # not in the corpus: 207 nodes, 5-minute steps, mph
    batch = Batch.from_data_list([SlidingWindows(g, 12, 3)[0]])
    with torch.no_grad():
        pred = model(batch)
    assert pred.shape == (207, 3, 1) and bool(torch.isfinite(pred).all())


def test_a_mismatched_tensor_is_refused(run_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.yaml").write_text((run_dir / "model.yaml").read_text())
    state = load_file(str(run_dir / "model.safetensors"))
    key = next(k for k in state if k.endswith("weight") and state[k].dim() == 2)
    state[key] = torch.zeros(state[key].shape[0] + 1, state[key].shape[1])
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match="shape") as err:
        from_pretrained(bad)
    assert key in str(err.value)
    del state[key]
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match="missing"):
        from_pretrained(bad)


def test_truncated_or_missing_files_are_refused(run_dir, tmp_path):
    bad = tmp_path / "cut"
    bad.mkdir()
    (bad / "model.yaml").write_text((run_dir / "model.yaml").read_text())
    data = (run_dir / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="safetensors"):
        from_pretrained(bad)
    (bad / "model.yaml").unlink()
    with pytest.raises(CheckpointError, match="model.yaml"):
        from_pretrained(bad)
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        from_pretrained("no-such-checkpoint")
