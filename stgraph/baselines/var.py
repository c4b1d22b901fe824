"""Vector autoregression over all nodes, fitted by ridge-regularised least squares."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.baselines._batch import ResizableBuffers, check_nodes, num_windows
from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError
from stgraph.tasks.forecaster import Forecaster

#: Largest number of regressors ``N * V * p`` accepted: the normal equations are dense.
MAX_FEATURES = 20_000


class VAR(ResizableBuffers, Forecaster):
    r"""Vector autoregression VAR(:math:`p`) over the :math:`N \cdot V` series of a graph.

    .. math::
        z_t = c + \sum_{k=1}^{p} A_k z_{t-k} + \varepsilon_t,

    where :math:`z_t \in \mathbb{R}^{N V}` are the values at step :math:`t` standardised per node and
    variable on the training steps. Parameters minimise
    :math:`\frac{1}{T'}\lVert Z - [1, Z_{\text{lags}}] W \rVert^2 + \lambda \lVert A \rVert^2`
    over the training steps only (closed form; the intercept is not penalised). Forecasts of
    several steps iterate the one-step model on its own predictions.

    Missing values are imputed with the training mean (0 after standardisation), both as
    regressors and as targets. Every node depends on every node, so the coefficient matrix is
    dense, :math:`(N V p) \times (N V)` (207 sensors, :math:`p = 3`: 621 × 207).

    ``statsmodels.tsa.api.VAR`` is not used: it is unregularised, and with :math:`N V p` close to the
    number of training steps (Los-loop: 621 regressors, ~1,600 steps) its OLS fit overfits badly
    or is singular; a ridge penalty is needed.

    Args:
        input_steps: ``L`` (must be at least ``lags``).
        horizon: ``H``.
        num_variables: ``V``.
        lags: :math:`p` (default 3).
        ridge: :math:`\lambda`, relative to the mean squared standardised regressor (default 0.5,
            chosen on the last fifth of Los-loop's training steps for ``lags=3``).

    Shapes:
        - **input:** ``batch.x``, ``batch.mask`` :math:`(B \cdot N, L, V)`.
        - **output:** :math:`(B \cdot N, H, V)` in the units of the data.
    """

    name = "var"
    trainable = False

    def __init__(
        self,
        input_steps: int,
        horizon: int,
        num_variables: int = 1,
        *,
        lags: int = 3,
        ridge: float = 0.5,
    ) -> None:
        super().__init__(input_steps, horizon, num_variables)
        if lags < 1:
            raise ConfigError(f"var: lags must be >= 1, got {lags}")
        if lags > input_steps:
            raise ConfigError(
                f"var: lags={lags} needs at least {lags} input steps, got {input_steps}"
            )
        if ridge < 0:
            raise ConfigError(f"var: ridge must be >= 0, got {ridge}")
        self.lags, self.ridge = int(lags), float(ridge)
        self.register_buffer("loc", torch.zeros(0, num_variables))  # [N, V]
        self.register_buffer("scale", torch.ones(0, num_variables))  # [N, V]
        self.register_buffer("weight", torch.zeros(0, 0))  # [p * N * V, N * V], lag 1 first
        self.register_buffer("bias", torch.zeros(0))  # [N * V]

    def fit(self, graph: STGraph, train_range: tuple[int, int]) -> VAR:
        a, b = train_range
        x = graph.x[:, a:b].double()
        m = graph.mask[:, a:b]
        n, t, v = x.shape
        p, d = self.lags, n * v
        if d * p > MAX_FEATURES:
            raise ConfigError(
                f"var: {n} nodes x {v} variables x {p} lags = {d * p} regressors exceeds "
                f"{MAX_FEATURES}; the dense VAR does not scale to this graph"
            )
        if t <= p:
            raise ValueError(f"var.fit: {t} training steps cannot fit {p} lags")
        md = m.double()
        count = md.sum(1).clamp_min(1)
        loc = (x * md).sum(1) / count
        scale = ((((x - loc.unsqueeze(1)) ** 2) * md).sum(1) / count).sqrt()
        scale = torch.where(scale > 1e-12, scale, torch.ones_like(scale))
        z = torch.where(m, (x - loc.unsqueeze(1)) / scale.unsqueeze(1), torch.zeros_like(x))
        z = z.permute(1, 0, 2).reshape(t, d)  # [T, N*V]
        target = z[p:]  # [T-p, D]
        lagged = torch.cat([z[p - k : t - k] for k in range(1, p + 1)], dim=1)  # [T-p, p*D]
        rows = target.size(0)
        design = torch.cat([torch.ones(rows, 1, dtype=z.dtype), lagged], dim=1)
        gram = design.T @ design / rows
        penalty = self.ridge * float(torch.diagonal(gram)[1:].mean().clamp_min(1e-12))
        gram[1:, 1:] += penalty * torch.eye(p * d, dtype=z.dtype)
        coef = torch.linalg.solve(gram, design.T @ target / rows)  # [1 + p*D, D]
        self.loc, self.scale = loc.float(), scale.float()
        self.bias = coef[0].float()
        self.weight = coef[1:].float()
        return self

    def coefficients(self) -> tuple[Tensor, Tensor]:
        r"""The model in the units of the data: :math:`x_t = b + \sum_k A_k x_{t-k}`.

        Returns:
            ``(A, b)``: ``A`` of shape :math:`(p, N V, N V)` (``A[k-1] @ x_{t-k}``, series ordered
            node-major) and ``b`` of shape :math:`(N V)`.
        """
        self._check_fitted()
        d = self.bias.numel()
        mu, sd = self.loc.reshape(d).double(), self.scale.reshape(d).double()
        w = self.weight.double().view(self.lags, d, d)  # [k, from, to]
        a = sd.view(1, -1, 1) * w.transpose(1, 2) / sd.view(1, 1, -1)  # [k, to, from]
        b = mu + sd * self.bias.double() - (a @ mu.view(-1, 1)).sum(0).view(-1)
        return a, b

    def forward(self, batch: STGraph) -> Tensor:
        self._check_fitted()
        n = check_nodes(batch, self.loc.size(0), self.name)
        bsz = num_windows(batch)
        x, mask = batch.x, batch.mask
        v, d, p = x.size(2), n * x.size(2), self.lags
        if x.size(1) < p:
            raise ValueError(f"var: windows of {x.size(1)} steps are shorter than lags={p}")
        loc, scale = self.loc.repeat(bsz, 1).unsqueeze(1), self.scale.repeat(bsz, 1).unsqueeze(1)
        z = torch.where(mask, (x - loc) / scale, torch.zeros_like(x))  # [B*N, L, V]
        z = z.view(bsz, n, -1, v).permute(0, 2, 1, 3).reshape(bsz, -1, d)  # [B, L, D]
        state = [z[:, -k] for k in range(1, p + 1)]  # lag 1 first
        out = []
        for _ in range(self.horizon):
            nxt = torch.cat(state, dim=1) @ self.weight + self.bias
            out.append(nxt)
            state = [nxt, *state[:-1]]
        pred = torch.stack(out, 1).view(bsz, self.horizon, n, v).permute(0, 2, 1, 3)
        pred = pred.reshape(bsz * n, self.horizon, v)
        return pred * scale + loc

    def _check_fitted(self) -> None:
        if self.weight.numel() == 0:
            raise RuntimeError("var: call fit(graph, train_range) before using the model")

    def extra_repr(self) -> str:
        return (
            f"input_steps={self.input_steps}, horizon={self.horizon}, "
            f"num_variables={self.num_variables}, lags={self.lags}, ridge={self.ridge}"
        )
