"""Reading the registry's pickles: only after their sha256 matched, and only numpy + builtins.

Loading a pickle runs code, so the registry unpickles nothing but the exact files of
``MANIFEST.md`` (their sha256 is checked first, in :mod:`stgraph.datasets.files`). As a second
guard, the unpickler below resolves only the few globals those files use (numpy array
reconstruction); anything else is refused with :class:`~stgraph.errors.DataFormatError`.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from stgraph.errors import DataFormatError

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


def load_verified_pickle(data: bytes | Path, *, source: str, encoding: str = "ASCII") -> Any:
    """Unpickle ``data`` (bytes or a path) that the caller has already sha256-verified.

    Args:
        data: the pickle's bytes, or the path of a verified file.
        source: the file's name, for error messages.
        encoding: ``"latin1"`` for Python-2 pickles holding numpy arrays (DCRNN's ``adj_mx.pkl``).
    """
    raw = Path(data).read_bytes() if isinstance(data, Path) else data
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(raw), source=source, encoding=encoding).load()
    except DataFormatError:
        raise
    except Exception as exc:  # a corrupt pickle (only reachable with a matching sha256: unlikely)
        raise DataFormatError(f"{source}: cannot unpickle ({type(exc).__name__}: {exc})") from exc
