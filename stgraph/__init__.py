"""stgraph: a graph-native spatio-temporal foundation model on PyTorch Geometric."""

from stgraph.data import STGraph, load, save

__version__ = "0.1.0"
__all__ = ["STGraph", "__version__", "load", "save"]
