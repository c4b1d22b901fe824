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


def test_drop_rule_warns_then_refuses_with_strict(data_dir, caplog):
    import pytest

    from graph_builders._inputs import TooManyDroppedError

    raw = _geolife(data_dir)
    bad = raw.copy()
    bad.loc[bad.index[::4], "t"] = "not a time"  # 25 % unparseable
    with caplog.at_level("WARNING", logger="stgraph.builders"):
        g = from_points(bad, grid=GRID, interval="1h", **COLS)
    assert g.meta["dropped"]["unparseable_time"] == 1477
    assert "dropped 1,477 of 5,908 GPS points" in caplog.text
    with pytest.raises(TooManyDroppedError, match="unparseable_time 1,477"):
        from_points(bad, grid=GRID, interval="1h", strict=True, **COLS)
    caplog.clear()
    with caplog.at_level("WARNING", logger="stgraph.builders"):
        from_points(raw, grid=GRID, interval="1h", **COLS)  # 314 outside the grid: the option's
    assert "dropped" not in caplog.text


def test_all_garbage_times_name_the_time_column(data_dir):
    import pytest

    from stgraph.errors import DataFormatError

    raw = _geolife(data_dir).assign(t="garbage")
    with pytest.raises(
        DataFormatError,
        match=r"none of the 5,908 rows.*unparseable_time 5,908.*'t' holds e.g. \['garbage'",
    ):
        from_points(raw, grid=GRID, interval="1h", **COLS)
