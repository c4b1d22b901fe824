"""Edges of a regular grid: the one implementation for the registry and the graph builders.

Convention (stated once, here): a ``rows x cols`` grid numbers its cells **row-major**,
``node = row * cols + col``, with ``row`` and ``col`` counted from ``0`` along the caller's axes
(the builders' grids put row 0 at the southernmost row; a raster keeps its latitude order).
Neighbours are the cells one step away: ``neighbourhood=4`` (rook: cells sharing a side) or
``neighbourhood=8`` (queen: also the corners). Every link is returned in both directions, with no
self-loops, sorted by source then target (PyG's order). With ``keep``, only the links between kept
cells remain and the kept cells are renumbered ``0..K-1`` in row-major order.

The registry (``stgraph.datasets``) must not import ``graph_builders``, so this lives in
:mod:`stgraph.utils`, which both import.
"""

from __future__ import annotations

import numpy as np

from stgraph.errors import ConfigError, DataFormatError

__all__ = ["NEIGHBOUR_OFFSETS", "grid_edges"]

#: Offsets ``(d_row, d_col)`` of a cell's neighbours: 4 = rook (edge-sharing), 8 = queen.
NEIGHBOUR_OFFSETS = {
    4: ((-1, 0), (1, 0), (0, -1), (0, 1)),
    8: ((-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (-1, 1), (1, -1), (1, 1)),
}


def grid_edges(
    rows: int, cols: int, *, neighbourhood: int = 4, keep: np.ndarray | None = None
) -> np.ndarray:
    """Directed edges (both directions) between neighbouring cells of a ``rows x cols`` grid.

    Args:
        rows, cols: grid shape (cells numbered row-major, ``row * cols + col``).
        neighbourhood: ``4`` (rook) or ``8`` (queen).
        keep: optional bool ``[rows * cols]``: only edges between kept cells, renumbered to the
            kept cells in row-major order.

    Returns:
        int64 array ``[2, E]``, sorted by source then target; ``E = 2 * (rows * (cols - 1) +
        cols * (rows - 1))`` for the full 4-neighbourhood, plus ``4 * (rows - 1) * (cols - 1)``
        corner links for 8.

    Raises:
        ValueError: ``neighbourhood`` not 4 or 8, a negative shape, or ``keep`` of the wrong size.
    """
    if neighbourhood not in NEIGHBOUR_OFFSETS:
        raise ConfigError(f"neighbourhood: expected 4 or 8, got {neighbourhood!r}")
    rows, cols = int(rows), int(cols)
    if rows < 0 or cols < 0:
        raise ConfigError(f"grid_edges: rows and cols must be >= 0, got {rows} x {cols}")
    r, c = np.divmod(np.arange(rows * cols, dtype=np.int64), max(cols, 1))
    src, dst = [], []
    for dr, dc in NEIGHBOUR_OFFSETS[neighbourhood]:
        rr, cc = r + dr, c + dc
        ok = (rr >= 0) & (rr < rows) & (cc >= 0) & (cc < cols)
        src.append((r * cols + c)[ok])
        dst.append((rr * cols + cc)[ok])
    s, d = np.concatenate(src), np.concatenate(dst)
    if keep is not None:
        keep = np.asarray(keep, dtype=bool).reshape(-1)
        if keep.size != rows * cols:
            raise DataFormatError(
                f"keep: expected {rows * cols} cells ({rows} x {cols}), got {keep.size}"
            )
        ok = keep[s] & keep[d]
        remap = np.cumsum(keep) - 1
        s, d = remap[s[ok]], remap[d[ok]]
    order = np.lexsort((d, s))
    return np.stack([s[order], d[order]]).astype(np.int64)
