"""Pretrained backbones: ``from_pretrained(path_or_name)`` loads one offline, checked.

A pretrained checkpoint is a directory::

    model.yaml          the STFM options the weights were trained with
    model.safetensors   the weights
    MODEL_CARD.md       corpus, held-out sets, objective mix, steps, the command that regenerates it

Checkpoints shipped with the package live in ``stgraph/checkpoints/<name>/`` and are found by name
(:func:`list_pretrained`); any other directory is given by path (a ``stgraph pretrain`` run
directory is one). Loading builds the model from ``model.yaml`` and refuses weights whose names or
shapes differ from that model's, naming the first differences, so a checkpoint of another
configuration never loads half-way.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from stgraph.errors import CheckpointError

#: Where shipped checkpoints live.
CHECKPOINTS_DIR = Path(__file__).resolve().parent / "checkpoints"
MODEL_OPTIONS_FILE = "model.yaml"
WEIGHTS_FILE = "model.safetensors"


def list_pretrained() -> list[str]:
    """Names of the checkpoints shipped with the package."""
    if not CHECKPOINTS_DIR.is_dir():
        return []
    return sorted(p.name for p in CHECKPOINTS_DIR.iterdir() if (p / WEIGHTS_FILE).is_file())


def resolve_pretrained(path_or_name: str | os.PathLike) -> Path:
    """The checkpoint directory of a shipped name or a path.

    Raises:
        CheckpointError: neither a directory with ``model.safetensors`` nor a shipped name.
    """
    p = Path(path_or_name)
    if p.is_dir():
        if not (p / WEIGHTS_FILE).is_file():
            raise CheckpointError(f"{p}: no {WEIGHTS_FILE}; is it a checkpoint directory?")
        return p
    shipped = CHECKPOINTS_DIR / str(path_or_name)
    if (shipped / WEIGHTS_FILE).is_file():
        return shipped
    raise CheckpointError(
        f"{path_or_name!r}: not a checkpoint directory and not a shipped checkpoint "
        f"(shipped: {list_pretrained() or 'none'})"
    )


def read_options(directory: Path) -> dict:
    """The STFM options of a checkpoint directory (``model.yaml``)."""
    f = directory / MODEL_OPTIONS_FILE
    if not f.is_file():
        raise CheckpointError(f"{directory}: no {MODEL_OPTIONS_FILE} (the model's options)")
    try:
        options = yaml.safe_load(f.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{f}: not readable YAML ({exc})") from None
    if not isinstance(options, dict):
        raise CheckpointError(
            f"{f}: expected a mapping of STFM options, got {type(options).__name__}"
        )
    return options


def architecture_options(path_or_name: str | os.PathLike) -> dict:
    """The STFM options of a checkpoint (a shipped name, a checkpoint directory, or a pretraining
    run directory that has written its ``model.yaml``) without the pretraining-only
    reconstruction readout: the same architecture, for training it from scratch."""
    d = Path(path_or_name)
    options = dict(read_options(d if (d / MODEL_OPTIONS_FILE).is_file() else resolve_pretrained(d)))
    options["tasks"] = [t for t in options.get("tasks") or [] if t != "reconstruction"]
    return options


def check_state(model, state: dict, where: str) -> None:
    """Refuse a state dict whose tensor names or shapes differ from ``model``'s."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = [
        f"{k}: {list(state[k].shape)} in the file, {list(own[k].shape)} in the model"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(
            f"missing {missing[:3]}" + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        )
    if extra:
        problems.append(
            f"unexpected {extra[:3]}" + (f" and {len(extra) - 3} more" if len(extra) > 3 else "")
        )
    if wrong:
        problems.append("shape " + "; ".join(wrong[:3]))
    if problems:
        raise CheckpointError(
            f"{where}: the tensors do not match the model of its config: " + "; ".join(problems)
        )


def from_pretrained(path_or_name: str | os.PathLike):
    """Load a pretrained :class:`~stgraph.nn.STFM` (eval mode) from a directory or shipped name.

    Raises:
        CheckpointError: no such checkpoint, unreadable files, or tensors that do not match the
            model built from ``model.yaml``.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from stgraph.nn import STFM

    directory = resolve_pretrained(path_or_name)
    options = read_options(directory)
    try:
        model = STFM(**options)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(
            f"{directory / MODEL_OPTIONS_FILE}: not STFM options ({exc})"
        ) from None
    weights = directory / WEIGHTS_FILE
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights}: not a readable safetensors file ({exc})") from None
    check_state(model, state, str(weights))
    model.load_state_dict(state)
    return model.eval()


__all__ = [
    "CHECKPOINTS_DIR",
    "architecture_options",
    "check_state",
    "from_pretrained",
    "list_pretrained",
    "resolve_pretrained",
]
