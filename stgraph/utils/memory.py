"""Memory estimates: refuse an allocation that would not fit, with the estimate, before making it.

A builder or windowing step computes the bytes of the arrays it is about to allocate and calls
:func:`check_memory`; above the budget it raises :class:`~stgraph.errors.MemoryBudgetError`
naming what it was building, the estimate and the budget, instead of dying with ``MemoryError``
(or the OOM killer) half-way.

The budget is, in order: the ``budget`` argument, the ``STGRAPH_MEMORY_BUDGET`` environment
variable, or :data:`DEFAULT_SHARE` of the memory available now (``psutil``; ``/proc/meminfo``).
Either form is a size (``"8G"`` = ``"8GiB"``, ``"500M"``, a number of bytes; units are binary)
or a share of the available memory (``"0.25"``, ``0.25``: a number at most 1).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable

import numpy as np

from stgraph.errors import ConfigError, MemoryBudgetError

#: Share of the available memory one step may take when no budget is set.
DEFAULT_SHARE = 0.5
ENV = "STGRAPH_MEMORY_BUDGET"
#: Size units, all binary (``8G`` = ``8GiB`` = 8 * 2**30, as ``graph_builders._inputs`` reads them).
_UNITS = {
    "": 1,
    "b": 1,
    **{p + tail: 2 ** (10 * (i + 1)) for i, p in enumerate("kmgt") for tail in ("", "b", "ib")},
}


def available_bytes() -> int:
    """Memory available to a new allocation now (bytes)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # psutil is optional: read the kernel's figure
        pass
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def format_bytes(n: float) -> str:
    """``2.38 TiB``-style text for a byte count."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} PiB"  # pragma: no cover


def parse_budget(value: str | float | int, *, source: str = "memory budget") -> int:
    """Bytes of a budget given as a size (``"8GiB"``, bytes) or a share of available memory."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number, unit = float(value), ""
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", str(value))
        if m is None or m.group(2).lower() not in _UNITS:
            raise ConfigError(
                f"{source}: cannot read {value!r}; expected a size like '8GiB' or '500MB', or a "
                "share of the available memory like 0.25"
            )
        number, unit = float(m.group(1)), m.group(2).lower()
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"{source}: {value!r} must be positive")
    if unit == "" and number <= 1:
        return int(number * available_bytes())
    return int(number * _UNITS[unit])


def memory_budget(budget: str | float | int | None = None) -> tuple[int, str]:
    """``(bytes, how it was set)`` of the budget (see the module docstring)."""
    if budget is not None:
        return parse_budget(budget), f"budget={budget!r}"
    env = os.environ.get(ENV)
    if env:
        return parse_budget(env, source=ENV), f"{ENV}={env}"
    share = DEFAULT_SHARE
    return int(share * available_bytes()), f"{share:.0%} of the available memory; set {ENV}"


def array_bytes(shape: Iterable[int], dtype: np.dtype | type | str = np.float32) -> int:
    """Bytes of an array of ``shape`` (Python integers: no overflow for absurd shapes)."""
    n = 1
    for s in shape:
        n *= int(s)
    return n * np.dtype(dtype).itemsize


def check_memory(
    what: str, nbytes: int, *, budget: str | float | int | None = None, hint: str = ""
) -> int:
    """Refuse when ``nbytes`` (the estimate of what ``what`` is about to allocate) exceeds the
    budget; returns ``nbytes`` otherwise.

    Raises:
        MemoryBudgetError: naming ``what``, the estimate, the budget and how it was set.
    """
    limit, how = memory_budget(budget)
    if nbytes > limit:
        raise MemoryBudgetError(
            f"{what}: needs about {format_bytes(nbytes)}, more than the memory budget "
            f"{format_bytes(limit)} ({how})" + (f"; {hint}" if hint else "")
        )
    return nbytes


__all__ = [
    "DEFAULT_SHARE",
    "ENV",
    "array_bytes",
    "available_bytes",
    "check_memory",
    "format_bytes",
    "memory_budget",
    "parse_budget",
]
