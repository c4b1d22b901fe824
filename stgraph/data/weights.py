"""What edge weights mean, and the affinities that message passing reads.

Edge weights of an :class:`~stgraph.data.STGraph` are either affinities — larger means a stronger
tie: kernel weights, 0/1 adjacency, counts of transitions — or distances in metres, which the
graph declares with ``meta["edge_weight"] = "distance_m"`` (``meta["dyn_edge_weight"]`` for the
dynamic edges). The OSM road graphs and the builders that reuse their edges, the k-NN graphs of
moving sensors and the Montevideo bus graph carry distances; everything else carries affinities.

Models normalise weights into averaging operators, where a longer road would wrongly count more;
they read affinities: distances become DCRNN's Gaussian kernel ``w = exp(-(d / σ)²)``, with ``σ``
the (population) standard deviation of the graph's edge distances (Li et al., "Diffusion
Convolutional Recurrent Neural Network", ICLR 2018), and affinities pass through unchanged.

The kernel is computed once per graph: :class:`AddEdgeAffinity` writes ``edge_affinity`` (and
``dyn_edge_affinity``, ``σ`` from all the graph's dynamic edges) onto the graph, the windows of a
series carry them (:class:`~stgraph.data.SlidingWindows`) and :func:`model_edge_weights` reads
them; only a graph that was not transformed gets the kernel of its own (or its batch's) edges.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform

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


class AddEdgeAffinity(BaseTransform):
    """Writes the Gaussian affinities of distance-weighted edges onto a graph, once per graph.

    For each of ``edge_weight`` and ``dyn_edge_weight`` that the graph declares as distances
    (``meta[key] == "distance_m"``) it sets ``edge_affinity`` / ``dyn_edge_affinity`` =
    :func:`gaussian_affinity` of the distances, ``σ`` their population standard deviation over the
    whole graph. Weights that are affinities already get no copy (models read them as they are).
    As every PyG transform, ``transform(graph)`` returns a shallow copy and leaves ``graph`` as it
    was; ``transform.forward(graph)`` writes onto ``graph`` itself.
    """

    def forward(self, data: Data) -> Data:
        """``data`` with the affinity attributes set (see the class docstring)."""
        meta = getattr(data, "meta", None)
        for key in ("edge_weight", "dyn_edge_weight"):
            w = getattr(data, key, None)
            if w is not None and weight_kind(meta, key) == DISTANCE_M:
                data[key.replace("weight", "affinity")] = gaussian_affinity(w)
        return data


def model_edge_weights(data: Any) -> tuple[Tensor | None, Tensor | None]:
    """The static and dynamic edge weights of ``data`` (an STGraph or a batch of them) as
    affinities: ``edge_affinity`` / ``dyn_edge_affinity`` where :class:`AddEdgeAffinity` wrote
    them, else the weights, with distances turned into the kernel of ``data``'s own edges (a batch
    of windows of one graph gets the same ``σ`` as the graph up to rounding: the repeated edges
    leave the standard deviation unchanged)."""
    meta = getattr(data, "meta", None)
    out = []
    for key in ("edge_weight", "dyn_edge_weight"):
        w = getattr(data, key, None)
        stored = getattr(data, key.replace("weight", "affinity"), None)
        if stored is not None:
            w = stored
        elif w is not None and weight_kind(meta, key) == DISTANCE_M:
            w = gaussian_affinity(w)
        out.append(w)
    return out[0], out[1]
