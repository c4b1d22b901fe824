"""A step-level recurrent path per node and variable, fed with diffusion of the inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stgraph.nn.layers.directed_conv import SparseOperator
from stgraph.nn.structure import broadcast_graphs


class StepRecurrence(torch.nn.Module):
    r"""A GRU over the single steps of each node and variable, with K-hop neighbour means as input.

    Patch tokens see the window in blocks of :math:`P` steps; the first forecast steps depend
    most on the last few *single* steps of the node and of its neighbours (a slow-down arriving
    from downstream). This path keeps that step resolution at linear cost, with the input
    diffusion of DCRNN (Li et al., ICLR 2018) but a plain per-node GRU (Cho et al., 2014) as the
    recurrence. With :math:`\tilde x = m \odot \hat x` the masked normalised input and
    :math:`A_{\text{in}}, A_{\text{out}}` the row-normalised adjacencies of both directions, the
    input of node :math:`n`, variable :math:`v` at step :math:`t` is

    .. math::
        u_{nvt} = \big[\tilde x,\ m,\ (A_{\text{in}}^k \tilde x,\ A_{\text{in}}^k m,\
        A_{\text{out}}^k \tilde x,\ A_{\text{out}}^k m)_{k=1..K}\big]_{nvt},\qquad
        r_{nv} = \mathrm{GRU}(u_{nv1}, \dots, u_{nvL})

    and :meth:`readout` turns the final state into a forecast for any horizon and variable,

    .. math:: \hat z_{nhv} = w^\top \mathrm{GELU}(r_{nv} W_r + q_{bh} W_q + e_v W_e) + b

    with :math:`q_{bh}` the time query of target step :math:`h` and :math:`e_v` the variable's
    name embedding. The output weight :math:`w` starts at zero, so the path starts silent and
    only adds what training finds. With ``gate=True`` one more output is a persistence gate
    :math:`g_{nhv} = \sigma(\cdot)` (bias :math:`-1` at the start): the model's forecast
    :math:`\hat y` becomes :math:`\hat y + g\,(x_{\text{last}} - \hat y)`, so the first steps
    can lean on the last observed value and later ones on the model (see :class:`~stgraph.nn.STFM`).
    No parameter depends on ``N``, the variables or the city;
    the cost is :math:`O((N \cdot H_r + E \cdot K) \cdot L \cdot V)`. Missing steps enter as 0
    with mask 0 (their stored values never leak).

    Args:
        channels (int): size ``C`` of the time queries and variable embeddings.
        hidden (int): GRU state size :math:`H_r` (default ``32``).
        hops (int): diffusion hops ``K`` of the inputs (default ``2``).
        outputs (int): values per step and variable (default ``1``).
        gate (bool): add the persistence-gate output (default ``False``).

    Shapes:
        - **input:** ``x`` and ``mask`` :math:`(N, L, V)`, ``adj`` two
          :class:`~stgraph.nn.layers.directed_conv.SparseOperator` ``[N, N]``
        - **output:** :math:`(N, V, H_r)`; :meth:`readout` gives :math:`(N, H, V, O)`
          (:math:`O` = ``outputs``, plus one gate logit with ``gate``)
    """

    def __init__(
        self, channels: int, hidden: int = 32, hops: int = 2, outputs: int = 1, gate: bool = False
    ) -> None:
        super().__init__()
        if hidden < 1 or hops < 0:
            raise ValueError(f"StepRecurrence: hidden={hidden} must be >= 1 and hops={hops} >= 0")
        self.channels, self.hidden, self.hops, self.outputs = channels, hidden, hops, outputs
        self.gate = bool(gate)
        self.gru = torch.nn.GRU(2 + 4 * hops, hidden, batch_first=True)
        self.q = torch.nn.Linear(channels, hidden)
        self.e = torch.nn.Linear(channels, hidden, bias=False)
        self.out = torch.nn.Linear(hidden, outputs + self.gate)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.gru.reset_parameters()
        self.q.reset_parameters()
        self.e.reset_parameters()
        torch.nn.init.zeros_(self.out.weight)
        torch.nn.init.zeros_(self.out.bias)
        if self.gate:
            with torch.no_grad():
                self.out.bias[-1] = -1.0

    def forward(
        self, x: Tensor, mask: Tensor, adj: tuple[SparseOperator, SparseOperator]
    ) -> Tensor:
        n, length, v = x.shape
        m = mask.to(x.dtype)
        base = torch.cat([x * m, m], dim=-1).reshape(n, length * 2 * v)  # [N, L*2V]
        feats = [base]
        for op in adj:
            h = base
            for _ in range(self.hops):
                h = op.matmul(h)
                feats.append(h)
        # [N, L, F, 2, V] -> [N, V, L, F*2]: per (node, variable) a sequence of L feature vectors
        u = torch.stack(feats, dim=1).view(n, len(feats), length, 2, v)
        u = u.permute(0, 4, 2, 1, 3).reshape(n * v, length, len(feats) * 2)
        _, state = self.gru(u)
        return state[-1].view(n, v, self.hidden)

    def readout(self, state: Tensor, query: Tensor, var_emb: Tensor, batch: Tensor) -> Tensor:
        """``[N, H, V, O]`` forecast terms from the GRU state ``[N, V, H_r]`` and the time
        queries ``[B, H, C]`` of graph ``batch[n]``."""
        q = broadcast_graphs(self.q(query), batch)  # [N, H, H_r]
        z = state.unsqueeze(1) + q.unsqueeze(2) + self.e(var_emb).view(1, 1, -1, self.hidden)
        return self.out(F.gelu(z))

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.channels}, hidden={self.hidden}, hops={self.hops}"
            + (f", outputs={self.outputs}" if self.outputs != 1 else "")
            + (", gate=True" if self.gate else "")
            + ")"
        )
