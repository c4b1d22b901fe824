"""DCRNN: a sequence-to-sequence GRU whose gates are diffusion convolutions on the road graph."""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch_geometric.typing import OptTensor

from stgraph.baselines._batch import (
    SECONDS_PER_DAY,
    num_windows,
    per_window,
    target_times,
)
from stgraph.data.scalers import make_scaler
from stgraph.data.stgraph import STGraph
from stgraph.data.weights import model_edge_weights
from stgraph.errors import ConfigError
from stgraph.nn.layers.dcgru_cell import DCGRUCell
from stgraph.nn.layers.diffusion_conv import DiffusionSupports, diffusion_supports
from stgraph.tasks.forecaster import Forecaster


class DCRNN(Forecaster):
    r"""Diffusion Convolutional Recurrent Neural Network (Li et al., ICLR 2018) as a forecaster.

    An encoder of ``num_layers`` stacked :class:`DCGRUCell` reads the ``L`` input steps; a decoder
    with its own cells, started from the encoder's states, emits the ``H`` steps one by one, each
    fed back as the next decoder input (no teacher forcing or curriculum learning; DCRNN's
    scheduled sampling is omitted). Inputs per node and step are the scaled values with missing
    entries set to 0, the observation mask (so a missing value is distinguishable from a value
    equal to the mean) and, with ``time_features``, the time of day as sine and cosine. The input
    :class:`~stgraph.data.scalers.Scaler` is fitted by :meth:`fit` on the observed training values;
    predictions are returned in the units of the data.

    The graph is the batch's static ``edge_index``/``edge_weight`` (block-diagonal over the
    windows); its :class:`~stgraph.nn.layers.diffusion_conv.DiffusionSupports` are computed once per
    distinct graph and reused.

    Cost: the recurrence runs ``L + H`` cell steps, each with ``4K`` sparse products and three
    dense layers over all ``B N`` nodes. The defaults are smaller than the paper's (64 units, 2
    layers) to keep CPU training practical: on Los-loop (207 nodes, 12 -> 12, batch 64, one
    thread) a training step took about 2.6 s of CPU with the defaults and 14 s with the paper's
    size. On a shared CPU use ``torch.set_num_threads(1)``: with more threads than free cores the
    many small products wait on each other (25x slower measured).

    Args:
        input_steps: ``L``.
        horizon: ``H``.
        num_variables: ``V``.
        hidden: state size per node (default 32; DCRNN used 64).
        num_layers: stacked cells in encoder and decoder (default 1; DCRNN used 2).
        K: diffusion hops per direction (default 2, as in DCRNN).
        scaler: ``"standard"`` (default), ``"minmax"`` or ``"none"``.
        time_features: add time of day to the inputs (default ``True``).

    Shapes:
        - **input:** ``batch.x``, ``batch.mask`` :math:`(B \cdot N, L, V)`; ``batch.edge_index``
          :math:`(2, B \cdot E)`; ``batch.time`` :math:`(B, L)`, ``batch.y_time`` :math:`(B, H)`.
        - **output:** :math:`(B \cdot N, H, V)` in the units of the data.
    """

    name = "dcrnn"
    trainable = True

    def __init__(
        self,
        input_steps: int,
        horizon: int,
        num_variables: int = 1,
        *,
        hidden: int = 32,
        num_layers: int = 1,
        K: int = 2,
        scaler: str = "standard",
        time_features: bool = True,
    ) -> None:
        super().__init__(input_steps, horizon, num_variables)
        if hidden < 1 or num_layers < 1 or K < 0:
            raise ConfigError(
                f"dcrnn: need hidden >= 1, num_layers >= 1, K >= 0; got {hidden}, {num_layers}, {K}"
            )
        self.hidden, self.num_layers, self.K = int(hidden), int(num_layers), int(K)
        self.time_features = bool(time_features)
        self.scaler = make_scaler(scaler)
        self.scaler_name = scaler
        in_channels = 2 * num_variables + (2 if self.time_features else 0)
        self.encoder = torch.nn.ModuleList(
            DCGRUCell(in_channels if i == 0 else hidden, hidden, K) for i in range(num_layers)
        )
        self.decoder = torch.nn.ModuleList(
            DCGRUCell(in_channels if i == 0 else hidden, hidden, K) for i in range(num_layers)
        )
        self.head = torch.nn.Linear(hidden, num_variables)
        self.register_buffer("interval", torch.tensor(0))
        self._supports_cache: tuple[tuple, DiffusionSupports] | None = None

    def reset_parameters(self) -> None:
        for cell in (*self.encoder, *self.decoder):
            cell.reset_parameters()
        self.head.reset_parameters()

    def fit(self, graph: STGraph, train_range: tuple[int, int]) -> DCRNN:
        a, b = train_range
        self.scaler.fit(graph.x[:, a:b], graph.mask[:, a:b])
        self.interval = torch.tensor(int(graph.interval or 0))
        return self

    def forward(self, batch: STGraph) -> Tensor:
        x, mask = batch.x, batch.mask
        rows, L, v = x.shape
        b = num_windows(batch)
        window = (
            batch.batch
            if getattr(batch, "batch", None) is not None
            else x.new_zeros(rows, dtype=torch.long)
        )
        edge_index = batch.edge_index
        if edge_index is None:  # no graph: the cells reduce to per-node GRUs
            edge_index = torch.empty(2, 0, dtype=torch.long, device=x.device)
        edge_weight, _ = model_edge_weights(batch)  # distances in metres -> Gaussian affinities
        if edge_weight is not None:
            edge_weight = edge_weight.to(x.dtype)
        supports = self._supports(edge_index, edge_weight, rows)
        z = torch.where(mask, self.scaler.transform(x), torch.zeros_like(x))
        inputs = [z, mask.to(x.dtype)]
        if self.time_features:
            inputs.append(
                self._time_of_day(per_window(getattr(batch, "time", None), b), window, L, x)
            )
        seq = torch.cat(inputs, dim=-1)  # [R, L, C]

        states = []
        for cell in self.encoder:
            pre = cell.input_part(seq, supports)  # [R, L, 3H]
            h = x.new_zeros(rows, self.hidden)
            outs = []
            for pre_t in pre.unbind(1):
                h = cell(pre_t, h, supports, precomputed=True)
                outs.append(h)
            states.append(h)
            seq = torch.stack(outs, dim=1)

        interval = int(self.interval) or None
        y_tod = None
        if self.time_features:
            times = target_times(batch, b, self.horizon, interval)
            y_tod = self._time_of_day(times, window, self.horizon, x)
        step_in = torch.cat([z[:, -1], mask[:, -1].to(x.dtype)], dim=-1)
        ones = x.new_ones(rows, v)
        preds = []
        for t in range(self.horizon):
            inp = step_in if y_tod is None else torch.cat([step_in, y_tod[:, t]], dim=-1)
            for i, cell in enumerate(self.decoder):
                states[i] = cell(inp, states[i], supports)
                inp = states[i]
            y = self.head(inp)  # [R, V], scaled
            preds.append(y)
            step_in = torch.cat([y, ones], dim=-1)
        return self.scaler.inverse_transform(torch.stack(preds, dim=1))

    def _supports(self, edge_index: Tensor, edge_weight: OptTensor, rows: int) -> DiffusionSupports:
        """Diffusion operators of the batch's graph, cached while the graph does not change."""
        key = (rows, edge_index, edge_weight)
        cache = self._supports_cache
        if cache is not None and _same_graph(cache[0], key):
            return cache[1]
        supports = diffusion_supports(edge_index, edge_weight, rows)
        self._supports_cache = (key, supports)
        return supports

    @staticmethod
    def _time_of_day(times: Tensor | None, window: Tensor, steps: int, like: Tensor) -> Tensor:
        if times is None:
            return like.new_zeros(like.size(0), steps, 2)
        frac = (times % SECONDS_PER_DAY).to(like.dtype) / SECONDS_PER_DAY  # [B, S]
        angle = 2 * math.pi * frac[window.to(frac.device)]
        return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1).to(like.device)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(input_steps={self.input_steps}, horizon={self.horizon}, "
            f"num_variables={self.num_variables}, hidden={self.hidden}, "
            f"num_layers={self.num_layers}, K={self.K})"
        )


def _same_graph(a: tuple, b: tuple) -> bool:
    if a[0] != b[0]:
        return False
    for x, y in zip(a[1:], b[1:], strict=True):
        if x is None or y is None:
            if x is not y:
                return False
        elif x.shape != y.shape or x.device != y.device or not torch.equal(x, y):
            return False
    return True
