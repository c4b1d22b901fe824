"""Kriging head: values at unobserved nodes, in original units."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.nn.heads.reconstruction import ReconstructionHead


class KrigingHead(torch.nn.Module):
    r"""Estimates the whole input window at nodes whose inputs are all missing.

    Inductive kriging as in IGNNK (Wu et al., AAAI 2021): unobserved nodes are in the graph with
    their inputs masked, message passing and attention fill their tokens from observed
    neighbours, and a reconstruction read-out decodes them. Their normalisation statistics come
    from their observed neighbours (see :class:`~stgraph.nn.MaskedInstanceNorm`):

    .. math:: \hat x_{ntv} = \mathrm{Recon}(x_n, e_v)_{tv}\,\sigma_{nv} + \mu_{nv}

    Args:
        channels (int): token size.
        patch_len (int): ``P``.

    Shapes:
        - **input:** ``x`` :math:`(N, S, C)`, ``var_emb`` :math:`(V, C)`, ``loc``, ``scale``
          :math:`(N, 1, V)`, ``num_steps`` ``L``, ``index`` :math:`(K)` or ``None`` (all nodes)
        - **output:** :math:`(K, L, V)` (original units)
    """

    def __init__(self, channels: int, patch_len: int) -> None:
        super().__init__()
        self.channels, self.patch_len = channels, patch_len
        self.reconstruction = ReconstructionHead(channels, patch_len)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.reconstruction.reset_parameters()

    def forward(
        self,
        x: Tensor,
        var_emb: Tensor,
        loc: Tensor,
        scale: Tensor,
        num_steps: int,
        index: Tensor | None = None,
    ) -> Tensor:
        if index is not None:
            x, loc, scale = x[index], loc[index], scale[index]
        return self.reconstruction(x, var_emb, num_steps) * scale + loc

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, patch_len={self.patch_len})"
