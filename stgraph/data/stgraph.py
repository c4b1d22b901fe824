"""The :class:`STGraph` data model: a PyG ``Data`` subclass for spatio-temporal graphs.

Observations are stored node-major, ``x`` of shape ``[N, T, V]``, so that PyG's ``Batch`` and
``DataLoader`` concatenate nodes exactly as they do for static graphs. Missing values never appear as
NaN in ``x``: ``mask`` (``[N, T, V]``, bool) says which entries were observed.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

from stgraph.data.serialization import read_graph_dir, write_graph_dir
from stgraph.errors import STGraphValidationError
from stgraph.utils.geo import project

if TYPE_CHECKING:  # heavy imports, only when the conversions are called
    import geopandas as gpd
    import networkx as nx
    import pandas as pd
    import xarray as xr

    from stgraph.data.views import TemporalSignal

#: Attributes stacked along a new batch dimension instead of being concatenated (one per graph).
_STACKED_KEYS = ("time", "y_time")
#: Node-level attributes: first dimension is N.
NODE_KEYS = ("x", "mask", "y", "y_mask", "pos", "node_attr")
#: Static-edge attributes: first dimension is E.
EDGE_KEYS = ("edge_weight", "edge_attr", "edge_affinity")
#: Dynamic-edge attributes: first dimension is E_dyn.
DYN_EDGE_KEYS = ("dyn_edge_weight", "dyn_edge_time", "dyn_edge_affinity")
#: Per-graph structure written once per graph by :class:`stgraph.nn.AddGraphStructure` (random-walk
#: encoding ``rwse [N, K]``, relative coordinates ``rel_pos [N, 2]`` and ``has_pos [N, 1]``, the
#: KD cell of each node at every coarse level ``kd_cell [N, D]``, items per level ``kd_size
#: [1, D + 1]`` and the cell size it was built with ``kd_cluster [1]``). Windows carry them; a
#: PyG batch offsets ``kd_cell`` per level (see :meth:`STGraph.__inc__`).
STRUCTURE_KEYS = ("rwse", "rel_pos", "has_pos", "kd_cell", "kd_size", "kd_cluster")
#: Edge affinities written once per graph by :class:`stgraph.data.AddEdgeAffinity`.
AFFINITY_KEYS = ("edge_affinity", "dyn_edge_affinity")
#: Ragged per-segment polylines of road graphs (``coords [P, 2]``, ``ptr [S + 1]``): the segments
#: are the static edges, or the nodes when ``meta["road_node"] == "segment"``.
GEOM_KEYS = ("road_geom", "road_geom_ptr")

META_DEFAULTS: dict[str, Any] = {
    "variables": [],  # list of {"name": str, "unit": str}
    "domain": None,  # "traffic", "epidemiology", "crime", "weather", "mobility", ...
    "city": None,
    "crs": "EPSG:4326",
    "interval": None,  # seconds between consecutive steps
    "spatial_scale": None,  # metres: typical node spacing or cell size
    "sources": [],  # list of {"name", "url", "files"}
    "provenance": [],  # list of strings: what produced this graph, in order
}


def _take_segments(coords: Tensor, ptr: Tensor, segments: Tensor) -> tuple[Tensor, Tensor]:
    """The polylines ``segments`` (indices into ``ptr``) of a ragged ``(coords, ptr)`` store, in order."""
    ptr = ptr.long()
    lengths = (ptr[1:] - ptr[:-1])[segments]
    new_ptr = torch.zeros(segments.numel() + 1, dtype=torch.long)
    new_ptr[1:] = torch.cumsum(lengths, 0)
    starts = torch.repeat_interleave(ptr[segments], lengths)
    offset = torch.arange(int(new_ptr[-1])) - torch.repeat_interleave(new_ptr[:-1], lengths)
    return coords[starts + offset], new_ptr.to(ptr.dtype)


def _as_tensor(value: Any, dtype: torch.dtype | None = None) -> Tensor | None:
    if value is None:
        return None
    if isinstance(value, Tensor):
        return value.to(dtype) if dtype is not None and value.dtype != dtype else value
    arr = np.asarray(value)
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t.to(dtype) if dtype is not None else t


def _time_tensor(value: Any) -> Tensor | None:
    """``time`` as int64 unix seconds: tensors and integer arrays as they are; a pandas
    ``DatetimeIndex``/``Series``, numpy ``datetime64`` or a sequence of strings/datetimes converted
    (naive times are UTC, aware ones converted to UTC).

    Raises:
        STGraphValidationError: times finer than whole seconds, or values that are not times.
    """
    if value is None or isinstance(value, Tensor):
        return _as_tensor(value, torch.long)
    if getattr(value, "tz", None) is not None:  # aware DatetimeIndex: numpy would give objects
        value = value.tz_convert("UTC").tz_localize(None)
    elif getattr(getattr(value, "dt", None), "tz", None) is not None:  # aware Series
        value = value.dt.tz_convert("UTC").dt.tz_localize(None)
    arr = np.asarray(value)
    if arr.dtype == object or arr.dtype.kind in "UST":
        try:
            return torch.tensor([to_unix_seconds(v) for v in arr.ravel()], dtype=torch.long)
        except (TypeError, ValueError) as exc:
            raise STGraphValidationError(
                f"time: cannot read {arr[:3]!r} as times ({exc})"
            ) from None
    if arr.dtype.kind == "M":
        ns = arr.astype("datetime64[ns]").astype(np.int64)
        if (ns % 1_000_000_000).any():
            raise STGraphValidationError(
                "time: steps finer than whole seconds; stgraph keeps unix seconds (round first)"
            )
        arr = ns // 1_000_000_000
    return _as_tensor(arr, torch.long)


def to_unix_seconds(value: Any) -> int:
    """Convert a step index-free time value (str, datetime, numpy/pandas timestamp, int) to unix s.

    Naive datetimes and strings without a zone are taken as UTC.
    """
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str):  # pandas reads offsets ("+11:00", "Z"); naive is UTC
        import pandas as pd

        stamp = pd.Timestamp(value)
        return int((stamp if stamp.tzinfo else stamp.tz_localize("UTC")).timestamp())
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return int(value.timestamp())
    if isinstance(value, np.datetime64):
        return int(value.astype("datetime64[s]").astype(np.int64))
    if hasattr(value, "timestamp"):  # pandas.Timestamp
        return int(value.timestamp())
    raise TypeError(f"cannot interpret {value!r} as a time")


def resolve_interval(declared: Any, time: Tensor | None) -> int:
    """The sampling interval of a graph in seconds: the one precedence rule of stgraph.

    1. the declared ``meta["interval"]``, when given;
    2. else the median step of ``time`` (unix seconds, at least two steps);
    3. else :class:`~stgraph.errors.STGraphValidationError`: there is no default.

    Args:
        declared: ``meta["interval"]`` (int, a one-element tensor, or ``None``).
        time: ``[T]`` unix seconds of the steps, or ``None``.
    """
    if declared is not None:
        value = int(declared)
        if value <= 0:
            raise STGraphValidationError(f"meta['interval']: expected seconds > 0, got {value}")
        return value
    if time is not None and time.numel() > 1:
        return max(1, int((time[1:] - time[:-1]).median()))
    raise STGraphValidationError(
        "interval: the graph declares no meta['interval'] and has no timestamps (`time` with at "
        "least two steps) to infer it from; set meta['interval'] to the seconds between steps"
    )


def _optional(key: str) -> property:
    def fget(self: Data) -> Any:
        return self._store.get(key, None)

    def fset(self: Data, value: Any) -> None:
        self._store[key] = value

    return property(fget, fset, doc=f"``{key}`` or ``None``.")


class STGraph(Data):
    r"""A spatio-temporal graph: readings on nodes over time, with static and dynamic edges.

    A :class:`torch_geometric.data.Data`, so PyG transforms, :class:`~torch_geometric.data.Batch`
    and :class:`~torch_geometric.loader.DataLoader` work unchanged. Graphs batched together are
    expected to have the same number of steps ``T`` (windows of a series do).

    Layout: ``x`` is node-major, ``[N, T, V]`` (nodes, steps, variables), so that PyG batching
    concatenates nodes. A stock PyG layer propagates along ``node_dim=-2``, which on ``[N, T, V]``
    is the time axis: ``GCNConv(V, H)(g.x, g.edge_index)`` runs and is wrong. Use a view:
    :meth:`snapshot` / :meth:`snapshots` (``x [N, V]`` per step), :meth:`temporal_signal` (PyG
    Temporal-style windows, ``x [N, lags·V]``, ``y [N, horizon·V]``), :meth:`feature_view`
    (``x [N, T·V]``, column ``t·V + v``) or :meth:`steps_first` (``[T, N, V]``, time as a batch
    axis). Conversions: :meth:`from_networkx` / :meth:`to_networkx` (OSMnx-ready),
    :meth:`from_numpy` / :meth:`to_numpy` (time-major ``[T, N, V]``), :meth:`from_pandas` /
    :meth:`to_pandas`, :meth:`from_xarray` / :meth:`to_xarray`, :meth:`to_geopandas`
    (:mod:`stgraph.data.interop`).

    Args:
        x (Tensor, optional): observations ``[N, T, V]``. NaN entries are treated as missing when
            ``mask`` is not given: they become ``0`` in ``x`` and ``False`` in ``mask``.
        mask (Tensor, optional): bool ``[N, T, V]``, ``True`` where observed. Defaults to
            ``isfinite(x)``.
        time (Tensor, optional): int64 ``[T]``, unix seconds of each step, strictly increasing;
            also a pandas ``DatetimeIndex`` (aware ones converted to UTC), numpy ``datetime64``
            or a sequence of times (naive = UTC). Without ``meta["interval"]`` the interval is
            the median step of ``time``.
        pos (Tensor, optional): ``[N, 2]`` longitude, latitude in degrees (EPSG:4326).
        edge_index (Tensor, optional): static edges ``[2, E]`` (source, target).
        edge_weight (Tensor, optional): ``[E]``.
        edge_attr (Tensor, optional): ``[E, F_e]``.
        node_attr (Tensor, optional): static node context ``[N, F_s]``.
        dyn_edge_index (Tensor, optional): time-varying edges ``[2, E_d]``.
        dyn_edge_weight (Tensor, optional): ``[E_d]``.
        dyn_edge_time (Tensor, optional): int64 ``[E_d]``, the step index (into ``time``) each
            dynamic edge belongs to.
        meta (dict, optional): metadata; see :data:`META_DEFAULTS`. ``meta["variables"]`` holds one
            ``{"name", "unit"}`` per variable.
        validate (bool): check shapes, ranges and monotone time on construction (default ``True``).
        **kwargs: further attributes (e.g. ``y``, ``y_mask`` for forecasting windows).

    Shapes:
        ``x``, ``mask``: :math:`(N, T, V)`; ``time``: :math:`(T)`; ``pos``: :math:`(N, 2)`;
        ``edge_index``: :math:`(2, E)`; ``dyn_edge_index``: :math:`(2, E_d)`.

    Raises:
        STGraphValidationError: naming the field and what was expected.
    """

    def __init__(
        self,
        x: Tensor | None = None,
        mask: Tensor | None = None,
        time: Tensor | None = None,
        pos: Tensor | None = None,
        edge_index: Tensor | None = None,
        edge_weight: Tensor | None = None,
        edge_attr: Tensor | None = None,
        node_attr: Tensor | None = None,
        dyn_edge_index: Tensor | None = None,
        dyn_edge_weight: Tensor | None = None,
        dyn_edge_time: Tensor | None = None,
        meta: dict | None = None,
        validate: bool = True,
        **kwargs: Any,
    ) -> None:
        x = _as_tensor(x)
        if x is not None:
            if not torch.is_floating_point(x):
                x = x.float()
            finite = torch.isfinite(x)
            if mask is None:
                mask = finite
            else:
                mask = _as_tensor(mask, torch.bool)
                if validate and mask.shape == x.shape and bool((mask & ~finite).any()):
                    n_bad = int((mask & ~finite).sum())
                    raise STGraphValidationError(
                        f"x: {n_bad} entries are NaN/inf but marked observed in mask; "
                        "missing values must have mask=False"
                    )
            if not bool(finite.all()):
                x = torch.where(finite, x, torch.zeros((), dtype=x.dtype))
        super().__init__(
            x=x,
            mask=_as_tensor(mask, torch.bool),
            time=_time_tensor(time),
            pos=_as_tensor(pos),
            edge_index=_as_tensor(edge_index, torch.long),
            edge_weight=_as_tensor(edge_weight),
            edge_attr=_as_tensor(edge_attr),
            node_attr=_as_tensor(node_attr),
            dyn_edge_index=_as_tensor(dyn_edge_index, torch.long),
            dyn_edge_weight=_as_tensor(dyn_edge_weight),
            dyn_edge_time=_as_tensor(dyn_edge_time, torch.long),
            **kwargs,
        )
        if meta is not None or x is not None:
            full = copy.deepcopy(META_DEFAULTS)
            full.update(meta or {})
            if full.get("interval") is None and self.time is not None and self.time.numel() > 1:
                full["interval"] = resolve_interval(None, self.time)  # the median step
            self.meta = full
        if validate and x is not None:
            self.validate()

    # ------------------------------------------------------------------ PyG batching contract
    def __cat_dim__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key in _STACKED_KEYS:
            return None
        return super().__cat_dim__(key, value, *args, **kwargs)

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "dyn_edge_time":
            return 0
        if key == "kd_cell":  # cell ids of level l are offset by the cells of level l earlier
            return self.kd_size[0, 1:]
        return super().__inc__(key, value, *args, **kwargs)

    # ------------------------------------------------------------------ properties
    mask = _optional("mask")
    node_attr = _optional("node_attr")
    dyn_edge_index = _optional("dyn_edge_index")
    dyn_edge_weight = _optional("dyn_edge_weight")
    dyn_edge_time = _optional("dyn_edge_time")
    y_mask = _optional("y_mask")
    y_time = _optional("y_time")
    edge_affinity = _optional("edge_affinity")
    dyn_edge_affinity = _optional("dyn_edge_affinity")
    rwse = _optional("rwse")
    rel_pos = _optional("rel_pos")
    has_pos = _optional("has_pos")
    kd_cell = _optional("kd_cell")
    kd_size = _optional("kd_size")
    kd_cluster = _optional("kd_cluster")

    @property
    def num_steps(self) -> int:
        """Number of time steps ``T``."""
        return int(self.x.size(1)) if self.x is not None else 0

    @property
    def num_variables(self) -> int:
        """Number of variables ``V``."""
        return int(self.x.size(2)) if self.x is not None else 0

    def meta_values(self, key: str) -> list[Any]:
        """``meta[key]`` of every graph: one entry for an STGraph, one per graph for a PyG batch
        of them (PyG collates ``meta`` key by key into a list or tensor over the graphs)."""
        value = (self.meta or {}).get(key)
        if not isinstance(self, Batch):
            return [value]
        if value is None:
            return [None] * self.num_graphs
        return value.tolist() if isinstance(value, Tensor) else list(value)

    def _common(self, key: str, values: list[Any]) -> Any:
        if any(v != values[0] for v in values[1:]):
            raise ValueError(
                f"{key}: the graphs of this batch differ ({values}); batch graphs that share them"
            )
        return values[0]

    @property
    def variables(self) -> list[str]:
        """Variable names, from ``meta["variables"]`` (``var0``, ``var1``, ... when unnamed).

        For a PyG batch the names its graphs share (a batch mixing variables raises ValueError).
        """
        names = self._common(
            "variables", [[v["name"] for v in m or []] for m in self.meta_values("variables")]
        )
        return names if names else [f"var{i}" for i in range(self.num_variables)]

    @property
    def units(self) -> list[str]:
        """Variable units, from ``meta["variables"]`` (``""`` when unknown); shared by a batch."""
        units = self._common(
            "units",
            [[v.get("unit", "") or "" for v in m or []] for m in self.meta_values("variables")],
        )
        return units if units else [""] * self.num_variables

    @property
    def node_attr_names(self) -> list[str]:
        """Names of the ``node_attr`` columns, from ``meta["node_attr_names"]`` (``attr0``, ...
        when unnamed); shared by a batch."""
        names = self._common(
            "node_attr_names", [list(m or []) for m in self.meta_values("node_attr_names")]
        )
        width = 0 if self.node_attr is None else int(self.node_attr.size(-1))
        return names if names else [f"attr{i}" for i in range(width)]

    @property
    def intervals(self) -> Tensor:
        """Sampling interval of every graph in seconds, int64 ``[num_graphs]``, by the rule of
        :func:`resolve_interval` (declared ``meta["interval"]``, else the median step of
        ``time``).

        Raises:
            STGraphValidationError: a graph has neither.
        """
        declared = self.meta_values("interval")
        time = self.time
        if time is not None and time.dim() == 1:
            time = time.view(1, -1)
        out = [
            resolve_interval(d, None if time is None else time[min(i, time.size(0) - 1)])
            for i, d in enumerate(declared)
        ]
        return torch.tensor(out, dtype=torch.long)

    @property
    def interval(self) -> int | None:
        """Sampling interval in seconds by the rule of :func:`resolve_interval`, or ``None`` when
        the graph declares none and has no timestamps (the models then raise). For a PyG batch
        the interval its graphs share."""
        try:
            values = self.intervals.tolist()
        except STGraphValidationError:
            return None
        return self._common("interval", values)

    @property
    def missing_share(self) -> float:
        """Share of entries of ``x`` that are not observed."""
        if self.mask is None or self.mask.numel() == 0:
            return 0.0
        return 1.0 - float(self.mask.float().mean())

    @property
    def meta(self) -> dict:
        return self._store.get("meta", None)

    @meta.setter
    def meta(self, value: dict) -> None:
        self._store["meta"] = value

    # ------------------------------------------------------------------ validation
    def validate(self) -> STGraph:
        """Check shapes, dtypes and ranges; raise :class:`STGraphValidationError` naming the field."""
        x = self.x
        if x is None:
            raise STGraphValidationError("x: required, expected a float tensor [N, T, V]")
        if x.dim() != 3:
            raise STGraphValidationError(
                f"x: expected 3 dims [N, T, V], got shape {tuple(x.shape)}"
            )
        n, t, v = x.shape
        if self.mask is None or tuple(self.mask.shape) != (n, t, v):
            got = None if self.mask is None else tuple(self.mask.shape)
            raise STGraphValidationError(f"mask: expected shape {(n, t, v)} like x, got {got}")
        if self.time is not None:
            if tuple(self.time.shape) != (t,):
                raise STGraphValidationError(
                    f"time: expected shape ({t},) (one timestamp per step of x), got {tuple(self.time.shape)}"
                )
            if t > 1:
                steps = self.time[1:] - self.time[:-1]
                if bool((steps <= 0).any()):
                    i = int(torch.nonzero(steps <= 0)[0]) + 1
                    raise STGraphValidationError(
                        f"time: must strictly increase; step {i} ({int(self.time[i])}) "
                        f"is not after step {i - 1} ({int(self.time[i - 1])})"
                    )
        if self.pos is not None:
            if tuple(self.pos.shape) != (n, 2):
                raise STGraphValidationError(
                    f"pos: expected shape ({n}, 2) (lon, lat per node), got {tuple(self.pos.shape)}"
                )
            crs = (self.meta or {}).get("crs", "EPSG:4326")
            if crs in ("EPSG:4326", None):
                lon, lat = self.pos[:, 0], self.pos[:, 1]
                bad = ~torch.isfinite(self.pos).all(1) | (lon.abs() > 180) | (lat.abs() > 90)
                if bool(bad.any()):
                    i = int(torch.nonzero(bad)[0])
                    raise STGraphValidationError(
                        f"pos: node {i} has (lon, lat) = ({float(lon[i])}, {float(lat[i])}); expected "
                        "degrees with |lon| <= 180 and |lat| <= 90 (EPSG:4326)"
                    )
        self._check_edges("edge_index", ("edge_weight", "edge_attr"), n)
        self._check_edges("dyn_edge_index", ("dyn_edge_weight", "dyn_edge_time"), n)
        if self.dyn_edge_index is not None:
            if self.dyn_edge_time is None:
                raise STGraphValidationError(
                    "dyn_edge_time: required with dyn_edge_index ([E_d] step indices)"
                )
            if self.dyn_edge_time.numel() and (
                int(self.dyn_edge_time.min()) < 0 or int(self.dyn_edge_time.max()) >= t
            ):
                raise STGraphValidationError(f"dyn_edge_time: step indices must lie in [0, {t})")
        if self.node_attr is not None and (
            self.node_attr.dim() != 2 or self.node_attr.size(0) != n
        ):
            raise STGraphValidationError(
                f"node_attr: expected shape ({n}, F), got {tuple(self.node_attr.shape)}"
            )
        names = (self.meta or {}).get("variables", [])
        if names and len(names) != v:
            raise STGraphValidationError(
                f"meta['variables']: {len(names)} names for {v} variables in x"
            )
        for key in ("y", "y_mask"):
            val = getattr(self, key, None)
            if val is not None and (val.dim() != 3 or val.size(0) != n or val.size(2) != v):
                raise STGraphValidationError(
                    f"{key}: expected shape ({n}, H, {v}), got {tuple(val.shape)}"
                )
        return self

    def _check_edges(self, index_key: str, attr_keys: Sequence[str], n: int) -> None:
        ei = getattr(self, index_key, None)
        if ei is None:
            for k in attr_keys:
                if getattr(self, k, None) is not None and k != "edge_attr":
                    raise STGraphValidationError(f"{k}: given without {index_key}")
            return
        if ei.dim() != 2 or ei.size(0) != 2:
            raise STGraphValidationError(
                f"{index_key}: expected shape (2, E), got {tuple(ei.shape)}"
            )
        if ei.numel() and (int(ei.min()) < 0 or int(ei.max()) >= n):
            raise STGraphValidationError(
                f"{index_key}: node indices must lie in [0, {n}); found [{int(ei.min())}, {int(ei.max())}]"
            )
        e = ei.size(1)
        for k in attr_keys:
            val = getattr(self, k, None)
            if val is not None and val.size(0) != e:
                raise STGraphValidationError(
                    f"{k}: expected {e} rows (one per edge of {index_key}), got {tuple(val.shape)}"
                )

    # ------------------------------------------------------------------ slicing
    def _steps_of(self, value: Any, default: int) -> int:
        if value is None:
            return default
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value) if value >= 0 else self.num_steps + int(value)
        if self.time is None:
            raise ValueError("slicing by date needs `time`; this graph has none")
        stamp = to_unix_seconds(value)
        return int(torch.searchsorted(self.time, torch.tensor(stamp, dtype=torch.long)))

    def slice_time(self, start: Any = None, stop: Any = None) -> STGraph:
        """Steps ``[start, stop)``: step indices (ints) or times (str/datetime, UTC).

        Dynamic edges of the kept steps are kept, with ``dyn_edge_time`` re-based to the slice.
        """
        a = self._steps_of(start, 0)
        b = self._steps_of(stop, self.num_steps)
        if not 0 <= a <= b <= self.num_steps:
            raise IndexError(f"slice_time: [{a}, {b}) is not inside [0, {self.num_steps})")
        out = copy.copy(self)
        for key in ("x", "mask"):
            out[key] = self[key][:, a:b]
        if self.time is not None:
            out.time = self.time[a:b]
        if self.dyn_edge_index is not None:
            keep = (self.dyn_edge_time >= a) & (self.dyn_edge_time < b)
            out.dyn_edge_index = self.dyn_edge_index[:, keep]
            out.dyn_edge_time = self.dyn_edge_time[keep] - a
            for key in ("dyn_edge_weight", "dyn_edge_affinity"):
                if getattr(self, key, None) is not None:
                    out[key] = self[key][keep]
        out.meta = copy.deepcopy(self.meta)
        out.meta["provenance"] = [*out.meta.get("provenance", []), f"slice_time[{a}:{b}]"]
        return out

    def select_nodes(self, nodes: Tensor | Sequence[int]) -> STGraph:
        """The subgraph on ``nodes`` (indices or a bool mask), keeping edges between kept nodes.

        Nodes are renumbered in the order given. Road polylines (``road_geom``/``road_geom_ptr``)
        follow their segments: the kept edges, or the kept nodes of a segment graph. The
        structure and edge affinities computed from the whole graph (:data:`STRUCTURE_KEYS`,
        :data:`AFFINITY_KEYS`) are dropped: apply the transforms again to the subgraph.
        """
        idx = _as_tensor(nodes)
        n = self.num_nodes
        if idx.dtype == torch.bool:
            if idx.numel() != n:
                raise IndexError(f"select_nodes: bool mask has {idx.numel()} entries for {n} nodes")
            idx = idx.nonzero().view(-1)
        idx = idx.long().view(-1)
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
            raise IndexError(f"select_nodes: indices must lie in [0, {n})")
        remap = torch.full((n,), -1, dtype=torch.long)
        remap[idx] = torch.arange(idx.numel())
        out = copy.copy(self)
        kept_edges: Tensor | None = None
        for key in NODE_KEYS:
            val = getattr(self, key, None)
            if val is not None:
                out[key] = val[idx]
        for index_key, attrs in (("edge_index", EDGE_KEYS), ("dyn_edge_index", DYN_EDGE_KEYS)):
            ei = getattr(self, index_key, None)
            if ei is None:
                continue
            new = remap[ei]
            keep = (new >= 0).all(0)
            out[index_key] = new[:, keep]
            for k in attrs:
                val = getattr(self, k, None)
                if val is not None:
                    out[k] = val[keep]
            if index_key == "edge_index":
                kept_edges = keep
        for key in (*STRUCTURE_KEYS, *AFFINITY_KEYS):  # derived from the whole graph: recompute
            if key in out._store:
                del out[key]
        geom, ptr = (getattr(self, key, None) for key in GEOM_KEYS)
        if geom is not None and ptr is not None:
            by_node = (self.meta or {}).get("road_node") == "segment"  # segments: nodes, else edges
            expected = (
                n if by_node else (self.edge_index.size(1) if self.edge_index is not None else -1)
            )
            if ptr.numel() != expected + 1:
                raise ValueError(
                    f"select_nodes: road_geom_ptr has {ptr.numel()} entries; expected one more than the "
                    f"{'nodes' if by_node else 'edges'} ({expected}) it describes"
                )
            segments = idx if by_node else kept_edges.nonzero().view(-1)
            for key, val in zip(GEOM_KEYS, _take_segments(geom, ptr, segments), strict=True):
                out[key] = val
        ids = (self.meta or {}).get("node_ids")
        out.meta = copy.deepcopy(self.meta)
        if ids is not None:
            out.meta["node_ids"] = [ids[i] for i in idx.tolist()]
        out.meta["provenance"] = [
            *out.meta.get("provenance", []),
            f"select_nodes({idx.numel()} of {n})",
        ]
        return out

    def subgraph(self, subset: Tensor) -> STGraph:
        """PyG's ``Data.subgraph`` with the STGraph contract: :meth:`select_nodes`, so that
        ``meta["node_ids"]``, road polylines and dynamic edges follow the kept nodes (PyG's own
        would leave ``meta["node_ids"]`` at full length). PyG transforms that call ``subgraph``
        (``LargestConnectedComponents``, ...) get the same."""
        return self.select_nodes(subset)

    # ------------------------------------------------------------------ conversions
    def pos_metres(self) -> Tensor:
        """Node coordinates in metres about their centroid, ``[N, 2]`` float64.

        Lon/lat (``meta["crs"]`` EPSG:4326) go through :func:`stgraph.utils.geo.project`, the one
        metric projection (pyproj, the UTM zone of the nodes' median position); coordinates in
        another ``crs`` are taken as metres already.
        """
        if self.pos is None:
            raise ValueError("pos_metres: this graph has no pos")
        pos = self.pos.detach().cpu().double()
        if (self.meta or {}).get("crs", "EPSG:4326") in ("EPSG:4326", "epsg:4326", None):
            pos = torch.from_numpy(project(pos[:, 0].numpy(), pos[:, 1].numpy())[0])
        return pos - pos.mean(0, keepdim=True)

    def to_networkx(self, *, dynamic: bool = False) -> nx.MultiDiGraph:
        """An OSMnx-ready ``networkx.MultiDiGraph``: ``x``/``y`` node coordinates, named node and
        edge attributes, ``length`` (m) and road ``geometry`` on the edges, ``crs`` in the graph
        attributes (:func:`stgraph.data.interop.to_networkx`). With ``dynamic=True`` the dynamic
        edges too, each with its ``step`` (and ``time`` when known)."""
        from stgraph.data import interop

        return interop.to_networkx(self, dynamic=dynamic)

    @classmethod
    def from_networkx(cls, g: nx.Graph, **options: Any) -> STGraph:
        """An STGraph from a networkx or OSMnx graph (:func:`stgraph.data.interop.from_networkx`:
        ``weight``, ``node_attrs``, ``edge_attrs``, ``x``, ``mask``, ``time``, ``meta``)."""
        from stgraph.data import interop

        return interop.from_networkx(g, **options, cls=cls)

    @classmethod
    def from_numpy(cls, x: Any, adjacency: Any = None, **options: Any) -> STGraph:
        """An STGraph from time-major ``[T, N]``/``[T, N, V]`` readings and an adjacency (dense,
        scipy sparse or ``(edge_index, edge_weight)``), as PyG Temporal and tsl hold them
        (:func:`stgraph.data.interop.from_numpy`)."""
        from stgraph.data import interop

        return interop.from_numpy(x, adjacency, **options, cls=cls)

    @classmethod
    def from_pandas(cls, frame: pd.DataFrame, **options: Any) -> STGraph:
        """An STGraph from a wide table with a ``DatetimeIndex`` and one column per node
        (:func:`stgraph.data.interop.from_pandas`: ``pos``, ``adjacency``, ``variable``,
        ``unit``, ``meta``)."""
        from stgraph.data import interop

        return interop.from_pandas(frame, **options, cls=cls)

    @classmethod
    def from_xarray(cls, ds: xr.Dataset, **options: Any) -> STGraph:
        """An STGraph from a ``(node, time)`` xarray Dataset such as :meth:`to_xarray` writes
        (:func:`stgraph.data.interop.from_xarray`)."""
        from stgraph.data import interop

        return interop.from_xarray(ds, **options, cls=cls)

    def to_geopandas(self) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
        """``(nodes, edges)`` GeoDataFrames: nodes as points with ``node_id`` and ``node_attr``
        columns, edges as lines (road polylines where known) with ``weight`` and ``edge_attr``
        columns (:func:`stgraph.data.interop.to_geopandas`)."""
        from stgraph.data import interop

        return interop.to_geopandas(self)

    def to_xarray(self, *, grid: bool | None = None) -> xr.Dataset:
        """An xarray Dataset with units and CRS: ``(time, latitude, longitude)`` for raster
        graphs, ``(node, time)`` otherwise (:func:`stgraph.data.interop.to_xarray`)."""
        from stgraph.data import interop

        return interop.to_xarray(self, grid=grid)

    def to_numpy(self) -> np.ndarray:
        """Readings time-major, ``[T, N, V]`` float64 with NaN where not observed (the layout of
        PyG Temporal and tsl; :meth:`from_numpy` reads it back)."""
        values = self.x.detach().cpu().double().numpy().copy()
        values[~self.mask.cpu().numpy()] = np.nan
        return values.transpose(1, 0, 2)

    # ------------------------------------------------------------------ PyG views
    def snapshot(self, t: int, *, edges: str = "auto") -> Data:
        """Step ``t`` as a PyG ``Data`` with ``x [N, V]`` (:func:`stgraph.data.views.snapshot`)."""
        from stgraph.data import views

        return views.snapshot(self, t, edges=edges)

    def snapshots(self, *, edges: str = "auto") -> Iterator[Data]:
        """Every step as a PyG ``Data`` with ``x [N, V]``, in order."""
        from stgraph.data import views

        return views.snapshots(self, edges=edges)

    def temporal_signal(
        self, *, lags: int = 1, horizon: int = 1, stride: int = 1, edges: str = "auto"
    ) -> TemporalSignal:
        """A PyG Temporal-style iterator of windows, ``x [N, lags·V]``, ``y [N, horizon·V]``
        (:class:`stgraph.data.views.TemporalSignal`)."""
        from stgraph.data import views

        return views.TemporalSignal(self, lags=lags, horizon=horizon, stride=stride, edges=edges)

    def feature_view(self) -> Data:
        """The series as static node features, ``x [N, T·V]`` (column ``t·V + v``)."""
        from stgraph.data import views

        return views.feature_view(self)

    def steps_first(self) -> Tensor:
        """``x`` as ``[T, N, V]``, the layout stock PyG layers broadcast over."""
        return self.x.transpose(0, 1)

    def to_pandas(self, *, observed_only: bool = False, wide: bool = False) -> pd.DataFrame:
        """A long table: one row per (node, time, variable) with ``value`` and ``observed``.

        Columns: ``node`` (index), ``node_id`` (if known), ``step``, ``time`` (UTC timestamps, if
        known), ``variable``, ``unit``, ``value`` (NaN where not observed), ``observed``.

        With ``wide=True`` a wide table instead: a UTC ``DatetimeIndex`` by one column per node id
        (``(variable, node)`` columns for several variables), NaN where not observed, as
        :meth:`from_pandas` reads (:func:`stgraph.data.interop.to_pandas_wide`).
        """
        import pandas as pd

        if wide:
            from stgraph.data import interop

            return interop.to_pandas_wide(self)

        n, t, v = self.x.shape
        node, step, var = np.meshgrid(np.arange(n), np.arange(t), np.arange(v), indexing="ij")
        values = self.x.detach().cpu().numpy().astype(np.float64).copy()
        observed = self.mask.cpu().numpy()
        values[~observed] = np.nan
        df = pd.DataFrame({"node": node.ravel(), "step": step.ravel()})
        ids = (self.meta or {}).get("node_ids")
        if ids is not None:
            df.insert(1, "node_id", np.asarray(ids, dtype=object)[df["node"].to_numpy()])
        if self.time is not None:
            df["time"] = pd.to_datetime(
                self.time.numpy()[df["step"].to_numpy()], unit="s", utc=True
            )
        df["variable"] = pd.Categorical.from_codes(var.ravel(), categories=self.variables)
        df["unit"] = np.asarray(self.units, dtype=object)[var.ravel()]
        df["value"] = values.ravel()
        df["observed"] = observed.ravel()
        if observed_only:
            df = df[df["observed"]].reset_index(drop=True)
        return df

    # ------------------------------------------------------------------ io
    def save(self, path: str | os.PathLike) -> Path:
        """Write ``meta.json`` + ``tensors.safetensors`` into directory ``path`` atomically (see
        :mod:`stgraph.data.serialization`)."""
        return write_graph_dir(self._store.items(), self.meta, type(self).__name__, path)

    @classmethod
    def load(cls, path: str | os.PathLike, *, validate: bool = True) -> STGraph:
        """Read a graph written by :meth:`save`."""
        tensors, meta, attributes = read_graph_dir(path)
        return cls(**tensors, meta=meta, validate=validate, **attributes)

    def __repr__(self) -> str:
        parts = []
        for key, val in self._store.items():
            if key == "meta":
                continue
            parts.append(
                f"{key}={list(val.shape)}" if isinstance(val, Tensor) else f"{key}={val!r}"
            )
        meta = self.meta or {}
        parts += [
            f"{k}={meta[k]!r}" for k in ("domain", "city", "interval") if meta.get(k) is not None
        ]
        return f"{type(self).__name__}({', '.join(parts)})"
