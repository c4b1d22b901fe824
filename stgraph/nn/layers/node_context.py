"""Static node context features of any number and kind, embedded by feature name."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import scatter


class NodeContextEncoder(torch.nn.Module):
    r"""Embeds a set of named static node features (road class, lanes, POI counts, cell size...).

    Each feature :math:`f` is standardised within its graph and paired with the embedding of its
    name :math:`e_f` (from :class:`~stgraph.nn.VariableNameEncoder`); the set is pooled, so any
    number of features, in any order, maps to one vector (a DeepSets encoder, Zaheer et al. 2017):

    .. math::
        c_n = \mathrm{MLP}\Big(\frac1F \sum_f \mathrm{GELU}\big(z_{nf}\, U e_f + B e_f\big)\Big),
        \qquad z_{nf} = \frac{a_{nf} - \bar a_{gf}}{s_{gf}}

    Args:
        channels (int): output size (and name-embedding size).

    Shapes:
        - **input:** ``node_attr`` :math:`(N, F)`, ``name_emb`` :math:`(F, C)`, ``batch`` :math:`(N)`
        - **output:** :math:`(N, C)`
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.scale = torch.nn.Linear(channels, channels)
        self.shift = torch.nn.Linear(channels, channels)
        self.mlp = torch.nn.Linear(channels, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.scale, self.shift, self.mlp):
            lin.reset_parameters()

    def forward(self, node_attr: Tensor, name_emb: Tensor, batch: Tensor | None = None) -> Tensor:
        a = node_attr.float()
        a = torch.where(torch.isfinite(a), a, torch.zeros_like(a))
        if batch is None:
            batch = torch.zeros(a.size(0), dtype=torch.long, device=a.device)
        mean = scatter(a, batch, 0, reduce="mean")
        sq = scatter(a**2, batch, 0, reduce="mean")
        std = (sq - mean**2).clamp_min(0).sqrt().clamp_min(1e-6)
        z = ((a - mean[batch]) / std[batch]).clamp(-10, 10)  # [N,F]
        h = F.gelu(z.unsqueeze(-1) * self.scale(name_emb) + self.shift(name_emb))  # [N,F,C]
        return self.mlp(h.mean(1))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels})"
