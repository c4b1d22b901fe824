"""Real data sets by name: ``load(name) -> STGraph``, ``load_table``, ``info``, ``fetch``.

Files are looked up in ``$STGRAPH_DATA`` (the folder of ``MANIFEST.md``), then in the user cache
(``$STGRAPH_CACHE``, else ``~/.cache/stgraph``), and downloaded into the cache from their public
source (or ``$STGRAPH_MIRROR``) only when missing. Every file's sha256 is checked before it is
read, and always before a pickle is unpickled. See :mod:`stgraph.datasets.files`.

Times: ``STGraph.time`` holds unix seconds. Where a source gives UTC (ERA5) these are true UTC
(``meta["time_reference"] == "utc"``). Where it gives local clock times or calendar days
(loop detectors, bus stops, pedestrian counters, crime days, weekly reports) the source's clock
labels are written as if UTC (``meta["time_reference"] == "local"``, ``meta["timezone"]`` names the
zone): they stay strictly increasing and one-to-one with the source across daylight-saving
changes, and time-of-day / day-of-week features read off them are local, as the data are.

Example:
    >>> from stgraph import datasets
    >>> datasets.list_datasets()[:3]
    ['chicago-crime', 'chickenpox', 'england-covid']
    >>> g = datasets.load("los-loop")            # doctest: +SKIP
    >>> g.x.shape                                # doctest: +SKIP
    torch.Size([207, 2016, 1])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from stgraph.data.stgraph import STGraph
from stgraph.datasets import (  # noqa: F401  (importing registers the data sets)
    crime,
    metro,
    pedestrian,
    pgt,
    raster,
    traffic,
    trajectories,
    weather,
)
from stgraph.datasets.files import (
    FILES,
    data_root,
    resolve_file,
    resolve_files,
    sha256_of,
    user_cache_dir,
    verify_file,
)
from stgraph.datasets.registry import REGISTRY, DatasetSpec, get_spec
from stgraph.errors import DataFormatError, STGraphError

__all__ = [
    "FILES",
    "DatasetSpec",
    "fetch",
    "fetch_file",
    "info",
    "list_datasets",
    "load",
    "load_table",
    "sha256_of",
    "user_cache_dir",
    "verify_file",
]

_LOCATION_KEYS = ("root", "cache_dir", "mirror", "download", "verify", "timeout", "progress")


def list_datasets(*, kind: str | None = None) -> list[str]:
    """Names of the registered data sets, sorted.

    Args:
        kind: ``"graph"`` (loadable with :func:`load`), ``"table"`` (with :func:`load_table`) or
            ``None`` for all.
    """
    names = sorted(REGISTRY)
    if kind == "graph":
        return [n for n in names if REGISTRY[n].loader is not None]
    if kind == "table":
        return [n for n in names if REGISTRY[n].table_loader is not None]
    if kind is not None:
        raise ValueError(f"list_datasets: kind must be 'graph', 'table' or None, got {kind!r}")
    return names


def info(name: str, *, root: str | os.PathLike | None = None) -> dict[str, Any]:
    """Facts about a data set, without reading its files.

    Returns:
        dict with ``name``, ``title`` (also as ``summary``), ``N``, ``T``, ``V``, ``interval`` (s), ``span``,
        ``missing_share``, ``variables``, ``domain``, ``city``, ``source``, ``license``,
        ``loadable`` (``load`` gives an STGraph), ``table`` (``load_table`` gives a DataFrame),
        ``options`` (the loader's options and defaults), ``description`` (the loader's
        docstring) and ``files``: ``{path, url, bytes, sha256, local}`` each, where ``local`` is
        the path found under the data root or the cache (not hashed here), else ``None``.
    """
    spec = get_spec(name)
    root_dir = data_root(root)
    cache = user_cache_dir()
    files = []
    for p in spec.files:
        f = FILES[p]
        cands = ([root_dir / p] if root_dir is not None else []) + [cache / p]
        local = next((str(c) for c in cands if c.is_file()), None)
        files.append({**f.as_dict(), "local": local})
    out = {"name": spec.name, "title": spec.title, "summary": spec.title, **spec.facts}
    out.update(
        loadable=spec.loader is not None,
        table=spec.table_loader is not None,
        options=dict(spec.options),
        description=spec.doc,
        files=files,
    )
    return out


def fetch(name: str, **location: Any) -> list[Path]:
    """Make every file of ``name`` local (verified; downloaded into the cache when missing).

    Args:
        name: a registry name.
        **location: ``root``, ``cache_dir``, ``mirror``, ``download``, ``verify``, ``timeout``,
            ``progress`` (see :func:`stgraph.datasets.files.resolve_files`).

    Returns:
        The local paths, one per file of the data set.
    """
    spec = get_spec(name)
    _check_location(location)
    return resolve_files(spec.files, dataset=name, **location)


def fetch_file(path: str, **location: Any) -> Path:
    """One registry file (e.g. ``"osm-monaco/monaco.osm.pbf"``), local and verified."""
    _check_location(location)
    return resolve_file(path, **location)


def load(
    name: str,
    *,
    root: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    mirror: str | None = None,
    download: bool = True,
    verify: bool = True,
    timeout: float = 60.0,
    **options: Any,
) -> STGraph:
    """Load a data set as an :class:`~stgraph.data.STGraph`.

    Args:
        name: a registry name (:func:`list_datasets`).
        root: local data folder (default ``$STGRAPH_DATA``).
        cache_dir: download cache (default ``$STGRAPH_CACHE`` or ``~/.cache/stgraph``).
        mirror: base URL to download missing files from (default ``$STGRAPH_MIRROR``, else the
            public sources).
        download: allow downloading missing files (default ``True``).
        verify: check sha256 before reading (default). With ``False`` a modified file is parsed
            anyway and format problems surface as :class:`~stgraph.errors.DataFormatError`;
            pickles are verified regardless.
        timeout: seconds per network operation when downloading.
        **options: the data set's own options (see ``info(name)["options"]``).

    Raises:
        KeyError: unknown name.
        ConfigError: an option the data set does not take.
        ChecksumError: a file's sha256 does not match (it was not read).
        DatasetNotFoundError: files missing and not downloadable (the message says which and
            where to put them).
        DataFormatError: a file does not parse, holds values out of range, or gives a graph of
            another size than the registry's facts (only possible with ``verify=False``, where
            the loader's own checks are all that stands between a modified file and a wrong
            graph).
    """
    spec = get_spec(name)
    if spec.loader is None:
        raise ValueError(spec.not_a_graph or f"{name}: no graph loader; use load_table({name!r})")
    spec.check_options(options)
    needed = spec.files_for_load(options)
    local = resolve_files(
        needed,
        dataset=name,
        root=root,
        cache_dir=cache_dir,
        mirror=mirror,
        download=download,
        verify=verify,
        timeout=timeout,
    )
    paths = dict(zip(needed, local, strict=True))
    if verify:  # the exact published bytes: any failure is a bug of the loader, shown as it is
        graph = spec.loader(paths, **options)
    else:
        graph = _load_unverified(spec, paths, options)
    _check_facts(spec, graph, options, local)
    return graph


#: What a loader's parsing raises on a file it was not written for (a modified file read with
#: ``verify=False``) when no check of its own caught it first.
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, StopIteration)


def _load_unverified(spec: DatasetSpec, paths: dict[str, Path], options: dict) -> STGraph:
    """Run the loader on unverified files; any parse failure is a DataFormatError naming them."""
    try:
        return spec.loader(paths, **options)
    except DataFormatError:
        raise
    except (STGraphError, *_PARSE_ERRORS) as exc:  # STGraphValidationError: names no file
        files = ", ".join(str(p) for p in paths.values())
        raise DataFormatError(
            f"{spec.name}: the files ({files}; read with verify=False) do not give a valid graph: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def _check_facts(spec: DatasetSpec, graph: STGraph, options: dict, local: list[Path]) -> None:
    """With the loader's default options the graph has the registry's N, T and V."""
    if any(options.get(k, v) != v for k, v in spec.options.items()):
        return  # options may select other nodes or steps
    found = {"N": graph.num_nodes, "T": graph.num_steps, "V": graph.num_variables}
    wrong = {
        k: (spec.facts[k], v)
        for k, v in found.items()
        if isinstance(spec.facts.get(k), int) and spec.facts[k] != v
    }
    if wrong:
        what = ", ".join(f"{k} = {got} (expected {want})" for k, (want, got) in wrong.items())
        raise DataFormatError(
            f"{spec.name}: {', '.join(str(p) for p in local)}: the graph has {what}; a file is "
            "cut short or modified (compare its sha256 with `stgraph datasets info "
            f"{spec.name}`)"
        )


def load_table(name: str, **location: Any) -> pd.DataFrame:
    """Load the raw table of an event or trajectory data set as a ``pandas.DataFrame``.

    Columns are typed; ``time`` is parsed (tz-aware UTC where the source is UTC, naive local
    clock time otherwise, with ``df.attrs["timezone"]`` naming the zone); ``lat``/``lon`` in
    degrees. ``df.attrs`` also carries ``name``, ``source`` and ``time_reference``.

    Args:
        name: ``chicago-crime``, ``nyc-crime``, ``geolife``, ``geolife-small`` or
            ``liverpool-bus`` (see ``list_datasets(kind="table")``).
        **location: as for :func:`fetch`.
    """
    spec = get_spec(name)
    if spec.table_loader is None:
        raise ValueError(
            f"{name}: no raw table (it is a graph data set: use load({name!r})); "
            f"tables: {list_datasets(kind='table')}"
        )
    _check_location(location)
    local = resolve_files(spec.table_files, dataset=name, **location)
    return spec.table_loader(dict(zip(spec.table_files, local, strict=True)))


def _check_location(location: dict) -> None:
    unknown = sorted(set(location) - set(_LOCATION_KEYS))
    if unknown:
        raise TypeError(f"unknown argument(s) {unknown}; expected some of {list(_LOCATION_KEYS)}")
