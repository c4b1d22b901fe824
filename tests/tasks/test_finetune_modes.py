"""Fine-tuning modes (what trains) and few-shot budgets (how much data or how many steps)."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from stgraph import datasets
from stgraph.data import SlidingWindows, chronological_split
from stgraph.errors import ConfigError
from stgraph.nn import STFM
from stgraph.nn.adapters import LoRA, adapter_names
from stgraph.tasks import STFMForecaster
from stgraph.tasks.finetune import (
    FINETUNE_MODES,
    Budget,
    configure_finetune,
    head_modules,
    parse_budget,
)

OPTIONS = {"channels": 32, "depth": 1, "heads": 2, "patch_len": 3, "levels": 1}


@pytest.fixture(scope="module")
def los_loop(data_dir):
    return datasets.load("los-loop")


@pytest.fixture(scope="module")
def batch(los_loop):
    w = SlidingWindows(los_loop, 12, 3)
    return Batch.from_data_list([w[i] for i in (0, 300, 600, 900)])


def _model(**extra) -> STFM:
    torch.manual_seed(0)
    return STFM(**OPTIONS, **extra)


def _step(model, params, batch) -> None:
    """One AdamW step on the masked MAE of the forecast."""
    opt = torch.optim.AdamW(params, lr=1e-2)
    pred = model(batch, horizon=3)
    loss = ((pred - batch.y).abs() * batch.y_mask).sum() / batch.y_mask.sum()
    opt.zero_grad()
    loss.backward()
    opt.step()


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_head_is_the_forecast_readout():
    assert list(head_modules(_model())) == ["forecast_head", "anchor_query", "anchor_bias"]
    assert list(head_modules(_model(anchor="mean"))) == ["forecast_head"]
    wrapped = STFMForecaster(12, 3, **OPTIONS)
    assert list(head_modules(wrapped))[0] == "backbone.forecast_head"


def test_head_mode_leaves_the_encoder_bit_identical(batch):
    model = _model()
    params = configure_finetune(model, "head")
    head = {id(p) for m in head_modules(model).values() for p in m.parameters()}
    assert {id(p) for p in params} == head
    assert all(p.requires_grad == (id(p) in head) for p in model.parameters())
    with torch.no_grad():
        tokens = model.encode_data(batch).tokens.clone()
        before_pred = model(batch, horizon=3)
    before = _snapshot(model)
    _step(model, params, batch)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(
        k.split(".")[0] in ("forecast_head", "anchor_query", "anchor_bias") for k in changed
    )
    with torch.no_grad():
        assert torch.equal(model.encode_data(batch).tokens, tokens)
        assert not torch.equal(model(batch, horizon=3), before_pred)


def test_adapter_mode_trains_only_the_adapters(batch):
    model = _model()
    pretrained = _snapshot(model)
    with torch.no_grad():
        before_pred = model(batch, horizon=3)
    params = configure_finetune(model, "adapter", rank=4, alpha=8)
    lora = [p for m in model.modules() if isinstance(m, LoRA) for p in m.parameters()]
    assert {id(p) for p in params} == {id(p) for p in lora} and len(lora) == 20
    with torch.no_grad():  # adapters start silent
        assert torch.equal(model(batch, horizon=3), before_pred)
    pred = model(batch, horizon=3)
    ((pred - batch.y).abs() * batch.y_mask).mean().backward()
    unused = "merge.q."  # the variable attention's query is not used with one variable
    for name, p in model.named_parameters():
        if ".lora_" in name and not name.startswith(unused):
            assert p.grad is not None, name
            if name.endswith("lora_B"):  # B = 0 at the start: A gets no gradient yet, B does
                assert p.grad.abs().sum() > 0, name
        elif ".lora_" not in name:
            assert p.grad is None, name
    _step(model, params, batch)
    for name, value in model.state_dict().items():
        if ".lora_" in name:
            continue
        original = name.replace(".parametrizations.weight.original", ".weight")
        assert torch.equal(value, pretrained[original]), name
    with torch.no_grad():
        assert not torch.equal(model(batch, horizon=3), before_pred)


def test_adapter_mode_keeps_adapters_already_attached():
    model = _model()
    configure_finetune(model, "adapter")
    names = adapter_names(model)
    again = configure_finetune(model, "adapter")  # a resumed run attached them before loading
    assert adapter_names(model) == names and len(again) == 2 * len(names)
    with pytest.raises(ValueError, match="rank, alpha"):
        configure_finetune(model, "adapter", rank=2)
    head = configure_finetune(model, "head")  # adapters frozen in head mode
    assert not any(
        p.requires_grad for m in model.modules() if isinstance(m, LoRA) for p in m.parameters()
    )
    assert head


def test_full_mode_trains_everything_and_bad_modes_are_refused():
    model = _model()
    configure_finetune(model, "head")
    params = configure_finetune(model, "full")
    assert len(params) == len(list(model.parameters())) and all(p.requires_grad for p in params)
    with pytest.raises(ValueError, match="'linear'.*head"):
        configure_finetune(model, "linear")
    with pytest.raises(ConfigError, match="STFM"):
        configure_finetune(torch.nn.Linear(3, 3), "head")
    assert FINETUNE_MODES == ("head", "adapter", "full")


# ---------------------------------------------------------------------------------- budgets


def test_budgets_of_time_are_steps_at_the_graph_interval(los_loop, data_dir):
    train = chronological_split(los_loop, ratios=(0.7, 0.1, 0.2)).train  # 5-minute steps
    assert train == (0, 1411)
    day = parse_budget("1d", los_loop, train)
    assert day == Budget(288, None, day.description)
    assert (
        "first 1 day" in day.description
        and "2012-03-01 00:00 to 2012-03-01 23:55" in day.description
    )
    assert day.train_range(train) == (0, 288)
    assert parse_budget("12h", los_loop, train).train_steps == 144
    assert parse_budget("90 min", los_loop, train).train_steps == 18
    assert parse_budget("1.5 Days", los_loop, train).train_steps == 432
    pedestrians = datasets.load("melbourne-pedestrian")  # hourly
    assert parse_budget("1d", pedestrians, (0, 10000)).train_steps == 24
    assert parse_budget("1w", pedestrians, (0, 10000)).train_steps == 168
    chickenpox = datasets.load("chickenpox")  # weekly
    assert parse_budget("4w", chickenpox, (0, 364)).train_steps == 4
    with pytest.raises(ValueError, match="fewer than one training window"):
        parse_budget("1w", chickenpox, (0, 364), window=5)
    with pytest.raises(ValueError, match="shorter than one step"):
        parse_budget("1d", chickenpox, (0, 364))


def test_budgets_of_share_and_of_steps(los_loop):
    train = (0, 1411)
    share = parse_budget("10%", los_loop, train)
    assert (share.train_steps, share.max_steps) == (141, None)
    assert parse_budget("100%", los_loop, train).train_steps == 1411
    assert parse_budget("10%", los_loop, (100, 1100)).train_range((100, 1100)) == (100, 200)
    steps = parse_budget("500 steps", los_loop, train)
    assert (steps.train_steps, steps.max_steps) == (None, 500)
    assert steps.train_range(train) == train
    assert parse_budget("1step", los_loop, train).max_steps == 1
    both = parse_budget("1d, 200 steps", los_loop, train)
    assert (both.train_steps, both.max_steps) == (288, 200)
    assert both.description.startswith("200 optimiser steps on the first 1 day")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("500", "bare number is ambiguous"),
        ("1 month", "unknown unit 'month'"),
        ("0%", r"\(0, 100\]"),
        ("150%", r"\(0, 100\]"),
        ("1w", "training part has only 1411"),
        ("0 steps", ">= 1"),
        ("1d, 1d", "expected a span"),
        ("10 steps, 20 steps", "expected a span"),
        ("soon", "expected a span"),
        ("", "expected a span"),
    ],
)
def test_bad_budgets_name_the_text_and_the_forms(los_loop, text, match):
    with pytest.raises(ValueError, match=match) as err:
        parse_budget(text, los_loop, (0, 1411))
    assert repr(text) in str(err.value)


def test_budget_needs_a_training_part_inside_the_series(los_loop):
    with pytest.raises(ValueError, match="not a non-empty part"):
        parse_budget("1d", los_loop, (0, 99999))
