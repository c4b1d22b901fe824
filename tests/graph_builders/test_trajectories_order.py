"""Trajectory rows in any order give the graph of the sorted file (issue 16: silent wrong result)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from graph_builders.trajectories import from_points, read_points

GRID = {"cell_m": 1000, "bbox": (116.2, 39.85, 116.5, 40.05)}
COLS = {"lon_col": "X", "lat_col": "Y", "time_col": "t", "id_col": "trajectory_id"}


def _geolife(data_dir) -> pd.DataFrame:
    return pd.read_csv(data_dir / "geolife-small" / "geolife_small.csv", sep=";")


def test_shuffled_rows_give_the_graph_of_the_sorted_file(data_dir, tmp_path):
    raw = _geolife(data_dir)
    path = tmp_path / "shuffled.csv"
    raw.sample(frac=1.0, random_state=0).to_csv(path, sep=";", index=False)
    ref = from_points(raw, grid=GRID, interval="1h", **COLS)
    got = from_points(path, grid=GRID, interval="1h", **COLS)
    assert sum(got.meta["dropped"].values()) == sum(ref.meta["dropped"].values())
    assert got.meta["matching"]["points_matched"] == ref.meta["matching"]["points_matched"]
    assert got.meta["dropped"]["duplicate"] == 0  # 5,873 of 5,908 were dropped before
    assert got.meta["matching"]["points_matched"] == 5594  # the rest lie outside the grid
    assert got.meta["matching"]["rows_out_of_time_order"] > 1000
    assert ref.meta["matching"]["rows_out_of_time_order"] == 0
    assert torch.equal(got.x, ref.x) and torch.equal(got.mask, ref.mask)
    assert torch.equal(got.dyn_edge_index, ref.dyn_edge_index)
    assert torch.equal(got.dyn_edge_weight, ref.dyn_edge_weight)


def test_only_exact_repeats_are_duplicates(data_dir):
    raw = _geolife(data_dir).iloc[:200].reset_index(drop=True)
    same_second = raw.iloc[[10]].assign(X=raw["X"].iloc[10] + 0.001)  # another fix, same second
    repeats = raw.iloc[[20, 20, 30]]
    table = pd.concat([raw, same_second, repeats], ignore_index=True)
    pts, dropped = read_points(table, **COLS)
    assert dropped["duplicate"] == 3
    assert len(pts) == 201
    # the two fixes of one second are both kept, in file order
    second = pts[pts["time"] == pts["time"].iloc[10]]
    assert np.allclose(second["lon"].to_numpy(), [raw["X"].iloc[10], raw["X"].iloc[10] + 0.001])
