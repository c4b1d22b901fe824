"""GPS trajectory tables: GeoLife (two samples) and a Liverpool bus (UK BODS).

These are points, not graphs: :func:`stgraph.datasets.load_table` returns them as DataFrames with
the same core columns — ``time`` (tz-aware UTC), ``lat``, ``lon`` (degrees) and an id of the
moving object / trajectory — ready for ``graph_builders.trajectories.from_points``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from stgraph.datasets.registry import register_table
from stgraph.errors import DataFormatError

GEOLIFE_SAMPLE = "geolife-sample/geolife_sample.txt.gz"
GEOLIFE_SMALL = "geolife-small/geolife_small.csv"
LIVERPOOL = "liverpool-bus/route14_outbound.csv"

_GEOLIFE_CITATION = "Zheng et al., GeoLife (WWW 2009, UbiComp 2008, IEEE DEB 2010)"


def _not_a_graph(name: str) -> str:
    return (
        f"{name} is a table of GPS points, not a graph: load it with "
        f"stgraph.datasets.load_table({name!r}) and build a graph from it with "
        "graph_builders.trajectories.from_points(table, road_graph=... or grid=..., interval=...) "
        "(issue 3)"
    )


def _read_csv(path: Path, *, columns: list[str], **kwargs) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, **kwargs)
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise DataFormatError(f"{path}: cannot be parsed as CSV ({exc})") from exc
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataFormatError(f"{path}: missing column(s) {missing}; has {list(df.columns)}")
    return df


def _typed(
    df: pd.DataFrame, path: Path, *, time_col: str, fmt: str | None, line0: int
) -> pd.DataFrame:
    """Parse ``time_col`` to UTC and lat/lon to float; the first bad row is named."""
    times = pd.to_datetime(df[time_col], format=fmt, utc=True, errors="coerce")
    for col, vals in (
        (time_col, times),
        ("lat", pd.to_numeric(df["lat"], errors="coerce")),
        ("lon", pd.to_numeric(df["lon"], errors="coerce")),
    ):
        if col == time_col:
            bad = vals.isna().to_numpy()
        else:
            arr = vals.to_numpy(dtype=np.float64, na_value=np.nan)
            limit = 90.0 if col == "lat" else 180.0
            with np.errstate(invalid="ignore"):
                bad = ~np.isfinite(arr) | (np.abs(arr) > limit)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataFormatError(
                f"{path}: line {i + line0}: {col} = {df[col].iloc[i]!r} is not a valid "
                f"{'time' if col == time_col else 'coordinate'} ({int(bad.sum())} such rows)"
            )
        df[col] = vals
    if time_col != "time":
        df = df.drop(columns=[time_col]).assign(time=times)
    return df


def _bearing(raw: pd.Series, path: Path, *, line0: int) -> pd.Series:
    """Degrees in [0, 360] as float; an empty cell is NaN (no bearing in the feed).

    Anything else that is not a number in range is an error naming the first bad line, as for
    the other typed columns — never silently turned into NaN.
    """
    vals = pd.to_numeric(raw, errors="coerce").astype(np.float64)
    arr = vals.to_numpy()
    given = (raw.notna() & (raw.astype(str).str.strip() != "")).to_numpy()
    with np.errstate(invalid="ignore"):
        bad = given & (~np.isfinite(arr) | (arr < 0) | (arr > 360))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}: line {i + line0}: bearing = {raw.iloc[i]!r} is not a bearing in degrees "
            f"[0, 360] ({int(bad.sum())} such rows; leave the cell empty where there is none)"
        )
    return vals


@register_table(
    "geolife",
    files=(GEOLIFE_SAMPLE,),
    title="GeoLife GPS sample (scikit-mobility): 217,653 points of 2 users, Beijing, 2008–2009",
    facts={
        "N": None,
        "T": None,
        "rows": 217653,
        "interval": None,
        "span": ["2008-10-23T05:53:05Z", "2009-03-19T05:46:37Z"],
        "missing_share": 0.0,
        "variables": [],
        "domain": "trajectory",
        "city": "Beijing",
        "source": "scikit-mobility/scikit-mobility examples/geolife_sample.txt.gz; "
        + _GEOLIFE_CITATION,
        "license": "repository BSD-3-Clause; GeoLife: Microsoft Research terms (research use)",
    },
    not_a_graph=_not_a_graph("geolife"),
)
def load_geolife_table(paths: dict[str, Path]) -> pd.DataFrame:
    """GeoLife GPS sample (scikit-mobility): one row per GPS fix.

    Table information:
        + Rows: 217,653 points; users (``uid``) 1 and 5; median sampling 5 s
        + Columns: ``time`` (datetime64, UTC), ``lat``, ``lon`` (WGS84 degrees), ``uid`` (int64)
        + Span: 2008-10-23 05:53:05 .. 2009-03-19 05:46:37
        + Extent: mostly Beijing (a few long trips reach lat 22–41, lon 113–121)
        + Times: GeoLife's user guide gives its timestamps in GMT; they are read as UTC
        + Source: github.com/scikit-mobility/scikit-mobility ``examples/geolife_sample.txt.gz``
    """
    path = paths[GEOLIFE_SAMPLE]
    df = _read_csv(path, columns=["lat", "lng", "datetime", "uid"], compression="gzip")
    df = df.rename(columns={"lng": "lon"})
    df = _typed(df, path, time_col="datetime", fmt="%Y-%m-%d %H:%M:%S", line0=2)
    df["uid"] = df["uid"].astype(np.int64)
    df = df[["time", "lat", "lon", "uid"]]
    df.attrs.update(
        name="geolife",
        timezone="UTC",
        time_reference="utc",
        source=f"{GEOLIFE_SAMPLE} ({_GEOLIFE_CITATION})",
    )
    return df


@register_table(
    "geolife-small",
    files=(GEOLIFE_SMALL,),
    title="GeoLife subset (movingpandas-examples): 5,908 points of 5 trajectories, Beijing",
    facts={
        "N": None,
        "T": None,
        "rows": 5908,
        "interval": None,
        "span": ["2008-12-11T04:42:14Z", "2009-06-29T11:13:12Z"],
        "missing_share": 0.0,
        "variables": [],
        "domain": "trajectory",
        "city": "Beijing",
        "source": "movingpandas/movingpandas-examples data/geolife_small.csv; " + _GEOLIFE_CITATION,
        "license": "repository BSD-3-Clause; GeoLife: Microsoft Research terms (research use)",
    },
    not_a_graph=_not_a_graph("geolife-small"),
)
def load_geolife_small_table(paths: dict[str, Path]) -> pd.DataFrame:
    """GeoLife subset (movingpandas examples): one row per GPS fix.

    Table information:
        + Rows: 5,908 points in 5 trajectories (``trajectory_id``) of trackers 0, 2, 19
        + Columns: ``time`` (UTC), ``lat`` (file's ``Y``), ``lon`` (file's ``X``),
          ``trajectory_id``, ``tracker``, ``sequence``, ``fid``, ``id`` (int64)
        + Span: 2008-12-11 .. 2009-06-29; times carry ``+00`` in the file
        + Source: github.com/movingpandas/movingpandas-examples ``data/geolife_small.csv``
    """
    path = paths[GEOLIFE_SMALL]
    cols = ["X", "Y", "fid", "id", "sequence", "trajectory_id", "tracker", "t"]
    df = _read_csv(path, columns=cols, sep=";")
    df = df.rename(columns={"X": "lon", "Y": "lat"})
    df = _typed(df, path, time_col="t", fmt="%Y-%m-%d %H:%M:%S%z", line0=2)
    for c in ("fid", "id", "sequence", "trajectory_id", "tracker"):
        df[c] = df[c].astype(np.int64)
    df = df[["time", "lat", "lon", "trajectory_id", "tracker", "sequence", "fid", "id"]]
    df.attrs.update(
        name="geolife-small",
        timezone="UTC",
        time_reference="utc",
        source=f"{GEOLIFE_SMALL} ({_GEOLIFE_CITATION})",
    )
    return df


@register_table(
    "liverpool-bus",
    files=(LIVERPOOL,),
    title="Liverpool bus route 14 outbound (UK BODS via movingpandas-examples): 1,533 GPS points, 16 trips",
    facts={
        "N": None,
        "T": None,
        "rows": 1533,
        "interval": None,
        "span": ["2026-01-26T15:55:12Z", "2026-01-26T18:19:36Z"],
        "missing_share": 0.0,
        "variables": [],
        "domain": "trajectory",
        "city": "Liverpool",
        "source": "movingpandas/movingpandas-examples data/liverpool_bus/route14_outbound.csv "
        "(UK Bus Open Data Service)",
        "license": "Crown copyright, Open Government Licence",
    },
    not_a_graph=_not_a_graph("liverpool-bus"),
)
def load_liverpool_bus_table(paths: dict[str, Path]) -> pd.DataFrame:
    """Liverpool bus, route 14 outbound, one vehicle (UK BODS): one row per GPS fix.

    Table information:
        + Rows: 1,533 points of 16 trips (``trip_id``) by 8 vehicles (``vehicle_id``; one vehicle
          per trip — not a single vehicle as MANIFEST.md says); median sampling 24 s
        + Columns: ``time`` (UTC, per the repository's README), ``lat``, ``lon``, ``bearing``
          (degrees, NaN where the feed gives none — counted in ``df.attrs["missing"]``; any
          other non-numeric value is a :class:`DataFormatError`), ``trip_id``, ``vehicle_id``, ``id``,
          ``origin``, ``destination``, ``route_name``, ``direction``, ``operator``
        + Span: 2026-01-26 15:55:12 .. 18:19:36 UTC
        + Source: github.com/movingpandas/movingpandas-examples ``data/liverpool_bus``
    """
    path = paths[LIVERPOOL]
    cols = [
        "id",
        "vehicle_id",
        "trip_id",
        "timestamp",
        "latitude",
        "longitude",
        "bearing",
        "origin",
        "destination",
        "route_name",
        "direction",
        "operator",
    ]
    df = _read_csv(path, columns=cols)
    df = df.rename(columns={"latitude": "lat", "longitude": "lon"})
    df = _typed(df, path, time_col="timestamp", fmt="%Y-%m-%d %H:%M:%S", line0=2)
    for c in ("id", "vehicle_id", "trip_id"):
        df[c] = df[c].astype(np.int64)
    df["bearing"] = _bearing(df["bearing"], path, line0=2)
    for c in ("origin", "destination", "direction", "operator"):
        df[c] = df[c].astype("category")
    df = df[
        [
            "time",
            "lat",
            "lon",
            "bearing",
            "trip_id",
            "vehicle_id",
            "id",
            "origin",
            "destination",
            "route_name",
            "direction",
            "operator",
        ]
    ]
    df.attrs.update(
        missing={"bearing": int(df["bearing"].isna().sum())},
        name="liverpool-bus",
        timezone="UTC",
        time_reference="utc",
        source=f"{LIVERPOOL} (UK BODS; Open Government Licence)",
    )
    return df
