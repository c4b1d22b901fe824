"""Masked per-node instance normalisation with graph-level fallbacks."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import scatter


class MaskedInstanceNorm(torch.nn.Module):
    r"""Per-node, per-variable normalisation over the observed input steps (RevIN-style).

    Kim et al., "Reversible Instance Normalization for Accurate Time-Series Forecasting Against
    Distribution Shift", ICLR 2022, with masks and a graph-level floor:

    .. math::
        \mu_{nv} = \frac{\sum_t m_{ntv} x_{ntv}}{\sum_t m_{ntv}},\quad
        \sigma_{nv} = \sqrt{\mathrm{Var}_t(x_{n\cdot v}) + (\epsilon\, s_{gv})^2 + \delta},\quad
        \hat x_{ntv} = m_{ntv}\,(x_{ntv} - \mu_{nv}) / \sigma_{nv}

    where :math:`s_{gv}` is the standard deviation of variable :math:`v` over all observed values
    of graph :math:`g` in the window (so near-constant series are not blown up). A node with no
    observed value takes the weighted mean :math:`\mu, \sigma` of its observed neighbours (when
    ``edge_index`` is given), else the graph's. Missing entries are 0 in the output, whatever
    their input value. :meth:`inverse` undoes the scaling. The layer has no parameters.

    It also returns per node and variable the level features
    :math:`[(\mu_{nv} - \bar\mu_{gv}) / s_{gv},\ \log(\sigma_{nv} / s_{gv})]`, so the model keeps
    each node's level relative to its graph (a congested road stays slower than its neighbours).

    Args:
        eps (float): the relative floor :math:`\epsilon` (default ``0.1``).

    Shapes:
        - **input:** ``x``, ``mask`` :math:`(N, L, V)`, ``batch`` :math:`(N)` or ``None``,
          ``edge_index`` :math:`(2, E)` or ``None``
        - **output:** ``x_norm`` :math:`(N, L, V)`, ``loc``, ``scale`` :math:`(N, 1, V)`,
          ``level`` :math:`(N, V, 2)`
    """

    def __init__(self, eps: float = 0.1) -> None:
        super().__init__()
        self.eps = eps

    def reset_parameters(self) -> None:
        """No parameters."""

    def forward(
        self,
        x: Tensor,
        mask: Tensor,
        batch: Tensor | None = None,
        edge_index: Tensor | None = None,
        edge_weight: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        m = mask.to(x.dtype)
        x = x * m  # missing values never enter a statistic
        n_obs = m.sum(1, keepdim=True)  # [N,1,V]
        has = n_obs > 0
        cnt = n_obs.clamp_min(1)
        mu = x.sum(1, keepdim=True) / cnt
        var = (((x - mu) * m) ** 2).sum(1, keepdim=True) / cnt
        if batch is None:
            batch = torch.zeros(x.size(0), dtype=torch.long, device=x.device)
        num_graphs = int(batch.max()) + 1 if batch.numel() else 1
        g_cnt = scatter(n_obs[:, 0], batch, 0, dim_size=num_graphs, reduce="sum").clamp_min(1)
        g_mu = scatter(x.sum(1), batch, 0, dim_size=num_graphs, reduce="sum") / g_cnt  # [B,V]
        g_sq = scatter((x**2).sum(1), batch, 0, dim_size=num_graphs, reduce="sum") / g_cnt
        g_std = (g_sq - g_mu**2).clamp_min(0).sqrt()
        g_std = torch.where(g_std > 1e-6, g_std, g_mu.abs().clamp_min(1e-3))
        g_mu_n, g_std_n = g_mu[batch].unsqueeze(1), g_std[batch].unsqueeze(1)  # [N,1,V]
        sigma = (var + (self.eps * g_std_n) ** 2 + 1e-8).sqrt()
        if not bool(has.all()):
            mu, sigma = self._fill_unobserved(
                mu, sigma, has, g_mu_n, g_std_n, edge_index, edge_weight
            )
        x_norm = (x - mu) / sigma * m
        level = torch.cat([(mu - g_mu_n) / g_std_n, torch.log(sigma / g_std_n)], dim=1)
        return x_norm, mu, sigma, level.transpose(1, 2)

    @staticmethod
    def _fill_unobserved(mu, sigma, has, g_mu, g_std, edge_index, edge_weight):
        fill_mu = g_mu.expand_as(mu)
        fill_sigma = g_std.expand_as(sigma)
        if edge_index is not None and edge_index.numel():
            src, dst = torch.cat([edge_index, edge_index.flip(0)], dim=1)
            w = (
                torch.ones(src.numel(), device=mu.device)
                if edge_weight is None
                else (edge_weight.abs().repeat(2))
            )
            hw = has[src, 0].to(mu.dtype) * w.view(-1, 1)  # [E2,V]
            n = mu.size(0)
            den = scatter(hw, dst, 0, dim_size=n, reduce="sum")
            nb_mu = scatter(hw * mu[src, 0], dst, 0, dim_size=n, reduce="sum") / den.clamp_min(
                1e-12
            )
            nb_sd = scatter(hw * sigma[src, 0], dst, 0, dim_size=n, reduce="sum") / den.clamp_min(
                1e-12
            )
            ok = (den > 0).unsqueeze(1)
            fill_mu = torch.where(ok, nb_mu.unsqueeze(1), fill_mu)
            fill_sigma = torch.where(ok, nb_sd.unsqueeze(1), fill_sigma)
        return torch.where(has, mu, fill_mu), torch.where(has, sigma, fill_sigma)

    @staticmethod
    def inverse(y: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
        """Back to original units: ``y * scale + loc`` (``y`` is ``[N, H, V]``)."""
        return y * scale + loc

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(eps={self.eps})"
