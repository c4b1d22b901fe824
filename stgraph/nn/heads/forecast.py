"""Forecast head: any horizon, queried by the target timestamps."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from stgraph.nn.structure import broadcast_graphs


class ForecastHead(torch.nn.Module):
    r"""Predicts each future step by attention from a time query to a node's patch tokens.

    Each target step :math:`h` of graph :math:`b` is a query :math:`q_{bh}` built from its
    timestamp and lead time (a decoder of time queries, as the horizon queries of TimesFM /
    Pyraformer), so the horizon is a property of the input, not of the weights. The head works in
    a reduced width :math:`C_h` so that its cost per (node, step) stays small:

    .. math::
        \alpha_{nhs} &= \mathrm{softmax}_s\big(q_{bh} W_Q\,(x_{ns} W_K)^\top / \sqrt d\big),\qquad
        z_{nh} = \sum_s \alpha_{nhs}\, x_{ns} W_V + q_{bh} W_T + u_n W_U \\
        \hat y_{nhv} &= \mathrm{GELU}(z_{nh})^\top (W_E e_v) + b^\top e_v

    with :math:`u_n` the node's last token and :math:`e_v` the variable's name embedding (so any
    number of variables can be read out). With ``graph_hops = K > 0`` the steps of neighbouring
    nodes exchange their states before the readout, a decoder-side diffusion (as the decoder of
    DCRNN, Li et al. ICLR 2018, diffuses at every step) over the row-normalised in- and
    out-adjacencies :math:`A_\leftarrow, A_\rightarrow`, one residual hop at a time:
    :math:`z_{\cdot h} \leftarrow z_{\cdot h} + A_\leftarrow z_{\cdot h} W^{(k)}_\leftarrow
    + A_\rightarrow z_{\cdot h} W^{(k)}_\rightarrow`, the same weights for every step.
    Multi-head: :math:`\alpha` per head over :math:`C_h / \text{heads}` channels. With
    ``outputs = 2`` a second readout :math:`(W'_E, b')` gives a second value per step and variable
    (the STFM uses it for a change on the graph's scale rather than the node's, see
    :class:`~stgraph.nn.STFM`).

    Args:
        channels (int): token size ``C``.
        heads (int): attention heads (default ``4``).
        hidden (int): head width :math:`C_h` (default ``channels // 2``).
        outputs (int): values per step and variable, 1 or 2 (default ``1``).
        graph_hops (int): decoder-side diffusion hops :math:`K` (default ``0``: none; needs
            ``adj`` in :meth:`forward`).

    Shapes:
        - **input:** ``x`` :math:`(N, S, C)` node tokens, ``query`` :math:`(B, H, C)` time
          queries, ``var_emb`` :math:`(V, C)`, ``batch`` :math:`(N)` or ``None``, ``adj`` the
          ``(A_in, A_out)`` pair of :func:`~stgraph.nn.sparse.normalized_adjacency`
          (with ``graph_hops > 0``)
        - **output:** :math:`(N, H, V)` (normalised units), or :math:`(N, H, V, 2)` with
          ``outputs = 2``
    """

    def __init__(
        self,
        channels: int,
        heads: int = 4,
        hidden: int | None = None,
        outputs: int = 1,
        graph_hops: int = 0,
    ) -> None:
        super().__init__()
        hidden = hidden or max(heads, channels // 2)
        if hidden % heads or channels % heads:
            raise ValueError(
                f"channels ({channels}) and hidden ({hidden}) must divide by heads ({heads})"
            )
        if outputs not in (1, 2):
            raise ValueError(f"outputs={outputs}: expected 1 or 2")
        if graph_hops < 0:
            raise ValueError(f"graph_hops={graph_hops}: expected >= 0")
        self.channels, self.heads, self.hidden, self.outputs = channels, heads, hidden, outputs
        self.graph_hops = int(graph_hops)
        self.hop_in = torch.nn.ModuleList(
            torch.nn.Linear(hidden, hidden, bias=False) for _ in range(graph_hops)
        )
        self.hop_out = torch.nn.ModuleList(
            torch.nn.Linear(hidden, hidden, bias=False) for _ in range(graph_hops)
        )
        self.q = torch.nn.Linear(channels, channels)
        self.k = torch.nn.Linear(channels, channels)
        self.v = torch.nn.Linear(channels, hidden)
        self.t = torch.nn.Linear(channels, hidden)
        self.u = torch.nn.Linear(channels, hidden, bias=False)
        self.var_w = torch.nn.Linear(channels, hidden * outputs)
        self.var_b = torch.nn.Linear(channels, outputs)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in (
            self.q,
            self.k,
            self.v,
            self.t,
            self.u,
            self.var_w,
            self.var_b,
            *self.hop_in,
            *self.hop_out,
        ):
            m.reset_parameters()

    def forward(
        self,
        x: Tensor,
        query: Tensor,
        var_emb: Tensor,
        batch: Tensor | None = None,
        adj: tuple | None = None,
    ) -> Tensor:
        n, s, c = x.shape
        b, hz, _ = query.shape
        nh, d, dv = self.heads, c // self.heads, self.hidden // self.heads
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=x.device)
        q = broadcast_graphs(self.q(query).view(b, hz, nh, d), batch)  # [N, H, nh, d]
        k = self.k(x).view(n, s, nh, d)
        score = torch.einsum("nhad,nsad->nahs", q, k) / math.sqrt(d)
        alpha = torch.softmax(score, dim=-1)  # [N, nh, H, S]
        v = self.v(x).view(n, s, nh, dv)
        z = torch.einsum("nahs,nsad->nhad", alpha, v).reshape(n, hz, self.hidden)
        z = z + broadcast_graphs(self.t(query), batch) + self.u(x[:, -1]).unsqueeze(1)
        if self.graph_hops:
            if adj is None:
                raise ValueError(f"{self!r}: graph_hops needs adj, the (A_in, A_out) adjacencies")
            a_in, a_out = adj
            for w_in, w_out in zip(self.hop_in, self.hop_out, strict=True):
                flat = z.reshape(n, hz * self.hidden)
                z = (
                    z
                    + w_in(a_in.matmul(flat).view(n, hz, self.hidden))
                    + w_out(a_out.matmul(flat).view(n, hz, self.hidden))
                )
        nv = var_emb.size(0)
        w = self.var_w(var_emb).view(nv * self.outputs, self.hidden)  # [V*O, C_h]
        y = F.gelu(z) @ w.t() + self.var_b(var_emb).view(1, 1, -1)  # [N, H, V*O]
        return y if self.outputs == 1 else y.view(n, hz, nv, self.outputs)

    def __repr__(self) -> str:
        extra = ("" if self.outputs == 1 else f", outputs={self.outputs}") + (
            f", graph_hops={self.graph_hops}" if self.graph_hops else ""
        )
        return f"{self.__class__.__name__}({self.channels}, heads={self.heads}, hidden={self.hidden}{extra})"
