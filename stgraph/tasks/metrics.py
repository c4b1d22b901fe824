"""Masked forecasting metrics, per horizon step and averaged.

Every metric ignores entries where ``mask`` is ``False`` and, when a ``null_value`` is given, where
the target equals it (METR-LA style: 0 means "no reading"). MAPE further ignores targets with
``|y| < mape_eps`` (a relative error of a zero target is undefined). Metrics accumulate sums over
batches so the average over a test set equals the average over all its valid entries, not a mean
of batch means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

METRICS = ("mae", "rmse", "mape", "mse")


def valid_mask(
    target: Tensor, mask: Tensor | None = None, null_value: float | None = None
) -> Tensor:
    """Entries that count: observed and, if ``null_value`` is set, not equal to it."""
    valid = torch.ones_like(target, dtype=torch.bool) if mask is None else mask.bool()
    if null_value is not None:
        if math.isnan(null_value):
            valid = valid & ~torch.isnan(target)
        else:
            valid = valid & (target != null_value)
    return valid & torch.isfinite(target)


def masked_mae(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, null_value: float | None = None
) -> Tensor:
    """Mean absolute error over valid entries (``nan`` when none is valid)."""
    v = valid_mask(target, mask, null_value)
    return (pred - target).abs()[v].mean() if bool(v.any()) else torch.tensor(float("nan"))


def masked_mse(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, null_value: float | None = None
) -> Tensor:
    """Mean squared error over valid entries."""
    v = valid_mask(target, mask, null_value)
    return ((pred - target) ** 2)[v].mean() if bool(v.any()) else torch.tensor(float("nan"))


def masked_huber(
    pred: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    null_value: float | None = None,
    delta: float = 1.0,
) -> Tensor:
    """Huber loss (squared below ``delta``, linear above, in the units of ``target``) over
    valid entries: MAE's robustness to outliers with MSE's smooth minimum near zero."""
    v = valid_mask(target, mask, null_value)
    if not bool(v.any()):
        return torch.tensor(float("nan"))
    return torch.nn.functional.huber_loss(pred[v], target[v], delta=delta)


def masked_berhu(
    pred: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    null_value: float | None = None,
    delta: float = 1.0,
) -> Tensor:
    """Reverse Huber ("berHu", Owen 2007; Laina et al. 2016) over valid entries: absolute
    below ``delta``, ``(e² + delta²) / (2 delta)`` above (continuous, with a continuous slope).

    The opposite trade-off to Huber: the median's robustness for the many small errors and the
    mean's pull for the few large ones (a forecast of traffic speed gets RMSE from the jams it
    misses, MAE from everything else).
    """
    v = valid_mask(target, mask, null_value)
    if not bool(v.any()):
        return torch.tensor(float("nan"))
    e = (pred[v] - target[v]).abs()
    return torch.where(e <= delta, e, (e * e + delta * delta) / (2 * delta)).mean()


def masked_rmse(
    pred: Tensor, target: Tensor, mask: Tensor | None = None, null_value: float | None = None
) -> Tensor:
    """Root mean squared error over valid entries."""
    return masked_mse(pred, target, mask, null_value).sqrt()


def masked_mape(
    pred: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    null_value: float | None = None,
    eps: float = 1e-4,
) -> Tensor:
    """Mean absolute percentage error (in %) over valid entries with ``|target| >= eps``."""
    v = valid_mask(target, mask, null_value) & (target.abs() >= eps)
    if not bool(v.any()):
        return torch.tensor(float("nan"))
    return ((pred - target).abs() / target.abs())[v].mean() * 100.0


@dataclass
class MetricAccumulator:
    """Accumulates masked error sums per horizon step over batches.

    Args:
        horizon: number of steps ``H`` (predictions are ``[..., H, V]``).
        null_value: target value treated as missing (``None``: only the mask counts).
        mape_eps: targets with ``|y|`` below this are left out of MAPE.
    """

    horizon: int
    null_value: float | None = None
    mape_eps: float = 1e-4
    _abs: Tensor = field(init=False)
    _sq: Tensor = field(init=False)
    _pct: Tensor = field(init=False)
    _n: Tensor = field(init=False)
    _n_pct: Tensor = field(init=False)

    def __post_init__(self) -> None:
        z = torch.zeros(self.horizon, dtype=torch.float64)
        self._abs, self._sq, self._pct, self._n, self._n_pct = (z.clone() for _ in range(5))

    def update(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        """Add a batch: ``pred``/``target``/``mask`` shaped ``[..., H, V]``."""
        if pred.shape != target.shape:
            raise ValueError(
                f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape"
            )
        if pred.size(-2) != self.horizon:
            raise ValueError(
                f"expected {self.horizon} horizon steps in dim -2, got {pred.size(-2)}"
            )
        pred, target = pred.detach().double(), target.detach().double()
        v = valid_mask(target, mask, self.null_value)
        h = self.horizon
        err = torch.where(v, pred - target, torch.zeros((), dtype=torch.float64))
        move = lambda t: t.movedim(-2, 0).reshape(h, -1)  # noqa: E731
        self._abs += move(err.abs()).sum(1)
        self._sq += move(err**2).sum(1)
        self._n += move(v.double()).sum(1)
        vp = v & (target.abs() >= self.mape_eps)
        pct = torch.where(
            vp,
            err.abs() / target.abs().clamp_min(self.mape_eps),
            torch.zeros((), dtype=torch.float64),
        )
        self._pct += move(pct).sum(1)
        self._n_pct += move(vp.double()).sum(1)

    def per_step(self) -> dict[str, list[float]]:
        """Each metric at each horizon step (1-based order)."""
        n = self._n.clamp_min(1)
        mse = self._sq / n
        nan = torch.full_like(n, float("nan"))
        empty = self._n == 0
        out = {
            "mae": torch.where(empty, nan, self._abs / n),
            "mse": torch.where(empty, nan, mse),
            "rmse": torch.where(empty, nan, mse.sqrt()),
            "mape": torch.where(
                self._n_pct == 0, nan, 100.0 * self._pct / self._n_pct.clamp_min(1)
            ),
        }
        return {k: v.tolist() for k, v in out.items()}

    def at(self, steps: Sequence[int]) -> dict[int, dict[str, float]]:
        """Metrics at the given 1-based horizon steps."""
        per = self.per_step()
        for s in steps:
            if not 1 <= s <= self.horizon:
                raise ValueError(f"horizon step {s} outside 1..{self.horizon}")
        return {s: {k: per[k][s - 1] for k in METRICS} for s in steps}

    def pooled(self, steps: Sequence[int]) -> dict[int, dict[str, float]]:
        """Metrics pooled over steps ``1..s`` for each ``s`` in ``steps``: the convention of
        T-GCN's published table, whose "15 min" RMSE is over output steps 1..3 together."""
        return {s: self.average(upto=s) for s in steps}

    def average(self, upto: int | None = None) -> dict[str, float]:
        """Metrics over all horizon steps together, or steps ``1..upto`` (RMSE from the pooled
        squared error)."""
        if upto is not None and not 1 <= upto <= self.horizon:
            raise ValueError(f"horizon step {upto} outside 1..{self.horizon}")
        k = self.horizon if upto is None else upto
        n = float(self._n[:k].sum())
        if n == 0:
            return dict.fromkeys(METRICS, float("nan"))
        mse = float(self._sq[:k].sum()) / n
        npct = float(self._n_pct[:k].sum())
        return {
            "mae": float(self._abs[:k].sum()) / n,
            "rmse": math.sqrt(mse),
            "mape": 100.0 * float(self._pct[:k].sum()) / npct if npct else float("nan"),
            "mse": mse,
        }

    @property
    def count(self) -> int:
        return int(self._n.sum())
