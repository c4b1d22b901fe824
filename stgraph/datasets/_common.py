"""Readers and metadata helpers the loaders share (each error names the file and the row)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from stgraph.datasets.files import FILES
from stgraph.errors import DataFormatError


def sources(name: str, paths: Sequence[str], *, citation: str, license: str) -> list[dict]:
    """``meta["sources"]``: one entry per upstream repository, with the files' URLs and hashes."""
    by_repo: dict[str, list[dict]] = {}
    for p in paths:
        f = FILES[p]
        by_repo.setdefault(f.repo, []).append({"path": p, "url": f.url, "sha256": f.sha256})
    return [
        {
            "name": name,
            "repo": repo,
            "commit": FILES[files[0]["path"]].commit,
            "files": files,
            "citation": citation,
            "license": license,
        }
        for repo, files in by_repo.items()
    ]


def step_times(start: str, steps: int, interval: int) -> np.ndarray:
    """``steps`` unix-second stamps from ``start`` (an ISO string read as UTC), ``interval`` apart."""
    t0 = int(pd.Timestamp(start, tz="UTC").timestamp())
    return t0 + interval * np.arange(steps, dtype=np.int64)


def read_json(path: Path, *, keys: Sequence[str]) -> dict:
    """Parse a JSON object and check it has ``keys``."""
    try:
        doc = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFormatError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise DataFormatError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    missing = [k for k in keys if k not in doc]
    if missing:
        raise DataFormatError(f"{path}: missing key(s) {missing}; expected keys {list(keys)}")
    return doc


def as_matrix(
    value: Any, *, path: Path, key: str, shape: tuple[int | None, int | None]
) -> np.ndarray:
    """A rectangular float64 array from a JSON list of lists, with the row named on failure."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        lengths = [len(r) if isinstance(r, list) else -1 for r in value]
        want = max(set(lengths), key=lengths.count)
        bad = next(i for i, n in enumerate(lengths) if n != want)
        raise DataFormatError(
            f"{path}: {key}[{bad}] has {lengths[bad]} values; expected {want} like the other rows"
        ) from None
    if arr.ndim != 2 or any(s is not None and s != arr.shape[i] for i, s in enumerate(shape)):
        raise DataFormatError(f"{path}: {key} has shape {arr.shape}; expected {shape}")
    if not np.isfinite(arr).all():
        r, c = np.argwhere(~np.isfinite(arr))[0]
        raise DataFormatError(f"{path}: {key}[{r}][{c}] is not a finite number")
    return arr


def read_numeric_csv(path: Path, *, header: bool) -> tuple[list[str] | None, np.ndarray]:
    """A CSV of numbers only; every row must have as many fields as the first.

    Returns:
        The header fields (or ``None``) and a float64 ``[rows, columns]`` array.

    Raises:
        DataFormatError: naming the file and the 1-based line of the first short, long or
            non-numeric row.
    """
    hdr_rows = 1 if header else 0
    kw = {"header": 0 if header else None}
    clean = None
    try:
        df = pd.read_csv(path, dtype=np.float64, **kw)  # fast path: a clean file
        values = df.to_numpy(np.float64)
        if np.isfinite(values).all():
            clean = ([str(c) for c in df.columns] if header else None), values
    except pd.errors.EmptyDataError as exc:
        raise DataFormatError(f"{path}: empty file") from exc
    except (ValueError, pd.errors.ParserError):
        pass  # diagnose below
    if clean is not None:
        _check_final_newline(path, data_rows=clean[1].shape[0], header_rows=hdr_rows)
        return clean
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, **kw)
    except pd.errors.ParserError as exc:
        raise DataFormatError(f"{path}: malformed CSV ({exc})") from exc
    raw = df.to_numpy()
    values = df.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = np.argwhere(~np.isfinite(values))
    if not len(bad):
        raise DataFormatError(f"{path}: cannot be read as a CSV of numbers")
    i, j = bad[0]
    empty = int((raw[i] == "").sum())
    what = (
        f"has {raw.shape[1] - empty} of {raw.shape[1]} fields (the row is cut short)"
        if empty
        else f"field {j + 1} is {raw[i, j]!r}, not a number"
    )
    raise DataFormatError(f"{path}: line {i + 1 + hdr_rows} (data row {i}) {what}")


def _check_final_newline(path: Path, *, data_rows: int, header_rows: int) -> None:
    """A file cut at a field boundary parses cleanly; its missing final newline gives it away."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        if f.tell() == 0:
            return
        f.seek(-1, 2)
        if f.read(1) != b"\n":
            raise DataFormatError(
                f"{path}: line {data_rows + header_rows} (data row {data_rows - 1}) is cut short: "
                "the file ends without a final newline (truncated?)"
            )
