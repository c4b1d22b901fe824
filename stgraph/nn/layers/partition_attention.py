"""Sparse attention within spatial partitions and towards the pooled tokens of nearby ones."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stgraph.nn.structure import member_slots


class _Pad(torch.autograd.Function):
    """Rows of ``x`` into a padded layout (``flat``: source row per slot, -1 pads) whose
    backward is a gather too: every item sits in exactly one slot, so no scatter-add is needed."""

    @staticmethod
    def forward(ctx, x: Tensor, flat: Tensor, slot: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(flat, slot)
        out = x.index_select(0, flat.clamp_min(0))
        return out.masked_fill_((flat < 0).view(-1, *([1] * (x.dim() - 1))), 0.0)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        flat, slot = ctx.saved_tensors
        return grad.index_select(0, slot), None, None


class _Unpad(torch.autograd.Function):
    """Inverse of :class:`_Pad`: the rows of the padded layout back at their items."""

    @staticmethod
    def forward(ctx, y: Tensor, flat: Tensor, slot: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(flat, slot)
        return y.index_select(0, slot)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        flat, slot = ctx.saved_tensors
        out = grad.index_select(0, flat.clamp_min(0))
        return out.masked_fill_((flat < 0).view(-1, *([1] * (grad.dim() - 1))), 0.0), None, None


class PartitionAttention(torch.nn.Module):
    r"""Attention restricted to a partition and to the summaries of its sibling partitions.

    Items (nodes, or cells of a coarser level) are split into groups of at most ``c`` (the cells
    of a KD-tree, see :func:`~stgraph.nn.structure.coarsen`). Each item attends to the members of
    its own group and, optionally, to ``c'`` context tokens -- the pooled tokens of the groups
    that share its group's parent cell -- in the spirit of the local + global patterns of
    BigBird (Zaheer et al., NeurIPS 2020) and the hierarchical windows of Swin (Liu et al., ICCV
    2021). For item :math:`i` in group :math:`g`:

    .. math::
        \mathcal K_i = \{j : g(j) = g\} \cup \{u : \mathrm{parent}(u) = \mathrm{parent}(g)\},\qquad
        y_i = W_O \sum_{j \in \mathcal K_i}
        \mathrm{softmax}_j\Big(\frac{q_i^\top k_j}{\sqrt d}\Big) v_j

    computed on padded ``[G, c]`` blocks, so time and memory are :math:`O(N (c + c'))` -- never an
    :math:`N \times N` matrix. Each time slot ``s`` is attended independently.

    Args:
        channels (int): token size.
        heads (int): attention heads (default ``4``).
        dropout (float): attention dropout (default ``0.0``).

    Shapes:
        - **input:** ``x`` :math:`(N, S, C)`; ``members`` :math:`(G, c)` item indices per group
          (``-1`` pads, every item in exactly one group); ``context`` :math:`(N_c, S, C)` or
          ``None``; ``context_members`` :math:`(G_c, c')`; ``group_context`` :math:`(G)`, the
          row of ``context_members`` each group sees; ``slot`` :math:`(N)` optional, the flat
          position of each item in ``members`` (computed when not given)
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

    def forward(
        self,
        x: Tensor,
        members: Tensor,
        context: Tensor | None = None,
        context_members: Tensor | None = None,
        group_context: Tensor | None = None,
        slot: Tensor | None = None,
    ) -> Tensor:
        n, s, c = x.shape
        h, d = self.heads, c // self.heads
        if slot is None:
            slot = member_slots(members.cpu(), n).to(x.device)
        valid = members >= 0  # [G, c]
        flat = members.reshape(-1)
        # gather the C-wide input once, then project in the padded layout
        qb, kb, vb = self.qkv(_Pad.apply(x, flat, slot)).view(*members.shape, s, 3 * c).split(c, -1)
        key_valid = valid
        if context is not None:
            w_kv, b_kv = self.qkv.weight[c:], self.qkv.bias[c:]
            kc, vc = F.linear(context, w_kv, b_kv).split(c, dim=-1)
            cm = context_members[group_context]  # [G, c']
            cidx = cm.clamp_min(0)
            cflat = cidx.view(-1)
            kb = torch.cat([kb, kc.index_select(0, cflat).view(*cidx.shape, s, c)], dim=1)
            vb = torch.cat([vb, vc.index_select(0, cflat).view(*cidx.shape, s, c)], dim=1)
            key_valid = torch.cat([valid, cm >= 0], dim=1)
        g, cq, ck = members.size(0), members.size(1), kb.size(1)

        def heads_first(t: Tensor, m: int) -> Tensor:  # [G, m, S, C] -> [G, S, h, m, d]
            return t.view(g, m, s, h, d).permute(0, 2, 3, 1, 4)

        mask = key_valid.view(g, 1, 1, 1, ck)
        y = F.scaled_dot_product_attention(
            heads_first(qb, cq),
            heads_first(kb, ck),
            heads_first(vb, ck),
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
        )  # [G, S, h, c, d]
        y = self.out(y.permute(0, 3, 1, 2, 4).reshape(g * cq, s, c))
        return _Unpad.apply(y, flat, slot)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, heads={self.heads})"
