"""Kriging head: values at unobserved nodes, in original units."""

from __future__ import annotations

import torch
from torch import Tensor


class KrigingHead(torch.nn.Module):
    r"""Estimates the whole input window at nodes whose inputs are all missing.

    Inductive kriging as in IGNNK (Wu et al., AAAI 2021): unobserved nodes are in the graph with
    their inputs masked, message passing and attention fill their tokens from observed
    neighbours, and the model's one :class:`~stgraph.nn.ReconstructionHead` (shared with
    reconstruction and anomaly scoring, so this head has no parameters of its own) decodes them.
    Their normalisation statistics come from their observed neighbours (see
    :class:`~stgraph.nn.MaskedInstanceNorm`):

    .. math:: \hat x_{ntv} = \mathrm{Recon}(x_n, e_v)_{tv}\,\sigma_{nv} + \mu_{nv}

    Shapes:
        - **input:** ``recon`` :math:`(N, L, V)` (normalised units), ``loc``, ``scale``
          :math:`(N, 1, V)`, ``index`` :math:`(K)` or ``None`` (all nodes)
        - **output:** :math:`(K, L, V)` (original units)
    """

    def reset_parameters(self) -> None:
        """No parameters."""

    def forward(
        self, recon: Tensor, loc: Tensor, scale: Tensor, index: Tensor | None = None
    ) -> Tensor:
        if index is not None:
            recon, loc, scale = recon[index], loc[index], scale[index]
        return recon * scale + loc

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"
