"""A pretraining corpus: many graphs, each drawn only from the training part of its own split.

A corpus config lists sources — registry data sets (``dataset: NAME``) or saved graph
directories (``graph: DIR``) — with sampling weights, and an explicit ``held_out`` list that the
corpus refuses to draw from::

    sources:
      - {dataset: los-loop, weight: 2, nodes: east}     # sensors east of the median longitude
      - {dataset: chickenpox}
      - {graph: build-output/mine/graph, weight: 0.5}
    held_out:
      - {dataset: los-loop, nodes: west}                # unseen sensors of a seen city
      - {dataset: melbourne-pedestrian}

Each source is split chronologically (``split``, default 70/10/20) and only steps of its training
part are ever read: the corpus keeps the training slice of each graph and nothing else, so no
validation or test period of any data set reaches pretraining. ``nodes`` keeps half of a graph's
nodes by the median of their coordinates (``east``/``west``: longitude, ``north``/``south``:
latitude); a held-out entry without ``nodes`` holds out the whole data set.

:meth:`Corpus.sample` draws one batch per call from one graph (so node counts, variables and
intervals differ between batches) with the input length and lead time drawn per batch, and
:attr:`CorpusGraph.loss_scale` gives each graph's per-variable scale (the standard deviation of its
observed training values) that losses are divided by, so no data set's units dominate.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import Batch

from stgraph.data.splits import chronological_split
from stgraph.data.stgraph import STGraph
from stgraph.data.windows import SlidingWindows
from stgraph.errors import ConfigError

#: Node halves a source or a held-out entry may name.
NODE_HALVES = ("east", "west", "north", "south")


@dataclass(frozen=True)
class SourceSpec:
    """One entry of a corpus: where a graph comes from and how much of it is used.

    Attributes:
        dataset: registry name (exactly one of ``dataset`` and ``graph``).
        graph: directory written by ``STGraph.save`` / ``stgraph build``.
        weight: relative sampling weight (> 0).
        nodes: ``None`` (all nodes) or one of :data:`NODE_HALVES`.
        split: chronological (train, val, test) shares; only the train part is drawn from.
        options: loader options of the registry data set.
    """

    dataset: str | None = None
    graph: str | None = None
    weight: float = 1.0
    nodes: str | None = None
    split: tuple[float, float, float] = (0.7, 0.1, 0.2)
    options: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The source's name in logs and reports (``los-loop`` or ``los-loop[east]``)."""
        base = self.dataset if self.dataset is not None else Path(str(self.graph)).name
        return base if self.nodes is None else f"{base}[{self.nodes}]"

    @property
    def key(self) -> str:
        """What identifies the underlying data: the registry name or the resolved directory."""
        if self.dataset is not None:
            return f"dataset:{self.dataset}"
        return f"graph:{os.path.realpath(str(self.graph))}"


def parse_source(raw: object, where: str) -> SourceSpec:
    """A :class:`SourceSpec` from a config mapping; errors name ``where`` and the field."""
    if isinstance(raw, str):
        raw = {"dataset": raw}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with 'dataset' or 'graph', got {raw!r}")
    known = {"dataset", "graph", "weight", "nodes", "split", "options"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; expected some of {sorted(known)}")
    if ("dataset" in raw) == ("graph" in raw):
        raise ConfigError(
            f"{where}: give exactly one of 'dataset' (registry name) or 'graph' (dir)"
        )
    weight = raw.get("weight", 1.0)
    if not isinstance(weight, (int, float)) or not weight > 0:
        raise ConfigError(f"{where}.weight: expected a number > 0, got {weight!r}")
    nodes = raw.get("nodes")
    if nodes is not None and nodes not in NODE_HALVES:
        raise ConfigError(f"{where}.nodes: expected one of {list(NODE_HALVES)}, got {nodes!r}")
    split = tuple(raw.get("split", (0.7, 0.1, 0.2)))
    if (
        len(split) != 3
        or any(not isinstance(s, (int, float)) or s < 0 for s in split)
        or not (abs(sum(split) - 1.0) < 1e-6 and split[0] > 0)
    ):
        raise ConfigError(f"{where}.split: expected three shares summing to 1, got {list(split)}")
    options = raw.get("options", {}) or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}.options: expected a mapping, got {options!r}")
    return SourceSpec(
        dataset=raw.get("dataset"),
        graph=None if raw.get("graph") is None else str(raw["graph"]),
        weight=float(weight),
        nodes=nodes,
        split=split,  # type: ignore[arg-type]
        options=dict(options),
    )


def node_half(graph: STGraph, half: str) -> Tensor:
    """Bool ``[N]``: the nodes of ``half`` (:data:`NODE_HALVES`) by the median coordinate.

    ``east`` keeps longitudes at or above the median and ``west`` those below it (likewise
    ``north``/``south`` with latitude), so the two halves of a graph are disjoint and cover it.
    """
    if graph.pos is None:
        raise ConfigError(f"nodes: {half!r} needs node coordinates; this graph has no pos")
    axis = 0 if half in ("east", "west") else 1
    coord = graph.pos[:, axis].double()
    median = coord.median()
    upper = coord >= median
    return upper if half in ("east", "north") else ~upper


def _overlaps(a: SourceSpec, b: SourceSpec) -> bool:
    """Whether two entries can share nodes of the same data (halves of one axis never do)."""
    if a.key != b.key:
        return False
    if a.nodes is None or b.nodes is None:
        return True
    opposite = {"east": "west", "west": "east", "north": "south", "south": "north"}
    return a.nodes != opposite[b.nodes]


@dataclass
class CorpusGraph:
    """A source loaded and cut to the training part of its split.

    Attributes:
        spec: the entry.
        graph: the training slice (steps ``[0, train_steps)`` of the source; nodes of ``nodes``).
        train_steps: steps in the slice.
        loss_scale: ``[V]`` standard deviation of the observed training values per variable
            (1 where a variable is constant), the unit that losses on this graph are counted in.
    """

    spec: SourceSpec
    graph: STGraph
    train_steps: int
    loss_scale: Tensor


def _load_source(spec: SourceSpec) -> STGraph:
    if spec.dataset is not None:
        from stgraph import datasets

        return datasets.load(spec.dataset, **spec.options)
    from stgraph.data.io import load

    return load(spec.graph)


def prepare_source(spec: SourceSpec, graph: STGraph | None = None) -> CorpusGraph:
    """Load ``spec`` (or take ``graph``) and keep the training part of its split and nodes."""
    graph = _load_source(spec) if graph is None else graph
    if spec.nodes is not None:
        graph = graph.select_nodes(torch.nonzero(node_half(graph, spec.nodes)).view(-1))
    train_end = chronological_split(graph.num_steps, ratios=spec.split).train[1]
    graph = graph.slice_time(0, train_end)
    x = graph.x.double()
    m = graph.mask
    count = m.sum((0, 1)).clamp_min(1)
    mean = (x * m).sum((0, 1)) / count
    var = (((x - mean) ** 2) * m).sum((0, 1)) / count
    scale = var.sqrt().float()
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    return CorpusGraph(spec, graph, train_end, scale)


@dataclass(frozen=True)
class WindowRange:
    """Input lengths and lead times drawn per batch (inclusive ranges, in steps)."""

    input_steps: tuple[int, int] = (12, 24)
    horizon: tuple[int, int] = (1, 12)

    def draw(self, generator: torch.Generator, available: int) -> tuple[int, int]:
        """``(L, H)`` drawn uniformly, shrunk in proportion when ``L + H`` exceeds ``available``."""
        lo, hi = self.input_steps
        length = int(torch.randint(lo, hi + 1, (1,), generator=generator))
        lo, hi = self.horizon
        horizon = int(torch.randint(lo, hi + 1, (1,), generator=generator))
        return self.fit(length, horizon, available)

    @staticmethod
    def fit(length: int, horizon: int, available: int) -> tuple[int, int]:
        """``(L, H)`` shrunk in proportion when ``L + H`` exceeds ``available`` steps."""
        if length + horizon > available:
            share = available / (length + horizon)
            length = max(2, math.floor(length * share))
            horizon = max(1, available - length)
        return length, horizon


class Corpus:
    """Graphs to pretrain on, drawn per batch by weight; see the module docstring.

    Args:
        sources: the entries to draw from.
        held_out: entries that may never be drawn; a source that overlaps one is refused.
        windows: input length and lead-time ranges.
        node_budget: windows per batch are ``max(1, min(batch_size, node_budget // N))``.
        batch_size: the most windows per batch.
        graphs: already loaded graphs by source name (tests, or a caller that loaded them).
        transform: applied once to each training slice (e.g. the backbone's
            :class:`~stgraph.nn.AddGraphStructure`, so no batch recomputes the structure).

    Raises:
        ConfigError: a source overlaps a held-out entry, no source is given, or a graph's training
            part is too short for a window.
    """

    def __init__(
        self,
        sources: Sequence[SourceSpec],
        *,
        held_out: Sequence[SourceSpec] = (),
        windows: WindowRange | None = None,
        node_budget: int = 8192,
        batch_size: int = 32,
        graphs: dict[str, STGraph] | None = None,
        transform: Callable[[STGraph], STGraph] | None = None,
    ) -> None:
        if not sources:
            raise ConfigError("corpus: no sources to draw from")
        for s in sources:
            for h in held_out:
                if _overlaps(s, h):
                    raise ConfigError(
                        f"corpus: source {s.name!r} overlaps held-out {h.name!r}; remove it from "
                        "the sources or hold out the other half only"
                    )
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ConfigError(f"corpus: a source is listed twice in {names}")
        self.held_out = tuple(held_out)
        self.windows = windows or WindowRange()
        self.node_budget, self.batch_size = int(node_budget), int(batch_size)
        graphs = graphs or {}
        self.graphs = [prepare_source(s, graphs.get(s.name)) for s in sources]
        if transform is not None:
            for cg in self.graphs:
                cg.graph = transform(cg.graph)
        for cg in self.graphs:
            if cg.train_steps < 3:
                raise ConfigError(
                    f"corpus: {cg.spec.name} has {cg.train_steps} training steps; need at least 3"
                )
        weights = torch.tensor([s.weight for s in sources], dtype=torch.double)
        self.probabilities = weights / weights.sum()

    @property
    def names(self) -> list[str]:
        """Source names, in config order."""
        return [cg.spec.name for cg in self.graphs]

    def sample(self, generator: torch.Generator) -> tuple[int, Batch]:
        """One batch of windows of one graph: ``(source index, PyG Batch)``.

        The batch carries ``x``/``mask`` ``[B*N, L, V]``, ``y``/``y_mask`` ``[B*N, H, V]`` and the
        usual window attributes (see :class:`~stgraph.data.SlidingWindows`).
        """
        i = int(torch.multinomial(self.probabilities, 1, generator=generator))
        cg = self.graphs[i]
        length, horizon = self.windows.draw(generator, cg.train_steps)
        windows = SlidingWindows(cg.graph, length, horizon)
        b = self._windows_per_batch(cg, len(windows))
        starts = torch.randperm(len(windows), generator=generator)[:b]
        return i, Batch.from_data_list([windows[int(s)] for s in starts])

    def _windows_per_batch(self, cg: CorpusGraph, available: int) -> int:
        return max(
            1, min(self.batch_size, self.node_budget // max(cg.graph.num_nodes, 1), available)
        )

    def largest_batch(self, i: int) -> tuple[Batch, int]:
        """The largest batch graph ``i`` can give, for a memory estimate: a batch of one
        window of the longest input and lead time drawn (shrunk as :meth:`WindowRange.draw`
        shrinks them), and the windows of its batches."""
        cg = self.graphs[i]
        longest = (self.windows.input_steps[1], self.windows.horizon[1])
        windows = SlidingWindows(cg.graph, *WindowRange.fit(*longest, cg.train_steps))
        return Batch.from_data_list([windows[0]]), self._windows_per_batch(cg, len(windows))


__all__ = [
    "NODE_HALVES",
    "Corpus",
    "CorpusGraph",
    "SourceSpec",
    "WindowRange",
    "node_half",
    "parse_source",
    "prepare_source",
]
