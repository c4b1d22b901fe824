"""Saving and loading :class:`~stgraph.data.STGraph` as ``meta.json`` + ``tensors.safetensors``.

The format lives in :mod:`stgraph.data.serialization`; these are the function forms of
:meth:`STGraph.save <stgraph.data.STGraph.save>` and :meth:`STGraph.load
<stgraph.data.STGraph.load>`.
"""

from __future__ import annotations

import os
from pathlib import Path

from stgraph.data.serialization import FORMAT_VERSION, META_FILE, TENSOR_FILE
from stgraph.data.stgraph import STGraph


def save(graph: STGraph, path: str | os.PathLike) -> Path:
    """Write ``graph`` into directory ``path`` (replaced atomically if it exists)."""
    return graph.save(path)


def load(path: str | os.PathLike, *, validate: bool = True) -> STGraph:
    """Read an STGraph written by :func:`save`."""
    return STGraph.load(path, validate=validate)


__all__ = ["FORMAT_VERSION", "META_FILE", "TENSOR_FILE", "load", "save"]
