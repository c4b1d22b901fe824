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


def _start_val_mae(tiny_pretrained) -> float:
    """Validation MAE of the pretrained weights on the fine-tuning run's own windows."""
    from torch_geometric.loader import DataLoader

    from stgraph import datasets
    from stgraph.tasks.forecast import ForecastTask
    from stgraph.train.assemble import pretrained_forecaster
    from stgraph.train.transfer import transfer_protocol

    graph = datasets.load("chickenpox")
    protocol = transfer_protocol(input_steps=8, horizon=4)
    split, windows = protocol.windows(graph)
    model = pretrained_forecaster(str(tiny_pretrained), protocol, graph)
    model.fit(graph, split.train)
    with torch.no_grad():
        loader = DataLoader(windows["val"], batch_size=256)
        return ForecastTask(4).score(model.eval(), loader).summary()["mae"]


def test_the_kept_weights_are_the_better_of_start_and_epoch(tiny_pretrained, tmp_path):
    start = load_file(str(tiny_pretrained / "model.safetensors"))
    run = _run(tiny_pretrained, tmp_path, lr=1e-3)
    epoch_val = float(next(csv.DictReader((run.run_dir / "log.csv").open()))["val_mae"])
    start_val = _start_val_mae(tiny_pretrained)
    assert abs(epoch_val - start_val) > 1e-4  # a real difference either way
    kept = load_file(str(run.run_dir / "model.safetensors"))
    backbone = {k.removeprefix("backbone."): v for k, v in kept.items()}
    changed = any(not torch.equal(start[k], backbone[k]) for k in start)
    assert changed == (epoch_val < start_val)
