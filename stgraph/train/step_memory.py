"""The peak memory of a training step, estimated before the first one.

A model's step holds its weights, their gradients and the optimiser's state, the batch, and every
activation autograd saves for the backward pass. The last part depends on the graph (nodes,
edges, variables), the window lengths, the batch and the model's options in ways no closed formula
tracks across models, so it is *measured*: one forward pass of the real loss on a probe batch of
one window, with :func:`torch.autograd.graph.saved_tensors_hooks` adding up the bytes of every
distinct storage saved for backward (parameters left out), then scaled to the windows of a batch
(the models are per-node: a batch of ``B`` windows is ``B`` copies of the graph side by side).

The probe changes nothing: the random number generators are forked, buffers (e.g. normalisation
statistics) are restored, and no gradient is computed, so a run with the check is bit-identical
to one without. :func:`check_step_memory` refuses a step above the memory budget of
:mod:`stgraph.utils.memory` with :class:`~stgraph.errors.MemoryBudgetError` before training
starts, instead of the OOM killer an hour in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from stgraph.utils.memory import check_memory, format_bytes

#: Activations live twice over at the start of the backward pass (what was saved, and the
#: gradients flowing back through it); the transient copies of a step are bounded by this factor.
BACKWARD_FACTOR = 2.0


@dataclass(frozen=True)
class StepEstimate:
    """Bytes of one training step, by part.

    Attributes:
        weights: the parameters.
        optimizer: their gradients and the optimiser's (and a weight average's) copies.
        batch: the tensors of one batch.
        activations: what autograd keeps for the backward pass of one batch, times
            :data:`BACKWARD_FACTOR`.
        windows: windows per batch the estimate is for.
    """

    weights: int
    optimizer: int
    batch: int
    activations: int
    windows: int

    @property
    def total(self) -> int:
        """The whole step."""
        return self.weights + self.optimizer + self.batch + self.activations

    def describe(self) -> str:
        """One line: the total and its parts."""
        return (
            f"{format_bytes(self.total)} (activations {format_bytes(self.activations)} for "
            f"{self.windows} window(s), weights {format_bytes(self.weights)}, gradients and "
            f"optimiser state {format_bytes(self.optimizer)}, batch {format_bytes(self.batch)})"
        )


def saved_tensor_bytes(fn: Callable[[], object], exclude: set[int] | None = None) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``fn()`` runs (storages
    whose ``data_ptr`` is in ``exclude``, e.g. the parameters, left out)."""
    exclude = exclude or set()
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr not in exclude:
            seen[ptr] = max(seen.get(ptr, 0), storage.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())


def _tensor_bytes(batch: object) -> int:
    store = getattr(batch, "_store", None)
    items = store.values() if store is not None else vars(batch).values()
    return sum(v.numel() * v.element_size() for v in items if isinstance(v, torch.Tensor))


def estimate_step(
    model: torch.nn.Module,
    loss: Callable[[object], torch.Tensor],
    probe: object,
    windows: int,
    *,
    average: bool = False,
) -> StepEstimate:
    """Estimate a step of ``windows`` windows from a ``probe`` batch of one window.

    Args:
        model: the model to train (left as it was).
        loss: the step's loss of a batch (``lambda b: task.loss(model, b)``).
        probe: a batch of one window, as the training loader yields it.
        windows: windows per training batch.
        average: a moving average of the weights is kept (one more parameter-sized copy
            besides the gradients and Adam's two moments).

    Returns:
        The estimate, parts in bytes.
    """
    params = [p for p in model.parameters()]
    weights = sum(p.numel() * p.element_size() for p in params)
    trainable = sum(p.numel() * p.element_size() for p in params if p.requires_grad)
    exclude = {p.untyped_storage().data_ptr() for p in params}
    buffers = {k: b.detach().clone() for k, b in model.named_buffers()}
    was_training = model.training
    try:
        with torch.random.fork_rng(devices=[]):
            model.train()
            saved = saved_tensor_bytes(lambda: loss(probe), exclude)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(buffers[k])
    per_window = saved * BACKWARD_FACTOR
    return StepEstimate(
        weights=weights,
        optimizer=trainable * (3 + int(average)),
        batch=_tensor_bytes(probe) * windows,
        activations=int(per_window * windows),
        windows=windows,
    )


def check_step_memory(
    estimate: StepEstimate, what: str, *, budget: str | float | int | None = None, hint: str = ""
) -> StepEstimate:
    """Refuse a step whose estimate exceeds the memory budget (see :mod:`stgraph.utils.memory`).

    Raises:
        MemoryBudgetError: naming ``what``, the estimate by part and the budget.
    """
    check_memory(
        f"{what}: one training step, estimated {estimate.describe()}",
        estimate.total,
        budget=budget,
        hint=hint,
    )
    return estimate


__all__ = [
    "BACKWARD_FACTOR",
    "StepEstimate",
    "check_step_memory",
    "estimate_step",
    "saved_tensor_bytes",
]
