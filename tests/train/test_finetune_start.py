"""Fine-tuning starts from a validated point: the pretrained weights are epoch 0."""

from __future__ import annotations

import csv

import torch
from safetensors.torch import load_file

from stgraph.train import load_config, train
from stgraph.train.transfer import finetune_raw


def _run(tiny_pretrained, tmp_path, lr):
    raw = finetune_raw(
        str(tiny_pretrained),
        {"name": "chickenpox"},
        mode="full",
        input_steps=8,
        horizon=4,
        output=str(tmp_path / f"ft-{lr}"),
        epochs=1,
        lr=lr,
    )
    raw["train"].update(max_batches_per_epoch=3, num_threads=1)
    raw["output"].update(tensorboard=False, progress=False)
    return train(load_config(raw=raw))


def test_a_worse_epoch_keeps_the_pretrained_weights(tiny_pretrained, tmp_path):
    start = load_file(str(tiny_pretrained / "model.safetensors"))
    run = _run(tiny_pretrained, tmp_path, lr=3.0)  # one wild epoch: validation gets worse
    rows = list(csv.DictReader((run.run_dir / "log.csv").open()))
    assert len(rows) == 1
    kept = load_file(str(run.run_dir / "model.safetensors"))
    backbone = {k.removeprefix("backbone."): v for k, v in kept.items()}
    assert set(start) == set(backbone)
    assert all(torch.equal(start[k], backbone[k]) for k in start)


def test_a_better_epoch_replaces_them(tiny_pretrained, tmp_path):
    start = load_file(str(tiny_pretrained / "model.safetensors"))
    run = _run(tiny_pretrained, tmp_path, lr=1e-3)
    kept = load_file(str(run.run_dir / "model.safetensors"))
    backbone = {k.removeprefix("backbone."): v for k, v in kept.items()}
    changed = any(not torch.equal(start[k], backbone[k]) for k in start)
    # the 6-step tiny model is far from converged: a careful epoch improves validation
    assert changed
