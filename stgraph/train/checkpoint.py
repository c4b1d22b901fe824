"""Checkpoint directories: ``config.yaml``, ``model.safetensors``, optimizer state, ``metrics.json``.

Layout of a run directory (every file written atomically)::

    config.yaml          the validated training config
    model.safetensors    weights and buffers of the selected (best-validation) model
    resume/              everything needed to continue after the last finished epoch, swapped in
                         as one directory (so its files always belong to the same epoch):
      last.safetensors     weights after that epoch
      ema.safetensors      their moving average (only with ``train.ema_decay``)
      optimizer.pt         optimizer state + torch RNG state (tensors and plain containers
                           only: read with weights_only=True)
      trainer_state.json   epoch, best validation score, epochs without improvement, finished
    log.csv              one row per epoch
    metrics.json         test metrics with the protocol, written by evaluation
    .stgraph.lock        while a run writes the directory: its pid (:mod:`stgraph.utils.lock`)

A run holds the directory's lock from start to end (:func:`open_run`), which also puts back a
``resume/`` that a crash left moved aside and deletes the temp files of interrupted writes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stgraph.errors import CheckpointError
from stgraph.utils.atomic import (
    atomic_dir,
    atomic_path,
    atomic_write_text,
    recover_dir,
    remove_stale,
)
from stgraph.utils.lock import RunLock

MODEL_FILE = "model.safetensors"
LAST_FILE = "last.safetensors"
EMA_FILE = "ema.safetensors"
OPTIM_FILE = "optimizer.pt"
STATE_FILE = "trainer_state.json"
RESUME_DIR = "resume"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"


def save_weights(module: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``module.state_dict()`` (parameters and buffers) as safetensors, atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    # safetensors refuses tensors that share memory; clone those.
    seen: dict[int, str] = {}
    for k, v in list(state.items()):
        ptr = v.data_ptr() if v.numel() else -1
        if ptr in seen and ptr != -1:
            state[k] = v.clone()
        seen[ptr] = k
    with atomic_path(path) as tmp:
        try:
            save_file(state, str(tmp), metadata={"format": "pt"})
        except SafetensorError as exc:  # e.g. disk full: the previous file stays in place
            raise OSError(
                f"{path}: cannot write the weights ({exc}); the previous file is kept"
            ) from exc
    return Path(path)


def load_weights(
    module: torch.nn.Module,
    path: str | os.PathLike,
    *,
    strict: bool = True,
    params_only: bool = False,
) -> torch.nn.Module:
    """Load safetensors weights into ``module``.

    Buffers whose shape depends on the data (fitted statistics: scaler means, lookup tables) are
    resized to the stored shape first; parameters must match exactly. With ``params_only`` only
    the learned parameters are loaded and the module keeps the statistics it was fitted with (a
    model moved to another data set keeps that data set's scaler).
    """
    state = read_weights(path)
    if params_only:
        names = dict(module.named_parameters())
        missing = sorted(set(names) - set(state))
        if missing:
            raise KeyError(
                f"{path}: parameters {missing[:5]} missing; was it saved from this model?"
            )
        try:
            module.load_state_dict({k: v for k, v in state.items() if k in names}, strict=False)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights do not fit this model ({exc})") from None
        return module
    params = dict(module.named_parameters())
    for name, buf in list(module.named_buffers()):
        if name in state and name not in params and tuple(buf.shape) != tuple(state[name].shape):
            owner = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            setattr(owner, name.rsplit(".", 1)[-1], torch.empty_like(state[name]))
    try:
        module.load_state_dict(state, strict=strict)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"{path}: weights do not fit this model (saved from another model or config?): "
            f"{' '.join(line.strip() for line in first[:3])[:400]}"
        ) from None
    return module


def read_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors weights file.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: the file is truncated or not safetensors.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such weights file")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot be read as safetensors weights ({exc})") from exc


def save_optimizer(optimizer: torch.optim.Optimizer, path: str | os.PathLike) -> Path:
    """Optimizer state and the torch RNG state, loadable with ``weights_only=True``."""
    payload = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state()}
    buf = io.BytesIO()
    torch.save(payload, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return Path(path)


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | os.PathLike) -> None:
    """Restore what :func:`save_optimizer` wrote (``torch.load(weights_only=True)``)."""
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: cannot be read as an optimizer state ({exc})") from exc
    optimizer.load_state_dict(payload["optimizer"])
    torch.set_rng_state(payload["torch_rng"])


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """JSON with NaN written as null, atomically."""
    return atomic_write_text(path, json.dumps(_nan_to_none(obj), indent=2) + "\n")


def _nan_to_none(obj: Any) -> Any:
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def save_resume(
    run_dir: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None,
    state: dict[str, Any],
    averaged: torch.nn.Module | None = None,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """Write ``resume/`` (weights, optimizer + RNG state, trainer state, the moving average of
    the weights when training keeps one, and ``extra`` files by name, e.g. a sampler's state)
    as one atomic swap."""
    target = Path(run_dir) / RESUME_DIR
    with atomic_dir(target) as tmp:
        save_weights(model, tmp / LAST_FILE)
        if averaged is not None:
            save_weights(averaged, tmp / EMA_FILE)
        if optimizer is not None:
            save_optimizer(optimizer, tmp / OPTIM_FILE)
        for name, data in (extra or {}).items():
            (tmp / name).write_bytes(data)
        write_json(tmp / STATE_FILE, state)
    return target


def load_resume(
    run_dir: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    averaged: torch.nn.Module | None = None,
) -> None:
    """Restore model, optimizer (and the moving average of the weights) from ``resume/``."""
    d = Path(run_dir) / RESUME_DIR
    load_weights(model, d / LAST_FILE)
    load_optimizer(optimizer, d / OPTIM_FILE)
    if averaged is not None:
        if not (d / EMA_FILE).is_file():
            raise FileNotFoundError(
                f"{d / EMA_FILE}: the run keeps a moving average of the weights but "
                "its resume state has none"
            )
        load_weights(averaged, d / EMA_FILE)


def read_state(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The trainer state of a run directory, or ``None`` if it has none."""
    p = Path(run_dir) / RESUME_DIR / STATE_FILE
    if not p.is_file():
        return None
    try:
        state = json.loads(p.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{p}: not a JSON trainer state ({exc})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{p}: expected a JSON object, got {type(state).__name__}")
    return state


@contextlib.contextmanager
def open_run(run_dir: str | os.PathLike, command: str) -> Iterator[Path]:
    """Hold ``run_dir`` for one run: take its lock (a second live writer is refused with
    :class:`~stgraph.errors.RunLockedError`), put back a ``resume/`` a crash left moved aside,
    and delete temp files interrupted writes left behind (said on stderr)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: exists and is not a directory; output.dir must be one")
    created = not run_dir.exists()
    try:
        with RunLock(run_dir, command):
            yield _tidy(run_dir)
    finally:
        if created and run_dir.is_dir() and not any(run_dir.iterdir()):
            with contextlib.suppress(OSError):  # another run may have just taken it
                run_dir.rmdir()  # a run that failed before writing anything leaves nothing


def _tidy(run_dir: Path) -> Path:
    """Under the lock: put back a moved-aside ``resume/``, delete interrupted writes' temps."""
    if recover_dir(run_dir / RESUME_DIR):
        print(
            f"{run_dir}: put back {RESUME_DIR}/, moved aside by an interrupted swap",
            file=sys.stderr,
        )
    removed = remove_stale(run_dir)
    if removed:
        print(
            f"{run_dir}: removed {len(removed)} leftover(s) of interrupted writes: "
            f"{', '.join(removed[:5])}",
            file=sys.stderr,
        )
    return run_dir
