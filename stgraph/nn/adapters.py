r"""Low-rank adapters (LoRA) injected into a trained model without editing its source.

Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", ICLR 2022: a frozen weight
:math:`W \in \mathbb R^{d_\text{out} \times d_\text{in}}` is adapted by a trainable low-rank term,

.. math::
    W' = W + \frac{\alpha}{r}\, B A,\qquad A \in \mathbb R^{r \times d_\text{in}},\
    B \in \mathbb R^{d_\text{out} \times r},

with :math:`A` drawn as a ``Linear`` weight (Kaiming-uniform) and :math:`B = 0`, so an adapted
model starts with exactly the outputs of the pretrained one and only :math:`A, B` need training.
Their shapes depend only on the layer widths and the rank: nothing depends on the number of nodes,
node identity, the variables or the city, so adapters trained on one graph run on any other.

How they are attached. Each adapted weight gets a :mod:`torch.nn.utils.parametrize`
parametrization rather than having its ``Linear`` swapped for a wrapper module, because the
backbone's layers also read weights directly, bypassing ``Linear.forward``:
:class:`~stgraph.nn.PartitionAttention` projects the context tokens with ``qkv.weight[c:]``,
:class:`~stgraph.nn.VariableCrossAttention` takes ``kv.weight[c:]`` on its single-variable path
and :class:`~stgraph.nn.DirectedDynamicConv` slices ``lin.weight[:, :3c]`` when there are no
dynamic edges. With a parametrization every read of ``.weight`` is the adapted :math:`W'`, so no
code path sees the bare weight. Packed projections (a ``qkv`` ``Linear``, the ``in_proj_weight``
raw parameter of :class:`torch.nn.MultiheadAttention`) get one adapter over the packed matrix
(one :math:`A` shared by query, key and value, one :math:`B` with a block of rows for each).

:func:`add_adapters` attaches them; :func:`merge_adapters` folds :math:`W'` back into plain
weights, after which the model has exactly its original parameter names and shapes and saves
(and loads with :func:`stgraph.from_pretrained`) as an ordinary checkpoint. While adapters are
attached, the state dict names the frozen weight ``<layer>.parametrizations.weight.original``
and the adapter ``<layer>.parametrizations.weight.0.lora_A`` / ``lora_B``: a resumed fine-tuning
run adds the same adapters before loading its weights.

Example::

    from stgraph import from_pretrained
    from stgraph.nn.adapters import add_adapters, adapter_parameters, merge_adapters

    model = from_pretrained(checkpoint_dir)
    names = add_adapters(model, rank=8, alpha=16)     # the weights adapted
    opt = torch.optim.AdamW(adapter_parameters(model), lr=1e-3)
    ...                                               # train; the rest stays frozen
    merge_adapters(model)                             # plain weights again
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn.utils import parametrize

from stgraph.errors import ConfigError

#: The layers whose weights :func:`add_adapters` adapts by default: the attention and
#: message-passing layers of :class:`~stgraph.nn.STFM` (temporal attention, partition attention of
#: the blocks and of the hierarchical pooling, variable cross-attention, directed/dynamic message
#: passing) and PyTorch's multi-head attention.
DEFAULT_TARGETS: tuple[str, ...] = (
    "TemporalMixing",
    "PartitionAttention",
    "VariableCrossAttention",
    "DirectedDynamicConv",
    "MultiheadAttention",
)

#: The raw projection parameters of :class:`torch.nn.MultiheadAttention` (packed or separate).
_MHA_WEIGHTS = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight")


class LoRA(torch.nn.Module):
    r"""The parametrization :math:`W \mapsto W + \frac{\alpha}{r} B A` of one weight matrix.

    Hu et al., ICLR 2022. :math:`B` starts at zero, so the adapted weight starts equal to
    :math:`W`; :math:`A` starts as a ``Linear`` weight would (Kaiming-uniform, ``a = sqrt(5)``).

    Args:
        out_features (int): rows :math:`d_\text{out}` of the adapted weight.
        in_features (int): columns :math:`d_\text{in}`.
        rank (int): :math:`r \ge 1` (default ``8``).
        alpha (float): :math:`\alpha > 0`; the update is scaled by :math:`\alpha / r`
            (default ``16.0``).

    Shapes:
        - **input:** the weight :math:`(d_\text{out}, d_\text{in})`
        - **output:** :math:`(d_\text{out}, d_\text{in})`
    """

    def __init__(
        self,
        out_features: int,
        in_features: int,
        rank: int = 8,
        alpha: float = 16.0,
        *,
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_rank(rank, alpha)
        self.out_features, self.in_features = int(out_features), int(in_features)
        self.rank, self.alpha = int(rank), float(alpha)
        self.scaling = self.alpha / self.rank
        kw = {"device": device, "dtype": dtype}
        self.lora_A = torch.nn.Parameter(torch.empty(self.rank, self.in_features, **kw))
        self.lora_B = torch.nn.Parameter(torch.empty(self.out_features, self.rank, **kw))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        torch.nn.init.zeros_(self.lora_B)

    def delta(self) -> Tensor:
        r""":math:`\frac{\alpha}{r} B A`, the change this adapter makes to the weight."""
        return (self.lora_B @ self.lora_A) * self.scaling

    def forward(self, weight: Tensor) -> Tensor:
        return weight + self.delta()

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.out_features}, {self.in_features}, "
            f"rank={self.rank}, alpha={self.alpha:g})"
        )


def _check_rank(rank: int, alpha: float) -> None:
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ConfigError(f"adapter rank={rank!r}: expected an integer >= 1")
    if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha > 0):
        raise ConfigError(f"adapter alpha={alpha!r}: expected a number > 0")


def _matches(
    model: torch.nn.Module, name: str, targets: Sequence[str | type[torch.nn.Module]]
) -> bool:
    """Whether module ``name`` of ``model`` is targeted: a target is a module class (or its class
    name) that the module or one of its enclosing modules is, or a glob over the module's name."""
    chain = [model]
    parts = name.split(".") if name else []
    for i in range(len(parts)):
        chain.append(model.get_submodule(".".join(parts[: i + 1])))
    for t in targets:
        if isinstance(t, type):
            if any(isinstance(m, t) for m in chain):
                return True
        elif any(type(m).__name__ == t for m in chain) or fnmatch.fnmatchcase(name, t):
            return True
    return False


def _weights_of(module: torch.nn.Module) -> list[str]:
    """The adaptable 2-D weight parameters of one module (its own, not its children's)."""
    if isinstance(module, torch.nn.Linear):
        return ["weight"]
    if isinstance(module, torch.nn.MultiheadAttention):
        return [k for k in _MHA_WEIGHTS if isinstance(module._parameters.get(k), torch.Tensor)]
    return []


def _check_targets(targets: Sequence[str | type[torch.nn.Module]]) -> list:
    if isinstance(targets, (str, type)):
        targets = [targets]
    out = list(targets)
    if not out:
        raise ConfigError("add_adapters: targets is empty; name layer classes or name patterns")
    for t in out:
        if not (isinstance(t, str) and t) and not (
            isinstance(t, type) and issubclass(t, torch.nn.Module)
        ):
            raise ConfigError(
                f"add_adapters: target {t!r} is neither a module class, a class name nor a "
                "name pattern"
            )
    return out


def add_adapters(
    model: torch.nn.Module,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    targets: Sequence[str | type[torch.nn.Module]] = DEFAULT_TARGETS,
) -> list[str]:
    r"""Attach a :class:`LoRA` adapter to every targeted weight of ``model``, in place.

    A ``torch.nn.Linear`` (its ``weight``; the bias is left as it is) or a
    ``torch.nn.MultiheadAttention`` (its packed ``in_proj_weight``, or the separate
    ``q/k/v_proj_weight``; its ``out_proj`` is a ``Linear``) is adapted when one of ``targets``

    - is a module class, or the name of one, that the layer itself or any module enclosing it
      is (``"PartitionAttention"`` adapts ``qkv`` and ``out`` of every partition attention;
      ``"Linear"`` adapts every ``Linear``), or
    - is a glob over the layer's qualified name (``"blocks.*.conv.lin"``).

    The new adapter parameters require gradients; nothing else is changed (freezing is
    :func:`stgraph.tasks.finetune.configure_finetune`'s job). The adapters are created on each
    weight's device and dtype; :math:`A` is drawn from the global torch generator, so seed it for a
    reproducible run.

    Args:
        model: any module, typically an :class:`~stgraph.nn.STFM`.
        rank: :math:`r \ge 1` (default ``8``).
        alpha: :math:`\alpha > 0`, the update is scaled by :math:`\alpha / r` (default ``16``).
        targets: layer classes, class names or name patterns (default :data:`DEFAULT_TARGETS`).

    Returns:
        The names of the adapted weights as in the model's original state dict
        (``"blocks.0.temporal.qkv.weight"``, ...), in module order.

    Raises:
        ConfigError: bad ``rank``/``alpha``/``targets`` or no weight matches ``targets``.
        ValueError: ``model`` already carries adapters (:func:`merge_adapters` it first).
    """
    _check_rank(rank, alpha)
    targets = _check_targets(targets)
    if adapter_names(model):
        raise ValueError(
            f"add_adapters: {type(model).__name__} already has adapters on "
            f"{adapter_names(model)[:3]}...; merge_adapters(model) first"
        )
    chosen: list[tuple[str, torch.nn.Module, str]] = []
    for name, module in model.named_modules():
        weights = _weights_of(module)
        if weights and _matches(model, name, targets):
            chosen.extend((name, module, w) for w in weights)
    if not chosen:
        layers = sorted({type(m).__name__ for m in model.modules() if _weights_of(m)})
        raise ConfigError(
            f"add_adapters: no Linear or MultiheadAttention weight of {type(model).__name__} "
            f"matches targets {[getattr(t, '__name__', t) for t in targets]}; "
            f"its adaptable layers are {layers or 'none'}"
        )
    for _, module, w in chosen:
        weight = getattr(module, w)
        lora = LoRA(*weight.shape, rank, alpha, device=weight.device, dtype=weight.dtype)
        parametrize.register_parametrization(module, w, lora)
    return [f"{name}.{w}" if name else w for name, _, w in chosen]


def _adapted(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module, str]]:
    out = []
    for name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for w, plist in module.parametrizations.items():
            if any(isinstance(p, LoRA) for p in plist):
                out.append((name, module, w))
    return out


def adapter_names(model: torch.nn.Module) -> list[str]:
    """Names of the weights of ``model`` that carry adapters (as in :func:`add_adapters`)."""
    return [f"{n}.{w}" if n else w for n, _, w in _adapted(model)]


def adapter_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters of the adapters (every :math:`A` and :math:`B`), in module order."""
    return [p for m in model.modules() if isinstance(m, LoRA) for p in m.parameters()]


def merge_adapters(model: torch.nn.Module) -> list[str]:
    r"""Fold every adapter into its weight, :math:`W \leftarrow W + \frac{\alpha}{r} B A`, in place.

    The adapted weights become plain parameters again (the same ``Parameter`` objects, so their
    ``requires_grad`` flags are kept), with the original names and shapes: the model's state dict
    is that of an unadapted model and its outputs are those of the adapted one.

    Returns:
        The names of the merged weights (empty when ``model`` had no adapters).
    """
    merged = []
    for name, module, w in _adapted(model):
        parametrize.remove_parametrizations(module, w, leave_parametrized=True)
        merged.append(f"{name}.{w}" if name else w)
    return merged


__all__ = [
    "DEFAULT_TARGETS",
    "LoRA",
    "adapter_names",
    "adapter_parameters",
    "add_adapters",
    "merge_adapters",
]
