"""Forecasting models selectable by name from a config (see :func:`build_model`).

Importing this package registers the built-in models in :data:`MODELS`:
``historical_average``, ``last_value``, ``seasonal_naive``, ``var`` and ``dcrnn``.
"""

import stgraph.models.stfm  # noqa: F401  (registers "stfm")
from stgraph.models.base import MODELS, Forecaster, build_model
from stgraph.models.dcrnn import DCRNN, DCGRUCell
from stgraph.models.diffusion_conv import DiffusionConv, DiffusionSupports, diffusion_supports
from stgraph.models.historical_average import HistoricalAverage
from stgraph.models.last_value import LastValue
from stgraph.models.seasonal_naive import SeasonalNaive
from stgraph.models.var import VAR

__all__ = [
    "DCGRUCell",
    "DCRNN",
    "MODELS",
    "VAR",
    "DiffusionConv",
    "DiffusionSupports",
    "Forecaster",
    "HistoricalAverage",
    "LastValue",
    "SeasonalNaive",
    "build_model",
    "diffusion_supports",
]
