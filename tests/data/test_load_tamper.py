"""STGraph.load trusts nothing in a directory (issue 16): each tampering is a typed error."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

import stgraph
from stgraph.data import STGraph
from stgraph.data.serialization import sha256_file
from stgraph.errors import ChecksumError, DataFormatError, STGraphError


@pytest.fixture
def saved(tmp_path):
    gen = torch.Generator().manual_seed(0)
    g = STGraph(
        x=torch.randn(4, 6, 2, generator=gen),
        time=torch.arange(6) * 300 + 1_600_000_000,
        pos=torch.tensor([[2.35, 48.85], [2.36, 48.86], [2.37, 48.85], [2.34, 48.84]]),
        edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]),
        edge_weight=torch.tensor([0.5, 1.0, 0.25]),
        dyn_edge_index=torch.tensor([[0, 3], [1, 2]]),
        dyn_edge_time=torch.tensor([1, 4]),
        meta={"variables": [{"name": "a", "unit": "u"}, {"name": "b", "unit": "v"}]},
        node_ids=["n0", "n1", "n2", "n3"],
    )
    g.mask[0, 0, 0] = False
    return g.save(tmp_path / "g")


def _doc(d):
    return json.loads((d / "meta.json").read_text())


def _write_doc(d, doc):
    (d / "meta.json").write_text(json.dumps(doc, indent=1))


def _retensor(d, change, *, declare=True):
    """Rewrite the tensors with ``change(dict)``; with ``declare`` also ``meta.json``'s
    declarations and sha256, as a careful forger would."""
    tensors = load_file(str(d / "tensors.safetensors"))
    change(tensors)
    save_file(tensors, str(d / "tensors.safetensors"))
    doc = _doc(d)
    if declare:
        doc["tensors"] = {
            k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in tensors.items()
        }
        doc["sha256"] = sha256_file(d / "tensors.safetensors")
    else:
        doc.pop("sha256")
    _write_doc(d, doc)


def test_round_trip_is_byte_identical_and_records_the_sha256(saved, tmp_path):
    g = stgraph.load(saved)
    assert _doc(saved)["sha256"] == sha256_file(saved / "tensors.safetensors")
    again = g.save(tmp_path / "again")
    for name in ("meta.json", "tensors.safetensors"):
        assert (again / name).read_bytes() == (saved / name).read_bytes(), name
    assert g.node_ids == ["n0", "n1", "n2", "n3"]


def test_a_directory_without_sha256_still_loads(saved):
    doc = _doc(saved)
    doc.pop("sha256")
    _write_doc(saved, doc)
    assert stgraph.load(saved).x.shape == (4, 6, 2)


def test_flipped_tensor_bytes_are_a_checksum_error(saved):
    f = saved / "tensors.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0x40  # inside x's float payload: still a valid safetensors file
    f.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match=r"tensors\.safetensors: sha256"):
        stgraph.load(saved)


def test_x_removed_from_the_tensors_is_refused(saved):
    _retensor(saved, lambda t: t.pop("x"), declare=False)
    with pytest.raises(DataFormatError, match=r"missing \['x'\]"):
        stgraph.load(saved)


def test_x_removed_from_tensors_and_declaration_is_refused(saved):
    _retensor(saved, lambda t: t.pop("x"))
    with pytest.raises(DataFormatError, match="no tensor 'x'"):
        stgraph.load(saved, validate=False)


def test_int64_x_is_refused(saved):
    _retensor(saved, lambda t: t.update(x=t["x"].round().long()))
    with pytest.raises(DataFormatError, match="'x' is torch.int64; expected a floating"):
        stgraph.load(saved)


def test_float_mask_holding_3_is_refused(saved):
    _retensor(saved, lambda t: t.update(mask=t["mask"].float() * 3))
    with pytest.raises(DataFormatError, match="'mask' is torch.float32; expected torch.bool"):
        stgraph.load(saved, validate=False)


def test_shape_against_meta_json(saved):
    _retensor(saved, lambda t: t.update(x=t["x"][:, :5].contiguous()), declare=False)
    with pytest.raises(DataFormatError, match=r"'x' is torch.float32 \[4, 5, 2\].*\[4, 6, 2\]"):
        stgraph.load(saved)


@pytest.mark.parametrize("name", ["../../x", "__class__", "meta", "a b"])
def test_unknown_tensor_names_are_refused(saved, name):
    _retensor(saved, lambda t: t.update({name: torch.zeros(1)}))
    with pytest.raises(DataFormatError, match="tensor"):
        stgraph.load(saved)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda doc: [doc], "expected a JSON object"),
        (lambda doc: {**doc, "version": "1"}, "version: expected an integer"),
        (lambda doc: {**doc, "version": True}, "version: expected an integer"),
        (lambda doc: {**doc, "attributes": [1]}, "'attributes': expected a JSON object"),
        (lambda doc: {**doc, "meta": "x"}, "'meta': expected a JSON object"),
        (lambda doc: {**doc, "tensors": {**doc["tensors"], "x": 3}}, r"tensors\['x'\]"),
        (lambda doc: {**doc, "attributes": {"x": [1.0]}}, "attribute 'x'"),
        (lambda doc: {**doc, "attributes": {"validate": 1}}, "attribute 'validate'"),
        (lambda doc: {**doc, "attributes": {"to": 1}}, "attribute 'to'"),
        (lambda doc: {**doc, "attributes": {"../y": 1}}, "attribute '../y'"),
        (lambda doc: {**doc, "sha256": 5}, "'sha256': expected a JSON string"),
    ],
)
def test_malformed_meta_json_is_a_data_format_error_naming_it(saved, edit, match):
    _write_doc(saved, edit(_doc(saved)))
    with pytest.raises(DataFormatError, match=match) as info:
        stgraph.load(saved)
    assert "meta.json" in str(info.value) or "tensors.safetensors" in str(info.value)


def test_non_utf8_meta_json_names_the_file(saved):
    f = saved / "meta.json"
    f.write_bytes(f.read_bytes().replace(b'"stgraph"', b'"stgr\xffph"', 1))
    with pytest.raises(DataFormatError, match=r"meta\.json: not UTF-8"):
        stgraph.load(saved)


def test_every_load_failure_is_an_stgraph_error(saved):
    (saved / "meta.json").write_text("[]")
    with pytest.raises(STGraphError):
        stgraph.load(saved)


def test_a_graph_moved_aside_by_a_crash_is_read_in_its_place(saved):
    """A kill between the two renames of the fallback swap leaves only ``.g.old-<pid>``."""
    aside = saved.with_name(".g.old-12345")
    saved.rename(aside)
    assert stgraph.load(saved).x.shape == (4, 6, 2)
