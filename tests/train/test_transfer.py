"""Transfer on real data: zero-shot takes no gradient step, fine-tuning a saved graph directory."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from stgraph import datasets
from stgraph.errors import ConfigError
from stgraph.train import load_config, train
from stgraph.train.transfer import transfer_protocol, zero_shot


@pytest.fixture(scope="module")
def melbourne():
    return datasets.load("melbourne-pedestrian").slice_time(0, 24 * 40)


def test_zero_shot_takes_no_gradient_step_and_reports_the_target_units(
    tiny_pretrained, melbourne, tmp_path, monkeypatch
):
    before = load_file(str(tiny_pretrained / "model.safetensors"))
    steps = []
    monkeypatch.setattr(torch.optim.Optimizer, "step", lambda *a, **k: steps.append(1))
    protocol = transfer_protocol(input_steps=12, horizon=6)
    results = zero_shot(
        tiny_pretrained,
        melbourne,
        dataset="melbourne-pedestrian",
        protocol=protocol,
        output=tmp_path / "zs",
    )
    assert steps == []  # no optimiser step anywhere
    after = load_file(str(tiny_pretrained / "model.safetensors"))
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [r["model"] for r in results] == ["stfm zero-shot", "historical_average", "last_value"]
    for r in results:
        assert r["protocol"]["units"] == "count/hour"  # the data's units, not the corpus'
        assert r["protocol"]["reference"] == {}
        assert len(r["node_mae"]) == melbourne.num_nodes
        assert r["horizons"].keys() == {"3", "6"}
    # the three models were scored on the same windows
    assert len({r["num_values"] for r in results}) == 1
    saved = json.loads((tmp_path / "zs" / "zero-shot.json").read_text())
    assert saved[0]["average"]["mae"] == pytest.approx(results[0]["average"]["mae"])
    for f in ("zero-shot.md", "zero-shot-horizon.png", "stfm-zero-shot-map.png"):
        assert (tmp_path / "zs" / f).is_file()


def _finetune_raw(graph_dir, ckpt, out, mode="adapter", budget="2d"):
    return {
        "dataset": {"graph": str(graph_dir)},
        "model": {"name": "stfm"},
        "protocol": {
            "name": "default",
            "overrides": {"input_steps": 12, "horizon": 6, "report_steps": [3, 6]},
        },
        "finetune": {"checkpoint": str(ckpt), "mode": mode, "budget": budget},
        "train": {"epochs": 2, "batch_size": 8, "lr": 0.001, "num_threads": 1},
        "output": {"dir": str(out), "tensorboard": False, "progress": False},
    }


def test_finetune_on_a_saved_graph_dir_with_a_budget(tiny_pretrained, melbourne, tmp_path):
    melbourne.save(tmp_path / "mel")
    res = train(load_config(raw=_finetune_raw(tmp_path / "mel", tiny_pretrained, tmp_path / "ft")))
    m = res.metrics
    assert m["dataset"] == "mel" and m["model"] == "stfm-adapter"
    assert m["protocol"]["units"] == "count/hour"
    assert "2 days" in m["finetune"]["budget"] or "48" in m["finetune"]["budget"]
    total = sum(p.numel() for p in res.model.parameters())
    assert 0 < m["finetune"]["trained_parameters"] < total / 5
    # the pretrained encoder weights are untouched in adapter mode: only adapters moved
    pre = load_file(str(tiny_pretrained / "model.safetensors"))
    state = res.model.backbone.state_dict()
    key = (
        "names.embed.weight"
        if "names.embed.weight" in pre
        else next(k for k in pre if k.startswith("tokenizer") and k in state)
    )
    assert torch.equal(pre[key], state[key])


def test_finetune_section_is_checked(tiny_pretrained, tmp_path):
    raw = _finetune_raw(tmp_path / "g", tiny_pretrained, tmp_path / "o", mode="all")
    with pytest.raises(ConfigError, match="finetune.mode"):
        load_config(raw=raw)
    raw = _finetune_raw(tmp_path / "g", tiny_pretrained, tmp_path / "o")
    raw["dataset"] = {"name": "los-loop", "graph": "x"}
    with pytest.raises(ConfigError, match="exactly one"):
        load_config(raw=raw)
