"""The STFM backbone as a :class:`~stgraph.tasks.forecaster.Forecaster` (registered as ``"stfm"``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from stgraph.data.stgraph import STGraph
from stgraph.nn.models.stfm import STFM
from stgraph.tasks.forecaster import Forecaster


class STFMForecaster(Forecaster):
    """Forecaster wrapper of :class:`stgraph.nn.STFM`.

    The backbone normalises each node's window itself (masked instance normalisation, undone at
    the output), so there is no global input scaler to fit: :meth:`fit` only checks the graph
    and writes the backbone's structure onto it once (random-walk encodings, KD coarsening, edge
    affinities: :attr:`STFM.transform <stgraph.nn.STFM.transform>`), reading no observation at
    all; the windows of the graph then carry it. Model-size options come from
    ``configs/model/<size>.yaml``.

    Args:
        input_steps: ``L``.
        horizon: ``H`` (the backbone itself can forecast any horizon).
        num_variables: ``V`` of the graph it is built for; informational only: the backbone runs
            on any number of variables and nothing is bound to it.
        **options: keyword options of :class:`stgraph.nn.STFM` (``channels``, ``depth``,
            ``heads``, ``patch_len``, ``levels``, ``cluster_size``, ``rwse_steps``,
            ``ffn_ratio``, ``dropout``, ``norm_eps``, ``tasks``, ...).
    """

    name = "stfm"

    def __init__(
        self, input_steps: int, horizon: int, num_variables: int = 1, **options: Any
    ) -> None:
        super().__init__(input_steps, horizon, num_variables)
        options = {k: v for k, v in options.items() if k not in ("name", "model")}
        self.options = options
        self.backbone = STFM(**options)

    @property
    def reads_reference(self) -> bool:
        """Whether the backbone reads the windows' reference (``season=...``)."""
        return self.backbone.seasonal is not None

    def fit(self, graph: STGraph, train_range: tuple[int, int]) -> STFMForecaster:
        """Check ``graph`` and write the backbone's structure onto it, in place (no readings are
        used; a graph that already carries it is left as it is)."""
        a, b = train_range
        if not 0 <= a < b <= graph.num_steps:
            raise ValueError(
                f"train_range [{a}, {b}) is not inside the series [0, {graph.num_steps})"
            )
        # No check of graph.num_variables: the backbone merges any set of variables by their
        # names, so the same weights run on a graph with other variables than it trained on.
        transform = self.backbone.transform
        if not transform.matches(graph):
            transform.forward(graph)  # in place: the windows over graph see it
        return self

    def forward(self, batch: STGraph) -> Tensor:
        """Forecast ``[B*N, H, V]`` in original units."""
        if batch.edge_index is None:
            batch.edge_index = torch.empty(2, 0, dtype=torch.long, device=batch.x.device)
        return self.backbone(batch, horizon=self.horizon)


__all__ = ["STFMForecaster"]
