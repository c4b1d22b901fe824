"""The on-disk format of a graph: ``meta.json`` + ``tensors.safetensors`` in one directory.

No pickle anywhere: tensors go to safetensors, everything else to JSON. Writes are atomic. This
module knows the format only, not :class:`~stgraph.data.STGraph` (which calls it from
:meth:`~stgraph.data.STGraph.save` and :meth:`~stgraph.data.STGraph.load`), so the data model
and its io import in one direction.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from stgraph.errors import DataFormatError
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
        save_file(tensors, str(tmp / TENSOR_FILE))
        (tmp / META_FILE).write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def read_graph_dir(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict | None, dict]:
    """``(tensors, meta, attributes)`` of a directory written by :func:`write_graph_dir`.

    Raises:
        FileNotFoundError: a file is missing.
        DataFormatError: not an stgraph directory, a newer format, or unreadable tensors.
    """
    path = Path(path)
    meta_file, tensor_file = path / META_FILE, path / TENSOR_FILE
    for f in (meta_file, tensor_file):
        if not f.is_file():
            raise FileNotFoundError(
                f"{f}: missing; an STGraph directory holds {META_FILE} and {TENSOR_FILE}"
            )
    try:
        doc = json.loads(meta_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"{meta_file}: not valid JSON ({exc})") from exc
    if doc.get("format") != "stgraph":
        raise DataFormatError(f"{meta_file}: not an stgraph file (format={doc.get('format')!r})")
    if doc.get("version", 0) > FORMAT_VERSION:
        raise DataFormatError(
            f"{meta_file}: format version {doc['version']} is newer than this stgraph ({FORMAT_VERSION})"
        )
    try:
        tensors = load_file(str(tensor_file))
    except Exception as exc:  # safetensors raises its own error types
        raise DataFormatError(f"{tensor_file}: cannot be read as safetensors ({exc})") from exc
    return tensors, doc.get("meta"), doc.get("attributes", {})


__all__ = ["FORMAT_VERSION", "META_FILE", "TENSOR_FILE", "read_graph_dir", "write_graph_dir"]
