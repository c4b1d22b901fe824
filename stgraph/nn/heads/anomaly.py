"""Anomaly score: standardised reconstruction error."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.nn.heads.reconstruction import ReconstructionHead


class AnomalyScoreHead(torch.nn.Module):
    r"""Scores each observed entry by how badly the model reconstructs it.

    Reconstruction-based anomaly detection (as in OmniAnomaly / Anomaly Transformer, Xu et al.,
    ICLR 2022), in the units of the per-node instance normalisation, so scores are comparable
    across nodes and variables of different scales:

    .. math::
        a_{ntv} = m_{ntv}\,\lvert \hat x_{ntv} - \tilde x_{ntv} \rvert,\qquad
        a_n = \frac{\sum_{t,v} a_{ntv}}{\sum_{t,v} m_{ntv}}

    where :math:`\tilde x` is the normalised input. Missing entries score 0.

    Args:
        channels (int): token size.
        patch_len (int): ``P``.

    Shapes:
        - **input:** ``x`` :math:`(N, S, C)`, ``var_emb`` :math:`(V, C)`, ``x_norm``, ``mask``
          :math:`(N, L, V)`
        - **output:** entry scores :math:`(N, L, V)`, node scores :math:`(N)`
    """

    def __init__(self, channels: int, patch_len: int) -> None:
        super().__init__()
        self.channels, self.patch_len = channels, patch_len
        self.reconstruction = ReconstructionHead(channels, patch_len)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.reconstruction.reset_parameters()

    def forward(
        self, x: Tensor, var_emb: Tensor, x_norm: Tensor, mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        recon = self.reconstruction(x, var_emb, x_norm.size(1))
        m = mask.to(recon.dtype)
        score = (recon - x_norm).abs() * m
        node = score.sum((1, 2)) / m.sum((1, 2)).clamp_min(1)
        return score, node

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, patch_len={self.patch_len})"
