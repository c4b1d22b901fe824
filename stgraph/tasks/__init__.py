"""Tasks: what a task feeds the model, its loss and its metrics; the task and model registries.

The contract (:mod:`stgraph.tasks.task`): a :class:`Task` turns a batch of windows into the
model's inputs (:meth:`Task.inputs`), gives the training loss (:meth:`Task.loss`) and its
metrics (:meth:`Task.metrics`, accumulated over batches). Tasks register in :data:`TASKS` under
the name a training config gives as ``task:`` (default ``forecast``), models in :data:`MODELS`
under ``model.name``; :mod:`stgraph.tasks.registry` (:func:`get_task`, :func:`build_model`)
builds them by name.

One module per task, named as the task:

- :mod:`stgraph.tasks.forecast`: ``forecast``, the next ``H`` steps of every node from ``L``
  observed steps (the only registered task today);
- ``pretrain``: masked reconstruction (random, block, node and future masks,
  :mod:`stgraph.tasks.masking`) mixed with forecasting, batches drawn per graph from many data
  sets (:mod:`stgraph.tasks.corpus`), losses normalised per data set. Its objective is
  :func:`stgraph.tasks.pretrain.pretrain_loss`, run by :mod:`stgraph.train.pretrainer`; as a
  :class:`Task` its ``loss(model, batch)`` is that objective with the mix and the mask generator
  held by the task and the graph's loss scale carried by the batch;
- ``kriging``: values at nodes with no readings from their observed neighbours;
- ``anomaly``: a score per node and step from the reconstruction error;
- ``classify``: a label per node or per graph.

The backbone heads of the last three live in :mod:`stgraph.nn.heads`; their task modules come
with the objectives that train them (the foundation issue). Beside the tasks:

- :mod:`stgraph.tasks.metrics`: masked MAE/RMSE/MAPE/MSE, the Huber and berHu losses, and the
  per-horizon :class:`~stgraph.tasks.metrics.MetricAccumulator`;
- :mod:`stgraph.tasks.forecaster`: the :class:`Forecaster` model contract shared by the
  baselines (:mod:`stgraph.baselines`) and the backbone;
- :mod:`stgraph.tasks.stfm_forecaster`: the STFM backbone as a forecaster (``"stfm"``).
"""

from stgraph.tasks.finetune import FINETUNE_MODES, Budget, configure_finetune, parse_budget
from stgraph.tasks.forecast import LOSSES, ForecastMetrics, ForecastTask
from stgraph.tasks.forecaster import MODELS, Forecaster
from stgraph.tasks.metrics import (
    METRICS,
    MetricAccumulator,
    masked_berhu,
    masked_huber,
    masked_mae,
    masked_mape,
    masked_mse,
    masked_rmse,
)
from stgraph.tasks.predict import FORECAST_COLUMNS, forecast_table, write_forecasts
from stgraph.tasks.registry import build_model, get_task, model_names, task_names
from stgraph.tasks.stfm_forecaster import STFMForecaster
from stgraph.tasks.task import TASKS, Task, TaskMetrics

__all__ = [
    "FINETUNE_MODES",
    "FORECAST_COLUMNS",
    "Budget",
    "configure_finetune",
    "forecast_table",
    "parse_budget",
    "write_forecasts",
    "LOSSES",
    "METRICS",
    "MODELS",
    "TASKS",
    "ForecastMetrics",
    "ForecastTask",
    "Forecaster",
    "MetricAccumulator",
    "STFMForecaster",
    "Task",
    "TaskMetrics",
    "build_model",
    "get_task",
    "masked_berhu",
    "masked_huber",
    "masked_mae",
    "masked_mape",
    "masked_mse",
    "masked_rmse",
    "model_names",
    "task_names",
]
