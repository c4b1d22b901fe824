"""Per-graph structure the backbone needs: transferable encodings and a multi-level coarsening.

Everything here depends only on the graph (``edge_index``, ``pos``), never on the readings, so it
is computed once per graph and cached (keyed by a digest of the graph's tensors):

- :func:`random_walk_encoding` -- random-walk return probabilities ``diag(P^k)``, ``k = 1..K``
  (Dwivedi et al., "Graph Neural Networks with Learnable Structural and Positional
  Representations", ICLR 2022). Unlike Laplacian eigenvectors they need no sign or basis choice,
  so they transfer across graphs as they are.
- :func:`relative_coordinates` -- node coordinates in metres about the graph centroid, divided by
  the graph's RMS radius, so a city of any size and place maps to the same range.
- :func:`kd_partition` / :func:`coarsen` -- a KD-tree hierarchy: median splits along the wider axis
  until every cell holds at most ``cluster_size`` items; cells become the nodes of the next level
  (at their centroid) and are split again, up to a single root. Written with numpy because the
  usual PyG coarseners (``graclus``, ``voxel_grid``) live in ``torch-cluster``, which is not a
  dependency; a KD split is also deterministic, balanced and permutation-equivariant for distinct
  coordinates.

:func:`batch_structure` assembles the structure of a PyG batch from the cached per-graph parts.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from stgraph.nn.layers.directed_conv import normalized_adjacency

_EARTH_M_PER_DEG = 111_320.0


@dataclass
class GraphStructure:
    """Structure of one graph or of a batch of graphs (indices then refer to the batch).

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
        adj: the normalised transposed adjacencies of a batch (see
            :func:`~stgraph.nn.layers.directed_conv.normalized_adjacency`), or ``None``.
    """

    num_nodes: int
    rwse: Tensor
    rel_pos: Tensor
    has_pos: Tensor
    assign: list[Tensor] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    members: list[Tensor] = field(default_factory=list)
    slots: list[Tensor] = field(default_factory=list)
    adj: tuple | None = None
    _moved: dict = field(default_factory=dict, repr=False)

    def to(self, device: torch.device | str) -> GraphStructure:
        """A copy on ``device`` (memoised, so repeated calls cost nothing)."""
        device = torch.device(device)
        if device == self.rwse.device:
            return self
        key = str(device)
        if key not in self._moved:

            def mv(ts):
                return [t.to(device) for t in ts]

            self._moved[key] = GraphStructure(
                self.num_nodes,
                self.rwse.to(device),
                self.rel_pos.to(device),
                self.has_pos.to(device),
                mv(self.assign),
                list(self.sizes),
                mv(self.members),
                mv(self.slots),
                None if self.adj is None else tuple(a.to(device) for a in self.adj),
            )
        return self._moved[key]

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
    """Coordinates in metres: a local equirectangular projection for lon/lat, as-is otherwise."""
    p = pos.detach().cpu().double().numpy()
    if crs in (None, "EPSG:4326", "epsg:4326"):
        lat0 = math.radians(float(p[:, 1].mean())) if len(p) else 0.0
        return np.stack(
            [p[:, 0] * _EARTH_M_PER_DEG * math.cos(lat0), p[:, 1] * _EARTH_M_PER_DEG], axis=1
        )
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
    slot = torch.full((num_items,), -1, dtype=torch.long)
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
    if assign.numel() == 0:
        return torch.full((num_groups, 1), -1, dtype=torch.long)
    order = torch.argsort(assign, stable=True)
    counts = torch.bincount(assign, minlength=num_groups)
    cmax = max(int(counts.max()), 1)
    start = torch.cumsum(counts, 0) - counts
    slot = torch.arange(assign.numel()) - start[assign[order]]
    table = torch.full((num_groups, cmax), -1, dtype=torch.long)
    table[assign[order], slot] = order
    return table


# ----------------------------------------------------------------------------- caching
def graph_key(edge_index: Tensor, num_nodes: int, pos: Tensor | None, crs: str | None) -> str:
    """Digest of the tensors the structure depends on."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{num_nodes}|{crs}|".encode())
    h.update(edge_index.detach().cpu().contiguous().numpy().tobytes())
    if pos is not None:
        h.update(pos.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()


class _LRU(OrderedDict):
    def __init__(self, capacity: int) -> None:
        super().__init__()
        self.capacity = capacity

    def get_or(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        val = make()
        self[key] = val
        while len(self) > self.capacity:
            self.popitem(last=False)
        return val


_GRAPH_CACHE = _LRU(64)
_BATCH_CACHE = _LRU(16)


def compute_structure(
    edge_index: Tensor,
    num_nodes: int,
    pos: Tensor | None = None,
    *,
    crs: str | None = "EPSG:4326",
    rwse_steps: int = 6,
    cluster_size: int = 16,
) -> GraphStructure:
    """The structure of one graph (uncached); see the module docstring."""
    rwse = random_walk_encoding(edge_index, num_nodes, rwse_steps)
    if pos is not None:
        rel = relative_coordinates(pos, crs=crs)
        coords = rel.double().numpy()
        has = torch.ones(num_nodes, 1)
    else:
        rel = torch.zeros(num_nodes, 2)
        coords = spectral_coordinates(edge_index, num_nodes)
        has = torch.zeros(num_nodes, 1)
    assign_np, sizes = coarsen(coords, cluster_size)
    assign = [torch.from_numpy(a) for a in assign_np]
    members = [padded_members(a, sizes[i + 1]) for i, a in enumerate(assign)]
    slots = [member_slots(m, sizes[i]) for i, m in enumerate(members)]
    return GraphStructure(num_nodes, rwse, rel, has, assign, sizes, members, slots)


def cached_structure(
    edge_index: Tensor,
    num_nodes: int,
    pos: Tensor | None = None,
    *,
    crs: str | None = "EPSG:4326",
    rwse_steps: int = 6,
    cluster_size: int = 16,
) -> GraphStructure:
    """:func:`compute_structure`, memoised on the graph's digest and the options."""
    key = (graph_key(edge_index, num_nodes, pos, crs), rwse_steps, cluster_size)
    return _GRAPH_CACHE.get_or(
        key,
        lambda: compute_structure(
            edge_index, num_nodes, pos, crs=crs, rwse_steps=rwse_steps, cluster_size=cluster_size
        ),
    )


def _concat(parts: list[GraphStructure]) -> GraphStructure:
    if len(parts) == 1:
        p = parts[0]
        return GraphStructure(
            p.num_nodes, p.rwse, p.rel_pos, p.has_pos, p.assign, p.sizes, p.members, p.slots
        )
    depth = max(p.depth for p in parts)
    assign: list[Tensor] = []
    sizes = [sum(p.num_nodes for p in parts)]
    for lvl in range(depth):
        chunks, offset = [], 0
        for p in parts:
            if lvl < p.depth:
                chunks.append(p.assign[lvl] + offset)
                offset += p.sizes[lvl + 1]
            else:  # this graph already reached its root: carry it up unchanged
                chunks.append(torch.zeros(1, dtype=torch.long) + offset)
                offset += 1
        assign.append(torch.cat(chunks))
        sizes.append(offset)
    members = [padded_members(a, sizes[i + 1]) for i, a in enumerate(assign)]
    slots = [member_slots(m, sizes[i]) for i, m in enumerate(members)]
    return GraphStructure(
        sizes[0],
        torch.cat([p.rwse for p in parts]),
        torch.cat([p.rel_pos for p in parts]),
        torch.cat([p.has_pos for p in parts]),
        assign,
        sizes,
        members,
        slots,
    )


def batch_structure(
    edge_index: Tensor,
    ptr: Tensor,
    pos: Tensor | None = None,
    *,
    edge_weight: Tensor | None = None,
    crs: str | None = "EPSG:4326",
    rwse_steps: int = 6,
    cluster_size: int = 16,
) -> GraphStructure:
    """Structure of a PyG batch (graphs delimited by ``ptr``), from cached per-graph parts.

    Edges of a PyG batch are stored graph after graph, so each graph's edges are a contiguous run.

    Args:
        edge_index: ``[2, E]`` batch edge index.
        ptr: ``[B + 1]`` node offsets of the graphs.
        pos: ``[N, 2]`` or ``None``.
    """
    ptr_l = [int(v) for v in ptr.tolist()]
    bkey_h = hashlib.blake2b(digest_size=16)
    bkey_h.update(f"{ptr_l}|{crs}|{rwse_steps}|{cluster_size}|".encode())
    bkey_h.update(edge_index.detach().cpu().contiguous().numpy().tobytes())
    if pos is not None:
        bkey_h.update(pos.detach().cpu().float().contiguous().numpy().tobytes())
    if edge_weight is not None:
        bkey_h.update(b"w" + edge_weight.detach().cpu().float().contiguous().numpy().tobytes())
    bkey = bkey_h.hexdigest()

    def make() -> GraphStructure:
        num_graphs = len(ptr_l) - 1
        if edge_index.numel():
            owner = torch.bucketize(edge_index[0].cpu(), torch.tensor(ptr_l[1:]), right=True)
            counts = torch.bincount(owner, minlength=num_graphs).tolist()
        else:
            counts = [0] * num_graphs
        parts, e0 = [], 0
        for g in range(num_graphs):
            a, b = ptr_l[g], ptr_l[g + 1]
            ei = edge_index[:, e0 : e0 + counts[g]].cpu() - a
            e0 += counts[g]
            parts.append(
                cached_structure(
                    ei,
                    b - a,
                    None if pos is None else pos[a:b],
                    crs=crs,
                    rwse_steps=rwse_steps,
                    cluster_size=cluster_size,
                )
            )
        out = _concat(parts)
        out.adj = normalized_adjacency(
            edge_index.cpu(),
            None if edge_weight is None else edge_weight.detach().cpu(),
            out.num_nodes,
        )
        return out

    return _BATCH_CACHE.get_or(bkey, make)


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


def clear_structure_cache() -> None:
    """Forget every cached structure (e.g. between benchmark runs)."""
    _GRAPH_CACHE.clear()
    _BATCH_CACHE.clear()


__all__ = [
    "GraphStructure",
    "attention_groups",
    "broadcast_graphs",
    "batch_structure",
    "cached_structure",
    "clear_structure_cache",
    "coarsen",
    "compute_structure",
    "graph_key",
    "kd_partition",
    "member_slots",
    "segment_mean",
    "metric_coordinates",
    "padded_members",
    "random_walk_encoding",
    "relative_coordinates",
    "spectral_coordinates",
]
