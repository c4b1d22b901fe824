"""Training and evaluation: configs, protocols, the trainer, evaluation, reports and checkpoints.

- :mod:`stgraph.train.config`: the validated training config (``TrainConfig``);
- :mod:`stgraph.train.protocols`: splits, windows and the reporting convention of comparisons;
- :mod:`stgraph.train.assemble`: the data set, protocol, task and model a config names;
- :mod:`stgraph.train.trainer`: the loop (the loss comes from the task, :mod:`stgraph.tasks`);
- :mod:`stgraph.train.evaluate`: masked metrics per horizon step, checkpoint re-evaluation;
- :mod:`stgraph.train.reports`: the Markdown table, ``metrics.json`` and the plots;
- :mod:`stgraph.train.checkpoint`: the run directory's files and resume state.
"""

from stgraph.train.config import TrainConfig, load_config
from stgraph.train.evaluate import evaluate_checkpoint, evaluate_model
from stgraph.train.protocols import PROTOCOLS, Protocol, get_protocol
from stgraph.train.reports import metrics_table, write_metrics
from stgraph.train.trainer import RunResult, train

__all__ = [
    "PROTOCOLS",
    "Protocol",
    "RunResult",
    "TrainConfig",
    "evaluate_checkpoint",
    "evaluate_model",
    "get_protocol",
    "load_config",
    "metrics_table",
    "train",
    "write_metrics",
]
