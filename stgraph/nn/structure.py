"""Per-graph structure the backbone needs: transferable encodings and a multi-level coarsening.

Everything here depends only on the graph (``edge_index``, ``pos``), never on the readings, so
:class:`AddGraphStructure` (a PyG ``BaseTransform``) computes it once per graph and writes it onto
the :class:`~stgraph.data.STGraph` (:data:`~stgraph.data.stgraph.STRUCTURE_KEYS`); the windows of
a series carry it and a PyG batch concatenates it with the cell ids offset per level.
:meth:`GraphStructure.from_data` turns those tensors into the index tables of one forward pass.

- :func:`random_walk_encoding` -- random-walk return probabilities ``diag(P^k)``, ``k = 1..K``
  (Dwivedi et al., "Graph Neural Networks with Learnable Structural and Positional
  Representations", ICLR 2022). Unlike Laplacian eigenvectors they need no sign or basis choice,
  so they transfer across graphs as they are.
- :func:`relative_coordinates` -- node coordinates in metres (:func:`stgraph.utils.geo.project`,
  the one metric projection of stgraph) about the graph centroid, divided by the graph's RMS
  radius, so a city of any size and place maps to the same range.
- :func:`kd_partition` / :func:`coarsen` -- a KD-tree hierarchy: median splits along the wider axis
  until every cell holds at most ``cluster_size`` items; cells become the nodes of the next level
  (at their centroid) and are split again, up to a single root. Written with numpy because the
  usual PyG coarseners (``graclus``, ``voxel_grid``) live in ``torch-cluster``, which is not a
  dependency; a KD split is also deterministic, balanced and permutation-equivariant for distinct
  coordinates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor
from torch_geometric.data import Batch
from torch_geometric.transforms import BaseTransform

from stgraph.data.stgraph import STGraph
from stgraph.data.weights import AddEdgeAffinity
from stgraph.nn.sparse import SparseOperator
from stgraph.utils.geo import project


@dataclass
class GraphStructure:
    """Index tables of one graph or of a batch of graphs (indices then refer to the batch), as
    one forward pass uses them; built by :meth:`from_data` from the tensors that
    :class:`AddGraphStructure` wrote.

    Attributes:
        num_nodes: ``N``.
        rwse: random-walk encoding ``[N, K]``.
        rel_pos: relative coordinates ``[N, 2]`` (zeros when the graph has no ``pos``).
        has_pos: ``[N, 1]``, 1.0 where ``rel_pos`` is meaningful.
        assign: ``assign[l]`` maps the items of level ``l`` (level 0 = nodes) to their cell at
            level ``l + 1``: long ``[n_l]`` with values in ``[0, n_{l+1})``.
        sizes: ``[n_0, n_1, ..., n_top]``.
        members: ``members[l]`` is the padded member table of level ``l + 1``'s cells:
            ``[n_{l+1}, c_max]`` item indices of level ``l``, ``-1`` for padding.
        slots: ``slots[l]`` ``[n_l]``: flat position of each level-``l`` item in ``members[l]``.
        adj: the ``(A_in, A_out)`` operators of the graph's edges (see
            :func:`~stgraph.nn.sparse.normalized_adjacency`), or ``None``.
    """

    num_nodes: int
    rwse: Tensor
    rel_pos: Tensor
    has_pos: Tensor
    assign: list[Tensor] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    members: list[Tensor] = field(default_factory=list)
    slots: list[Tensor] = field(default_factory=list)
    adj: tuple[SparseOperator, SparseOperator] | None = None

    @classmethod
    def from_tensors(
        cls,
        rwse: Tensor,
        rel_pos: Tensor,
        has_pos: Tensor,
        kd_cell: Tensor,
        kd_size: Tensor,
        adj: tuple[SparseOperator, SparseOperator] | None = None,
    ) -> GraphStructure:
        """The tables from :data:`~stgraph.data.stgraph.STRUCTURE_KEYS` tensors of one graph or
        of a PyG batch (``kd_cell`` ``[N, D]`` offset per level, ``kd_size`` ``[B, D + 1]``).

        A graph whose hierarchy ends below the batch's deepest level (its root is reached: a
        level of one item) carries its root up unchanged, as one item per level."""
        n, cols = kd_cell.shape
        dev = kd_cell.device
        size = kd_size.view(-1, cols + 1)
        small = size <= 1  # the root level (and the padding above it) of each graph
        own = torch.where(small.any(1), small.long().argmax(1), torch.full_like(size[:, 0], cols))
        depth = int(own.max()) if own.numel() else 0
        sizes = [int(v) for v in size.sum(0)[: depth + 1].tolist()]
        assign: list[Tensor] = []
        prev = torch.arange(n, device=dev)
        for lvl in range(depth):
            cur = kd_cell[:, lvl]
            a = torch.zeros(sizes[lvl], dtype=torch.long, device=dev)
            assign.append(a.scatter_reduce_(0, prev, cur, "amax", include_self=False))
            prev = cur
        members = [padded_members(a, sizes[i + 1]) for i, a in enumerate(assign)]
        slots = [member_slots(m, sizes[i]) for i, m in enumerate(members)]
        return cls(n, rwse, rel_pos, has_pos, assign, sizes, members, slots, adj)

    @classmethod
    def from_data(
        cls, data: STGraph, adj: tuple[SparseOperator, SparseOperator] | None = None
    ) -> GraphStructure:
        """The tables of an STGraph (or PyG batch) that :class:`AddGraphStructure` transformed.

        Raises:
            ValueError: ``data`` was not transformed.
        """
        missing = [
            k for k in ("rwse", "rel_pos", "has_pos", "kd_cell", "kd_size") if data.get(k) is None
        ]
        if missing:
            raise ValueError(
                f"GraphStructure.from_data: the graph has no {missing}; apply "
                "stgraph.nn.AddGraphStructure (or STFM.transform) to it first"
            )
        return cls.from_tensors(
            data.rwse, data.rel_pos, data.has_pos, data.kd_cell, data.kd_size, adj
        )

    def to(self, device: torch.device | str) -> GraphStructure:
        """The tables on ``device`` (``self`` when they are there already)."""
        device = torch.device(device)
        if device == self.rwse.device:
            return self

        def mv(ts: list[Tensor]) -> list[Tensor]:
            return [t.to(device) for t in ts]

        return GraphStructure(
            self.num_nodes,
            self.rwse.to(device),
            self.rel_pos.to(device),
            self.has_pos.to(device),
            mv(self.assign),
            list(self.sizes),
            mv(self.members),
            mv(self.slots),
            None if self.adj is None else (self.adj[0].to(device), self.adj[1].to(device)),
        )

    @property
    def depth(self) -> int:
        """Number of coarse levels above the nodes."""
        return len(self.assign)


# ----------------------------------------------------------------------------- encodings
def _undirected_adjacency(edge_index: np.ndarray, num_nodes: int) -> sp.csr_matrix:
    src, dst = edge_index
    keep = src != dst
    src, dst = src[keep], dst[keep]
    a = sp.coo_matrix(
        (np.ones(2 * src.size), (np.r_[src, dst], np.r_[dst, src])), shape=(num_nodes, num_nodes)
    ).tocsr()
    a.data[:] = 1.0  # duplicates summed above; the walk is on the unweighted simple graph
    return a


def random_walk_encoding(edge_index: Tensor, num_nodes: int, steps: int) -> Tensor:
    r"""Random-walk structural encoding: return probabilities after ``1..steps`` steps.

    .. math::
        \mathrm{RW}_i = \big[(P)_{ii}, (P^2)_{ii}, \dots, (P^K)_{ii}\big],\qquad P = D^{-1}A

    on the undirected, unweighted simple graph. ``diag(P^{a+b}) = rowsum(P^a \odot (P^b)^T)``, so
    only powers up to ``ceil(K/2)`` are formed (sparse), which keeps the cost linear in ``N`` for
    graphs of bounded degree.

    Args:
        edge_index: ``[2, E]``.
        num_nodes: ``N``.
        steps: ``K``.

    Returns:
        ``[N, K]`` float tensor.
    """
    out = np.zeros((num_nodes, steps), dtype=np.float32)
    if num_nodes == 0 or steps == 0:
        return torch.from_numpy(out)
    a = _undirected_adjacency(edge_index.cpu().numpy(), num_nodes)
    deg = np.asarray(a.sum(1)).ravel()
    inv = np.where(deg > 0, 1.0 / np.maximum(deg, 1), 0.0)
    p = sp.diags(inv) @ a
    powers = [sp.identity(num_nodes, format="csr"), p.tocsr()]
    for _ in range(2, math.ceil(steps / 2) + 1):
        powers.append((powers[-1] @ p).tocsr())
    for k in range(1, steps + 1):
        i, j = math.ceil(k / 2), k // 2
        out[:, k - 1] = np.asarray(powers[i].multiply(powers[j].T).sum(1)).ravel()
    return torch.from_numpy(out)


def metric_coordinates(pos: Tensor, *, crs: str | None = "EPSG:4326") -> np.ndarray:
    """Coordinates in metres: lon/lat through :func:`stgraph.utils.geo.project` (pyproj, the UTM
    zone of the points' median), any other ``crs`` taken as metres already."""
    p = pos.detach().cpu().double().numpy()
    if crs in (None, "EPSG:4326", "epsg:4326") and len(p):
        return project(p[:, 0], p[:, 1])[0]
    return p


def relative_coordinates(pos: Tensor, *, crs: str | None = "EPSG:4326") -> Tensor:
    r"""Coordinates about the centroid in units of the graph's RMS radius.

    .. math:: \tilde p_i = (p_i - \bar p) / \sqrt{\tfrac1N \sum_j \lVert p_j - \bar p\rVert^2}

    Returns:
        ``[N, 2]`` float tensor.
    """
    m = metric_coordinates(pos, crs=crs)
    if len(m) == 0:
        return torch.zeros(0, 2)
    c = m - m.mean(0, keepdims=True)
    scale = math.sqrt(float((c**2).sum(1).mean()))
    return torch.from_numpy((c / scale if scale > 0 else c).astype(np.float32))


def spectral_coordinates(edge_index: Tensor, num_nodes: int) -> np.ndarray:
    """Two smallest non-trivial Laplacian eigenvectors: stand-in coordinates for partitioning
    graphs that have no ``pos`` (only the cells are used, never the signs, so sign flips are
    harmless)."""
    if num_nodes <= 2:
        return np.zeros((num_nodes, 2))
    a = _undirected_adjacency(edge_index.cpu().numpy(), num_nodes)
    deg = np.asarray(a.sum(1)).ravel()
    d = sp.diags(1.0 / np.sqrt(np.maximum(deg, 1)))
    lap = sp.identity(num_nodes) - d @ a @ d
    if num_nodes <= 3000:
        _, vec = np.linalg.eigh(lap.toarray())
        return vec[:, 1:3]
    from scipy.sparse.linalg import eigsh

    _, vec = eigsh((2 * sp.identity(num_nodes) - lap).tocsc(), k=3, which="LA", tol=1e-4)
    return vec[:, ::-1][:, 1:3]


# ----------------------------------------------------------------------------- coarsening
def kd_partition(coords: np.ndarray, cluster_size: int) -> np.ndarray:
    """Cells of at most ``cluster_size`` points by recursive median splits along the wider axis.

    Ties on the split axis are broken by the other axis, so for distinct points the cells are a
    function of the point set (permutation-equivariant). Cells hold between
    ``cluster_size // 2`` and ``cluster_size`` points. Cell ids follow the tree order.

    Args:
        coords: ``[n, 2]``.
        cluster_size: maximum points per cell (>= 2).

    Returns:
        int64 ``[n]`` cell id per point.
    """
    if cluster_size < 2:
        raise ValueError(f"cluster_size must be >= 2, got {cluster_size}")
    n = len(coords)
    out = np.zeros(n, dtype=np.int64)
    stack = [np.arange(n)]
    leaves: list[np.ndarray] = []
    while stack:
        idx = stack.pop()
        if idx.size <= cluster_size:
            leaves.append(idx)
            continue
        c = coords[idx]
        axis = int(np.argmax(c.max(0) - c.min(0)))
        order = np.lexsort((c[:, 1 - axis], c[:, axis]))
        half = idx.size // 2
        stack.append(idx[order[half:]])
        stack.append(idx[order[:half]])
    for cell, idx in enumerate(leaves):
        out[idx] = cell
    return out


def coarsen(coords: np.ndarray, cluster_size: int) -> tuple[list[np.ndarray], list[int]]:
    """Repeated :func:`kd_partition` on cell centroids up to a single root cell.

    Returns:
        ``(assign, sizes)``: ``assign[l]`` maps level-``l`` items to level-``l+1`` cells and
        ``sizes`` lists the item count per level, ending with 1.
    """
    assign: list[np.ndarray] = []
    sizes = [len(coords)]
    level = coords
    while len(level) > 1:
        cells = kd_partition(level, cluster_size)
        k = int(cells.max()) + 1
        counts = np.bincount(cells, minlength=k)[:, None]
        cent = np.zeros((k, 2))
        np.add.at(cent, cells, level)
        level = cent / counts
        assign.append(cells)
        sizes.append(k)
    return assign, sizes


def member_slots(members: Tensor, num_items: int) -> Tensor:
    """Flat position in ``members`` of every item (each item appears exactly once)."""
    flat = members.reshape(-1)
    valid = flat >= 0
    slot = torch.full((num_items,), -1, dtype=torch.long, device=members.device)
    slot[flat[valid]] = torch.nonzero(valid).view(-1)
    return slot


def broadcast_graphs(t: Tensor, batch: Tensor) -> Tensor:
    """``t[batch]`` for per-graph rows ``t`` ``[B, ...]``; a reshape when graphs have equal
    sizes (nodes of a PyG batch are grouped by graph), whose backward is a plain sum."""
    b, n = t.size(0), batch.numel()
    if b == 1:
        return t.expand(n, *t.shape[1:])
    if n % b == 0:
        per = n // b
        if bool((batch[::per] == torch.arange(b, device=batch.device)).all()) and bool(
            (batch.view(b, per) == batch[::per].view(b, 1)).all()
        ):
            return t.unsqueeze(1).expand(b, per, *t.shape[1:]).reshape(n, *t.shape[1:])
    return t.index_select(0, batch)


def segment_mean(x: Tensor, index: Tensor, size: int) -> Tensor:
    """Mean of the rows of ``x`` per ``index`` value (``index_add``-based: fast on CPU)."""
    out = x.new_zeros(size, *x.shape[1:]).index_add_(0, index, x)
    cnt = torch.bincount(index, minlength=size).clamp_min(1).to(x.dtype)
    return out / cnt.view(-1, *([1] * (x.dim() - 1)))


def padded_members(assign: Tensor, num_groups: int) -> Tensor:
    """Member table ``[num_groups, c_max]`` of each group (``-1`` padded), members in item order."""
    dev = assign.device
    if assign.numel() == 0:
        return torch.full((num_groups, 1), -1, dtype=torch.long, device=dev)
    order = torch.argsort(assign, stable=True)
    counts = torch.bincount(assign, minlength=num_groups)
    cmax = max(int(counts.max()), 1)
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(assign.numel(), device=dev) - start[assign[order]]
    table = torch.full((num_groups, cmax), -1, dtype=torch.long, device=dev)
    table[assign[order], slot] = order
    return table


# ----------------------------------------------------------------------------- per graph
def structure_tensors(
    edge_index: Tensor,
    num_nodes: int,
    pos: Tensor | None = None,
    *,
    crs: str | None = "EPSG:4326",
    rwse_steps: int = 6,
    cluster_size: int = 16,
    kd_levels: int | None = None,
) -> dict[str, Tensor]:
    """The structure of one graph as the tensors of :data:`~stgraph.data.stgraph.STRUCTURE_KEYS`.

    ``kd_cell[i, l]`` is node ``i``'s cell at level ``l + 1`` of :func:`coarsen` (on the relative
    coordinates, or on :func:`spectral_coordinates` when there is no ``pos``), for ``kd_levels``
    levels: above the graph's root the root is carried up (cell 0, one item per level), and
    levels above ``kd_levels`` are not kept. ``kd_size[0]`` counts the items per level, nodes
    first. ``kd_levels=None`` keeps exactly the graph's own levels.
    """
    rwse = random_walk_encoding(edge_index, num_nodes, rwse_steps)
    if pos is not None:
        rel = relative_coordinates(pos, crs=crs)
        coords = rel.double().numpy()
        has = torch.ones(num_nodes, 1)
    else:
        rel = torch.zeros(num_nodes, 2)
        coords = spectral_coordinates(edge_index, num_nodes)
        has = torch.zeros(num_nodes, 1)
    assign, sizes = coarsen(coords, cluster_size)
    cols = len(assign) if kd_levels is None else int(kd_levels)
    cells = np.zeros((num_nodes, cols), dtype=np.int64)
    cur = np.arange(num_nodes)
    for lvl in range(min(cols, len(assign))):
        cur = assign[lvl][cur]
        cells[:, lvl] = cur
    root = 1 if num_nodes else 0
    kd_size = [sizes[0]] + [sizes[i + 1] if i < len(assign) else root for i in range(cols)]
    return {
        "rwse": rwse,
        "rel_pos": rel,
        "has_pos": has,
        "kd_cell": torch.from_numpy(cells),
        "kd_size": torch.tensor([kd_size], dtype=torch.long),
        "kd_cluster": torch.tensor([cluster_size], dtype=torch.long),
    }


def compute_structure(
    edge_index: Tensor,
    num_nodes: int,
    pos: Tensor | None = None,
    *,
    crs: str | None = "EPSG:4326",
    rwse_steps: int = 6,
    cluster_size: int = 16,
) -> GraphStructure:
    """The :class:`GraphStructure` of one graph with all its levels (no adjacency)."""
    t = structure_tensors(
        edge_index, num_nodes, pos, crs=crs, rwse_steps=rwse_steps, cluster_size=cluster_size
    )
    return GraphStructure.from_tensors(
        t["rwse"], t["rel_pos"], t["has_pos"], t["kd_cell"], t["kd_size"]
    )


class AddGraphStructure(BaseTransform):
    r"""Writes the structure the STFM backbone reads onto a graph, once per graph.

    A PyG ``BaseTransform``: the random-walk encoding (``rwse``), the relative coordinates
    (``rel_pos``, ``has_pos``), the KD coarsening (``kd_cell``, ``kd_size``, ``kd_cluster``; see
    :func:`structure_tensors`) and the Gaussian edge affinities of
    :class:`~stgraph.data.AddEdgeAffinity`. :class:`~stgraph.data.SlidingWindows` passes them to
    every window and a PyG batch offsets the cell ids level by level, so a model reads them as
    tensors. ``transform(graph)`` returns a shallow copy (PyG's contract);
    ``transform.forward(graph)`` writes onto ``graph`` itself.

    Args:
        rwse_steps: length ``K`` of the random-walk encoding (default ``6``).
        cluster_size: maximum items per KD cell (default ``16``).
        kd_levels: coarse levels kept (default ``4``). A model with ``levels`` pooling levels
            reads ``levels + 2`` of them (its STBlocks' attention sees level 1 and the cells of
            level 2; the top pooling level the two above it); every graph of a batch needs the
            same number, which is why it is fixed rather than each graph's own depth.
    """

    def __init__(self, rwse_steps: int = 6, cluster_size: int = 16, kd_levels: int = 4) -> None:
        if rwse_steps < 0 or cluster_size < 2 or kd_levels < 1:
            raise ValueError(
                f"AddGraphStructure: need rwse_steps >= 0, cluster_size >= 2, kd_levels >= 1; "
                f"got {rwse_steps}, {cluster_size}, {kd_levels}"
            )
        self.rwse_steps, self.cluster_size, self.kd_levels = rwse_steps, cluster_size, kd_levels

    def forward(self, data: STGraph) -> STGraph:
        """``data`` with the structure attributes set (see the class docstring)."""
        if isinstance(data, Batch):
            raise TypeError(
                "AddGraphStructure: transform each graph, then batch (a PyG batch has no single "
                "structure)"
            )
        edge_index = data.edge_index
        if edge_index is None:
            edge_index = torch.empty(2, 0, dtype=torch.long)
        crs = (data.meta or {}).get("crs", "EPSG:4326")
        pos = data.pos
        tensors = structure_tensors(
            edge_index.cpu(),
            data.num_nodes,
            None if pos is None else pos.cpu(),
            crs=crs,
            rwse_steps=self.rwse_steps,
            cluster_size=self.cluster_size,
            kd_levels=self.kd_levels,
        )
        dev = data.x.device if data.x is not None else torch.device("cpu")
        for key, value in tensors.items():
            data[key] = value.to(dev)
        return AddEdgeAffinity().forward(data)

    def matches(self, data: STGraph) -> bool | None:
        """``True`` if ``data`` carries structure built with these options, ``False`` if it
        carries another one, ``None`` if it carries none."""
        if data.get("kd_cell") is None or data.get("rwse") is None:
            return None
        cluster = data.get("kd_cluster")
        return (
            int(data.rwse.size(-1)) == self.rwse_steps
            and int(data.kd_cell.size(-1)) >= self.kd_levels
            and cluster is not None
            and bool((cluster == self.cluster_size).all())
        )

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(rwse_steps={self.rwse_steps}, "
            f"cluster_size={self.cluster_size}, kd_levels={self.kd_levels})"
        )


def attention_groups(
    structure: GraphStructure, level: int
) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor]:
    """Groups for :class:`~stgraph.nn.PartitionAttention` over the items of ``level``.

    Items are grouped by their cell at ``level + 1``; each group also sees the cells (at
    ``level + 1``) that share its parent at ``level + 2``. At the root every item is alone.

    Returns:
        ``(members, context_members, group_context, slots)``; the context is pooled from
        ``level`` by ``structure.assign[level]``. ``context_members`` is ``None`` at the root.
    """
    depth = structure.depth
    dev = structure.rwse.device
    if level >= depth:
        n = structure.sizes[min(level, depth)]
        ar = torch.arange(n, device=dev)
        return ar.view(-1, 1), None, None, ar
    members, slots = structure.members[level], structure.slots[level]
    if level + 1 < depth:
        return members, structure.members[level + 1], structure.assign[level + 1], slots
    n1 = structure.sizes[level + 1]
    ar = torch.arange(n1, device=dev)
    return members, ar.view(-1, 1), ar, slots


__all__ = [
    "AddGraphStructure",
    "GraphStructure",
    "attention_groups",
    "broadcast_graphs",
    "coarsen",
    "compute_structure",
    "kd_partition",
    "member_slots",
    "metric_coordinates",
    "padded_members",
    "random_walk_encoding",
    "relative_coordinates",
    "segment_mean",
    "spectral_coordinates",
    "structure_tensors",
]
