"""sensors.from_table on tables as users hold them (issues 15 and 16): zero-padded station ids, a
wide table with a ``datetime`` column, readings that overflow float32, inf and non-numbers.

The files are shaped like a year of hourly PM2.5 at 36 stations keyed by ids such as "001001"
(two weeks here), made in the test.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from graph_builders import sensors
from graph_builders._inputs import MemoryBudgetError, TooManyDroppedError
from graph_builders.build import config_from_dict, run_build
from stgraph.cli import main
from stgraph.data import load
from stgraph.errors import DataFormatError

IDS = [f"{1001 + i:06d}" for i in range(36)]  # "001001" .. "001036"
STEPS = 24 * 14


@pytest.fixture
def pm25(tmp_path):
    """locations.csv (sensor_id, longitude, latitude) and a wide readings.csv with ``datetime``."""
    rng = np.random.default_rng(7)
    loc = tmp_path / "locations.csv"
    pd.DataFrame(
        {
            "sensor_id": IDS,
            "longitude": 116.2 + 0.3 * rng.random(36),
            "latitude": 39.8 + 0.2 * rng.random(36),
        }
    ).to_csv(loc, index=False)
    times = pd.date_range("2017-01-01", periods=STEPS, freq="h")
    values = rng.gamma(2.0, 30.0, (STEPS, 36)).round(1)
    wide = pd.DataFrame(values, columns=IDS)
    wide.insert(0, "datetime", times.strftime("%Y-%m-%d %H:%M:%S"))
    rd = tmp_path / "readings.csv"
    wide.to_csv(rd, index=False)
    return loc, rd, values


def _check_pm25(g, values):
    assert g.meta["node_ids"] == IDS  # the zero-padded ids, on both sides of the join
    assert tuple(g.x.shape) == (36, STEPS, 1) and bool(g.mask.all())
    np.testing.assert_allclose(g.x[:, :, 0].numpy().T, values, rtol=1e-6)
    assert g.interval == 3600
    assert int(g.time[0]) == int(pd.Timestamp("2017-01-01", tz="UTC").timestamp())
    assert int(g.time[-1] - g.time[0]) == (STEPS - 1) * 3600
    assert sum(g.meta["dropped"].values()) == 0
    assert all("datetime" not in ids for ids in g.meta["dropped_ids"].values())


def test_zero_padded_ids_and_the_datetime_column(pm25):
    loc, rd, values = pm25
    g = sensors.from_table(loc, rd)  # the datetime column is found: never a sensor
    _check_pm25(g, values)
    assert g.meta["time_col"] == "datetime"
    for time_col in ("datetime", "DateTime"):  # given, in any case
        _check_pm25(sensors.from_table(loc, rd, time_col=time_col), values)


def test_config_with_time_col(pm25, tmp_path):
    loc, rd, values = pm25
    cfg = config_from_dict(
        {
            "name": "pm25",
            "sources": [
                {
                    "kind": "sensors",
                    "locations": str(loc),
                    "readings": str(rd),
                    "options": {"time_col": "datetime", "units": "ug/m3"},
                }
            ],
        }
    )
    result = run_build(cfg, output=tmp_path / "out", verbose=False)
    _check_pm25(load(tmp_path / "out" / "graph"), values)
    assert result.summary["nodes"] == 36 and result.summary["interval_s"] == 3600


@pytest.mark.parametrize("extra", [[], ["--time-col", "datetime"]])
def test_cli_sensors_form(pm25, tmp_path, extra):
    loc, rd, values = pm25
    out = tmp_path / "cli"
    assert main(["build", "-q", "--sensors", f"{loc}:{rd}", *extra, "-o", str(out)]) == 0
    _check_pm25(load(out / "graph"), values)


def test_no_match_shows_ids_of_both_sides(pm25, tmp_path):
    loc, rd, _ = pm25
    other = pd.read_csv(loc, dtype=str)
    other["sensor_id"] = [f"ST{i:02d}" for i in range(36)]
    other.to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(DataFormatError) as info:
        sensors.from_table(tmp_path / "other.csv", rd)
    msg = str(info.value)
    assert "no sensor left after the join" in msg
    assert "'ST00'" in msg and "'001001'" in msg and "datetime" not in msg.split("in ")[-1]
    # ids made numbers by the user's own read: the error says that leading zeros differ
    as_numbers = pd.read_csv(loc)  # sensor_id 1001, 1002, ...
    with pytest.raises(DataFormatError, match="leading zeros"):
        sensors.from_table(as_numbers, rd)


def test_few_matches_warn_with_ids_of_both_sides(pm25, tmp_path, caplog):
    loc, rd, _ = pm25
    half = pd.read_csv(loc, dtype=str)
    half.loc[:24, "sensor_id"] = [f"X{i}" for i in range(25)]
    half.to_csv(tmp_path / "half.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="stgraph"):
        g = sensors.from_table(tmp_path / "half.csv", rd)
    assert g.num_nodes == 11
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "only 11 of 36 located sensors" in text and "'X0'" in text and "'001001'" in text


def test_bad_readings_are_counted_never_observed(pm25, tmp_path):
    loc, rd, values = pm25
    wide = pd.read_csv(rd, dtype={"datetime": str})
    wide = wide.astype({IDS[0]: object, IDS[1]: object})
    wide.loc[3, IDS[0]] = "1e39"  # float32 overflow: would be stored as inf
    wide.loc[4, IDS[0]] = "inf"
    wide.loc[5, IDS[1]] = "broken"
    wide.loc[6, IDS[1]] = "-inf"
    wide[IDS[2]] = "offline"  # a column of non-numbers: no sensor
    wide.to_csv(tmp_path / "bad.csv", index=False)
    g = sensors.from_table(loc, tmp_path / "bad.csv", time_col="datetime")
    d = g.meta["dropped"]
    assert d["overflow_values"] == 1 and d["infinite_values"] == 2
    assert d["unparseable_values"] == 1 and d["non_numeric_sensor"] == 1
    assert d["no_readings"] == 0 and d["no_location"] == 0
    assert g.meta["dropped_ids"]["non_numeric_sensor"] == [IDS[2]]
    assert IDS[2] not in g.meta["node_ids"] and g.num_nodes == 35
    assert bool(g.x.isfinite().all())
    i0, i1 = g.meta["node_ids"].index(IDS[0]), g.meta["node_ids"].index(IDS[1])
    for node, step in ((i0, 3), (i0, 4), (i1, 5), (i1, 6)):
        assert not bool(g.mask[node, step, 0]) and float(g.x[node, step, 0]) == 0.0
    assert int((~g.mask).sum()) == 4 == g.meta["missing_values"]
    assert float(g.x[i0, 7, 0]) == pytest.approx(values[7, 0])


def test_the_drop_rule_warns_and_strict_refuses(pm25, tmp_path, caplog):
    loc, rd, _ = pm25
    wide = pd.read_csv(rd, dtype={"datetime": str})
    wide.iloc[: STEPS // 2, 1:] = np.inf  # half the readings are inf
    wide.to_csv(tmp_path / "inf.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="stgraph"):
        g = sensors.from_table(loc, tmp_path / "inf.csv")
    assert g.meta["dropped"]["infinite_values"] == 36 * STEPS // 2
    assert any("infinite_values" in r.getMessage() for r in caplog.records)
    with pytest.raises(TooManyDroppedError, match=r"inf\.csv: dropped 6,048 of 12,096 readings"):
        sensors.from_table(loc, tmp_path / "inf.csv", strict=True)


def test_a_time_axis_beyond_the_memory_budget_is_refused(monkeypatch):
    # 1970-2020 at 1 s: 1.6 billion steps; refused before any array is made (was a MemoryError)
    loc = pd.DataFrame({"sensor_id": ["a", "b"], "longitude": [2.1, 2.2], "latitude": [41.3, 41.4]})
    rd = pd.DataFrame(
        {"time": ["1970-01-01 00:00:00", "2020-01-01 00:00:01"], "a": [1.0, 2.0], "b": [3.0, 4.0]}
    )
    with pytest.raises(MemoryBudgetError, match=r"1,577,836,802 steps .* memory budget"):
        sensors.from_table(loc, rd, time_col="time", interval="1s")
    monkeypatch.setenv("STGRAPH_MEMORY_BUDGET", "1K")  # a budget of one KiB: 2 steps pass
    g = sensors.from_table(
        loc, rd.iloc[[0]].assign(time="2020-01-01"), time_col="time", interval="1h"
    )
    assert g.num_steps == 1
    with pytest.raises(
        MemoryBudgetError,
        match=r"1,441 steps .* needs about 39.40 KiB, more than the memory budget 1.00 KiB",
    ):
        sensors.from_table(
            loc, rd.assign(time=["2020-01-01", "2020-01-02"]), time_col="time", interval="1min"
        )
    monkeypatch.setenv("STGRAPH_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="STGRAPH_MEMORY_BUDGET"):
        sensors.from_table(loc, rd, time_col="time", interval="1s")


def test_point_geodataframe_locations_with_named_columns(pm25):
    gpd = pytest.importorskip("geopandas")
    loc, rd, values = pm25
    table = pd.read_csv(loc, dtype=str)
    points = gpd.GeoDataFrame(
        {"Station": table.sensor_id},
        geometry=gpd.points_from_xy(table.longitude.astype(float), table.latitude.astype(float)),
        crs=4326,
    )
    g = sensors.from_table(points, rd, id_col="station", lon_col="Lon", lat_col="Lat")
    _check_pm25(g, values)
    np.testing.assert_allclose(g.pos[:, 0].numpy(), table.longitude.astype(float), rtol=1e-9)
