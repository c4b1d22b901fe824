"""Self-attention over the temporal patches of each node."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class TemporalMixing(torch.nn.Module):
    r"""Multi-head self-attention along time, independently for every node (and no recurrence).

    Vaswani et al., NeurIPS 2017, applied per node over its ``S`` patch tokens, as in PatchTST;
    positions come from the time encoding added by the tokenizer, so any window length works:

    .. math::
        y_n = W_O\,\mathrm{softmax}\Big(\frac{x_n W_Q (x_n W_K)^\top}{\sqrt d}\Big)\,x_n W_V

    Args:
        channels (int): token size.
        heads (int): attention heads (default ``4``).
        dropout (float): attention dropout (default ``0.0``).

    Shapes:
        - **input:** :math:`(N, S, C)`
        - **output:** :math:`(N, S, C)`
    """

    def __init__(self, channels: int, heads: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.channels, self.heads, self.dropout = channels, heads, dropout
        self.qkv = torch.nn.Linear(channels, 3 * channels)
        self.out = torch.nn.Linear(channels, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.qkv.reset_parameters()
        self.out.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        n, s, c = x.shape
        q, k, v = self.qkv(x).view(n, s, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(n, s, c))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, heads={self.heads})"
