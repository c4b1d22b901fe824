"""Last value (persistence): every future step repeats the last observed input."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.baselines._batch import (
    ResizableBuffers,
    check_nodes,
    local_node_index,
    masked_node_mean,
)
from stgraph.data.stgraph import STGraph
from stgraph.data.windows import last_observed
from stgraph.tasks.forecaster import Forecaster


class LastValue(ResizableBuffers, Forecaster):
    r"""Persistence forecast: :math:`\hat{x}_{t+h} = x_{t'}` for every :math:`h`, where :math:`t'`
    is the last *observed* input step of the node and variable.

    Missing inputs are skipped; a node and variable with no observed input in the window gets its
    training mean (from :meth:`fit`), so ``x = 0`` at a missing entry never reaches a prediction.

    Args:
        input_steps: ``L``.
        horizon: ``H``.
        num_variables: ``V``.

    Shapes:
        - **input:** ``batch.x``, ``batch.mask`` :math:`(B \cdot N, L, V)`.
        - **output:** :math:`(B \cdot N, H, V)` in the units of the data.
    """

    name = "last_value"
    trainable = False

    def __init__(self, input_steps: int, horizon: int, num_variables: int = 1) -> None:
        super().__init__(input_steps, horizon, num_variables)
        self.register_buffer("node_mean", torch.zeros(0, num_variables))  # [N, V]

    def fit(self, graph: STGraph, train_range: tuple[int, int]) -> LastValue:
        a, b = train_range
        self.node_mean = masked_node_mean(graph.x[:, a:b], graph.mask[:, a:b]).float()
        return self

    def forward(self, batch: STGraph) -> Tensor:
        value, found = last_observed(batch.x, batch.mask)
        if not bool(found.all()):
            if self.node_mean.numel() == 0:
                raise RuntimeError(
                    "last_value: some inputs have no observed step; call fit(graph, train_range) "
                    "first so that their training mean can be used"
                )
            n = check_nodes(batch, self.node_mean.size(0), self.name)
            value = torch.where(found, value, self.node_mean[local_node_index(batch, n)])
        return value.unsqueeze(1).expand(-1, self.horizon, -1).clone()
