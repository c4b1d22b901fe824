"""Position-wise feed-forward layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


class FeedForward(torch.nn.Module):
    r"""The Transformer's position-wise MLP (Vaswani et al., NeurIPS 2017):

    .. math:: \mathrm{FF}(x) = W_2\,\mathrm{Dropout}(\mathrm{GELU}(W_1 x + b_1)) + b_2

    Args:
        channels (int): input and output size.
        ratio (float): hidden size over ``channels`` (default ``2.0``).
        dropout (float): dropout on the hidden layer (default ``0.0``).

    Shapes:
        - **input:** :math:`(*, C)`
        - **output:** :math:`(*, C)`
    """

    def __init__(self, channels: int, ratio: float = 2.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.channels, self.ratio, self.dropout = channels, ratio, dropout
        hidden = max(1, int(round(channels * ratio)))
        self.lin1 = torch.nn.Linear(channels, hidden)
        self.lin2 = torch.nn.Linear(hidden, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin1.reset_parameters()
        self.lin2.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        h = F.dropout(F.gelu(self.lin1(x)), self.dropout, self.training)
        return self.lin2(h)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, ratio={self.ratio})"
