"""The spatio-temporal block: temporal mixing, message passing, sparse attention, MLP."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.nn.layers.directed_conv import DirectedDynamicConv
from stgraph.nn.layers.feed_forward import FeedForward
from stgraph.nn.layers.partition_attention import PartitionAttention
from stgraph.nn.layers.temporal_mixing import TemporalMixing
from stgraph.nn.structure import GraphStructure, attention_groups, segment_mean


class STBlock(torch.nn.Module):
    r"""One pre-norm residual block of the backbone.

    Temporal self-attention per node, then local message passing on the (weighted, directed,
    dynamic) graph, then sparse attention within KD cells and towards the pooled tokens of the
    sibling cells (the mix of GraphGPS, Rampasek et al., NeurIPS 2022, with linear-cost
    attention), then a feed-forward layer:

    .. math::
        x &\leftarrow x + \mathrm{TM}(\mathrm{LN}(x)) \\
        x &\leftarrow x + \mathrm{Conv}(\mathrm{LN}(x), \mathcal G) \\
        x &\leftarrow x + \mathrm{PA}(\mathrm{LN}(x), \text{cells}) \\
        x &\leftarrow x + \mathrm{FF}(\mathrm{LN}(x))

    Args:
        channels (int): token size.
        heads (int): attention heads (default ``4``).
        ffn_ratio (float): feed-forward expansion (default ``2.0``).
        dropout (float): dropout (default ``0.0``).

    Shapes:
        - **input:** ``x`` :math:`(N, S, C)`, ``adj`` (two CSR ``[N, N]``), a
          :class:`~stgraph.nn.structure.GraphStructure`, optional dynamic edges
        - **output:** :math:`(N, S, C)`
    """

    def __init__(
        self, channels: int, heads: int = 4, ffn_ratio: float = 2.0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.channels, self.heads, self.ffn_ratio = channels, heads, ffn_ratio
        self.norm_t = torch.nn.LayerNorm(channels)
        self.temporal = TemporalMixing(channels, heads, dropout)
        self.norm_g = torch.nn.LayerNorm(channels)
        self.conv = DirectedDynamicConv(channels)
        self.norm_a = torch.nn.LayerNorm(channels)
        self.attn = PartitionAttention(channels, heads, dropout)
        self.norm_f = torch.nn.LayerNorm(channels)
        self.ffn = FeedForward(channels, ffn_ratio, dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (
            self.norm_t,
            self.temporal,
            self.norm_g,
            self.conv,
            self.norm_a,
            self.attn,
            self.norm_f,
            self.ffn,
        ):
            m.reset_parameters()

    def forward(
        self,
        x: Tensor,
        adj: tuple[Tensor, Tensor],
        structure: GraphStructure,
        dyn_edge_index: Tensor | None = None,
        dyn_edge_step: Tensor | None = None,
        dyn_edge_weight: Tensor | None = None,
    ) -> Tensor:
        x = x + self.temporal(self.norm_t(x))
        x = x + self.conv(
            self.norm_g(x),
            adj=adj,
            dyn_edge_index=dyn_edge_index,
            dyn_edge_step=dyn_edge_step,
            dyn_edge_weight=dyn_edge_weight,
        )
        structure = structure.to(x.device)
        z = self.norm_a(x)
        members, ctx_members, group_ctx, slots = attention_groups(structure, 0)
        ctx = None
        if ctx_members is not None:
            ctx = segment_mean(z, structure.assign[0], structure.sizes[1])
        x = x + self.attn(z, members, ctx, ctx_members, group_ctx, slots)
        return x + self.ffn(self.norm_f(x))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, heads={self.heads})"
