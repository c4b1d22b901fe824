"""Memory estimates (issue 16): builders refuse an allocation beyond the budget with the estimate
instead of dying with MemoryError or the OOM killer."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from graph_builders import moving, raster, trajectories
from stgraph.errors import ConfigError, MemoryBudgetError, STGraphError
from stgraph.utils.memory import available_bytes, check_memory, memory_budget, parse_budget

POINTS = pd.DataFrame(
    {
        "lon": [116.30, 116.31, 116.32],
        "lat": [39.90, 39.91, 39.92],
        "time": ["1970-01-01 00:00:00", "1995-06-01 12:00:00", "2020-01-01 00:00:00"],
        "id": [1, 1, 2],
    }
)
COLS = {"lon_col": "lon", "lat_col": "lat", "time_col": "time", "id_col": "id"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [("8G", 8 * 2**30), ("8GiB", 8 * 2**30), ("500M", 500 * 2**20), ("1024", 1024), (2048, 2048)],
)
def test_budget_sizes(text, expected):
    assert parse_budget(text) == expected


def test_budget_share_env_and_errors(monkeypatch):
    assert 0 < parse_budget("0.25") <= available_bytes() // 4 + 1
    monkeypatch.setenv("STGRAPH_MEMORY_BUDGET", "3M")
    assert memory_budget() == (3 * 2**20, "STGRAPH_MEMORY_BUDGET=3M")
    assert memory_budget("1G")[0] == 2**30  # the argument wins over the environment
    for bad in ("lots", "-1G", "0", "1e999"):
        with pytest.raises(ConfigError, match="memory budget"):
            parse_budget(bad)
    with pytest.raises(MemoryBudgetError, match=r"x: needs about 4.00 MiB, .*3.00 MiB"):
        check_memory("x", 4 * 2**20)
    assert issubclass(MemoryBudgetError, STGraphError) and issubclass(
        MemoryBudgetError, MemoryError
    )


@pytest.mark.parametrize("build", ["trajectories", "moving"])
def test_fifty_years_at_one_second_is_refused_with_the_estimate(build):
    start = time.perf_counter()
    with pytest.raises(
        MemoryBudgetError, match=r"1,577,836,801 steps.*needs about [0-9.]+ (TiB|GiB)"
    ):
        if build == "trajectories":
            grid = {"cell_m": 2000, "bbox": (116.2, 39.85, 116.5, 40.05)}
            trajectories.from_points(POINTS, grid=grid, interval="1s", **COLS)
        else:
            moving.from_tracks(POINTS, interval="1s", **COLS)
    assert time.perf_counter() - start < 20  # refused before allocating, not after swapping


def test_raster_is_refused_before_the_file_is_read(data_dir, monkeypatch):
    pytest.importorskip("cfgrib")
    path = data_dir / "era5-uk-t2m" / "era5-2mt-2019-03-uk.grib"
    monkeypatch.setenv("STGRAPH_MEMORY_BUDGET", "10M")
    with pytest.raises(MemoryBudgetError, match=r"era5-2mt.*time=744.*39.01 MiB.*10.00 MiB"):
        raster.from_grid(path)
    monkeypatch.setenv("STGRAPH_MEMORY_BUDGET", "100M")
    assert raster.from_grid(path).num_steps == 744
