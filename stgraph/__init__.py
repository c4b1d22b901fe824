"""stgraph: a graph-native spatio-temporal foundation model on PyTorch Geometric."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

__version__ = "0.1.0"
__all__ = ["STGraph", "__version__", "from_pretrained", "load", "save"]

if TYPE_CHECKING:
    import torch

    from stgraph.data import STGraph, load, save

#: PEP 562: these import torch and PyG on first use, so that ``stgraph --help`` and the light
#: modules (``stgraph.errors``, ``stgraph.cli``) start in a fraction of a second.
_LAZY = {"STGraph": "stgraph.data", "load": "stgraph.data", "save": "stgraph.data"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'stgraph' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def from_pretrained(path_or_name: str | os.PathLike) -> torch.nn.Module:
    """Load a pretrained backbone offline; see :func:`stgraph.pretrained.from_pretrained`."""
    from stgraph.pretrained import from_pretrained as load_pretrained

    return load_pretrained(path_or_name)
