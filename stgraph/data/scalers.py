"""Scalers fitted on observed training values only, saved as plain tensors."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.errors import ConfigError, DataFormatError


class Scaler(torch.nn.Module):
    """Base: ``transform(x) = (x - loc) / scale``; stats are buffers so they live in checkpoints.

    Args:
        axis: ``"variable"`` (one statistic per variable) or ``"node"`` (per node and variable).
    """

    def __init__(self, axis: str = "variable") -> None:
        super().__init__()
        if axis not in ("variable", "node"):
            raise ConfigError(f"axis must be 'variable' or 'node', got {axis!r}")
        self.axis = axis
        self.register_buffer("loc", torch.zeros(1, 1, 1))
        self.register_buffer("scale", torch.ones(1, 1, 1))

    def _stats(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def fit(self, x: Tensor, mask: Tensor | None = None) -> Scaler:
        """Fit on ``x`` ``[N, T, V]`` (observed entries only). Pass the training steps only."""
        if x.dim() != 3:
            raise DataFormatError(f"fit: expected x of shape [N, T, V], got {tuple(x.shape)}")
        if mask is None:
            mask = torch.ones_like(x, dtype=torch.bool)
        if not bool(mask.any()):
            raise DataFormatError("fit: no observed values to fit the scaler on")
        mask = mask.bool()
        x = torch.where(mask, x, torch.zeros((), dtype=x.dtype))  # NaN under the mask must not leak
        loc, scale = self._stats(x.double(), mask)
        scale = torch.where(scale > 1e-12, scale, torch.ones_like(scale))
        self.loc = loc.float()
        self.scale = scale.float()
        return self

    def _dims(self) -> tuple[int, ...]:
        return (0, 1) if self.axis == "variable" else (1,)

    def transform(self, x: Tensor) -> Tensor:
        """Scale ``x`` (any shape ending in ``V``; per-node stats need ``[N, T, V]`` or ``[N*B, ...]``)."""
        return (x - self._view(self.loc, x)) / self._view(self.scale, x)

    def inverse_transform(self, x: Tensor) -> Tensor:
        """Undo :meth:`transform`."""
        return x * self._view(self.scale, x) + self._view(self.loc, x)

    def _view(self, stat: Tensor, x: Tensor) -> Tensor:
        if self.axis == "variable" or stat.size(0) == 1:
            return stat.view(*([1] * (x.dim() - 1)), -1)
        n = stat.size(0)
        reps = x.size(0) // n  # a PyG batch of B windows of one graph stacks B*N nodes
        if reps * n != x.size(0):
            raise DataFormatError(
                f"per-node scaler fitted on {n} nodes cannot scale {x.size(0)} nodes"
            )
        return stat.repeat(reps, 1, 1).view(x.size(0), *([1] * (x.dim() - 2)), -1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        # Fitted statistics have data-dependent shapes: take the stored shape before copying.
        for name in ("loc", "scale"):
            stored = state_dict.get(prefix + name)
            if stored is not None:
                setattr(self, name, torch.empty_like(stored))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"axis={self.axis!r}"


class StandardScaler(Scaler):
    """Zero mean, unit standard deviation over observed values."""

    def _stats(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        dims = self._dims()
        m = mask.double()
        count = m.sum(dims, keepdim=True).clamp_min(1)
        mean = (x * m).sum(dims, keepdim=True) / count
        var = (((x - mean) ** 2) * m).sum(dims, keepdim=True) / count
        return mean, var.sqrt()


class MinMaxScaler(Scaler):
    """Map the observed range to ``[0, 1]``."""

    def _stats(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        dims = self._dims()
        big = torch.finfo(x.dtype).max
        lo = torch.where(mask, x, torch.full_like(x, big)).amin(dims, keepdim=True)
        hi = torch.where(mask, x, torch.full_like(x, -big)).amax(dims, keepdim=True)
        empty = ~mask.any(dim=dims, keepdim=True)  # a node with no training values: identity
        lo = torch.where(empty, torch.zeros_like(lo), lo)
        return lo, torch.where(empty, torch.ones_like(hi), hi - lo)


class IdentityScaler(Scaler):
    """No scaling (for data that is already standardised)."""

    def _stats(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        shape = (1, 1, x.size(2)) if self.axis == "variable" else (x.size(0), 1, x.size(2))
        return torch.zeros(shape, dtype=x.dtype), torch.ones(shape, dtype=x.dtype)


SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "none": IdentityScaler}


def make_scaler(name: str, axis: str = "variable") -> Scaler:
    """A scaler by name: ``standard``, ``minmax`` or ``none``."""
    if name not in SCALERS:
        raise ConfigError(f"scaler: unknown scaler {name!r}; choose one of {sorted(SCALERS)}")
    return SCALERS[name](axis=axis)
