"""Baseline forecasters run beside the backbone in every comparison (same split, same run).

Importing this package registers them in :data:`stgraph.tasks.MODELS`: ``historical_average``,
``last_value``, ``reference_persistence``, ``seasonal_naive``, ``var`` and ``dcrnn`` (a DCRNN-style diffusion GRU, whose
layers live in :mod:`stgraph.nn.layers`).
"""

from stgraph.baselines.dcrnn import DCRNN
from stgraph.baselines.historical_average import HistoricalAverage
from stgraph.baselines.last_value import LastValue
from stgraph.baselines.reference_persistence import ReferencePersistence
from stgraph.baselines.seasonal_naive import SeasonalNaive
from stgraph.baselines.var import VAR

__all__ = [
    "DCRNN",
    "VAR",
    "HistoricalAverage",
    "LastValue",
    "ReferencePersistence",
    "SeasonalNaive",
]
