"""Training and evaluation: configs, protocols, metrics, the trainer and checkpoints."""

from stgraph.train.config import TrainConfig, load_config
from stgraph.train.evaluate import evaluate_checkpoint, evaluate_model, metrics_table
from stgraph.train.metrics import (
    MetricAccumulator,
    masked_mae,
    masked_mape,
    masked_mse,
    masked_rmse,
)
from stgraph.train.protocols import PROTOCOLS, Protocol, get_protocol
from stgraph.train.trainer import RunResult, train

__all__ = [
    "PROTOCOLS",
    "MetricAccumulator",
    "Protocol",
    "RunResult",
    "TrainConfig",
    "evaluate_checkpoint",
    "evaluate_model",
    "get_protocol",
    "load_config",
    "masked_mae",
    "masked_mape",
    "masked_mse",
    "masked_rmse",
    "metrics_table",
    "train",
]
