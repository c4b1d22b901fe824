"""Bidirectional diffusion convolution (DCRNN), a PyG ``MessagePassing`` layer."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.typing import OptTensor

from stgraph.nn.sparse import SparseOperator, normalized_adjacency, random_walk_weights


class DiffusionSupports(NamedTuple):
    """The two random-walk operators of a graph, ``[N, N]`` each (with their transposes, so the
    backward pass of the sparse products is as cheap as the forward pass).

    ``forward`` is the walk along the edges, averaged at the receiver (:math:`D_I^{-1}
    W^\\top`, ``A_in`` of :func:`~stgraph.nn.sparse.normalized_adjacency`), ``backward`` the walk
    against them (:math:`D_O^{-1} W`, ``A_out``), with :math:`W_{ij}` the weight of edge
    :math:`i \\to j`; weights and the zero-degree rule are those of :mod:`stgraph.nn.sparse`.
    """

    forward: SparseOperator
    backward: SparseOperator


def diffusion_supports(
    edge_index: Tensor, edge_weight: OptTensor = None, num_nodes: int | None = None
) -> DiffusionSupports:
    """The :class:`DiffusionSupports` of a graph (compute once, reuse across layers and steps).

    Args:
        edge_index: ``[2, E]`` (source, target).
        edge_weight: ``[E]`` (default: ones); the operators take its dtype.
        num_nodes: ``N`` (default: ``edge_index.max() + 1``).
    """
    n = int(edge_index.max()) + 1 if num_nodes is None else int(num_nodes)
    dtype = torch.float32 if edge_weight is None else edge_weight.dtype
    a_in, a_out = normalized_adjacency(edge_index, edge_weight, n, dtype=dtype)
    return DiffusionSupports(forward=a_in, backward=a_out)


class DiffusionConv(MessagePassing):
    r"""The diffusion convolution of `"Diffusion Convolutional Recurrent Neural Network:
    Data-Driven Traffic Forecasting" <https://arxiv.org/abs/1707.01926>`_ (Li et al., ICLR 2018).

    .. math::
        \mathbf{X}' = \mathbf{X} \mathbf{\Theta}_0 + \sum_{k=1}^{K} \left(
        (\mathbf{D}_O^{-1} \mathbf{W})^k \mathbf{X} \mathbf{\Theta}_{k,1} +
        (\mathbf{D}_I^{-1} \mathbf{W}^{\top})^k \mathbf{X} \mathbf{\Theta}_{k,2} \right)

    where :math:`\mathbf{W}_{ij}` is the weight of edge :math:`i \to j` (``edge_weight``, default 1)
    and :math:`\mathbf{D}_O`, :math:`\mathbf{D}_I` are the weighted out- and in-degree matrices: a
    random walk of up to :math:`K` hops against and along the edges, with one weight matrix per hop
    and direction (the identity term shared, as in DCRNN's code: :math:`2K + 1` matrices).

    Args:
        in_channels (int): size of each input sample.
        out_channels (int): size of each output sample.
        K (int, optional): number of diffusion hops :math:`K` in each direction. (default: :obj:`2`)
        bias (bool, optional): learn an additive bias. (default: :obj:`True`)
        **kwargs (optional): additional arguments of :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:** node features :math:`(|\mathcal{V}|, F_{in})`, edge indices
          :math:`(2, |\mathcal{E}|)` or precomputed :class:`DiffusionSupports`, edge weights
          :math:`(|\mathcal{E}|)` *(optional)*
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})`
    """

    def __init__(
        self, in_channels: int, out_channels: int, K: int = 2, bias: bool = True, **kwargs
    ):
        kwargs.setdefault("aggr", "add")
        super().__init__(**kwargs)
        if K < 0:
            raise ValueError(f"K must be >= 0, got {K}")
        self.in_channels, self.out_channels, self.K = in_channels, out_channels, K
        self.lin = Linear(
            (2 * K + 1) * in_channels,
            out_channels,
            bias=bias,
            weight_initializer="glorot",
            bias_initializer="zeros",
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin.reset_parameters()

    def forward(
        self,
        x: Tensor,
        edge_index: Tensor | DiffusionSupports,
        edge_weight: OptTensor = None,
    ) -> Tensor:
        return self.lin(self.diffuse(x, edge_index, edge_weight))

    def diffuse(
        self,
        x: Tensor,
        edge_index: Tensor | DiffusionSupports,
        edge_weight: OptTensor = None,
    ) -> Tensor:
        r"""The parameter-free part: :math:`[\mathbf{X}, \mathbf{P}_O\mathbf{X}, \dots,
        \mathbf{P}_O^K\mathbf{X}, \mathbf{P}_I\mathbf{X}, \dots, \mathbf{P}_I^K\mathbf{X}]`,
        shape :math:`(|\mathcal{V}|, (2K+1) F_{in})`."""
        if self.K == 0:
            return x
        outs = [x]
        if isinstance(edge_index, DiffusionSupports):
            for op in (edge_index.backward, edge_index.forward):
                h = x
                for _ in range(self.K):
                    h = op.matmul(h)
                    outs.append(h)
            return torch.cat(outs, dim=-1)
        fwd, bwd = random_walk_weights(edge_index, edge_weight, x.size(0), dtype=x.dtype)
        for index, weight in ((edge_index.flip(0), bwd), (edge_index, fwd)):
            h = x
            for _ in range(self.K):
                h = self.propagate(index, x=h, edge_weight=weight)
                outs.append(h)
        return torch.cat(outs, dim=-1)

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.view(-1, 1) * x_j

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, K={self.K})"
