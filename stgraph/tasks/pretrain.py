"""The pretraining objective: masked reconstruction and forecasting, mixed per batch.

For each batch (windows of one graph, see :class:`~stgraph.tasks.corpus.Corpus`) one masking
strategy is drawn from the mix (:data:`~stgraph.tasks.masking.MASK_KINDS`, or ``none``) with a
masking ratio drawn from ``mask_ratio``. The backbone encodes the window with the hidden entries
removed (:func:`~stgraph.tasks.masking.hide`), and the loss is

.. math::
    \\mathcal L = w_r \\,\\frac{1}{|\\mathcal H|}\\sum_{(n,t,v)\\in\\mathcal H}
        \\ell\\Big(\\frac{\\hat x_{ntv} - x_{ntv}}{s_v}\\Big)
      + w_f \\,\\frac{1}{|\\mathcal Y|}\\sum_{(n,h,v)\\in\\mathcal Y}
        \\ell\\Big(\\frac{\\hat y_{nhv} - y_{nhv}}{s_v}\\Big)

with :math:`\\mathcal H` the hidden entries, :math:`\\mathcal Y` the observed targets at the drawn
lead times, :math:`\\ell` the Huber loss and :math:`s_v` the graph's per-variable scale (the std of
its training values), so a data set in Kelvin and one in counts weigh the same. Only hidden
entries enter the reconstruction term and their values never reach the model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import Tensor

from stgraph.errors import ConfigError
from stgraph.tasks.masking import MASK_KINDS, hide, make_mask

#: What a batch may be given instead of a mask: forecasting alone.
NO_MASK = "none"

#: The default weight of each strategy in the mix: every mask and forecasting alone equally.
DEFAULT_MASKS: dict[str, float] = {**dict.fromkeys(MASK_KINDS, 1.0), NO_MASK: 1.0}


@dataclass(frozen=True)
class ObjectiveMix:
    """Which objectives a pretraining batch gets, and how the two losses are weighed.

    Attributes:
        masks: relative weight of each masking strategy (:data:`MASK_KINDS` and ``"none"``).
        mask_ratio: the share of a window to hide, drawn uniformly from this range per batch.
        reconstruction_weight: :math:`w_r`.
        forecast_weight: :math:`w_f`.
        huber_delta: threshold of the Huber loss, in units of the per-variable scale.
    """

    masks: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MASKS))
    mask_ratio: tuple[float, float] = (0.15, 0.5)
    reconstruction_weight: float = 1.0
    forecast_weight: float = 1.0
    huber_delta: float = 1.0

    def __post_init__(self) -> None:
        known = (*MASK_KINDS, NO_MASK)
        unknown = sorted(set(self.masks) - set(known))
        if unknown:
            raise ConfigError(
                f"objectives.masks: unknown {unknown}; expected some of {list(known)}"
            )
        if (
            not self.masks
            or any(not w >= 0 for w in self.masks.values())
            or not sum(self.masks.values()) > 0
        ):
            raise ConfigError(f"objectives.masks: weights must be >= 0, not all 0: {self.masks}")
        lo, hi = self.mask_ratio
        if not 0 < lo <= hi < 1:
            raise ConfigError(f"objectives.mask_ratio: expected 0 < lo <= hi < 1, got {lo}, {hi}")
        for name in ("reconstruction_weight", "forecast_weight"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"objectives.{name}: expected >= 0, got {getattr(self, name)}")
        if not self.huber_delta > 0:
            raise ConfigError(f"objectives.huber_delta: expected > 0, got {self.huber_delta}")

    def draw(self, generator: torch.Generator) -> tuple[str, float]:
        """``(mask kind, ratio)`` for one batch."""
        kinds = list(self.masks)
        weights = torch.tensor([self.masks[k] for k in kinds], dtype=torch.double)
        kind = kinds[int(torch.multinomial(weights, 1, generator=generator))]
        lo, hi = self.mask_ratio
        ratio = lo + (hi - lo) * float(torch.rand((), generator=generator))
        return kind, ratio


def scaled_huber(
    pred: Tensor, target: Tensor, where: Tensor, scale: Tensor, delta: float
) -> Tensor:
    """Mean Huber loss of ``(pred - target) / scale`` over the entries in ``where``.

    ``scale`` is ``[V]`` (broadcast over the last axis). ``0`` when ``where`` is empty.
    """
    if not bool(where.any()):
        return pred.sum() * 0.0
    err = (pred - target) / scale.to(pred.dtype).view(*([1] * (pred.dim() - 1)), -1)
    err = err[where]
    return torch.nn.functional.huber_loss(err, torch.zeros_like(err), delta=delta)


def masked_view(batch, x: Tensor, mask: Tensor):
    """A shallow copy of ``batch`` whose model inputs are ``x`` and ``mask`` (a node with no
    visible input also loses its ``season_mask``: whole-node masking hides its history too)."""
    out = copy.copy(batch)
    out.x, out.mask = x, mask
    season_mask = batch.get("season_mask")
    if season_mask is not None:  # a node hidden whole keeps no seasonal reference either
        seen = mask.flatten(1).any(1).view(-1, 1, 1)
        out.season_mask = season_mask & seen
    return out


def pretrain_loss(
    model: torch.nn.Module,
    batch,
    scale: Tensor,
    mix: ObjectiveMix,
    generator: torch.Generator,
) -> tuple[Tensor, dict[str, float]]:
    """The loss of one batch (see the module docstring) and its parts for the logs.

    Args:
        model: an :class:`~stgraph.nn.STFM` with a reconstruction readout.
        batch: windows of one graph (``x``, ``mask``, ``y``, ``y_mask``, ``y_time``, ...).
        scale: ``[V]`` the graph's per-variable loss scale.
        mix: the objective mix.
        generator: draws the mask.

    Returns:
        ``(loss, {"kind": ..., "ratio": ..., "reconstruction": ..., "forecast": ...})``.
    """
    kind, ratio = mix.draw(generator)
    hidden = None
    x_in, visible = batch.x, batch.mask
    if kind != NO_MASK:
        hidden = make_mask(kind, batch.mask, ratio, generator, getattr(batch, "batch", None))
        x_in, visible = hide(batch.x, batch.mask, hidden)
    state = model.encode_data(masked_view(batch, x_in, visible))
    loss = batch.x.new_zeros(())
    parts: dict[str, float] = {"kind": kind, "ratio": ratio}  # type: ignore[dict-item]
    if hidden is not None and mix.reconstruction_weight > 0:
        recon = model.reconstruct(state)
        rec = scaled_huber(recon, batch.x, hidden, scale, mix.huber_delta)
        loss = loss + mix.reconstruction_weight * rec
        parts["reconstruction"] = float(rec.detach())
    if mix.forecast_weight > 0:
        pred = model.forecast(state, y_time=getattr(batch, "y_time", None), horizon=batch.y.size(1))
        fc = scaled_huber(pred, batch.y, batch.y_mask, scale, mix.huber_delta)
        loss = loss + mix.forecast_weight * fc
        parts["forecast"] = float(fc.detach())
    return loss, parts


__all__ = [
    "DEFAULT_MASKS",
    "NO_MASK",
    "ObjectiveMix",
    "masked_view",
    "pretrain_loss",
    "scaled_huber",
]
