"""Objectives: what a task feeds the model, its loss and its metrics, and the model registry.

- :mod:`stgraph.tasks.forecaster`: the :class:`Forecaster` contract shared by the baselines and
  the backbone, and :data:`MODELS` / :func:`build_model`;
- :mod:`stgraph.tasks.stfm_forecaster`: the STFM backbone as a forecaster (``"stfm"``).
"""

from stgraph.tasks.forecaster import MODELS, Forecaster, build_model
from stgraph.tasks.stfm_forecaster import STFMForecaster

__all__ = ["MODELS", "Forecaster", "STFMForecaster", "build_model"]
