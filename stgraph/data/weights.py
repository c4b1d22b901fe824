"""What edge weights mean, and the affinities that message passing reads.

Edge weights of an :class:`~stgraph.data.STGraph` are either affinities — larger means a stronger
tie: kernel weights, 0/1 adjacency, counts of transitions — or distances in metres, which the
graph declares with ``meta["edge_weight"] = "distance_m"`` (``meta["dyn_edge_weight"]`` for the
dynamic edges). The OSM road graphs and the builders that reuse their edges, the k-NN graphs of
moving sensors and the Montevideo bus graph carry distances; everything else carries affinities.

Models normalise weights into averaging operators, where a longer road would wrongly count more;
:func:`model_edge_weights` hands them affinities: distances become DCRNN's Gaussian kernel
``w = exp(-(d / σ)²)``, with ``σ`` the standard deviation of the distances (Li et al., "Diffusion
Convolutional Recurrent Neural Network", ICLR 2018), and affinities pass through unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

#: ``meta["edge_weight"]`` / ``meta["dyn_edge_weight"]`` of weights that are distances in metres.
DISTANCE_M = "distance_m"


def gaussian_affinity(distance: Tensor, sigma: float | None = None) -> Tensor:
    r"""``exp(-(d / σ)²)`` of distances ``d`` (any shape); ``σ`` defaults to their (population)
    standard deviation, or their mean when all are equal. Same dtype as ``distance``."""
    d = distance.double().abs()
    if sigma is None:
        sigma = float(d.std(unbiased=False)) if d.numel() > 1 else 0.0
        if not sigma > 0:
            sigma = float(d.mean()) if d.numel() else 1.0
    if not sigma > 0:  # all distances zero: every tie is as strong as it gets
        return torch.ones_like(distance)
    return torch.exp(-((d / sigma) ** 2)).to(distance.dtype)


def weight_kind(meta: dict | None, key: str = "edge_weight") -> str | None:
    """``meta[key]``; for a PyG batch (one value per graph) the common value.

    Raises:
        ValueError: the batch mixes graphs whose weights are distances with graphs whose are not.
    """
    kind: Any = (meta or {}).get(key)
    if isinstance(kind, (list, tuple)):
        kinds = set(kind)
        if len(kinds) > 1 and DISTANCE_M in kinds:
            raise ValueError(
                f"a batch mixes graphs with meta[{key!r}] = {sorted(map(str, kinds))}: distances and "
                "affinities cannot share one normalisation; batch such graphs separately"
            )
        kind = next(iter(kinds)) if kinds else None
    return kind if isinstance(kind, str) else None


def model_edge_weights(data: Any) -> tuple[Tensor | None, Tensor | None]:
    """The static and dynamic edge weights of ``data`` (an STGraph or a batch of them) as
    affinities; see the module docstring. A batch of windows of one graph gets the same ``σ`` as
    the graph (the repeated edges leave the standard deviation unchanged)."""
    meta = getattr(data, "meta", None)
    out = []
    for key in ("edge_weight", "dyn_edge_weight"):
        w = getattr(data, key, None)
        if w is not None and weight_kind(meta, key) == DISTANCE_M:
            w = gaussian_affinity(w)
        out.append(w)
    return out[0], out[1]
