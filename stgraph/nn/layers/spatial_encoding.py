"""Node encodings that transfer across graphs: structure, relative position, context."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


class SpatialEncoding(torch.nn.Module):
    r"""Embeds where a node sits, in terms that mean the same in every city.

    Combines the random-walk structural encoding (Dwivedi et al., ICLR 2022; sign- and
    basis-invariant, unlike raw Laplacian eigenvectors), Fourier features of the coordinates
    relative to the graph's centroid and RMS radius (Tancik et al., NeurIPS 2020), and optional
    static context :math:`c_n` (from :class:`~stgraph.nn.NodeContextEncoder`):

    .. math::
        s_n = W_2\,\mathrm{GELU}\big(W_1\,[\mathrm{RW}_n;\ \gamma(\tilde p_n);\ h_n]\big) + c_n,
        \quad \gamma(p) = [p;\ \sin(2^k\pi p);\ \cos(2^k\pi p)]_{k<K_f}

    where :math:`h_n` is 1 when the graph has coordinates. Nothing depends on ``N`` or on node
    identity.

    Args:
        channels (int): output size.
        rwse_steps (int): length of the random-walk encoding.
        frequencies (int): Fourier octaves :math:`K_f` (default ``3``).

    Shapes:
        - **input:** ``rwse`` :math:`(N, K)`, ``rel_pos`` :math:`(N, 2)`, ``has_pos``
          :math:`(N, 1)`, ``context`` :math:`(N, C)` or ``None``
        - **output:** :math:`(N, C)`
    """

    def __init__(self, channels: int, rwse_steps: int, frequencies: int = 3) -> None:
        super().__init__()
        self.channels, self.rwse_steps, self.frequencies = channels, rwse_steps, frequencies
        in_dim = rwse_steps + 2 + 4 * frequencies + 1
        self.lin1 = torch.nn.Linear(in_dim, channels)
        self.lin2 = torch.nn.Linear(channels, channels)
        self.register_buffer(
            "freq",
            math.pi * 2.0 ** torch.arange(frequencies, dtype=torch.float32),
            persistent=False,
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin1.reset_parameters()
        self.lin2.reset_parameters()

    def forward(
        self, rwse: Tensor, rel_pos: Tensor, has_pos: Tensor, context: Tensor | None = None
    ) -> Tensor:
        ang = (rel_pos.unsqueeze(-1) * self.freq).flatten(1)  # [N, 2K]
        feats = torch.cat([rwse, rel_pos, torch.sin(ang), torch.cos(ang), has_pos], dim=-1)
        out = self.lin2(F.gelu(self.lin1(feats)))
        return out if context is None else out + context

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.channels}, rwse_steps={self.rwse_steps}, "
            f"frequencies={self.frequencies})"
        )
