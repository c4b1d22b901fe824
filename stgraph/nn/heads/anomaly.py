"""Anomaly score: standardised reconstruction error."""

from __future__ import annotations

import torch
from torch import Tensor


class AnomalyScoreHead(torch.nn.Module):
    r"""Scores each observed entry by how badly the model reconstructs it.

    Reconstruction-based anomaly detection (as in OmniAnomaly / Anomaly Transformer, Xu et al.,
    ICLR 2022), in the units of the per-node instance normalisation, so scores are comparable
    across nodes and variables of different scales:

    .. math::
        a_{ntv} = m_{ntv}\,\lvert \hat x_{ntv} - \tilde x_{ntv} \rvert,\qquad
        a_n = \frac{\sum_{t,v} a_{ntv}}{\sum_{t,v} m_{ntv}}

    where :math:`\tilde x` is the normalised input and :math:`\hat x` the output of the model's
    one :class:`~stgraph.nn.ReconstructionHead` (shared with reconstruction and kriging, so the
    head has no parameters of its own). Missing entries score 0.

    Shapes:
        - **input:** ``recon``, ``x_norm``, ``mask`` :math:`(N, L, V)` (normalised units)
        - **output:** entry scores :math:`(N, L, V)`, node scores :math:`(N)`
    """

    def reset_parameters(self) -> None:
        """No parameters."""

    def forward(self, recon: Tensor, x_norm: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        m = mask.to(recon.dtype)
        score = (recon - x_norm).abs() * m
        node = score.sum((1, 2)) / m.sum((1, 2)).clamp_min(1)
        return score, node

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}()"
