"""stgraph.utils.grid.grid_edges: the one grid-edge implementation (registry and builders)."""

import numpy as np
import pytest

from stgraph.utils.grid import grid_edges


def test_numbering_order_and_count_pinned():
    # 2 x 3 grid, row-major: 0 1 2 / 3 4 5; both directions, sorted by source then target
    ei = grid_edges(2, 3)
    assert ei.dtype == np.int64
    assert ei.T.tolist() == [
        [0, 1], [0, 3],
        [1, 0], [1, 2], [1, 4],
        [2, 1], [2, 5],
        [3, 0], [3, 4],
        [4, 1], [4, 3], [4, 5],
        [5, 2], [5, 4],
    ]  # fmt: skip
    rows, cols = 7, 5
    assert grid_edges(rows, cols).shape[1] == 2 * (rows * (cols - 1) + cols * (rows - 1))


def test_queen_adds_the_corners():
    rook = set(map(tuple, grid_edges(2, 3).T.tolist()))
    queen = set(map(tuple, grid_edges(2, 3, neighbourhood=8).T.tolist()))
    assert queen - rook == {(0, 4), (4, 0), (1, 3), (3, 1), (1, 5), (5, 1), (2, 4), (4, 2)}
    assert grid_edges(4, 6, neighbourhood=8).shape[1] == 2 * (4 * 5 + 6 * 3) + 4 * 3 * 5


def test_keep_renumbers_the_kept_cells_row_major():
    keep = np.array([True, False, True, True, True, True])
    sub = grid_edges(2, 3, keep=keep)
    # kept cells 0, 2, 3, 4, 5 become 0..4; cell 1's links are gone
    assert sub.T.tolist() == [[0, 2], [1, 4], [2, 0], [2, 3], [3, 2], [3, 4], [4, 1], [4, 3]]


def test_matches_a_brute_force_neighbour_scan():
    rows, cols = 5, 4
    for nb in (4, 8):
        want = sorted(
            (r * cols + c, rr * cols + cc)
            for r in range(rows)
            for c in range(cols)
            for rr in range(rows)
            for cc in range(cols)
            if (r, c) != (rr, cc)
            and max(abs(r - rr), abs(c - cc)) == 1
            and (nb == 8 or abs(r - rr) + abs(c - cc) == 1)
        )
        assert grid_edges(rows, cols, neighbourhood=nb).T.tolist() == [list(p) for p in want]


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="neighbourhood"):
        grid_edges(2, 2, neighbourhood=6)
    with pytest.raises(ValueError, match="keep"):
        grid_edges(2, 2, keep=np.ones(3, dtype=bool))
