"""LoRA adapters on the STFM backbone: identical at the start, reach every weight read, merge back
into a plain checkpoint, and carry no parameter that depends on the graph."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from torch_geometric.data import Batch

from stgraph import datasets
from stgraph.data import SlidingWindows
from stgraph.nn import STFM
from stgraph.nn.adapters import (
    LoRA,
    adapter_names,
    adapter_parameters,
    add_adapters,
    merge_adapters,
)
from stgraph.pretrained import from_pretrained
from stgraph.train.checkpoint import save_weights

OPTIONS = {"channels": 32, "depth": 1, "heads": 2, "patch_len": 3, "levels": 1}
#: What the default targets adapt in a one-block, one-level STFM.
ADAPTED = [
    "merge.q.weight",
    "merge.kv.weight",
    "merge.out.weight",
    "blocks.0.temporal.qkv.weight",
    "blocks.0.temporal.out.weight",
    "blocks.0.conv.lin.weight",
    "blocks.0.attn.qkv.weight",
    "blocks.0.attn.out.weight",
    "hierarchy.attn.0.qkv.weight",
    "hierarchy.attn.0.out.weight",
]


def _batch(name: str, starts: tuple[int, ...]) -> Batch:
    g = datasets.load(name)
    w = SlidingWindows(g, 12, 3)
    return Batch.from_data_list([w[i] for i in starts])


@pytest.fixture(scope="module")
def batches(data_dir):
    # los-loop: one variable (VariableCrossAttention's single-token path reads kv.weight);
    # hangzhou-metro: two variables (its attention path), no coordinates
    return {
        "los-loop": _batch("los-loop", (0, 500)),
        "hangzhou-metro": _batch("hangzhou-metro", (0, 300)),
    }


def _model(seed: int = 0) -> STFM:
    torch.manual_seed(seed)
    return STFM(**OPTIONS).eval()


def _randomise_adapters(model: torch.nn.Module, seed: int = 1, only: str | None = None) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, LoRA) and (only is None or name.startswith(only)):
                m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=gen) * 0.05)


def _forecast(model, batch):
    with torch.no_grad():
        return model(batch, horizon=3)


def test_default_targets_are_the_attention_and_message_passing_weights():
    model = _model()
    assert add_adapters(model, rank=4, alpha=8) == ADAPTED
    assert adapter_names(model) == ADAPTED
    loras = {n: m for n, m in model.named_modules() if isinstance(m, LoRA)}
    assert len(loras) == len(ADAPTED)
    lora = model.blocks[0].temporal.qkv.parametrizations.weight[0]
    assert (lora.rank, lora.alpha, lora.scaling) == (4, 8.0, 2.0)
    assert tuple(lora.lora_A.shape) == (4, 32) and tuple(lora.lora_B.shape) == (96, 4)
    assert not any(n.startswith("forecast_head") for n in adapter_names(model))
    assert len(adapter_parameters(model)) == 2 * len(ADAPTED)


@pytest.mark.parametrize("name", ["los-loop", "hangzhou-metro"])
def test_adapted_model_starts_identical(batches, name):
    model = _model()
    before = _forecast(model, batches[name])
    add_adapters(model)
    assert torch.equal(_forecast(model, batches[name]), before)


@pytest.mark.parametrize(
    "layer", ["blocks.0.conv.lin", "merge.kv", "hierarchy.attn.0.qkv", "blocks.0.attn.qkv"]
)
def test_adapters_reach_the_layers_that_read_weights_directly(batches, layer):
    # conv.lin is read as lin.weight[:, :3c] without dynamic edges, merge.kv as kv.weight[c:] for
    # one variable, the partition attentions' qkv as qkv.weight[c:] for their context tokens: a
    # wrapper module would leave those reads unadapted
    model = _model()
    before = _forecast(model, batches["los-loop"])
    add_adapters(model)
    _randomise_adapters(model, only=layer)
    assert not torch.allclose(_forecast(model, batches["los-loop"]), before, atol=1e-4)


@pytest.mark.parametrize("name", ["los-loop", "hangzhou-metro"])
def test_merge_gives_the_same_outputs_and_the_original_tensors(batches, name):
    model = _model()
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    add_adapters(model)
    _randomise_adapters(model)
    adapted = _forecast(model, batches[name])
    assert merge_adapters(model) == ADAPTED
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    assert adapter_names(model) == [] and adapter_parameters(model) == []
    assert type(model.blocks[0].temporal.qkv) is torch.nn.Linear
    torch.testing.assert_close(_forecast(model, batches[name]), adapted, atol=1e-5, rtol=0)


def test_merged_model_saves_and_loads_as_a_normal_checkpoint(batches, tmp_path):
    model = _model()
    add_adapters(model)
    _randomise_adapters(model)
    adapted = _forecast(model, batches["los-loop"])
    merge_adapters(model)
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(OPTIONS), encoding="utf-8")
    save_weights(model, tmp_path / "model.safetensors")
    loaded = from_pretrained(tmp_path)
    torch.testing.assert_close(_forecast(loaded, batches["los-loop"]), adapted, atol=1e-5, rtol=0)


def test_adapters_do_not_depend_on_the_graph(batches):
    model = _model()
    add_adapters(model)
    shapes = {n: tuple(p.shape) for n, p in model.named_parameters()}
    for name in ("los-loop", "hangzhou-metro"):  # 207 vs 80 nodes, one vs two variables
        out = _forecast(model, batches[name])
        assert out.shape == batches[name].y.shape
    assert {n: tuple(p.shape) for n, p in model.named_parameters()} == shapes
    for m in model.modules():
        if isinstance(m, LoRA):
            assert m.lora_A.shape[1] in (32, 128) and m.lora_B.shape[0] in (32, 64, 96)


def test_adapted_model_deep_copies(batches):
    # the trainer's weight average deep-copies the model
    model = _model()
    add_adapters(model)
    _randomise_adapters(model)
    twin = copy.deepcopy(model)
    assert adapter_names(twin) == ADAPTED
    assert torch.equal(_forecast(twin, batches["los-loop"]), _forecast(model, batches["los-loop"]))


def test_targets_by_class_and_by_name_pattern():
    model = _model()
    assert add_adapters(model, targets=["blocks.*.conv.lin"]) == ["blocks.0.conv.lin.weight"]
    merge_adapters(model)
    names = add_adapters(model, targets=[torch.nn.Linear])
    assert "forecast_head.q.weight" in names and "tokenizer.lin.weight" in names
    assert len(names) == sum(isinstance(m, torch.nn.Linear) for m in _model().modules())


def test_refuses_a_model_without_a_target_and_bad_options():
    with pytest.raises(ValueError, match="no Linear or MultiheadAttention weight"):
        add_adapters(torch.nn.Sequential(torch.nn.LayerNorm(8), torch.nn.GRU(8, 8)))
    with pytest.raises(ValueError, match="NoSuchLayer"):
        add_adapters(_model(), targets=["NoSuchLayer"])
    with pytest.raises(ValueError, match="rank=0"):
        add_adapters(_model(), rank=0)
    with pytest.raises(ValueError, match="alpha"):
        add_adapters(_model(), alpha=-1.0)
    with pytest.raises(ValueError, match="targets is empty"):
        add_adapters(_model(), targets=[])
    model = _model()
    add_adapters(model)
    with pytest.raises(ValueError, match="already has adapters"):
        add_adapters(model)


class _Attend(torch.nn.Module):
    """A layer with PyTorch's multi-head attention, whose in-projection is a raw parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Linear(1, 16)
        self.mha = torch.nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x):
        h = self.embed(x)
        return self.mha(h, h, h, need_weights=False)[0]


def test_multihead_attention_gets_an_adapter_on_its_packed_in_projection(batches):
    seq = batches["los-loop"].x[:32].clone()  # 32 sensors, 12 steps of speed
    torch.manual_seed(0)
    layer = _Attend().eval()
    names = {k: tuple(v.shape) for k, v in layer.state_dict().items()}
    with torch.no_grad():
        before = layer(seq)
    assert add_adapters(layer) == ["mha.in_proj_weight", "mha.out_proj.weight"]
    with torch.no_grad():
        assert torch.equal(layer(seq), before)
        _randomise_adapters(layer)
        adapted = layer(seq)
    assert not torch.allclose(adapted, before, atol=1e-4)
    merge_adapters(layer)
    assert {k: tuple(v.shape) for k, v in layer.state_dict().items()} == names
    with torch.no_grad():
        torch.testing.assert_close(layer(seq), adapted, atol=1e-5, rtol=0)
