"""Masks for masked-reconstruction pretraining: which observed entries of a window to hide.

A window's observation mask ``observed`` (bool ``[N, L, V]``) says which entries hold a reading.
A masking strategy picks ``hidden ⊆ observed``: the model sees ``x`` with the hidden entries
zeroed and unmarked (``observed & ~hidden``, exactly as if they had never been recorded) and is
scored on reconstructing them. Hidden values never reach the model: :func:`hide` zeroes them
before the model runs, and the loss reads only the entries in ``hidden``.

The strategies, each covering about ``ratio`` of the window (the masks of MAE-style pretraining on
series: random for interpolation, temporal blocks (tube masks) for gaps in one sensor, whole nodes
for kriging of unseen places, the future for forecasting):

- ``random``: every observed entry independently with probability ``ratio``;
- ``block``: per node, one run of ``ceil(ratio * L)`` consecutive steps (all variables);
- ``node``: ``ceil(ratio * n)`` whole nodes of each graph in the batch (all steps and variables);
- ``future``: the last ``ceil(ratio * L)`` steps of every node.

Every function takes a ``torch.Generator`` so that a seed fixes the masks.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: Masking strategies, in the order the pretraining mix names them.
MASK_KINDS = ("random", "block", "node", "future")


def _check(observed: Tensor, ratio: float) -> None:
    if observed.dim() != 3 or observed.dtype != torch.bool:
        raise ValueError(
            f"observed: expected a bool [N, L, V] tensor, got {observed.dtype} "
            f"{list(observed.shape)}"
        )
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio: expected a share in (0, 1), got {ratio}")


def random_mask(observed: Tensor, ratio: float, generator: torch.Generator) -> Tensor:
    """Each observed entry hidden independently with probability ``ratio``."""
    _check(observed, ratio)
    draw = torch.rand(observed.shape, generator=generator)
    return observed & (draw.to(observed.device) < ratio)


def block_mask(observed: Tensor, ratio: float, generator: torch.Generator) -> Tensor:
    """Per node one run of ``ceil(ratio * L)`` consecutive steps, all variables, hidden."""
    _check(observed, ratio)
    n, length, _ = observed.shape
    width = min(length, max(1, math.ceil(ratio * length)))
    start = torch.randint(0, length - width + 1, (n,), generator=generator)
    steps = torch.arange(length).view(1, -1)
    inside = (steps >= start.view(-1, 1)) & (steps < start.view(-1, 1) + width)  # [N, L]
    return observed & inside.to(observed.device).unsqueeze(-1)


def node_mask(
    observed: Tensor, ratio: float, generator: torch.Generator, batch: Tensor | None = None
) -> Tensor:
    """``ceil(ratio * n)`` whole nodes of each graph (``batch`` assigns nodes to graphs), hidden.

    At least one node of every graph stays visible, so a graph of one node is never hidden whole.
    """
    _check(observed, ratio)
    n = observed.size(0)
    batch = torch.zeros(n, dtype=torch.long) if batch is None else batch.cpu()
    score = torch.rand(n, generator=generator)
    hide = torch.zeros(n, dtype=torch.bool)
    for g in torch.unique(batch).tolist():
        nodes = torch.nonzero(batch == g).view(-1)
        k = min(nodes.numel() - 1, math.ceil(ratio * nodes.numel()))
        if k > 0:
            hide[nodes[torch.argsort(score[nodes])[:k]]] = True
    return observed & hide.to(observed.device).view(-1, 1, 1)


def future_mask(observed: Tensor, ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """The last ``ceil(ratio * L)`` steps of every node hidden (a forecast posed as a gap)."""
    _check(observed, ratio)
    length = observed.size(1)
    width = min(length - 1, max(1, math.ceil(ratio * length)))
    tail = torch.zeros(length, dtype=torch.bool, device=observed.device)
    tail[length - width :] = True
    return observed & tail.view(1, -1, 1)


def make_mask(
    kind: str,
    observed: Tensor,
    ratio: float,
    generator: torch.Generator,
    batch: Tensor | None = None,
) -> Tensor:
    """The ``hidden`` entries of strategy ``kind`` (one of :data:`MASK_KINDS`); see the module."""
    if kind == "random":
        return random_mask(observed, ratio, generator)
    if kind == "block":
        return block_mask(observed, ratio, generator)
    if kind == "node":
        return node_mask(observed, ratio, generator, batch)
    if kind == "future":
        return future_mask(observed, ratio, generator)
    raise ValueError(f"mask kind {kind!r}: expected one of {', '.join(MASK_KINDS)}")


def hide(x: Tensor, observed: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
    """The model's view of a masked window: ``(x with hidden entries zeroed, observed & ~hidden)``.

    Raises:
        ValueError: ``hidden`` marks an entry that was not observed.
    """
    if hidden.shape != observed.shape:
        raise ValueError(f"hidden {list(hidden.shape)} and observed {list(observed.shape)} differ")
    if bool((hidden & ~observed).any()):
        raise ValueError("hidden marks entries that were never observed")
    visible = observed & ~hidden
    return torch.where(visible, x, torch.zeros_like(x)), visible


__all__ = [
    "MASK_KINDS",
    "block_mask",
    "future_mask",
    "hide",
    "make_mask",
    "node_mask",
    "random_mask",
]
