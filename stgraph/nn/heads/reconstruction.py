"""Reconstruction head: every input step of every variable, from the patch tokens."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.nn.layers.variable_readout import VariableReadout


class ReconstructionHead(torch.nn.Module):
    r"""Decodes each patch token back into its ``P`` steps per variable (masked pretraining).

    As the reconstruction head of masked autoencoders on patches (He et al., CVPR 2022;
    PatchTST's self-supervised mode): a shared linear read-out per patch, conditioned on the
    variable name embedding,

    .. math:: \hat x_{n, sP:(s+1)P, v} = \mathrm{Readout}_P(x_{ns}, e_v)

    and the front padding of the last window is dropped.

    Args:
        channels (int): token size.
        patch_len (int): ``P``.

    Shapes:
        - **input:** ``x`` :math:`(N, S, C)`, ``var_emb`` :math:`(V, C)`, ``num_steps`` ``L``
        - **output:** :math:`(N, L, V)` (normalised units)
    """

    def __init__(self, channels: int, patch_len: int) -> None:
        super().__init__()
        self.channels, self.patch_len = channels, patch_len
        self.readout = VariableReadout(channels, patch_len)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.readout.reset_parameters()

    def forward(self, x: Tensor, var_emb: Tensor, num_steps: int) -> Tensor:
        y = self.readout(x, var_emb)  # [N, S, V, P]
        n, s, v, p = y.shape
        y = y.permute(0, 1, 3, 2).reshape(n, s * p, v)
        return y[:, s * p - num_steps :]

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, patch_len={self.patch_len})"
