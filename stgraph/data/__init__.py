"""The data model: :class:`STGraph`, io, windows, splits, scalers, PyG views and interop."""

from stgraph.data import interop, views
from stgraph.data.io import load, save
from stgraph.data.scalers import IdentityScaler, MinMaxScaler, StandardScaler, make_scaler
from stgraph.data.splits import Split, chronological_split
from stgraph.data.stgraph import META_DEFAULTS, STGraph, resolve_interval, to_unix_seconds
from stgraph.data.views import TemporalSignal
from stgraph.data.weights import DISTANCE_M, AddEdgeAffinity, gaussian_affinity, model_edge_weights
from stgraph.data.windows import (
    SlidingWindows,
    adaptive_reference,
    anomaly_persistence,
    seasonal_reference,
    windows_for_split,
)

__all__ = [
    "AddEdgeAffinity",
    "DISTANCE_M",
    "META_DEFAULTS",
    "IdentityScaler",
    "MinMaxScaler",
    "STGraph",
    "SlidingWindows",
    "Split",
    "StandardScaler",
    "TemporalSignal",
    "chronological_split",
    "gaussian_affinity",
    "interop",
    "load",
    "make_scaler",
    "model_edge_weights",
    "resolve_interval",
    "save",
    "adaptive_reference",
    "anomaly_persistence",
    "seasonal_reference",
    "to_unix_seconds",
    "views",
    "windows_for_split",
]
