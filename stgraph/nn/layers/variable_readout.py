"""Per-variable read-out of tokens, conditioned on the variable's name embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class VariableReadout(torch.nn.Module):
    r"""Decodes one token into values of every variable, for any number of variables.

    The output layer is shared across variables and conditioned on the name embedding
    :math:`e_v`, so a model trained on some variables can read out others (as ClimaX's
    per-variable prediction heads, but without a per-variable table):

    .. math:: y_{\cdot v} = W_2\,\mathrm{GELU}\big(\mathrm{LN}(z + W_1 e_v)\big) + b_2

    Args:
        channels (int): token size.
        out_len (int): values per token and variable (``1`` for one step, ``P`` for a patch).

    Shapes:
        - **input:** ``z`` :math:`(*, C)`, ``var_emb`` :math:`(V, C)`
        - **output:** :math:`(*, V, \mathrm{out\_len})`
    """

    def __init__(self, channels: int, out_len: int = 1) -> None:
        super().__init__()
        self.channels, self.out_len = channels, out_len
        self.cond = torch.nn.Linear(channels, channels)
        self.norm = torch.nn.LayerNorm(channels)
        self.lin = torch.nn.Linear(channels, out_len)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.cond.reset_parameters()
        self.norm.reset_parameters()
        self.lin.reset_parameters()

    def forward(self, z: Tensor, var_emb: Tensor) -> Tensor:
        return self.lin(F.gelu(self.norm(z.unsqueeze(-2) + self.cond(var_emb))))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, out_len={self.out_len})"
