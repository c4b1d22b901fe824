"""Node and graph classification heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import global_mean_pool


class NodeClassificationHead(torch.nn.Module):
    r"""Class logits per node from its tokens averaged over time:

    .. math:: \mathrm{logits}_n = W_2\,\mathrm{GELU}(W_1\,\mathrm{LN}(\tfrac1S\textstyle\sum_s x_{ns}))

    Args:
        channels (int): token size.
        num_classes (int): number of classes.

    Shapes:
        - **input:** :math:`(N, S, C)`
        - **output:** :math:`(N, K)`
    """

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.channels, self.num_classes = channels, num_classes
        self.norm = torch.nn.LayerNorm(channels)
        self.lin1 = torch.nn.Linear(channels, channels)
        self.lin2 = torch.nn.Linear(channels, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (self.norm, self.lin1, self.lin2):
            m.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        return self.lin2(F.gelu(self.lin1(self.norm(x.mean(1)))))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, {self.num_classes})"


class GraphClassificationHead(NodeClassificationHead):
    r"""Class logits per graph from the mean of its node tokens (``global_mean_pool``):

    .. math:: \mathrm{logits}_g = W_2\,\mathrm{GELU}(W_1\,\mathrm{LN}(\tfrac{1}{N_g S}
        \textstyle\sum_{n \in g, s} x_{ns}))

    Args:
        channels (int): token size.
        num_classes (int): number of classes.

    Shapes:
        - **input:** ``x`` :math:`(N, S, C)`, ``batch`` :math:`(N)` or ``None``
        - **output:** :math:`(B, K)`
    """

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:  # type: ignore[override]
        pooled = global_mean_pool(x.mean(1), batch)
        return self.lin2(F.gelu(self.lin1(self.norm(pooled))))
