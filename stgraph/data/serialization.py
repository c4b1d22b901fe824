"""The on-disk format of a graph: ``meta.json`` + ``tensors.safetensors`` in one directory.

No pickle anywhere: tensors go to safetensors, everything else to JSON. Writes are atomic. This
module knows the format only, not :class:`~stgraph.data.STGraph` (which calls it from
:meth:`~stgraph.data.STGraph.save` and :meth:`~stgraph.data.STGraph.load`), so the data model
and its io import in one direction.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stgraph.errors import ChecksumError, DataFormatError
from stgraph.utils.atomic import atomic_dir

FORMAT_VERSION = 1
META_FILE = "meta.json"
TENSOR_FILE = "tensors.safetensors"


def _jsonable(value: Any, key: str) -> Any:
    try:
        json.dumps(value)
    except TypeError as exc:
        raise TypeError(
            f"save: attribute {key!r} is not a tensor and not JSON-serialisable"
        ) from exc
    return value


def write_graph_dir(
    items: Iterable[tuple[str, Any]], meta: dict | None, class_name: str, path: str | os.PathLike
) -> Path:
    """Write a graph's attributes ``items`` (``(key, value)``; ``meta`` is skipped there and
    written from ``meta``) into directory ``path``, replaced atomically if it exists."""
    tensors: dict[str, torch.Tensor] = {}
    extras: dict[str, Any] = {}
    for key, value in items:
        if key == "meta":
            continue
        if isinstance(value, torch.Tensor):
            tensors[key] = value.detach().cpu().contiguous()
        elif value is not None:
            extras[key] = _jsonable(value, key)
    doc = {
        "format": "stgraph",
        "version": FORMAT_VERSION,
        "class": class_name,
        "meta": _jsonable(meta or {}, "meta"),
        "attributes": extras,
        "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in tensors.items()},
    }
    path = Path(path)
    with atomic_dir(path) as tmp:
        try:
            save_file(tensors, str(tmp / TENSOR_FILE))
        except SafetensorError as exc:  # e.g. disk full: the previous directory stays in place
            raise OSError(
                f"{path}: cannot write the tensors ({exc}); the previous graph is kept"
            ) from exc
        doc["sha256"] = sha256_file(tmp / TENSOR_FILE)
        (tmp / META_FILE).write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


#: Dtype kinds of the data model's own fields: a file must hold these kinds (``STGraph`` would
#: otherwise cast an int ``x`` to float or a float mask holding 3 to ``True`` without a word).
_FLOAT_FIELDS = ("x", "y", "pos", "edge_weight", "edge_attr", "node_attr", "dyn_edge_weight")
_BOOL_FIELDS = ("mask", "y_mask")
_INDEX_FIELDS = ("time", "y_time", "edge_index", "dyn_edge_index", "dyn_edge_time")
#: Names a stored attribute may not take: the constructor's own keywords.
_RESERVED = ("meta", "validate")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_doc(meta_file: Path) -> dict[str, Any]:
    """The parsed ``meta.json`` with its top-level structure checked."""
    try:
        doc = json.loads(meta_file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{meta_file}: not UTF-8 text ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{meta_file}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise DataFormatError(
            f"{meta_file}: expected a JSON object with format/version/tensors, "
            f"got a {type(doc).__name__}"
        )
    if doc.get("format") != "stgraph":
        raise DataFormatError(f"{meta_file}: not an stgraph file (format={doc.get('format')!r})")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DataFormatError(f"{meta_file}: version: expected an integer >= 1, got {version!r}")
    if version > FORMAT_VERSION:
        raise DataFormatError(
            f"{meta_file}: format version {version} is newer than this stgraph ({FORMAT_VERSION})"
        )
    for key, kind in (("meta", dict), ("attributes", dict), ("tensors", dict), ("sha256", str)):
        if doc.get(key) is not None and not isinstance(doc[key], kind):
            raise DataFormatError(
                f"{meta_file}: {key!r}: expected a JSON {'object' if kind is dict else 'string'}, "
                f"got {type(doc[key]).__name__} {doc[key]!r:.80}"
            )
    return doc


def _check_name(name: str, what: str, source: Path) -> None:
    """A stored name must be a plain identifier that shadows nothing of the data model."""
    from torch_geometric.data import Data

    if not name.isidentifier() or name.startswith("_"):
        raise DataFormatError(
            f"{source}: {what} {name!r} is not a valid attribute name (a Python identifier "
            "not starting with '_')"
        )
    fields = (*_FLOAT_FIELDS, *_BOOL_FIELDS, *_INDEX_FIELDS)
    if name in _RESERVED or (
        what == "attribute" and (name in fields or callable(getattr(Data, name, None)))
    ):
        raise DataFormatError(
            f"{source}: {what} {name!r} would replace a field or method of the graph"
        )


def _check_tensors(
    tensors: dict[str, torch.Tensor], declared: dict | None, tensor_file: Path, meta_file: Path
) -> None:
    """The tensors against ``meta.json``'s declarations and the data model's dtype kinds."""
    for name in tensors:
        _check_name(name, "tensor", tensor_file)
    if declared is not None:
        missing, extra = sorted(set(declared) - set(tensors)), sorted(set(tensors) - set(declared))
        if missing or extra:
            raise DataFormatError(
                f"{tensor_file}: tensors do not match {META_FILE}: missing {missing}, "
                f"not declared {extra}"
            )
        for name, t in tensors.items():
            spec = declared[name]
            if not isinstance(spec, dict):
                raise DataFormatError(f"{meta_file}: tensors[{name!r}]: expected an object")
            if spec.get("dtype") != str(t.dtype) or spec.get("shape") != list(t.shape):
                raise DataFormatError(
                    f"{tensor_file}: tensor {name!r} is {t.dtype} {list(t.shape)}, "
                    f"{META_FILE} declares {spec.get('dtype')} {spec.get('shape')}"
                )
    if "x" not in tensors:
        raise DataFormatError(f"{tensor_file}: no tensor 'x'; every graph stores x [N, T, V]")
    for name, t in tensors.items():
        expected = None
        if name in _FLOAT_FIELDS and not torch.is_floating_point(t):
            expected = "a floating-point dtype"
        elif name in _BOOL_FIELDS and t.dtype != torch.bool:
            expected = "torch.bool"
        elif name in _INDEX_FIELDS and t.dtype != torch.int64:
            expected = "torch.int64"
        if expected is not None:
            raise DataFormatError(
                f"{tensor_file}: tensor {name!r} is {t.dtype}; expected {expected}"
            )


def read_graph_dir(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None, dict]:
    """``(tensors, meta, attributes)`` of a directory written by :func:`write_graph_dir`.

    Nothing in the directory is trusted: ``meta.json`` must be the documented object, the tensors
    must be the ones it declares (names, dtypes, shapes), with the dtype kinds of the data model
    (float ``x``, bool ``mask``, int64 indices), and the tensors file must match the sha256
    recorded at save time (directories written before the sha256 was recorded load without it).
    A directory that a crash left moved aside (``.<name>.old-<pid>``, see
    :mod:`stgraph.utils.atomic`) is read in its place.

    Raises:
        FileNotFoundError: a file is missing.
        DataFormatError: not an stgraph directory, a newer format, malformed ``meta.json``,
            unreadable tensors, or tensors that differ from their declaration.
        ChecksumError: the tensors file does not match the sha256 in ``meta.json``.
    """
    path = Path(path)
    if not path.exists():  # a crash between the two renames of a replace: read the old copy
        aside = sorted(path.parent.glob(f"{glob.escape('.' + path.name)}.old-*"))
        path = aside[-1] if aside and path.parent.is_dir() else path
    meta_file, tensor_file = path / META_FILE, path / TENSOR_FILE
    for f in (meta_file, tensor_file):
        if not f.is_file():
            raise FileNotFoundError(
                f"{f}: missing; an STGraph directory holds {META_FILE} and {TENSOR_FILE}"
            )
    doc = _read_doc(meta_file)
    if doc.get("sha256") is not None:
        got = sha256_file(tensor_file)
        if got != doc["sha256"]:
            raise ChecksumError(
                f"{tensor_file}: sha256 {got} does not match the {doc['sha256']} recorded in "
                f"{META_FILE}; the file was changed or damaged after it was saved"
            )
    try:
        tensors = load_file(str(tensor_file))
    except Exception as exc:  # safetensors raises its own error types
        raise DataFormatError(f"{tensor_file}: cannot be read as safetensors ({exc})") from exc
    _check_tensors(tensors, doc.get("tensors"), tensor_file, meta_file)
    attributes = doc.get("attributes") or {}
    for name in attributes:
        _check_name(name, "attribute", meta_file)
        if name in tensors:
            raise DataFormatError(f"{meta_file}: attribute {name!r} is also a tensor")
    return tensors, doc.get("meta"), attributes


__all__ = [
    "FORMAT_VERSION",
    "META_FILE",
    "TENSOR_FILE",
    "read_graph_dir",
    "sha256_file",
    "write_graph_dir",
]
