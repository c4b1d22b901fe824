"""Helpers shared by the baselines: reading a PyG batch of windows of one series, and the
masked training mean of each node."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.data.stgraph import STGraph

SECONDS_PER_DAY = 86_400
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY


def nodes_per_graph(batch: STGraph) -> int:
    """``N``: the number of nodes of each window (all windows of a batch come from one series).

    Raises:
        ValueError: if the windows of the batch have different node counts.
    """
    ptr = getattr(batch, "ptr", None)
    if ptr is None:  # a single window, not batched
        return int(batch.x.size(0))
    sizes = ptr[1:] - ptr[:-1]
    n = int(sizes[0])
    if bool((sizes != n).any()):
        raise ValueError(
            f"batch: windows have different node counts {sorted(set(sizes.tolist()))}; "
            "these baselines expect windows of one series"
        )
    return n


def num_windows(batch: STGraph) -> int:
    """``B``: the number of windows in the batch (1 for an unbatched window)."""
    ptr = getattr(batch, "ptr", None)
    return 1 if ptr is None else int(ptr.numel() - 1)


def per_window(t: Tensor | None, b: int) -> Tensor | None:
    """``time``/``y_time``/``window`` as ``[B, ...]`` whether or not the item was batched."""
    if t is None:
        return None
    return t.view(b, -1)


def local_node_index(batch: STGraph, n: int) -> Tensor:
    """Index of each row of ``batch.x`` within its own window's graph: ``[B*N]`` in ``[0, N)``."""
    rows = batch.x.size(0)
    return torch.arange(rows, device=batch.x.device) % n


def check_nodes(batch: STGraph, fitted: int, model: str) -> int:
    """``N`` of the batch, checked against the node count the model was fitted on."""
    n = nodes_per_graph(batch)
    if fitted and n != fitted:
        raise ValueError(
            f"{model}: fitted on a graph of {fitted} nodes but the batch has {n} nodes per window"
        )
    return n


def masked_node_mean(x: Tensor, mask: Tensor) -> Tensor:
    """The mean of each node's observed values, per variable, with a per-variable fallback.

    The convention of every baseline that needs a node's typical value: the mean over steps of
    the entries where ``mask`` is set; a node with no observed value of a variable gets that
    variable's mean over all observed entries of all nodes (0 when the variable is never
    observed). Sums are taken in float64.

    Args:
        x: values ``[N, T, V]`` (entries where ``mask`` is unset are ignored, whatever they hold).
        mask: observed entries, bool ``[N, T, V]``.

    Returns:
        ``[N, V]`` in float64.
    """
    m = mask.double()
    xm = torch.where(mask, x.double(), torch.zeros((), dtype=torch.float64))
    count = m.sum(1)  # [N, V]
    var_mean = xm.sum((0, 1)) / m.sum((0, 1)).clamp_min(1)  # [V]
    return torch.where(count > 0, xm.sum(1) / count.clamp_min(1), var_mean.expand_as(count))


class ResizableBuffers(torch.nn.Module):
    """Mixin: fitted statistics have data-dependent shapes; take the stored shape when loading.

    Lets ``load_state_dict`` restore a model built with its constructor arguments only (as the
    trainer does from ``config.yaml`` + ``model.safetensors``) before ``fit`` was ever called.
    """

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        for name, buf in list(self._buffers.items()):
            stored = state_dict.get(prefix + name)
            if stored is not None and buf is not None and stored.shape != buf.shape:
                self._buffers[name] = torch.empty_like(stored, dtype=buf.dtype)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def target_times(batch: STGraph, b: int, horizon: int, interval: int | None) -> Tensor | None:
    """Unix seconds of each predicted step ``[B, H]``: ``y_time``, else extrapolated from ``time``."""
    y_time = per_window(getattr(batch, "y_time", None), b)
    if y_time is not None:
        return y_time
    time = per_window(getattr(batch, "time", None), b)
    if time is None or not interval:
        return None
    steps = torch.arange(1, horizon + 1, device=time.device) * int(interval)
    return time[:, -1:] + steps
