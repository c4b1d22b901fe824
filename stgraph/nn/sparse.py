"""Random-walk normalisation of a weighted, directed graph and constant sparse operators.

The one home of both ideas for :mod:`stgraph.nn`: the diffusion convolution of DCRNN
(:class:`~stgraph.nn.DiffusionConv`), the directed convolution and the decoder hops of the STFM
(:class:`~stgraph.nn.DirectedDynamicConv`, :class:`~stgraph.nn.ForecastHead`) and the per-batch
structure (:mod:`stgraph.nn.structure`) all normalise with :func:`random_walk_weights` and
multiply with :class:`SparseOperator`.

Conventions, stated once:

- an edge ``j -> i`` of weight :math:`w_{ji}` (``edge_index[:, e] = (j, i)``); weights are taken
  in absolute value, and a graph without weights counts 1 per edge;
- the walk *along* the edges averages at the receiver, :math:`w_{ji} / \\sum_k w_{ki}` (the
  in-degree of ``i``), the walk *against* them at the sender, :math:`w_{ij} / \\sum_k w_{ik}`
  (the out-degree of ``i``);
- **zero and vanishing degree**: the weighted degree is floored at :data:`MIN_DEGREE`
  (``1e-12``) before the one division, ``w / max(d, 1e-12)``. A node with no edges in that
  direction (or only edges of weight 0) has an all-zero row: it receives nothing. A node whose
  weights sum to less than ``1e-12`` -- Gaussian affinities of long edges underflow to ``1e-20``
  and below -- gets a row summing to ``d / 1e-12 < 1``, not one renormalised to 1 from
  numerically meaningless ties. Above the floor the weight is exactly ``w / d`` (a division, not
  a multiplication by ``1 / d``), so every caller gets the same bits.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch_geometric.utils import scatter, to_torch_csr_tensor

#: The floor of a weighted degree in :func:`random_walk_weights` (see the module docstring).
MIN_DEGREE = 1e-12


class _CSRMatmul(torch.autograd.Function):
    """``A @ x`` for a constant CSR ``A`` whose transpose is given, so the backward pass needs no
    transpose (torch would rebuild and sort it on every call)."""

    @staticmethod
    def forward(ctx, a: Tensor, a_t: Tensor, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.a_t = a_t
        return torch.sparse.mm(a, x)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        return None, None, torch.sparse.mm(ctx.a_t, grad.contiguous())


class SparseOperator:
    """A constant sparse matrix ``A`` (CSR) with its transpose, for ``A @ x`` with autograd.

    Args:
        index: ``[2, nnz]`` (row, column) of the non-zeros.
        value: ``[nnz]``.
        size: ``(rows, columns)``.

    Gradients flow to ``x`` only; ``A`` is a constant of the graph.
    """

    def __init__(self, index: Tensor, value: Tensor, size: tuple[int, int]) -> None:
        with warnings.catch_warnings():  # torch flags sparse CSR as beta on every construction
            warnings.simplefilter("ignore", UserWarning)
            self.a = to_torch_csr_tensor(index, value, size=size)
            self.a_t = to_torch_csr_tensor(index.flip(0), value, size=(size[1], size[0]))

    def to(self, device: torch.device | str) -> SparseOperator:
        """A copy on ``device``."""
        out = SparseOperator.__new__(SparseOperator)
        out.a, out.a_t = self.a.to(device), self.a_t.to(device)
        return out

    def matmul(self, x: Tensor) -> Tensor:
        """``A @ x`` for ``x`` ``[columns, F]``."""
        return _CSRMatmul.apply(self.a, self.a_t, x)

    def dense(self) -> Tensor:
        """``A`` as a dense tensor (for tests and small graphs)."""
        return self.a.to_dense()


def random_walk_weights(
    edge_index: Tensor,
    edge_weight: Tensor | None,
    num_nodes: int,
    *,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Per-edge weights of the two random walks (see the module docstring for the conventions).

    Args:
        edge_index: ``[2, E]`` (source, target).
        edge_weight: ``[E]`` or ``None`` (every edge 1).
        num_nodes: ``N``.
        dtype: dtype of the result.

    Returns:
        ``(along, against)``, each ``[E]``: ``along[e] = |w_e| / max(d_in(dst_e), 1e-12)`` and
        ``against[e] = |w_e| / max(d_out(src_e), 1e-12)``.
    """
    w = (
        torch.ones(edge_index.size(1), device=edge_index.device, dtype=dtype)
        if edge_weight is None
        else edge_weight.abs().to(dtype)
    )
    src, dst = edge_index
    out = []
    for end in (dst, src):
        deg = scatter(w, end, 0, dim_size=num_nodes, reduce="sum").clamp_min(MIN_DEGREE)
        out.append(w / deg[end])
    return out[0], out[1]


def normalized_adjacency(
    edge_index: Tensor,
    edge_weight: Tensor | None,
    num_nodes: int,
    *,
    dtype: torch.dtype = torch.float32,
) -> tuple[SparseOperator, SparseOperator]:
    r"""The row-normalised operators of both walks, ``(A_in, A_out)``, each ``[N, N]``.

    ``A_in[i, j] = w_{ji} / \sum_k w_{ki}`` (averages over the edges into ``i``, the walk along
    the edges, :math:`D_I^{-1} W^\top`) and ``A_out[i, j] = w_{ij} / \sum_k w_{ik}`` (over the
    edges out of ``i``, against them, :math:`D_O^{-1} W`), with the weights and the zero-degree
    rule of :func:`random_walk_weights`.
    """
    along, against = random_walk_weights(edge_index, edge_weight, num_nodes, dtype=dtype)
    src, dst = edge_index
    size = (num_nodes, num_nodes)
    return (
        SparseOperator(torch.stack([dst, src]), along, size),
        SparseOperator(torch.stack([src, dst]), against, size),
    )


__all__ = ["MIN_DEGREE", "SparseOperator", "normalized_adjacency", "random_walk_weights"]
