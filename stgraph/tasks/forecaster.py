"""The forecaster contract shared by baselines, the GNN baseline and the foundation backbone.

A :class:`Forecaster` maps a batch of windows (an :class:`~stgraph.data.STGraph` batch from
:class:`~stgraph.data.SlidingWindows` + ``torch_geometric.loader.DataLoader``) to predictions in the
*original units* of the data: ``forward(batch) -> Tensor [num_nodes_in_batch, H, V]``.

- ``fit(graph, train_range)`` is called once before training with the full series and the training
  step range ``[a, b)``: statistical models estimate their parameters there, neural models fit
  their input scaler there. Nothing outside ``[a, b)`` may be read.
- ``trainable`` says whether the trainer should run gradient steps (``False`` for statistical
  models, which are fully fitted by ``fit``).
- ``reads_reference`` says whether ``forward`` reads the windows' ``season``/``season_mask``
  (:func:`~stgraph.data.adaptive_reference`); windows for a model that does not are built
  without it (``SlidingWindows(reference=False)``), which is most of an item's cost.
- Missing inputs (``batch.mask == False``) must not influence predictions through their ``x``
  value (which is 0).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from stgraph.data.stgraph import STGraph

#: Registered models by name (``model.name`` in a config), filled by subclassing
#: :class:`Forecaster`; :func:`stgraph.tasks.registry.build_model` builds one by name.
MODELS: dict[str, type[Forecaster]] = {}


class Forecaster(torch.nn.Module):
    """Base class of every model the trainer and ``experiments/baselines.py`` can run.

    Args:
        input_steps: ``L``, the number of input steps per window.
        horizon: ``H``, the number of steps predicted.
        num_variables: ``V``.
    """

    name: ClassVar[str] = ""
    trainable: ClassVar[bool] = True

    def __init__(self, input_steps: int, horizon: int, num_variables: int = 1) -> None:
        super().__init__()
        self.input_steps, self.horizon, self.num_variables = input_steps, horizon, num_variables

    @property
    def reads_reference(self) -> bool:
        """Whether :meth:`forward` reads the windows' reference (default ``False``)."""
        return False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("name"):  # its own name: a subclass does not take its parent's
            MODELS[cls.name] = cls

    def fit(self, graph: STGraph, train_range: tuple[int, int]) -> Forecaster:
        """Estimate statistics on steps ``[a, b)`` of ``graph`` (default: nothing)."""
        return self

    def forward(self, batch: STGraph) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
