"""Merge any number of variable tokens into one token by cross-attention."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


class VariableCrossAttention(torch.nn.Module):
    r"""Aggregates the tokens of a variable set with a learned query (ClimaX variable aggregation).

    Nguyen et al., "ClimaX", ICML 2023: per position, one query attends over the ``V`` variable
    tokens, so a model trained on some variables runs on any subset or number of them:

    .. math::
        \alpha_{v} = \mathrm{softmax}_{v:\,\mathrm{valid}}\Big(\frac{(q + t) W_Q\,(z_v W_K)^\top}
        {\sqrt{d}}\Big),\qquad y = W_O \sum_v \alpha_v\, z_v W_V

    with :math:`t` an optional per-position query offset (the time encoding). Invalid tokens
    (no observed value) get no weight; a position with no valid token returns a learned
    ``missing`` token, so missing inputs never leak.

    Args:
        channels (int): token size.
        heads (int): attention heads (default ``4``).

    Shapes:
        - **input:** ``tokens`` :math:`(*, V, C)`, ``valid`` :math:`(*, V)`, ``query_offset``
          :math:`(*, C)` or ``None``
        - **output:** :math:`(*, C)`
    """

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.channels, self.heads = channels, heads
        self.query = torch.nn.Parameter(torch.empty(channels))
        self.missing = torch.nn.Parameter(torch.empty(channels))
        self.q = torch.nn.Linear(channels, channels)
        self.kv = torch.nn.Linear(channels, 2 * channels)
        self.out = torch.nn.Linear(channels, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.query, std=0.02)
        torch.nn.init.normal_(self.missing, std=0.02)
        for lin in (self.q, self.kv, self.out):
            lin.reset_parameters()

    def forward(self, tokens: Tensor, valid: Tensor, query_offset: Tensor | None = None) -> Tensor:
        *lead, v, c = tokens.shape
        h, d = self.heads, c // self.heads
        if v == 1:  # one token: the softmax weight is exactly 1, so skip the scores
            val = F.linear(tokens[..., 0, :], self.kv.weight[c:], self.kv.bias[c:])
            return torch.where(valid[..., :1], self.out(val), self.missing.expand(*lead, c))
        q = self.query if query_offset is None else self.query + query_offset
        q = self.q(q).expand(*lead, c).reshape(*lead, h, d)
        k, val = self.kv(tokens).reshape(*lead, v, 2, h, d).unbind(-3)
        score = torch.einsum("...hd,...vhd->...hv", q, k) / math.sqrt(d)
        score = score.masked_fill(~valid.unsqueeze(-2), float("-inf"))
        any_valid = valid.any(-1, keepdim=True)  # [*, 1]
        attn = torch.softmax(score.masked_fill(~any_valid.unsqueeze(-1), 0.0), dim=-1)
        y = self.out(torch.einsum("...hv,...vhd->...hd", attn, val).reshape(*lead, c))
        return torch.where(any_valid, y, self.missing.expand_as(y))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, heads={self.heads})"
