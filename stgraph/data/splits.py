"""Chronological splits of a series into train / validation / test step ranges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from stgraph.data.stgraph import to_unix_seconds
from stgraph.errors import ConfigError, DataFormatError


@dataclass(frozen=True)
class Split:
    """Step ranges ``[start, stop)`` of each part; parts are contiguous and in time order."""

    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def __getitem__(self, name: str) -> tuple[int, int]:
        if name not in ("train", "val", "test"):
            raise KeyError(f"split part must be train, val or test, got {name!r}")
        return getattr(self, name)

    def as_dict(self) -> dict[str, list[int]]:
        return {k: list(getattr(self, k)) for k in ("train", "val", "test")}


def chronological_split(
    num_steps_or_graph: Any,
    *,
    ratios: Sequence[float] | None = None,
    dates: Sequence[Any] | None = None,
) -> Split:
    """Split ``T`` steps in time order, by ``ratios`` (train, val, test) or by ``dates``.

    Args:
        num_steps_or_graph: ``T`` or an :class:`STGraph` (``dates`` needs its ``time``).
        ratios: three non-negative shares summing to 1, e.g. ``(0.7, 0.1, 0.2)``; a share of 0 makes
            an empty part (T-GCN's 80/20 is ``(0.8, 0.0, 0.2)``). Part sizes are
            ``floor(T * ratio)`` for train and val; test takes the rest.
        dates: ``(val_start, test_start)``: the first time (str/datetime, UTC) of each part.

    Returns:
        :class:`Split` of step ranges.
    """
    if (ratios is None) == (dates is None):
        raise ConfigError("chronological_split: give exactly one of ratios= or dates=")
    graph = None if isinstance(num_steps_or_graph, int) else num_steps_or_graph
    t = num_steps_or_graph if graph is None else graph.num_steps
    if ratios is not None:
        if len(ratios) != 3 or any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
            raise ConfigError(
                f"ratios: expected three non-negative shares summing to 1, got {list(ratios)}"
            )
        a = int(t * ratios[0] + 1e-9)
        b = a + int(t * ratios[1] + 1e-9)
    else:
        if graph is None or graph.time is None:
            raise DataFormatError("chronological_split: dates= needs a graph with time")
        if len(dates) != 2:
            raise ConfigError("dates: expected (val_start, test_start)")
        stamps = [to_unix_seconds(d) for d in dates]
        a, b = (int(torch.searchsorted(graph.time, torch.tensor(s))) for s in stamps)
        if a > b:
            raise ConfigError(f"dates: val_start {dates[0]} is after test_start {dates[1]}")
    return Split(train=(0, a), val=(a, b), test=(b, t))
