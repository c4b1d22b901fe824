"""events.from_points and ``stgraph build --events`` on a table as a city publishes it (issues 15
and 16): a year of traffic accidents with ``Longitude``/``Latitude``, the date spread over
``Month`` (names), ``Day`` and ``Hour`` columns and no year, exact duplicate records, a few stray
coordinates. The file is made in the test, shaped like Barcelona's 2017 accidents.
"""

from __future__ import annotations

import gzip
import json
import logging

import numpy as np
import pandas as pd
import pytest

from graph_builders import events
from graph_builders._inputs import TooManyDroppedError
from graph_builders.build import config_from_dict, run_build
from stgraph.cli import build_parser, main
from stgraph.data import load
from stgraph.errors import DataFormatError

MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
PARTS = {"year": 2017, "month": "Month", "day": "Day", "hour": "Hour"}
N, DUPS, STRAY = 3000, 7, 3


@pytest.fixture(scope="module")
def accidents(tmp_path_factory):
    """accidents.csv, and the same rows as a DataFrame with the true time of each."""
    rng = np.random.default_rng(3)
    month = rng.integers(1, 13, N)
    day = rng.integers(1, 29, N)
    hour = rng.integers(0, 24, N)
    df = pd.DataFrame(
        {
            "Id": [f"2017S{i:06d}" for i in range(N)],
            "District Name": rng.choice(["Eixample", "Gracia", "Sants-Montjuic"], N),
            "Month": [MONTHS[m - 1] for m in month],
            "Day": day,
            "Hour": hour,
            "Part of the day": np.where(hour < 14, "Morning", "Afternoon"),
            "Longitude": 2.10 + 0.12 * rng.random(N),
            "Latitude": 41.35 + 0.10 * rng.random(N),
        }
    )
    df.loc[: STRAY - 1, ["Longitude", "Latitude"]] = [2.9, 41.9]  # stray, 60 km away
    df = pd.concat([df, df.iloc[100 : 100 + DUPS]], ignore_index=True)  # exact duplicates
    path = tmp_path_factory.mktemp("accidents") / "accidents.csv"
    df.to_csv(path, index=False)
    df["when"] = pd.to_datetime(
        {
            "year": 2017,
            "month": np.r_[month, month[100 : 100 + DUPS]],
            "day": df.Day,
            "hour": df.Hour,
        }
    )
    return path, df


def _grid():
    return events.Grid.from_bbox(2.05, 41.30, 3.0, 42.0, cell_m=2000)


def test_columns_in_any_case_and_time_from_parts(accidents):
    path, df = accidents
    g = events.from_points(
        path, regions=_grid(), interval="1h", time=PARTS, types="part of the day"
    )
    assert g.variables == ["Afternoon", "Morning"]
    assert g.meta["summary"]["counted"] == N + DUPS and sum(g.meta["dropped"].values()) == 0
    t0 = pd.Timestamp(df.when.min()).floor("1h")
    assert int(g.time[0]) == int(t0.tz_localize("UTC").timestamp()) and g.interval == 3600
    # every accident in its hour, its cell and its type
    cells = _grid().cell_of(df.Longitude.to_numpy(), df.Latitude.to_numpy())
    steps = ((df.when - t0) // pd.Timedelta("1h")).to_numpy()
    types = (df["Part of the day"] == "Morning").to_numpy().astype(int)
    expected = np.zeros(tuple(g.x.shape), dtype=np.float32)
    np.add.at(expected, (cells, steps, types), 1.0)
    np.testing.assert_array_equal(g.x.numpy(), expected)


def test_missing_time_column_lists_columns_and_the_parts_option(accidents):
    path, _ = accidents
    with pytest.raises(DataFormatError) as info:
        events.from_points(path, regions=_grid(), interval="1D")
    msg = str(info.value)
    assert str(path) in msg and "time_col='time'" in msg and "'Longitude'" in msg
    assert "--time year=2017,month=Month,day=Day,hour=Hour" in msg
    with pytest.raises(DataFormatError, match=r"parts are \['year'"):
        events.from_points(path, regions=_grid(), time={"month": "Month"})


def test_duplicates_counted_and_dropped_on_request(accidents):
    path, _ = accidents
    kept = events.from_points(path, regions=_grid(), time=PARTS)
    assert kept.meta["summary"]["duplicates"] == DUPS
    dropped = events.from_points(path, regions=_grid(), time=PARTS, duplicates="drop")
    assert dropped.meta["dropped"]["duplicate"] == DUPS
    assert dropped.meta["summary"]["counted"] == N == float(dropped.x.sum())


def test_dst_hourly_bins_say_what_to_do(accidents):
    path, _ = accidents
    with pytest.raises(DataFormatError) as info:
        events.from_points(path, regions=_grid(), time=PARTS, interval="1h", tz="Europe/Madrid")
    msg = str(info.value)
    assert "1h bins in time zone 'Europe/Madrid'" in msg
    assert "2017-03-26 02:00:00 does not exist there (clocks go forward)" in msg
    assert "UTC" in msg and "Etc/GMT-1" in msg
    fixed = events.from_points(path, regions=_grid(), time=PARTS, interval="1h", tz="Etc/GMT-1")
    utc = events.from_points(path, regions=_grid(), time=PARTS, interval="1h")
    assert int(utc.time[0] - fixed.time[0]) == 3600  # UTC+1 wall clock: one hour earlier in UTC
    daily = events.from_points(path, regions=_grid(), time=PARTS, tz="Europe/Madrid")
    assert daily.num_steps == 362


def test_the_drop_rule_warns_and_strict_refuses(accidents, caplog, tmp_path):
    _, df = accidents
    bad = df.drop(columns="when").copy()
    bad.loc[: N // 4, "Month"] = "Smarch"  # 25 % of the dates do not exist
    with caplog.at_level(logging.WARNING, logger="stgraph"):
        g = events.from_points(bad, regions=_grid(), time=PARTS)
    assert g.meta["dropped"]["unparseable_time"] == N // 4 + 1
    (rec,) = [r for r in caplog.records if "unparseable_time" in r.getMessage()]
    assert f"dropped {N // 4 + 1:,} of {N + DUPS:,} events" in rec.getMessage()
    with pytest.raises(TooManyDroppedError, match="unparseable_time"):
        events.from_points(bad, regions=_grid(), time=PARTS, strict=True)
    # a bbox is the user's choice: not held against the input
    small = events.from_points(
        df.drop(columns="when"),
        regions=_grid(),
        time=PARTS,
        bbox=(2.1, 41.35, 2.13, 41.38),
        strict=True,
    )
    assert small.meta["dropped"]["outside_bbox"] > N // 2


def test_truncated_gzip_is_a_clear_error(accidents, tmp_path):
    path, _ = accidents
    data = gzip.compress(path.read_bytes())
    cut = tmp_path / "accidents.csv.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=r"accidents\.csv\.gz: .*truncated or damaged"):
        events.from_points(cut, regions=_grid(), time=PARTS)


def test_cli_events_with_time_parts_type_and_the_default_grid(accidents, tmp_path, capsys):
    path, _ = accidents
    out = tmp_path / "cli"
    argv = ["build", "--events", str(path), "--time", "year=2017,month=Month,day=Day,hour=Hour"]
    argv += ["--event-type", "Part of the day", "--interval", "1D", "-o", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    g = load(out / "graph")
    assert g.variables == ["Afternoon", "Morning"] and g.interval == 86400
    (row,) = summary["sources"]
    extent = row["report"]["grid_extent"]
    # the default grid trims the 0.5 % tails: the stray points are outside, dropped and counted
    assert extent["points"] == N + DUPS and extent["outside"] >= STRAY
    assert summary["dropped"]["events.outside_regions"] == extent["outside"]
    assert float(g.x.sum()) == N + DUPS - extent["outside"]
    assert row["report"]["summary"]["duplicates"] == DUPS
    assert f"{extent['outside']:,} of {N + DUPS:,} points outside" in printed
    assert f"duplicates: {DUPS:,} rows repeat an earlier row exactly" in printed
    # and --help says so
    help_text = build_parser()._subparsers._group_actions[0].choices["build"].format_help()
    assert "0.5-99.5 % extent" in " ".join(help_text.split())
    for flag in ("--time-col", "--time ", "--event-type", "--tz", ".osm.gz"):
        assert flag in help_text


def test_config_with_time_parts(accidents, tmp_path):
    path, _ = accidents
    cfg = config_from_dict(
        {
            "name": "accidents",
            "interval": "1D",
            "sources": [
                {
                    "kind": "events",
                    "path": str(path),
                    "options": {
                        "time": PARTS,
                        "types": "Part of the day",
                        "regions": {"cell_m": 1000},
                    },
                }
            ],
        }
    )
    result = run_build(cfg, output=tmp_path / "out", verbose=False)
    assert result.graph.variables == ["Afternoon", "Morning"]
    assert result.summary["steps"] == 362
