"""stgraph: a graph-native spatio-temporal foundation model on PyTorch Geometric."""

import os

import torch

from stgraph.data import STGraph, load, save

__version__ = "0.1.0"
__all__ = ["STGraph", "__version__", "from_pretrained", "load", "save"]


def from_pretrained(path_or_name: str | os.PathLike) -> torch.nn.Module:
    """Load a pretrained backbone offline; see :func:`stgraph.pretrained.from_pretrained`."""
    from stgraph.pretrained import from_pretrained as load_pretrained

    return load_pretrained(path_or_name)
