"""Views of an :class:`~stgraph.data.STGraph` for stock PyG layers.

An STGraph stores ``x`` node-major, ``[N, T, V]``, so that PyG batching concatenates nodes. A stock
PyG layer propagates along ``node_dim=-2``, which on ``[N, T, V]`` is the *time* axis: calling
``GCNConv(V, H)(g.x, g.edge_index)`` runs without error and is wrong. The views here give the
layouts such layers expect:

* :func:`snapshot` / :func:`snapshots`: one ``Data`` per step, ``x [N, V]``.
* :class:`TemporalSignal`: a PyG Temporal-style iterator of ``Data(x [N, lags·V], y [N,
  horizon·V], edge_index, edge_attr = edge weights)``, one per window.
* :func:`feature_view`: one static ``Data`` with ``x [N, T·V]`` (column ``t·V + v``), for layers
  that take the whole series as node features.
* :func:`steps_first`: ``x`` as ``[T, N, V]``; stock layers broadcast over the leading time axis.

The functions take any :class:`~stgraph.data.STGraph` (typed as its base, PyG's ``Data``: this
module never imports :mod:`stgraph.data.stgraph`, whose methods call it).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch_geometric.data import Data

__all__ = ["TemporalSignal", "feature_view", "snapshot", "snapshots", "steps_first"]

EDGE_MODES = ("auto", "static", "dynamic", "both")


def _step_edges(graph: Data, t: int, edges: str) -> tuple[Tensor | None, Tensor | None]:
    """``(edge_index, edge_weight)`` in force at step ``t``: the static edges, the dynamic edges
    of step ``t`` or both (``"auto"``: static when the graph has them, else dynamic)."""
    if edges not in EDGE_MODES:
        raise ValueError(f"edges={edges!r}: expected one of {', '.join(EDGE_MODES)}")
    has_static = graph.edge_index is not None
    if edges == "auto":
        edges = "static" if has_static or graph.dyn_edge_index is None else "dynamic"
    parts: list[tuple[Tensor, Tensor | None]] = []
    if edges in ("static", "both") and has_static:
        parts.append((graph.edge_index, graph.edge_weight))
    if edges in ("dynamic", "both") and graph.dyn_edge_index is not None:
        keep = graph.dyn_edge_time == t
        w = graph.dyn_edge_weight
        parts.append((graph.dyn_edge_index[:, keep], None if w is None else w[keep]))
    if not parts:
        return None, None
    if len(parts) == 1:
        return parts[0]
    ei = torch.cat([p[0] for p in parts], 1)
    if any(p[1] is None for p in parts):
        return ei, None
    return ei, torch.cat([p[1] for p in parts])


def snapshot(graph: Data, t: int, *, edges: str = "auto") -> Data:
    """Step ``t`` as a PyG ``Data``: ``x [N, V]``, ``mask [N, V]``, ``edge_index``,
    ``edge_weight`` (and ``edge_attr`` of static edges with ``edges="static"``), ``pos``,
    ``node_attr``, ``time`` (unix seconds, ``[1]``) and ``step``.

    Args:
        graph: the graph.
        t: step index (negative counts from the end).
        edges: ``"auto"``, ``"static"``, ``"dynamic"`` (the dynamic edges of step ``t``) or
            ``"both"``.
    """
    steps = graph.num_steps
    if not -steps <= t < steps:
        raise IndexError(f"snapshot: step {t} outside [0, {steps})")
    t = t % steps
    ei, ew = _step_edges(graph, t, edges)
    out = Data(x=graph.x[:, t], mask=graph.mask[:, t], edge_index=ei, num_nodes=graph.num_nodes)
    if ew is not None:
        out.edge_weight = ew
    if edges in ("auto", "static") and ei is graph.edge_index and graph.edge_attr is not None:
        out.edge_attr = graph.edge_attr
    for key in ("pos", "node_attr"):
        if getattr(graph, key, None) is not None:
            out[key] = graph[key]
    if graph.time is not None:
        out.time = graph.time[t : t + 1]
    out.step = torch.tensor([t])
    return out


def snapshots(graph: Data, *, edges: str = "auto") -> Iterator[Data]:
    """Every step in order as :func:`snapshot` ``Data`` (``x [N, V]``)."""
    for t in range(graph.num_steps):
        yield snapshot(graph, t, edges=edges)


def steps_first(graph: Data) -> Tensor:
    """``x`` as ``[T, N, V]`` (a view): stock PyG layers, which propagate along ``node_dim=-2``,
    then treat the time axis as a batch dimension, ``GCNConv(V, H)(steps_first(g),
    g.edge_index)`` giving ``[T, N, H]``."""
    return graph.x.transpose(0, 1)


def feature_view(graph: Data) -> Data:
    """The whole series as static node features: ``x [N, T·V]`` and ``mask [N, T·V]`` (column
    ``t·V + v`` holds variable ``v`` at step ``t``), with the static edges, ``edge_attr``, ``pos``
    and ``node_attr``."""
    n, t, v = graph.x.shape
    out = Data(
        x=graph.x.reshape(n, t * v),
        mask=graph.mask.reshape(n, t * v),
        edge_index=graph.edge_index,
        num_nodes=n,
    )
    for key in ("edge_weight", "edge_attr", "pos", "node_attr"):
        if getattr(graph, key, None) is not None:
            out[key] = graph[key]
    return out


class TemporalSignal:
    """A PyG Temporal-style signal: windows of ``lags`` steps and the ``horizon`` steps after.

    Iterating yields one ``Data`` per window start ``s = 0, stride, 2·stride, ...``, shaped as PyG
    Temporal's ``StaticGraphTemporalSignal`` snapshots: ``x [N, lags·V]`` (steps ``s .. s+lags-1``,
    column ``l·V + v``), ``y [N, horizon·V]`` (the next ``horizon`` steps, column ``h·V + v``),
    ``edge_index`` and ``edge_attr`` = the edge weights ``[E]`` (PyG Temporal's convention; also
    as ``edge_weight``), plus ``x_mask``/``y_mask`` of the same shapes and ``time`` of the
    first target step. With ``lags=1, horizon=1`` the snapshots are the steps themselves.
    Indexing (``signal[i]``, slices) and ``len()`` work as in PyG Temporal; ``snapshot_count`` is
    the number of windows.

    Args:
        graph: the graph.
        lags: input steps per window (PyG Temporal's ``lags``).
        horizon: target steps per window (``0``: no ``y``).
        stride: steps between window starts.
        edges: see :func:`snapshot`; dynamic edges are those of the window's last input step.
    """

    def __init__(
        self,
        graph: Data,
        *,
        lags: int = 1,
        horizon: int = 1,
        stride: int = 1,
        edges: str = "auto",
    ) -> None:
        if lags < 1 or horizon < 0 or stride < 1:
            raise ValueError(
                f"TemporalSignal: lags >= 1, horizon >= 0, stride >= 1; got {lags}, {horizon}, {stride}"
            )
        if edges not in EDGE_MODES:
            raise ValueError(f"edges={edges!r}: expected one of {', '.join(EDGE_MODES)}")
        self.graph, self.lags, self.horizon, self.stride, self.edges = (
            graph,
            lags,
            horizon,
            stride,
            edges,
        )
        span = graph.num_steps - lags - horizon
        self.snapshot_count = 0 if span < 0 else span // stride + 1

    def __len__(self) -> int:
        return self.snapshot_count

    def __repr__(self) -> str:
        return (
            f"TemporalSignal(lags={self.lags}, horizon={self.horizon}, stride={self.stride}, "
            f"snapshots={self.snapshot_count})"
        )

    def _window(self, i: int) -> Data:
        g, n, v = self.graph, self.graph.num_nodes, self.graph.num_variables
        s = i * self.stride
        a, b = s + self.lags, s + self.lags + self.horizon
        ei, ew = _step_edges(g, a - 1, self.edges)
        out = Data(
            x=g.x[:, s:a].reshape(n, self.lags * v),
            x_mask=g.mask[:, s:a].reshape(n, self.lags * v),
            edge_index=ei,
            num_nodes=n,
        )
        if ew is not None:
            out.edge_attr = ew
            out.edge_weight = ew
        if self.horizon:
            out.y = g.x[:, a:b].reshape(n, self.horizon * v)
            out.y_mask = g.mask[:, a:b].reshape(n, self.horizon * v)
        if g.time is not None and a < g.num_steps:
            out.time = g.time[a : a + 1]
        out.step = torch.tensor([a])
        return out

    def __getitem__(self, index: int | slice) -> Data | list[Data]:
        if isinstance(index, slice):
            return [self._window(i) for i in range(self.snapshot_count)[index]]
        if not -self.snapshot_count <= index < self.snapshot_count:
            raise IndexError(f"TemporalSignal: index {index} outside [0, {self.snapshot_count})")
        return self._window(index % self.snapshot_count)

    def __iter__(self) -> Iterator[Data]:
        for i in range(self.snapshot_count):
            yield self._window(i)
