"""Weather station networks: NOAA daily stations of the central USA (STRbook), Irish wind (gstat)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from stgraph.data.stgraph import STGraph
from stgraph.datasets._common import sources, step_times
from stgraph.datasets._graphs import median_neighbour_distance, proximity_edges
from stgraph.datasets.registry import register
from stgraph.errors import DataFormatError

DAY = 86400
_NOAA_DIR = "noaa-central-us-daily"
NOAA_STATIONS = f"{_NOAA_DIR}/Stationinfo.dat"
NOAA_TIMES = f"{_NOAA_DIR}/Times_1990.dat"
NOAA_TMAX = f"{_NOAA_DIR}/Tmax_1990.dat"
NOAA_TMIN = f"{_NOAA_DIR}/Tmin_1990.dat"
NOAA_PRECIP = f"{_NOAA_DIR}/Precip_1990.dat"
IRELAND_WIND = "ireland-wind/wind.rda"

#: NOAA variables: (name, unit, file, missing-value code). Values at or below the code are missing
#: (the STRbook lab drops values <= -9998; precipitation uses -99.989998).
_NOAA_VARIABLES = (
    ("tmax", "°F", NOAA_TMAX, -9999.0),
    ("tmin", "°F", NOAA_TMIN, -9999.0),
    ("precip", "in", NOAA_PRECIP, -99.989998),
)
_NOAA_CITATION = (
    "Wikle, Zammit-Mangion & Cressie, Spatio-Temporal Statistics with R (2019), package STRbook"
)
_NOAA_LICENSE = "GPL (>2.1) (STRbook DESCRIPTION); upstream NOAA daily station data"


def _read_table(path: Path, *, columns: int | None = None) -> np.ndarray:
    """A whitespace-separated table of numbers (no header) as float64 ``[rows, columns]``."""
    try:
        df = pd.read_csv(path, sep=r"\s+", header=None, dtype=np.float64)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(
            f"{path}: not a whitespace-separated table of numbers ({exc})"
        ) from None
    values = df.to_numpy(np.float64)
    if not np.isfinite(values).all():
        r, c = np.argwhere(~np.isfinite(values))[0]
        raise DataFormatError(f"{path}: line {r + 1}, field {c + 1} is missing or not a number")
    if columns is not None and values.shape[1] != columns:
        raise DataFormatError(f"{path}: {values.shape[1]} columns; expected {columns}")
    return values


def _noaa_days(path: Path) -> pd.DatetimeIndex:
    """The days of ``Times_1990.dat`` (``julian year month day`` rows); they must be consecutive."""
    rows = _read_table(path, columns=4).astype(np.int64)
    try:
        days = pd.to_datetime(
            pd.DataFrame({"year": rows[:, 1], "month": rows[:, 2], "day": rows[:, 3]})
        )
    except ValueError as exc:
        raise DataFormatError(f"{path}: a row is not a valid year month day ({exc})") from None
    step = np.diff(days.to_numpy()).astype("timedelta64[D]").astype(np.int64)
    if (step != 1).any():
        i = int(np.nonzero(step != 1)[0][0]) + 1
        raise DataFormatError(
            f"{path}: line {i + 1} ({days[i].date()}) does not follow line {i} "
            f"({days[i - 1].date()}) by one day"
        )
    return pd.DatetimeIndex(days)


def _noaa_values(paths: dict[str, Path], t: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``mask`` ``[n, t, 3]`` over all ``n`` stations, missing codes masked."""
    x = np.zeros((n, t, len(_NOAA_VARIABLES)), dtype=np.float64)
    mask = np.zeros(x.shape, dtype=bool)
    for v, (name, _unit, rel, code) in enumerate(_NOAA_VARIABLES):
        values = _read_table(paths[rel])
        if values.shape != (t, n):
            raise DataFormatError(
                f"{paths[rel]}: shape {values.shape}; expected ({t}, {n}) = (days of "
                f"{Path(NOAA_TIMES).name}, stations of {Path(NOAA_STATIONS).name})"
            )
        missing = values <= code + 1e-3
        if name == "precip" and (values[~missing] < 0).any():
            r, c = np.argwhere((values < 0) & ~missing)[0]
            raise DataFormatError(
                f"{paths[rel]}: line {r + 1}, station {c + 1}: precipitation {values[r, c]} < 0 "
                f"(only {code} marks a missing value)"
            )
        x[:, :, v] = np.where(missing, 0.0, values).T
        mask[:, :, v] = ~missing.T
    return x, mask


@register(
    "noaa-central-us-daily",
    title="NOAA daily Tmax, Tmin and precipitation of 137 weather stations, central USA, 1990-1993",
    files=(NOAA_STATIONS, NOAA_TIMES, NOAA_TMAX, NOAA_TMIN, NOAA_PRECIP),
    facts={
        "N": 137,
        "T": 1461,
        "V": 3,
        "interval": DAY,
        "span": ["1990-01-01", "1993-12-31"],
        "missing_share": 0.02639594584917504,
        "variables": [{"name": n, "unit": u} for n, u, _, _ in _NOAA_VARIABLES],
        "domain": "weather",
        "city": "central USA",
        "source": "andrewzm/STRbook inst/extdata/*.dat (Wikle, Zammit-Mangion & Cressie 2019); "
        "upstream NOAA daily station data (IRI/LDEO Climate Data Library)",
        "license": _NOAA_LICENSE,
    },
)
def load_noaa_central_us_daily(
    paths: dict[str, Path], *, graph: str = "knn", k: int = 8, threshold: float = 0.1
) -> STGraph:
    """NOAA daily weather stations of the central and eastern USA, 1990-1993 (STRbook).

    The NOAA data of Wikle, Zammit-Mangion & Cressie, *Spatio-Temporal Statistics with R*
    (2019), as shipped in the book's R package ``STRbook``: daily maximum and minimum temperature
    and precipitation. The files list 328 stations; 191 of them have no value at all in any of
    the three variables over the whole span and are dropped (``meta["dropped"]``).

    Dataset information:
        + Nodes: 137 stations with data (``meta["node_ids"]``: NOAA station ids); 191 of the
          file's 328 stations are dropped for having no value at all
        + Time steps: 1461
        + Variables: 3 (``tmax``, ``tmin``: °F; ``precip``: inches, daily total)
        + Sampling rate: 1 day
        + Span: 1990-01-01 .. 1993-12-31 (calendar days, ``meta["time_reference"] == "local"``)
        + Missing values: 2.64 % of the kept stations' entries (tmax 1.95 %, tmin 2.49 %,
          precip 3.48 %: one kept station has temperatures but no precipitation at all);
          ``-9999`` (temperatures) and ``-99.989998`` (precipitation) in the source, ``mask`` is
          ``False`` there, ``x`` 0. Over all 328 stations 59.3 % are missing.
        + Coordinates: station latitude/longitude (WGS84) from ``Stationinfo.dat``
        + Edges: none in the source; built from the coordinates (see ``graph``)
        + Source: github.com/andrewzm/STRbook ``inst/extdata/``

    The book's lab (``Chap2_Lab1.R``) reads the files the same way: columns = stations in
    ``Stationinfo.dat`` order, rows = the days of ``Times_1990.dat``, values <= -9998 dropped.

    Args:
        paths: local verified files (given by :func:`stgraph.datasets.load`).
        graph: ``"knn"`` (each station receives edges from its ``k`` nearest stations) or
            ``"gaussian"`` (all pairs with Gaussian-kernel weight ``>= threshold``); weights
            ``exp(-d²/σ²)``, σ = std of the pairwise haversine distances (DCRNN).
        k: neighbours per station for ``"knn"``.
        threshold: smallest weight kept for ``"gaussian"``.

    Returns:
        STGraph with ``x`` ``[137, 1461, 3]``, ``pos`` ``[137, 2]``, proximity edges.
    """
    stations = _read_table(paths[NOAA_STATIONS], columns=3)
    ids_all = [str(int(round(s))) for s in stations[:, 0]]
    if len(set(ids_all)) != len(ids_all):
        raise DataFormatError(f"{paths[NOAA_STATIONS]}: station ids are not unique")
    days = _noaa_days(paths[NOAA_TIMES])
    x_all, mask_all = _noaa_values(paths, len(days), len(ids_all))
    keep = mask_all.any(axis=(1, 2))
    lat, lon = stations[keep, 1], stations[keep, 2]
    if (np.abs(lat) > 90).any() or (np.abs(lon) > 180).any():
        raise DataFormatError(f"{paths[NOAA_STATIONS]}: latitude/longitude outside degrees")
    ids = [s for s, kept in zip(ids_all, keep, strict=True) if kept]
    dropped = int((~keep).sum())
    edge_index, edge_weight, ginfo = proximity_edges(
        lon, lat, method=graph, k=k, threshold=threshold
    )
    files = [NOAA_STATIONS, NOAA_TIMES, NOAA_TMAX, NOAA_TMIN, NOAA_PRECIP]
    meta = {
        "variables": [{"name": n, "unit": u} for n, u, _, _ in _NOAA_VARIABLES],
        "domain": "weather",
        "city": "central USA",
        "crs": "EPSG:4326",
        "interval": DAY,
        "spatial_scale": median_neighbour_distance(lon, lat),
        "timezone": None,
        "time_reference": "local",
        "node_ids": ids,
        "dropped": {"stations without any value": dropped},
        "graph": {**ginfo, "self_loops": "none", "directed": graph == "knn"},
        "sources": sources(
            "noaa-central-us-daily", files, citation=_NOAA_CITATION, license=_NOAA_LICENSE
        ),
        "provenance": [
            "stgraph.datasets.load('noaa-central-us-daily'): x = Tmax, Tmin, Precip_1990.dat "
            "(rows = days, columns = stations of Stationinfo.dat)",
            "-9999 (temperatures) and -99.989998 (precipitation) -> mask False, x 0",
            f"dropped {dropped} of {len(ids_all)} stations without any value in any variable",
            "time: the year/month/day of Times_1990.dat, calendar days written as UTC midnight",
            f"edges: proximity graph from station coordinates ({ginfo})",
        ],
    }
    t0 = days[0].strftime("%Y-%m-%d")
    return STGraph(
        x=x_all[keep].astype(np.float32),
        mask=mask_all[keep],
        time=step_times(t0, len(days), DAY),
        pos=np.stack([lon, lat], axis=1).astype(np.float32),
        edge_index=edge_index,
        edge_weight=edge_weight,
        meta=meta,
    )


# ---------------------------------------------------------------------------------- Ireland
_DMS = re.compile(r"""^\s*(\d+)d(\d+)'(?:(\d+(?:\.\d*)?)")?\s*([NSEW])\s*$""")


def dms_to_degrees(text: str) -> float:
    """Decimal degrees of a ``51d56'N`` / ``6d21'25.056"W`` string (gstat's ``wind.loc``).

    South and West are negative.

    Raises:
        ValueError: ``text`` is not degrees ``d`` minutes ``'`` [seconds ``"``] and a hemisphere,
            or minutes/seconds are 60 or more.
    """
    m = _DMS.match(str(text))
    if m is None:
        raise ValueError(f"{text!r} is not a DMS coordinate like 51d56'N or 6d21'25.056\"W")
    deg, minutes = int(m[1]), int(m[2])
    seconds = float(m[3]) if m[3] else 0.0
    if minutes >= 60 or seconds >= 60:
        raise ValueError(f"{text!r}: minutes and seconds must be below 60")
    value = deg + minutes / 60 + seconds / 3600
    return -value if m[4] in "SW" else value


def _read_rda(path: Path) -> dict[str, pd.DataFrame]:
    try:
        import pyreadr
    except ImportError:
        raise ImportError(
            f"reading {path.name} (an R .rda file) needs pyreadr: pip install pyreadr"
        ) from None
    try:
        return dict(pyreadr.read_r(str(path)))
    except pyreadr.custom_errors.PyreadrError as exc:
        raise DataFormatError(f"{path}: not a readable R data file ({exc})") from None


def _wind_frames(path: Path) -> tuple[pd.DataFrame, pd.DatetimeIndex, pd.DataFrame]:
    """``(speeds [days x stations], days, locations indexed by station code)`` of ``wind.rda``."""
    frames = _read_rda(path)
    if "wind" not in frames or "wind.loc" not in frames:
        raise DataFormatError(
            f"{path}: expected R objects 'wind' and 'wind.loc', got {list(frames)}"
        )
    wind, loc = frames["wind"], frames["wind.loc"]
    need = {"Station", "Code", "Latitude", "Longitude"}
    if not need <= set(loc.columns) or list(wind.columns[:3]) != ["year", "month", "day"]:
        raise DataFormatError(
            f"{path}: wind must start with year, month, day and wind.loc have {sorted(need)}; "
            f"got {list(wind.columns)} and {list(loc.columns)}"
        )
    days = pd.to_datetime(
        pd.DataFrame({"year": wind["year"] + 1900, "month": wind["month"], "day": wind["day"]})
    )
    step = np.diff(days.to_numpy()).astype("timedelta64[D]").astype(np.int64)
    if (step != 1).any():
        i = int(np.nonzero(step != 1)[0][0]) + 1
        raise DataFormatError(f"{path}: wind row {i} ({days[i].date()}) is not the next day")
    speeds = wind.iloc[:, 3:].astype(np.float64)
    loc = loc.assign(Code=loc["Code"].astype(str)).set_index("Code")
    absent = [c for c in speeds.columns if c not in loc.index]
    if absent:
        raise DataFormatError(f"{path}: stations {absent} of 'wind' have no row in 'wind.loc'")
    return speeds, pd.DatetimeIndex(days), loc.loc[list(speeds.columns)]


@register(
    "ireland-wind",
    title="Irish daily mean wind speed at 12 synoptic stations, 1961-1978 (Haslett & Raftery)",
    files=(IRELAND_WIND,),
    facts={
        "N": 12,
        "T": 6574,
        "V": 1,
        "interval": DAY,
        "span": ["1961-01-01", "1978-12-31"],
        "missing_share": 0.0,
        "variables": [{"name": "wind_speed", "unit": "knots"}],
        "domain": "weather",
        "city": "Ireland",
        "source": "r-spatial/gstat data/wind.rda (Haslett & Raftery, Applied Statistics 38, 1989; "
        "via StatLib)",
        "license": "GPL (>= 2.0) (gstat)",
    },
)
def load_ireland_wind(
    paths: dict[str, Path], *, graph: str = "knn", k: int = 4, threshold: float = 0.1
) -> STGraph:
    """Daily average wind speed at 12 synoptic stations of Ireland, 1961-1978.

    The space-time wind data of Haslett & Raftery ("Space-time modelling with long-memory
    dependence: assessing Ireland's wind power resource", *Applied Statistics* 38, 1989), as
    shipped by the R package gstat (``wind``, ``wind.loc``). Raw values: the original study's
    square-root transform and seasonal mean removal are not applied.

    Dataset information:
        + Nodes: 12 stations (``meta["node_ids"]``: codes such as ``VAL``; ``meta["node_names"]``:
          names as in the file, e.g. ``Valentia``, ``Roslare``), in the column order of ``wind``
        + Time steps: 6574
        + Variables: 1 (``wind_speed``, knots; daily average)
        + Sampling rate: 1 day
        + Span: 1961-01-01 .. 1978-12-31 (calendar days, ``meta["time_reference"] == "local"``)
        + Missing values: 0.00 %
        + Coordinates: ``wind.loc``'s degree-minute(-second) strings (``51d56'N``, ``10d15'W``)
          converted to decimal degrees, West negative (:func:`dms_to_degrees`)
        + Edges: none in the source; built from the coordinates (see ``graph``)
        + Source: github.com/r-spatial/gstat ``data/wind.rda``

    ``wind.loc``'s ``MeanWind`` column is in m/s per gstat's help page and is not used.

    Args:
        paths: local verified files (given by :func:`stgraph.datasets.load`).
        graph: ``"knn"`` (each station receives edges from its ``k`` nearest stations) or
            ``"gaussian"`` (all pairs with Gaussian-kernel weight ``>= threshold``); weights
            ``exp(-d²/σ²)``, σ = std of the pairwise haversine distances (DCRNN).
        k: neighbours per station for ``"knn"`` (default 4 of the 11 others).
        threshold: smallest weight kept for ``"gaussian"``.

    Returns:
        STGraph with ``x`` ``[12, 6574, 1]``, ``pos`` ``[12, 2]``, proximity edges.
    """
    path = paths[IRELAND_WIND]
    speeds, days, loc = _wind_frames(path)
    try:
        lat = np.array([dms_to_degrees(s) for s in loc["Latitude"]])
        lon = np.array([dms_to_degrees(s) for s in loc["Longitude"]])
    except ValueError as exc:
        raise DataFormatError(f"{path}: wind.loc: {exc}") from None
    values = speeds.to_numpy(np.float64)
    observed = np.isfinite(values)
    if (values[observed] < 0).any():
        raise DataFormatError(f"{path}: negative wind speeds in 'wind'")
    edge_index, edge_weight, ginfo = proximity_edges(
        lon, lat, method=graph, k=k, threshold=threshold
    )
    codes = [str(c) for c in speeds.columns]
    meta = {
        "variables": [{"name": "wind_speed", "unit": "knots"}],
        "domain": "weather",
        "city": "Ireland",
        "crs": "EPSG:4326",
        "interval": DAY,
        "spatial_scale": median_neighbour_distance(lon, lat),
        "timezone": "Europe/Dublin",
        "time_reference": "local",
        "node_ids": codes,
        "node_names": [str(s) for s in loc["Station"]],
        "graph": {**ginfo, "self_loops": "none", "directed": graph == "knn"},
        "sources": sources(
            "ireland-wind",
            [IRELAND_WIND],
            citation="Haslett & Raftery, Applied Statistics 38 (1989); gstat (Pebesma)",
            license="GPL (>= 2.0) (gstat)",
        ),
        "provenance": [
            "stgraph.datasets.load('ireland-wind'): x = wind (rows = days, columns = stations)",
            "time: 1900 + year, month, day of 'wind', calendar days written as UTC midnight",
            "pos: wind.loc Latitude/Longitude (DMS strings) joined on Code, to decimal degrees",
            f"edges: proximity graph from station coordinates ({ginfo})",
        ],
    }
    return STGraph(
        x=np.where(observed, values, 0.0).T[:, :, None].astype(np.float32),
        mask=observed.T[:, :, None],
        time=step_times(days[0].strftime("%Y-%m-%d"), len(days), DAY),
        pos=np.stack([lon, lat], axis=1).astype(np.float32),
        edge_index=edge_index,
        edge_weight=edge_weight,
        meta=meta,
    )
