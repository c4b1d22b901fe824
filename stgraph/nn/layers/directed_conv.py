"""Message passing on a weighted, directed graph with optional per-step (dynamic) edges."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.utils import spmm

from stgraph.nn.sparse import SparseOperator, normalized_adjacency


class DirectedDynamicConv(MessagePassing):
    r"""Graph convolution with separate weights per edge direction and for dynamic edges.

    The diffusion convolution of DCRNN (Li et al., ICLR 2018) uses both the forward and the
    backward random-walk transition; here one step of each, plus a third aggregation over the
    time-varying edges (mobility flows, moving sensors) that exist at a given step, applied only
    to the patch token containing that step:

    .. math::
        x'_{i,s} = W\,\Big[x_{i,s};\ \sum_{j \to i} \frac{w_{ji}}{\sum_k w_{ki}} x_{j,s};\
        \sum_{i \to j} \frac{w_{ij}}{\sum_k w_{ik}} x_{j,s};\
        \sum_{(j \to i, t) : p(t) = s} \frac{w_{jit}}{\sum_{k} w_{kit}} x_{j,s}\Big] + b

    Normalised (weighted-mean) aggregation makes the layer independent of the degree scale, and
    of ``N``. Aggregation runs as a sparse-dense product (``message_and_aggregate``), so no
    ``[E, C]`` message tensor is stored.

    Args:
        channels (int): input and output size.
        **kwargs: passed to :class:`~torch_geometric.nn.MessagePassing`.

    Shapes:
        - **input:** ``x`` :math:`(N, S, C)`, ``edge_index`` :math:`(2, E)`, ``edge_weight``
          :math:`(E)` or ``None``, ``dyn_edge_index`` :math:`(2, E_d)`, ``dyn_edge_step``
          :math:`(E_d)` (patch index), ``dyn_edge_weight`` :math:`(E_d)`; or ``adj`` from
          :func:`~stgraph.nn.sparse.normalized_adjacency` instead of ``edge_index``
        - **output:** :math:`(N, S, C)`
    """

    def __init__(self, channels: int, **kwargs) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(**kwargs)
        self.channels = channels
        self.lin = torch.nn.Linear(4 * channels, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor | None = None,
        edge_weight: Tensor | None = None,
        dyn_edge_index: Tensor | None = None,
        dyn_edge_step: Tensor | None = None,
        dyn_edge_weight: Tensor | None = None,
        adj: tuple[SparseOperator, SparseOperator] | None = None,
    ) -> Tensor:
        n, s, c = x.shape
        flat = x.reshape(n, s * c)
        if adj is None:
            if edge_index is None:
                raise ValueError("DirectedDynamicConv: pass edge_index or adj")
            adj = normalized_adjacency(edge_index, edge_weight, n)
        agg_in = self.propagate(adj[0].a, x=flat, op=adj[0]).view(n, s, c)
        agg_out = self.propagate(adj[1].a, x=flat, op=adj[1]).view(n, s, c)
        if dyn_edge_index is not None and dyn_edge_index.numel():
            src = dyn_edge_index[0] * s + dyn_edge_step
            dst = dyn_edge_index[1] * s + dyn_edge_step
            dyn_adj, _ = normalized_adjacency(torch.stack([src, dst]), dyn_edge_weight, n * s)
            agg_dyn = self.propagate(dyn_adj.a, x=x.reshape(n * s, c), op=dyn_adj).view(n, s, c)
            return self.lin(torch.cat([x, agg_in, agg_out, agg_dyn], dim=-1))
        # no dynamic edges: their aggregate is 0, so skip that quarter of the product
        w = self.lin.weight[:, : 3 * c]
        return torch.nn.functional.linear(torch.cat([x, agg_in, agg_out], dim=-1), w, self.lin.bias)

    def message(self, x_j: Tensor, edge_weight: Tensor | None = None) -> Tensor:
        return x_j if edge_weight is None else edge_weight.view(-1, 1) * x_j

    def message_and_aggregate(
        self, adj_t: Tensor, x: Tensor, op: SparseOperator | None = None
    ) -> Tensor:
        if op is not None:
            return op.matmul(x)
        return spmm(adj_t, x, reduce="sum")

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.channels}, {self.channels})"
