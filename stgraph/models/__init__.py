"""Forecasting models selectable by name from a config (see :func:`build_model`)."""

from stgraph.models.base import MODELS, Forecaster, build_model

__all__ = ["MODELS", "Forecaster", "build_model"]
