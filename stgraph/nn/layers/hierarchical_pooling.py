"""Pool -> process -> unpool over a multi-level coarsening, with skip connections."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.nn.layers.feed_forward import FeedForward
from stgraph.nn.layers.partition_attention import PartitionAttention
from stgraph.nn.structure import GraphStructure, attention_groups, segment_mean


class HierarchicalPooling(torch.nn.Module):
    r"""A graph U-Net over precomputed cells: long-range and large-scale context at linear cost.

    Gao & Ji, "Graph U-Nets", ICML 2019, with the learned top-k pooling replaced by a fixed
    coarsening from the graph and its coordinates (KD-tree cells, computed once per graph), so the
    pooling transfers to graphs of any size. Going up, each level mean-pools its children and
    mixes its tokens with :class:`~stgraph.nn.PartitionAttention`; going down, each item adds a
    projection of its own skip and its parent's token:

    .. math::
        h^{(l+1)} = \mathrm{Block}_l\big(W_p\,\mathrm{mean}_{i \in \mathrm{cell}} h^{(l)}_i\big),
        \qquad h^{(l)}_i \leftarrow h^{(l)}_i + W_u\,[h^{(l)}_i;\ h^{(l+1)}_{\mathrm{cell}(i)}]

    Levels beyond the graph's own depth (tiny graphs) are skipped.

    Args:
        channels (int): token size.
        levels (int): coarse levels processed.
        heads (int): attention heads (default ``4``).
        ffn_ratio (float): feed-forward expansion (default ``2.0``).
        dropout (float): dropout (default ``0.0``).

    Shapes:
        - **input:** ``x`` :math:`(N, S, C)`, a :class:`~stgraph.nn.structure.GraphStructure`
        - **output:** :math:`(N, S, C)`
    """

    def __init__(
        self,
        channels: int,
        levels: int,
        heads: int = 4,
        ffn_ratio: float = 2.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.channels, self.levels, self.heads = channels, levels, heads
        self.pool = torch.nn.ModuleList(torch.nn.Linear(channels, channels) for _ in range(levels))
        self.norm1 = torch.nn.ModuleList(torch.nn.LayerNorm(channels) for _ in range(levels))
        self.attn = torch.nn.ModuleList(
            PartitionAttention(channels, heads, dropout) for _ in range(levels)
        )
        self.norm2 = torch.nn.ModuleList(torch.nn.LayerNorm(channels) for _ in range(levels))
        self.ffn = torch.nn.ModuleList(
            FeedForward(channels, ffn_ratio, dropout) for _ in range(levels)
        )
        self.unpool = torch.nn.ModuleList(
            torch.nn.Linear(2 * channels, channels) for _ in range(levels)
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mods in (self.pool, self.norm1, self.attn, self.norm2, self.ffn, self.unpool):
            for m in mods:
                m.reset_parameters()

    def forward(self, x: Tensor, structure: GraphStructure) -> Tensor:
        structure = structure.to(x.device)
        levels = min(self.levels, structure.depth)
        skips: list[Tensor] = []
        cur = x
        for lvl in range(levels):
            skips.append(cur)
            assign = structure.assign[lvl]
            cur = self.pool[lvl](segment_mean(cur, assign, structure.sizes[lvl + 1]))
            members, ctx_members, group_ctx, slots = attention_groups(structure, lvl + 1)
            ctx = None
            z = self.norm1[lvl](cur)
            if ctx_members is not None:
                up = structure.assign[lvl + 1]
                ctx = segment_mean(z, up, structure.sizes[lvl + 2])
            cur = cur + self.attn[lvl](z, members, ctx, ctx_members, group_ctx, slots)
            cur = cur + self.ffn[lvl](self.norm2[lvl](cur))
        for lvl in reversed(range(levels)):
            parent = cur.index_select(0, structure.assign[lvl])
            cur = skips[lvl] + self.unpool[lvl](torch.cat([skips[lvl], parent], dim=-1))
        return cur

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.channels}, levels={self.levels}, heads={self.heads})"
        )
