r"""Few-shot fine-tuning of a pretrained backbone: what is trained, and on how much data.

:func:`configure_finetune` sets which parameters of an :class:`~stgraph.nn.STFM` (or of a model
holding one, such as :class:`~stgraph.tasks.STFMForecaster`) train, by mode:

- ``head``: only the forecast readout (:data:`HEAD_MODULES`): the modules that
  :meth:`STFM.forecast` uses and :meth:`STFM.encode` does not, so the encoder's tokens stay
  bit-identical whatever the head learns. That is the :class:`~stgraph.nn.ForecastHead` (the
  attention from the target steps' time queries to the tokens, the per-variable readout and the
  decoder-side diffusion hops) and, with ``anchor="blend"``, the two layers that weigh the last
  value against the window mean (``anchor_query``, ``anchor_bias``). Not in the head, because the
  encoder uses them too: the :class:`~stgraph.nn.TimeEncoding` (it also encodes the input
  patches' times), the :class:`~stgraph.nn.VariableNameEncoder` (the tokenizer reads the same
  variable embeddings) and ``final_norm`` (the last step of :meth:`STFM.encode`, shared by every
  head).
- ``adapter``: LoRA adapters (:func:`stgraph.nn.adapters.add_adapters`) on the attention and
  message-passing layers, and only their parameters train; every pretrained weight stays frozen.
- ``full``: every parameter.

:func:`parse_budget` reads a few-shot budget (``1d``, ``10%``, ``500 steps``, ``1d, 500 steps``):
how much of the target's training part the run may see and/or how many optimiser steps it takes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError
from stgraph.nn.adapters import DEFAULT_TARGETS, LoRA, adapter_names, add_adapters
from stgraph.nn.models.stfm import STFM

#: The fine-tuning modes of :func:`configure_finetune`.
FINETUNE_MODES = ("head", "adapter", "full")

#: The attributes of an :class:`~stgraph.nn.STFM` that make up its forecast readout (``head``
#: mode); the ones a model does not have (``anchor_*`` without ``anchor="blend"``) are skipped.
HEAD_MODULES = ("forecast_head", "anchor_query", "anchor_bias")


def find_backbone(model: torch.nn.Module) -> tuple[str, STFM]:
    """The :class:`~stgraph.nn.STFM` in ``model`` and its qualified name (``""`` for the model
    itself, ``"backbone"`` in an :class:`~stgraph.tasks.STFMForecaster`).

    Raises:
        ConfigError: ``model`` holds no STFM, or more than one.
    """
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, STFM)]
    if len(found) != 1:
        raise ConfigError(
            f"{type(model).__name__}: expected one stgraph.nn.STFM inside, found {len(found)}"
        )
    return found[0]


def head_modules(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The forecast-readout modules of the STFM in ``model`` by qualified name (see
    :data:`HEAD_MODULES`)."""
    prefix, backbone = find_backbone(model)
    out = {}
    for attr in HEAD_MODULES:
        module = getattr(backbone, attr, None)
        if isinstance(module, torch.nn.Module):
            out[f"{prefix}.{attr}" if prefix else attr] = module
    return out


def configure_finetune(
    model: torch.nn.Module,
    mode: str,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    targets: Sequence[str | type[torch.nn.Module]] = DEFAULT_TARGETS,
) -> list[torch.nn.Parameter]:
    """Set ``requires_grad`` on every parameter of ``model`` for fine-tuning ``mode``, in place.

    Args:
        model: an :class:`~stgraph.nn.STFM` or a module holding one (``adapter`` and ``full``
            work on any module).
        mode: ``"head"``, ``"adapter"`` or ``"full"`` (see the module docstring).
        rank, alpha, targets: the adapters of ``adapter`` mode (see
            :func:`~stgraph.nn.adapters.add_adapters`); a model that already carries adapters
            (a resumed run adds them before loading its weights) keeps them, and then ``rank``
            and ``alpha`` must be theirs.

    Returns:
        The parameters to optimise, in ``model.parameters()`` order (deterministic, so an
        optimizer state saved by one run loads into the next). In ``head`` and ``full`` mode the
        parameters of adapters already attached are frozen and trained respectively.

    Raises:
        ConfigError: an unknown mode, adapters of another rank/alpha, ``head`` or ``adapter``
            mode on a model without one STFM.
        ValueError: from :func:`~stgraph.nn.adapters.add_adapters`: a bad ``rank``/``alpha``,
            no adapter target.
    """
    if mode not in FINETUNE_MODES:
        raise ConfigError(f"fine-tuning mode {mode!r}: expected one of {list(FINETUNE_MODES)}")
    if mode == "adapter":
        if adapter_names(model):
            _check_existing(model, rank, alpha)
        else:
            add_adapters(model, rank=rank, alpha=alpha, targets=targets)
        trainable = {id(p) for m in model.modules() if isinstance(m, LoRA) for p in m.parameters()}
    elif mode == "head":
        trainable = {id(p) for m in head_modules(model).values() for p in m.parameters()}
        if not trainable:
            raise ConfigError(f"{type(model).__name__}: its STFM has no forecast-head parameters")
    else:
        trainable = {id(p) for p in model.parameters()}
    out = []
    for p in model.parameters():
        p.requires_grad_(id(p) in trainable)
        if id(p) in trainable:
            out.append(p)
    return out


def _check_existing(model: torch.nn.Module, rank: int, alpha: float) -> None:
    found = {(m.rank, m.alpha) for m in model.modules() if isinstance(m, LoRA)}
    if found != {(int(rank), float(alpha))}:
        raise ConfigError(
            f"configure_finetune: the model already carries adapters with (rank, alpha) "
            f"{sorted(found)}, not ({rank}, {alpha:g}); pass the same, or merge_adapters first"
        )


# ---------------------------------------------------------------------------------- budgets

#: Seconds of each duration unit a budget may name (months and years vary in length: use days).
DURATION_UNITS = {
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86_400,
    "day": 86_400,
    "days": 86_400,
    "w": 604_800,
    "week": 604_800,
    "weeks": 604_800,
}
_UNIT_WORDS = {60: "minute", 3600: "hour", 86_400: "day", 604_800: "week"}
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"
_DATA = re.compile(rf"^{_NUMBER}\s*(%|[a-z]+)$")
_STEPS = re.compile(r"^(\d+)\s*steps?$")
BUDGET_FORMS = (
    "a span of the training part ('1d', '12h', '90min', '1w', '1.5 days'), a share of it "
    "('10%'), a number of optimiser steps ('500 steps'), or a span and steps ('1d, 500 steps')"
)


@dataclass(frozen=True)
class Budget:
    """A few-shot budget (see :func:`parse_budget`).

    Attributes:
        train_steps: time steps of the training part that may be read: the first
            ``train_steps`` of it; ``None`` for all of it.
        max_steps: optimiser steps to run; ``None`` for the training config's own schedule.
        description: the budget in words, with the steps and times it selects.
    """

    train_steps: int | None
    max_steps: int | None
    description: str

    def train_range(self, train_range: tuple[int, int]) -> tuple[int, int]:
        """The step range ``[a, a + train_steps)`` this budget keeps of ``train_range``."""
        a, b = (int(v) for v in train_range)
        return (a, b) if self.train_steps is None else (a, a + self.train_steps)


def parse_budget(
    text: str,
    graph: STGraph,
    train_range: tuple[int, int],
    *,
    window: int | None = None,
) -> Budget:
    """Read a few-shot budget for ``graph``'s training part ``[a, b)``.

    Grammar (case and spaces do not matter)::

        BUDGET := DATA | STEPS | DATA "," STEPS
        DATA   := NUMBER UNIT        a span of time: UNIT in min, h, d, w (or minute(s),
                                     hour(s), day(s), week(s)), converted with the graph's
                                     interval and rounded down to whole steps
                | NUMBER "%"         a share of the training part, rounded down
        STEPS  := INTEGER "steps"    optimiser steps ("step" for one)

    A span or share keeps the **first** steps of the training part: the data-poor case a
    transfer run stands for is a new city that has just started recording ("its first day"),
    and data from the start keeps the budget chronological, so the validation part that follows
    the training part is no closer in time than in a full run. One day of 5-minute data is 288
    steps; the training windows (inputs and targets) must all lie inside them. A bare number is
    refused: it could mean time steps or optimiser steps.

    Args:
        text: the budget.
        graph: the target graph (its ``interval`` converts spans; its ``time`` names dates).
        train_range: the training part ``[a, b)`` in steps.
        window: steps one training window needs (input + horizon); when given, a span or share
            shorter than one window is refused.

    Raises:
        ConfigError: naming the budget and the forms expected, or what does not fit.
    """
    a, b = (int(v) for v in train_range)
    if not 0 <= a < b <= graph.num_steps:
        raise ConfigError(
            f"budget {text!r}: train_range [{a}, {b}) is not a non-empty part of the "
            f"{graph.num_steps}-step series"
        )
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"budget {text!r}: expected {BUDGET_FORMS}")
    parts = [p.strip() for p in text.strip().lower().split(",")]
    data = [p for p in parts if not _STEPS.match(p)]
    steps = [p for p in parts if _STEPS.match(p)]
    if len(parts) > 2 or len(data) > 1 or len(steps) > 1:
        raise ConfigError(f"budget {text!r}: expected {BUDGET_FORMS}")
    max_steps = None
    if steps:
        max_steps = int(_STEPS.match(steps[0]).group(1))
        if max_steps < 1:
            raise ConfigError(f"budget {text!r}: the number of optimiser steps must be >= 1")
    train_steps, what = None, f"the whole training part ({b - a} steps)"
    if data:
        train_steps, what = _data_budget(text, data[0], graph, b - a)
        if window is not None and train_steps < window:
            raise ConfigError(
                f"budget {text!r}: {train_steps} steps are fewer than one training window "
                f"({window} steps of input and horizon); give a longer span"
            )
        what += _dates(graph, a, a + train_steps)
    description = what if max_steps is None else f"{max_steps} optimiser steps on {what}"
    return Budget(train_steps, max_steps, description)


def _data_budget(text: str, part: str, graph: STGraph, length: int) -> tuple[int, str]:
    """``(steps, words)`` of the span or share ``part`` of a training part of ``length`` steps."""
    m = _DATA.match(part)
    if m is None:
        if re.fullmatch(r"\d+", part):
            raise ConfigError(
                f"budget {text!r}: a bare number is ambiguous; write '{part} steps' for "
                f"optimiser steps or a span such as '1d' or '10%' ({BUDGET_FORMS})"
            )
        raise ConfigError(f"budget {text!r}: expected {BUDGET_FORMS}")
    value, unit = float(m.group(1)), m.group(2)
    number = m.group(1)
    if unit == "%":
        if not 0 < value <= 100:
            raise ConfigError(f"budget {text!r}: a share must lie in (0, 100] percent")
        steps = int(length * value / 100 + 1e-9)
        if steps < 1:
            raise ConfigError(
                f"budget {text!r}: {number}% of the {length}-step training part is under one step"
            )
        return steps, f"the first {number}% of the training part ({steps} of {length} steps)"
    if unit not in DURATION_UNITS:
        raise ConfigError(
            f"budget {text!r}: unknown unit {unit!r}; use one of min, h, d, w ({BUDGET_FORMS})"
        )
    interval = graph.interval
    if interval is None:
        raise ConfigError(
            f"budget {text!r}: the graph declares no interval and has no timestamps, so a span "
            "of time cannot be converted to steps; give a share such as '10%'"
        )
    seconds = value * DURATION_UNITS[unit]
    steps = int(math.floor(seconds / interval + 1e-9))
    if steps < 1:
        raise ConfigError(
            f"budget {text!r}: {number} {unit} is shorter than one step of {interval} s"
        )
    if steps > length:
        raise ConfigError(
            f"budget {text!r}: {steps} steps of {interval} s, but the training part has only "
            f"{length}; give a shorter span or a share such as '50%'"
        )
    word = _UNIT_WORDS[DURATION_UNITS[unit]] + ("" if value == 1 else "s")
    return steps, f"the first {number} {word} of the training part ({steps} steps of {interval} s)"


def _dates(graph: STGraph, a: int, b: int) -> str:
    if graph.time is None:
        return ""
    first, last = (pd.Timestamp(int(graph.time[i]), unit="s") for i in (a, b - 1))
    return f", {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"


__all__ = [
    "BUDGET_FORMS",
    "Budget",
    "DURATION_UNITS",
    "FINETUNE_MODES",
    "HEAD_MODULES",
    "configure_finetune",
    "find_backbone",
    "head_modules",
    "parse_budget",
]
