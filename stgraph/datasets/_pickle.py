"""Reading the registry's pickles: :func:`stgraph.utils.readers.load_verified_pickle` with the
registry's sha256 of the file as the default digest.

Loading a pickle runs code, so the registry unpickles nothing but the exact files of
``MANIFEST.md``: the file is read once, the sha256 of *those bytes* is checked (never the
per-``(path, size, mtime)`` memory of :func:`~stgraph.datasets.files.verify_file`) and the same
buffer is unpickled with the numpy-only unpickler.
"""

from __future__ import annotations

from pathlib import Path

from stgraph.datasets.files import registry_sha256
from stgraph.utils import readers


def load_verified_pickle(
    data: bytes | Path,
    *,
    source: str,
    encoding: str = "ASCII",
    sha256: str | None = None,
    member: str | None = None,
) -> object:
    """Unpickle a registry pickle (see :func:`stgraph.utils.readers.load_verified_pickle`).

    Args:
        data: a path, or bytes. For a path without ``sha256`` the expected digest is the
            registry's for that file, matched by its path under the data root.
        source: the file's name, for error messages.
        encoding: ``"latin1"`` for Python-2 pickles holding numpy arrays (DCRNN's ``adj_mx.pkl``).
        sha256: the expected hex digest of ``data`` (the archive's, with ``member``).
        member: the pickle is this member of the zip archive ``data``.

    Raises:
        ChecksumError: the bytes do not match the expected sha256 (nothing is unpickled).
        ValueError: ``data`` is a path of no registry file and no ``sha256`` was given.
        DataFormatError: the pickle (or archive) is corrupt or references non-numpy globals.
    """
    if isinstance(data, Path) and sha256 is None:
        known = registry_sha256(data)
        if known is None:
            raise ValueError(
                f"{data}: not a registry file and no sha256 given; a pickle is only loaded "
                "after its sha256 matched"
            )
        sha256 = known[1]
    return readers.load_verified_pickle(
        data, source=source, sha256=sha256, encoding=encoding, member=member
    )
