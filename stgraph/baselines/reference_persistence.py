"""Reference persistence: the window's adaptive reference plus the share of its last gap to it
that persisted on the history before the window. No parameter, nothing fitted but a fallback."""

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
from stgraph.errors import ConfigError
from stgraph.tasks.forecaster import Forecaster


class ReferencePersistence(ResizableBuffers, Forecaster):
    r"""The forecast that :class:`~stgraph.nn.models.STFM` with ``season="anomaly"`` starts from,
    with no weights: :math:`\hat x_{t+h} = s_{t+h} + \phi_h\,a_t`.

    :math:`s` is the window's :func:`~stgraph.data.adaptive_reference` (per node and variable the
    candidate profile or level that did best on a backtest before the window), :math:`a_t` the
    gap of the last input step where input and reference are both observed, and :math:`\phi_h`
    the share of such a gap that persisted ``h`` steps on the same backtest
    (:func:`~stgraph.data.anomaly_persistence`: 0 on sparse counts, near 1 on a jam). Everything
    comes from the steps before the window and the window's own input, so the model needs no
    training; it is the parameter-free floor a pretrained model must beat to have learned
    anything that transfers. A target step without a reference takes the last observed input
    (or the node's training mean where the window observed nothing).

    Args:
        input_steps: ``L``.
        horizon: ``H``.
        num_variables: ``V``.

    Shapes:
        - **input:** windows with ``season``/``season_mask`` :math:`(B \cdot N, L + H, V)` and
          ``season_persist`` :math:`(B \cdot N, H, V)` (:class:`~stgraph.data.SlidingWindows`).
        - **output:** :math:`(B \cdot N, H, V)` in the units of the data.
    """

    name = "reference_persistence"
    trainable = False

    def __init__(self, input_steps: int, horizon: int, num_variables: int = 1) -> None:
        super().__init__(input_steps, horizon, num_variables)
        self.register_buffer("node_mean", torch.zeros(0, num_variables))  # [N, V]

    @property
    def reads_reference(self) -> bool:
        return True

    def fit(self, graph: STGraph, train_range: tuple[int, int]) -> ReferencePersistence:
        a, b = train_range
        self.node_mean = masked_node_mean(graph.x[:, a:b], graph.mask[:, a:b]).float()
        return self

    def forward(self, batch: STGraph) -> Tensor:
        x, mask = batch.x, batch.mask
        season, season_mask = batch.get("season"), batch.get("season_mask")
        persist = batch.get("season_persist")
        if season is None or season_mask is None or persist is None:
            raise ConfigError(
                "reference_persistence: the windows carry no reference (build them with "
                "SlidingWindows(reference=True))"
            )
        length = x.size(1)
        value, found = last_observed(x, mask)
        if not bool(found.all()):
            if self.node_mean.numel() == 0:
                raise RuntimeError(
                    "reference_persistence: some inputs have no observed step; call "
                    "fit(graph, train_range) first so that their training mean can be used"
                )
            n = check_nodes(batch, self.node_mean.size(0), self.name)
            value = torch.where(found, value, self.node_mean[local_node_index(batch, n)])
        past, past_ok = season[:, :length], season_mask[:, :length]
        future, future_ok = season[:, length:], season_mask[:, length:]
        both = mask & past_ok
        gap = torch.where(both, x - past, torch.zeros_like(x))
        steps = torch.arange(1, length + 1, device=x.device).view(1, -1, 1)
        pos = (both.long() * steps).amax(1, keepdim=True)  # [N, 1, V], 0: no gap observed
        last_gap = gap.gather(1, (pos - 1).clamp_min(0))
        fallback = value.unsqueeze(1).expand(-1, self.horizon, -1)
        return torch.where(future_ok, future + persist[:, : self.horizon] * last_gap, fallback)
