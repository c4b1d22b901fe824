"""Reading the registry's pickles: only after their sha256 matched, and only numpy + builtins.

Loading a pickle runs code, so the registry unpickles nothing but the exact files of
``MANIFEST.md``. The file is read once, the sha256 of *those bytes* is checked
(:func:`stgraph.datasets.files.read_verified_bytes`, never the per-``(path, size, mtime)`` memory of
:func:`~stgraph.datasets.files.verify_file`) and the same in-memory buffer is unpickled: nothing can
change between the check and the load. As a second guard, the unpickler below resolves only the
few globals those files use (numpy array reconstruction); anything else is refused with
:class:`~stgraph.errors.DataFormatError`.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

from stgraph.datasets.files import read_verified_bytes, registry_sha256
from stgraph.errors import ChecksumError, DataFormatError

_MODULES = {
    "numpy",
    "numpy.core.multiarray",
    "numpy._core.multiarray",
    "numpy.core._multiarray_umath",
    "numpy._core._multiarray_umath",
}
_NAMES = {"_reconstruct", "scalar", "ndarray", "dtype"}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, *, source: str, **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if module not in _MODULES or name not in _NAMES:
            raise DataFormatError(
                f"{self._source}: the pickle references {module}.{name}; only numpy arrays are "
                "expected in the registry's pickles — refusing to load it"
            )
        if module.startswith("numpy.core."):  # numpy >= 2 moved it; avoid the deprecation path
            module = module.replace("numpy.core.", "numpy._core.", 1)
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError):
            return super().find_class(module.replace("numpy._core", "numpy.core"), name)


def load_verified_pickle(
    data: bytes | Path,
    *,
    source: str,
    encoding: str = "ASCII",
    sha256: str | None = None,
    member: str | None = None,
) -> Any:
    """Unpickle a registry pickle from bytes whose sha256 was checked, with the numpy-only unpickler.

    Args:
        data: a path, or bytes. A path is read **once**; the sha256 of those bytes must equal
            ``sha256`` (default: the registry's sha256 for that file, matched by its path under
            the data root) and the same buffer is unpickled. Bytes are checked against
            ``sha256`` when given; without it they must come from a buffer the caller verified
            itself (e.g. :func:`~stgraph.datasets.files.read_verified_bytes`).
        source: the file's name, for error messages.
        encoding: ``"latin1"`` for Python-2 pickles holding numpy arrays (DCRNN's ``adj_mx.pkl``).
        sha256: the expected hex digest of ``data`` (the archive's, with ``member``).
        member: the pickle is this member of the zip archive ``data`` (read from the verified
            buffer, nothing extracted).

    Raises:
        ChecksumError: the bytes do not match the expected sha256 (nothing is unpickled).
        ValueError: ``data`` is a path of no registry file and no ``sha256`` was given.
        DataFormatError: the pickle (or archive) is corrupt or references non-numpy globals.
    """
    if isinstance(data, Path):
        if sha256 is None:
            known = registry_sha256(data)
            if known is None:
                raise ValueError(
                    f"{data}: not a registry file and no sha256 given; a pickle is only loaded "
                    "after its sha256 matched"
                )
            name, sha256 = known
        else:
            name = data.name
        raw = read_verified_bytes(data, sha256, name=name)
    else:
        raw = bytes(data)
        if sha256 is not None:
            actual = hashlib.sha256(raw).hexdigest()
            if actual != sha256.strip().lower():
                raise ChecksumError(
                    f"{source}: sha256 mismatch — expected {sha256}, got {actual} "
                    f"({len(raw)} bytes); not unpickled"
                )
    if member is not None:
        raw = _zip_member(raw, member, source=source)
        source = f"{source}:{member}"
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(raw), source=source, encoding=encoding).load()
    except DataFormatError:
        raise
    except Exception as exc:  # a corrupt pickle (only reachable with a matching sha256: unlikely)
        raise DataFormatError(f"{source}: cannot unpickle ({type(exc).__name__}: {exc})") from exc


def _zip_member(raw: bytes, member: str, *, source: str) -> bytes:
    """The bytes of ``member`` of the zip archive held in ``raw`` (in memory)."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            return zf.read(member)
    except KeyError:
        raise DataFormatError(f"{source}: archive has no member {member!r}") from None
    except zipfile.BadZipFile as exc:
        raise DataFormatError(f"{source}: not a valid zip archive ({exc})") from exc
