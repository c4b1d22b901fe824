"""The one drop-reporting rule of the builders (graph_builders._inputs.report_dropped)."""

import logging

import pandas as pd
import pytest

from graph_builders._inputs import TooManyDroppedError, match_columns, report_dropped
from stgraph.errors import DataFormatError, STGraphError


def test_below_the_share_is_silent(caplog):
    with caplog.at_level(logging.WARNING, logger="stgraph.builders"):
        share = report_dropped("e.csv", {"missing_time": 4, "outside_bbox": 0}, 100, what="events")
    assert share == pytest.approx(0.04)
    assert caplog.records == []


def test_above_the_share_warns_with_counts_by_reason(caplog):
    with caplog.at_level(logging.WARNING, logger="stgraph.builders"):
        share = report_dropped(
            "e.csv", {"unparseable_time": 25, "missing_coordinates": 5}, 100, what="events"
        )
    assert share == pytest.approx(0.30)
    (rec,) = caplog.records
    assert rec.levelno == logging.WARNING
    msg = rec.getMessage()
    assert "e.csv" in msg and "30 of 100 events" in msg
    assert "unparseable_time 25" in msg and "missing_coordinates 5" in msg


def test_strict_refuses_with_a_typed_error():
    with pytest.raises(TooManyDroppedError, match=r"e\.csv: dropped 30 of 100 events") as info:
        report_dropped("e.csv", {"unparseable_time": 30}, 100, what="events", strict=True)
    assert isinstance(info.value, (DataFormatError, STGraphError))
    # strict with nothing above the share passes
    assert report_dropped("e.csv", {"unparseable_time": 1}, 100, strict=True) == 0.01


def test_reasons_the_user_asked_for_do_not_count():
    share = report_dropped(
        "e.csv", {"outside_bbox": 90, "missing_time": 1}, 100, strict=True, ignore=["outside_bbox"]
    )
    assert share == pytest.approx(0.01)


def test_max_share_zero_refuses_any_drop_and_range_is_checked():
    with pytest.raises(TooManyDroppedError):
        report_dropped("s.csv", {"no_location": 1}, 1000, strict=True, max_share=0.0)
    with pytest.raises(ValueError, match="max_drop_share"):
        report_dropped("s.csv", {}, 10, max_share=1.5)


def test_match_columns_ignores_case_and_lists_what_it_found():
    df = pd.DataFrame(columns=["Longitude", "Latitude", "Month"])
    got = match_columns(df, {"lon_col": "longitude", "lat_col": "LATITUDE", "types": None}, "a.csv")
    assert got == {"lon_col": "Longitude", "lat_col": "Latitude", "types": None}
    with pytest.raises(DataFormatError) as info:
        match_columns(df, {"time_col": "time"}, "a.csv")
    msg = str(info.value)
    assert "a.csv" in msg and "time_col='time'" in msg and "'Longitude'" in msg
