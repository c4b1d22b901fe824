"""File readers shared by the registry (``stgraph.datasets``) and the builders (``graph_builders``).

The registry must not import ``graph_builders`` and the builders must not import the registry's
internals, so the readers both need live here, each with its convention:

- :func:`sha256_of`: the hex sha256 of a file's bytes (lowercase), read in 1 MiB chunks. Expected
  digests are compared case-insensitively, surrounding white space ignored.
- :func:`read_verified_bytes`: a file's bytes, read **once**, returned only if *those* bytes have
  the expected sha256 (nothing is remembered between calls).
- :func:`load_verified_pickle`: a pickle unpickled only from bytes whose sha256 matched, and only
  with an unpickler that resolves the few numpy globals array pickles use; anything else is
  refused (:class:`~stgraph.errors.DataFormatError`). Loading a pickle runs code, so only known
  files are unpickled, and nothing can change between the check and the load.
- :func:`read_uctb`: a UCTB Urban-Dataset node data set (a zip holding one pickle) as sensor
  locations, wide readings (UCTB's missing marker ``-1`` becomes NaN) and facts.
- :func:`read_node_link`: a networkx node-link JSON with a series per node (PyTorch Geometric
  Temporal's format) as locations (the nodes' ``lon``/``lat`` as stored, in ``x``/``y``), wide
  readings and links.
- :func:`normalize_ids`: sensor ids as strings, integral floats without ``.0``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from stgraph.errors import ChecksumError, DataFormatError

__all__ = [
    "load_verified_pickle",
    "normalize_ids",
    "read_node_link",
    "read_uctb",
    "read_verified_bytes",
    "sha256_of",
    "verify_bytes",
    "zip_member",
]

_CHUNK = 1 << 20


# ---------------------------------------------------------------------------------- checksums
def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 hex digest (lowercase) of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_bytes(raw: bytes, expected: str, *, source: str, action: str = "loaded") -> None:
    """Raise :class:`ChecksumError` unless ``raw`` has sha256 ``expected`` (any case).

    Args:
        raw: the bytes.
        expected: hex digest.
        source: the file's name, for the message.
        action: what was not done, for the message ("loaded", "unpickled").
    """
    actual = hashlib.sha256(raw).hexdigest()
    if actual != expected.strip().lower():
        raise ChecksumError(
            f"{source}: sha256 mismatch — expected {expected}, got {actual} ({len(raw)} bytes). "
            f"The file was not {action}; replace it with the original (or delete it so that it "
            "is downloaded again)."
        )


def read_verified_bytes(
    path: str | os.PathLike, expected: str, *, name: str | None = None
) -> bytes:
    """The bytes of ``path``, read once and returned only if *their* sha256 is ``expected``.

    Nothing is remembered: the check is on the very buffer the caller goes on to use (for pickles:
    the buffer that is unpickled), so a file swapped or modified after an earlier check (even with
    the same size and mtime) is caught.

    Raises:
        ChecksumError: the bytes do not match ``expected`` (the message names ``path`` and
            ``name``).
    """
    path = Path(path)
    raw = path.read_bytes()
    where = f"{path}" if name is None or name == path.name else f"{path} ({name})"
    verify_bytes(raw, expected, source=where)
    return raw


def zip_member(data: bytes | str | os.PathLike, member: str, *, source: str | None = None) -> bytes:
    """The bytes of ``member`` of a zip archive, given as bytes or a path (nothing extracted).

    Raises:
        DataFormatError: the archive is not a zip, or has no ``member``.
    """
    name = source or (str(data) if not isinstance(data, bytes) else "<bytes>")
    src = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        with zipfile.ZipFile(src) as zf:
            return zf.read(member)
    except KeyError:
        raise DataFormatError(f"{name}: archive has no member {member!r}") from None
    except zipfile.BadZipFile as exc:
        raise DataFormatError(f"{name}: not a valid zip archive ({exc})") from exc


# ---------------------------------------------------------------------------------- pickles
_NUMPY_MODULES = {
    "numpy",
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core._multiarray_umath",
    "numpy._core._multiarray_umath",
}
_NUMPY_NAMES = {"_reconstruct", "scalar", "ndarray", "dtype"}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Resolves the numpy array globals and nothing else."""

    def __init__(self, file: io.BytesIO, *, source: str, encoding: str) -> None:
        super().__init__(file, encoding=encoding)
        self._source = source

    def find_class(self, module: str, name: str) -> object:
        if module not in _NUMPY_MODULES or name not in _NUMPY_NAMES:
            raise DataFormatError(
                f"{self._source}: the pickle references {module}.{name}; only numpy arrays are "
                "expected — refusing to load it"
            )
        if module.startswith("numpy.core."):  # numpy >= 2 moved it; avoid the deprecation path
            module = module.replace("numpy.core.", "numpy._core.", 1)
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return super().find_class(module.replace("numpy._core", "numpy.core"), name)


def load_verified_pickle(
    data: bytes | str | os.PathLike,
    *,
    source: str,
    sha256: str | None = None,
    encoding: str = "ASCII",
    member: str | None = None,
) -> object:
    """Unpickle numpy arrays (in lists, dicts, tuples) from bytes whose sha256 matched.

    Args:
        data: a path, or bytes. A path is read **once** and needs ``sha256``: the digest of those
            bytes must match before the same buffer is unpickled. Bytes are checked against
            ``sha256`` when given; without it they must come from a buffer the caller verified
            itself (e.g. with :func:`read_verified_bytes`).
        source: the file's name, for error messages.
        sha256: the expected hex digest of ``data`` (the archive's, with ``member``).
        encoding: ``"latin1"`` for Python-2 pickles holding numpy arrays (DCRNN's ``adj_mx.pkl``).
        member: the pickle is this member of the zip archive ``data`` (read from the verified
            buffer, nothing extracted).

    Raises:
        ChecksumError: the bytes do not match ``sha256`` (nothing is unpickled).
        ValueError: ``data`` is a path and no ``sha256`` was given.
        DataFormatError: the pickle (or archive) is corrupt or references non-numpy globals.
    """
    if isinstance(data, (bytes, bytearray)):
        raw = bytes(data)
        if sha256 is not None:
            verify_bytes(raw, sha256, source=source, action="unpickled")
    elif sha256 is None:
        raise ValueError(
            f"{data}: no sha256 given; a pickle is only loaded after its sha256 matched"
        )
    else:
        raw = read_verified_bytes(data, sha256)
    if member is not None:
        raw = zip_member(raw, member, source=source)
        source = f"{source}:{member}"
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(raw), source=source, encoding=encoding).load()
    except DataFormatError:
        raise
    except Exception as exc:  # a corrupt pickle (only reachable with a matching sha256: unlikely)
        raise DataFormatError(f"{source}: cannot unpickle ({type(exc).__name__}: {exc})") from exc


# ---------------------------------------------------------------------------------- sensors
def normalize_ids(values: Iterable[object]) -> list[str]:
    """Sensor ids as strings; integral floats lose their ``.0`` (``773869.0`` -> ``"773869"``)."""
    out = []
    for v in values:
        if isinstance(v, (float, np.floating)) and np.isfinite(v) and float(v).is_integer():
            out.append(str(int(v)))
        else:
            out.append(str(v).strip())
    return out


def _uctb_pickle(path: Path, sha256: str) -> dict:
    raw = read_verified_bytes(path, sha256)
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = [m for m in zf.namelist() if m.endswith(".pkl")]
            if len(members) != 1:
                raise DataFormatError(f"{path}: expected one .pkl inside, found {zf.namelist()}")
    except zipfile.BadZipFile as exc:
        raise DataFormatError(f"{path}: not a valid zip archive ({exc})") from exc
    data = load_verified_pickle(raw, source=str(path), member=members[0])  # the verified buffer
    if not isinstance(data, dict):
        raise DataFormatError(f"{path}: not a UCTB data set (a {type(data).__name__})")
    return data


def read_uctb(
    path: str | os.PathLike, *, sha256: str
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, object]]:
    """Read a UCTB Urban-Dataset node data set (``*.zip`` holding one pickle), e.g. Melbourne.

    The zip is read once; its sha256 must equal ``sha256`` before anything is unpickled, and the
    pickle is taken from that same buffer with the numpy-only unpickler
    (:func:`load_verified_pickle`).

    Returns:
        ``(locations, readings, info)``: locations with ``sensor_id, install_date, latitude,
        longitude, name`` (one row per ``StationInfo`` entry); readings wide (``time`` + one
        column per sensor id, float64; the UCTB missing marker ``-1`` becomes NaN; ``time`` from
        ``TimeRange[0]`` every ``TimeFitness`` minutes, naive wall clock); info =
        ``{"time_range", "interval_min", "missing_marked"}``.

    Raises:
        ChecksumError: the zip's bytes do not match ``sha256`` (nothing is unpickled).
        DataFormatError: not a zip holding exactly one ``.pkl``, not a UCTB node data set, or
            counts below ``-1``.
    """
    path = Path(path)
    data = _uctb_pickle(path, sha256)
    try:
        node = data["Node"]
        counts = np.asarray(node["TrafficNode"], dtype=np.float64)
        stations = list(node["StationInfo"])
        t0, _t1 = data["TimeRange"]
        minutes = int(data["TimeFitness"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(
            f"{path}: not a UCTB node data set (expected TimeRange, TimeFitness, "
            f"Node.TrafficNode, Node.StationInfo; {type(exc).__name__}: {exc})"
        ) from None
    if counts.ndim != 2 or counts.shape[1] != len(stations):
        raise DataFormatError(
            f"{path}: TrafficNode has shape {counts.shape} for {len(stations)} stations in "
            "StationInfo"
        )
    if not np.isfinite(counts).all() or (counts < -1).any():
        raise DataFormatError(
            f"{path}: TrafficNode holds non-finite counts or counts below -1 (only -1 may mark "
            "a missing value)"
        )
    locations = _uctb_stations(path, stations)
    values = counts.copy()
    missing = values == -1
    values[missing] = np.nan
    readings = pd.DataFrame(values, columns=locations["sensor_id"].tolist())
    readings.insert(0, "time", _uctb_times(path, t0, minutes, len(values)))
    info = {
        "time_range": [str(t) for t in data["TimeRange"]],
        "interval_min": minutes,
        "missing_marked": int(missing.sum()),
    }
    return locations, readings, info


def _uctb_stations(path: Path, stations: list) -> pd.DataFrame:
    """UCTB ``StationInfo`` rows ``[id, install_date, lat, lon, name]`` as a table (checked)."""
    try:
        rows = [(s[0], s[1], float(s[2]), float(s[3]), str(s[4])) for s in stations]
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(
            f"{path}: StationInfo rows must be [id, install_date, latitude, longitude, name] "
            f"({type(exc).__name__}: {exc})"
        ) from None
    table = pd.DataFrame(
        rows, columns=["sensor_id", "install_date", "latitude", "longitude", "name"]
    )
    lat, lon = table["latitude"].to_numpy(), table["longitude"].to_numpy()
    bad = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}: StationInfo[{i}] has latitude {lat[i]}, longitude {lon[i]}: not a position"
        )
    table["sensor_id"] = normalize_ids(table["sensor_id"])
    return table


def _uctb_times(path: Path, t0: object, minutes: int, steps: int) -> pd.DatetimeIndex:
    if minutes < 1:
        raise DataFormatError(f"{path}: TimeFitness = {minutes}; expected minutes >= 1")
    try:
        return pd.date_range(pd.Timestamp(t0), periods=steps, freq=f"{minutes}min")
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataFormatError(f"{path}: TimeRange[0] = {t0!r} is not a time ({exc})") from None


def read_node_link(
    path: str | os.PathLike, *, values_key: str = "y"
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Read a networkx node-link JSON with a series per node (PyTorch Geometric Temporal style).

    Returns:
        ``(locations, readings, links)``: ``locations`` = ``sensor_id, x, y`` (the node's
        ``lon``/``lat`` fields as stored — check their CRS); ``readings`` wide (one float64
        column per node id, one row per step, no time column); ``links`` = the file's link
        records (``source, target, weight``, ids as in the file).

    Raises:
        DataFormatError: not a node-link JSON, a node without ``id``/``lon``/``lat``/
            ``values_key``, repeated node ids, or series of different lengths.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_bytes())
        nodes = doc["nodes"]
        links = doc.get("links", doc.get("edges", []))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise DataFormatError(f"{path}: not a node-link JSON ({exc})") from exc
    need = {"id", "lon", "lat", values_key}
    missing = [i for i, n in enumerate(nodes) if not isinstance(n, dict) or not need <= set(n)]
    if missing:
        raise DataFormatError(
            f"{path}: node {missing[0]} lacks one of 'id', 'lon', 'lat', {values_key!r}"
        )
    ids = normalize_ids(n["id"] for n in nodes)
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataFormatError(f"{path}: node id {dup!r} is repeated")
    locations = pd.DataFrame(
        {"sensor_id": ids, "x": [n["lon"] for n in nodes], "y": [n["lat"] for n in nodes]}
    )
    lengths = {len(n[values_key]) for n in nodes}
    if len(lengths) != 1:
        raise DataFormatError(
            f"{path}: series {values_key!r} have different lengths {sorted(lengths)}"
        )
    try:
        series = np.array([n[values_key] for n in nodes], dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataFormatError(f"{path}: nodes[*].{values_key} are not numbers ({exc})") from None
    return locations, pd.DataFrame(series.T, columns=ids), pd.DataFrame(links)
