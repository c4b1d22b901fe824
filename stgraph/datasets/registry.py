"""The registry: one :class:`DatasetSpec` per data set (files, facts, loaders).

Loader modules register their data sets with :func:`register` (graph loaders) and
:func:`register_table` (event / GPS-point tables). A graph loader is called as
``loader(paths, **options)`` where ``paths`` maps each file it needs (path under the data root) to
a local, sha256-verified :class:`~pathlib.Path`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from stgraph.data.stgraph import STGraph
from stgraph.errors import ConfigError

#: Registered data sets by name, in registration order.
REGISTRY: dict[str, DatasetSpec] = {}


@dataclass
class DatasetSpec:
    """A data set of the registry.

    Attributes:
        name: registry name (``"los-loop"``).
        title: one line saying what it is.
        files: every file of the data set (what :func:`~stgraph.datasets.fetch` gets).
        facts: what :func:`~stgraph.datasets.info` reports: ``N``, ``T``, ``interval`` (s),
            ``span``, ``missing_share``, ``variables``, ``domain``, ``city``, ``source``,
            ``license``, ...
        loader: ``loader(paths, **options) -> STGraph``, or ``None`` for table-only data sets.
        needs: the files ``loader`` reads, given its options (default: all of ``files``).
        table_loader: ``table_loader(paths) -> pandas.DataFrame`` for event / GPS-point data.
        table_files: the files ``table_loader`` reads.
        not_a_graph: for table-only data sets, the message :func:`load` raises.
    """

    name: str
    title: str
    files: tuple[str, ...]
    facts: dict[str, Any]
    loader: Callable[..., STGraph] | None = None
    needs: Callable[[dict], Sequence[str]] | None = None
    table_loader: Callable[..., pd.DataFrame] | None = None
    table_files: tuple[str, ...] = ()
    not_a_graph: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def files_for_load(self, options: dict) -> tuple[str, ...]:
        return tuple(self.needs(options)) if self.needs is not None else self.files

    @property
    def doc(self) -> str:
        fn = self.loader or self.table_loader
        return inspect.getdoc(fn) or self.title

    def check_options(self, options: dict) -> None:
        """Raise :class:`ConfigError` for an option the loader does not take."""
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            allowed = ", ".join(f"{k}={v!r}" for k, v in self.options.items()) or "none"
            raise ConfigError(
                f"load({self.name!r}): unknown option(s) {unknown}; options of this data set: "
                f"{allowed}"
            )


def _loader_options(fn: Callable) -> dict[str, Any]:
    sig = inspect.signature(fn)
    return {
        p.name: p.default
        for p in sig.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def register(
    name: str,
    *,
    title: str,
    files: Sequence[str],
    facts: dict[str, Any],
    needs: Callable[[dict], Sequence[str]] | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(paths, *, options...) -> STGraph`` as the loader of ``name``."""

    def deco(fn: Callable) -> Callable:
        spec = REGISTRY.get(name)
        if spec is None:
            spec = REGISTRY[name] = DatasetSpec(name, title, tuple(files), dict(facts))
        spec.loader, spec.needs, spec.options = fn, needs, _loader_options(fn)
        return fn

    return deco


def register_table(
    name: str,
    *,
    files: Sequence[str],
    title: str | None = None,
    facts: dict[str, Any] | None = None,
    not_a_graph: str | None = None,
) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn(paths) -> DataFrame`` as the table loader of ``name``.

    For a data set without a graph loader, give ``title``, ``facts`` and ``not_a_graph`` (the
    message ``load(name)`` raises).
    """

    def deco(fn: Callable) -> Callable:
        spec = REGISTRY.get(name)
        if spec is None:
            if title is None or facts is None:
                raise ValueError(f"register_table({name!r}): a new data set needs title and facts")
            spec = REGISTRY[name] = DatasetSpec(name, title, tuple(files), dict(facts))
        spec.table_loader, spec.table_files = fn, tuple(files)
        if not_a_graph is not None:
            spec.not_a_graph = not_a_graph
        return fn

    return deco


def get_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; ``KeyError`` listing the known names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; known: {', '.join(REGISTRY)}") from None
