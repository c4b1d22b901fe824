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

#: Largest magnitude an STGraph value can hold (``x``, ``pos`` and weights are float32): a larger
#: finite number would become ``inf`` when stored.
FLOAT32_MAX = float(np.finfo(np.float32).max)


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
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise DataFormatError(f"{path}: not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict):
        raise DataFormatError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    missing = [k for k in keys if k not in doc]
    if missing:
        raise DataFormatError(f"{path}: missing key(s) {missing}; expected keys {list(keys)}")
    return doc


def as_matrix(
    value: Any, *, path: Path, key: str, shape: tuple[int | None, int | None]
) -> np.ndarray:
    """A rectangular float64 array from a JSON list of lists, with the row named on failure.

    Raises:
        DataFormatError: a row of another length, a value that is not a number, a non-finite
            value or one beyond the float32 range, or a shape other than ``shape`` (``None``:
            any), naming ``path``, ``key`` and the row (and column).
    """
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise DataFormatError(f"{path}: {_first_bad_entry(value, key)}") from None
    if arr.ndim != 2 or any(s is not None and s != arr.shape[i] for i, s in enumerate(shape)):
        raise DataFormatError(f"{path}: {key} has shape {arr.shape}; expected {shape}")
    check_finite32(arr, path=path, what=lambda r, c: f"{key}[{r}][{c}]")
    return arr


def _first_bad_entry(value: Any, key: str) -> str:
    """Why a JSON list of lists is not a numeric matrix: its first ragged row or non-number."""
    if not isinstance(value, list) or not all(isinstance(r, list) for r in value):
        bad = next((i for i, r in enumerate(value) if not isinstance(r, list)), None)
        if not isinstance(value, list) or bad is None:
            return f"{key} must be a list of rows (lists of numbers), got {type(value).__name__}"
        return f"{key}[{bad}] is {value[bad]!r}, not a row (a list of numbers)"
    lengths = [len(r) for r in value]
    want = max(set(lengths), key=lengths.count)
    bad = next((i for i, n in enumerate(lengths) if n != want), None)
    if bad is not None:
        return f"{key}[{bad}] has {lengths[bad]} values; expected {want} like the other rows"
    for i, row in enumerate(value):
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                return f"{key}[{i}][{j}] is {v!r}, not a number"
            if isinstance(v, int) and abs(v) > FLOAT32_MAX:
                return f"{key}[{i}][{j}] = {v} is beyond the float32 range (|v| <= 3.4e38)"
    return f"{key} cannot be read as a matrix of numbers"


def check_finite32(arr: np.ndarray, *, path: Path, what: Any) -> None:
    """Refuse a NaN, an infinity or a value beyond the float32 range in ``arr``.

    Args:
        arr: a 1-D or 2-D float array.
        path: the file, for the message.
        what: ``what(row, column)`` (or ``what(index)`` for 1-D) -> the entry's name in the file.
    """
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(arr) | (np.abs(arr) > FLOAT32_MAX)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        v = arr[where]
        why = "is not a finite number" if not np.isfinite(v) else "is beyond the float32 range"
        raise DataFormatError(
            f"{path}: {what(*where)} = {float(v)!r} {why} ({int(bad.sum())} such value(s))"
        )


def check_range(
    arr: np.ndarray, *, path: Path, what: Any, lo: float | None = None, hi: float | None = None
) -> None:
    """Refuse a value of ``arr`` outside ``[lo, hi]`` (or not finite), naming the first one.

    Args:
        arr: a 1-D or 2-D float array.
        path: the file, for the message.
        what: ``what(row, column)`` (or ``what(index)``) -> the entry's name in the file.
        lo, hi: the bounds (``None``: unbounded).
    """
    check_finite32(arr, path=path, what=what)
    bad = np.zeros(arr.shape, dtype=bool)
    if lo is not None:
        bad |= arr < lo
    if hi is not None:
        bad |= arr > hi
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataFormatError(
            f"{path}: {what(*where)} = {float(arr[where])!r} is outside [{lo}, {hi}] "
            f"({int(bad.sum())} such value(s))"
        )


def read_csv(path: Path, **kwargs: Any) -> pd.DataFrame:
    """``pandas.read_csv`` whose failures (not UTF-8, malformed, empty) name ``path``."""
    try:
        return pd.read_csv(path, **kwargs)
    except UnicodeDecodeError as exc:
        raise DataFormatError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} at offset "
            f"{exc.start})"
        ) from None
    except pd.errors.EmptyDataError:
        raise DataFormatError(f"{path}: empty file") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataFormatError(f"{path}: malformed CSV ({exc})") from None


def numeric_columns(
    df: pd.DataFrame, columns: Sequence[str], *, path: Path, header_rows: int = 1
) -> np.ndarray:
    """The float64 ``[rows, len(columns)]`` values of ``columns``; the first cell that is not a
    finite number within the float32 range is named by line and column."""
    values = df[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(values) | (np.abs(values) > FLOAT32_MAX)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{path}: line {i + 1 + header_rows}, column {columns[j]!r}: "
            f"{df[columns[j]].iloc[i]!r} is not a finite number ({int(bad.sum())} such cell(s))"
        )
    return values


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
        pass  # diagnose below (UnicodeDecodeError is a ValueError: read_csv names it below)
    if clean is not None:
        _check_final_newline(path, data_rows=clean[1].shape[0], header_rows=hdr_rows)
        check_finite32(
            clean[1], path=path, what=lambda i, j: f"line {i + 1 + hdr_rows}, field {j + 1}"
        )
        return clean
    df = read_csv(path, dtype=str, keep_default_na=False, **kw)
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
