"""Crime events and their daily grid counts: Chicago 2016–2017, NYC 2014–2015 (ST-SHN / STHSL)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from stgraph.data.stgraph import STGraph
from stgraph.datasets._common import sources, step_times
from stgraph.datasets._graphs import grid_edges
from stgraph.datasets._pickle import load_verified_pickle
from stgraph.datasets.registry import register, register_table
from stgraph.errors import DataFormatError
from stgraph.utils.readers import zip_member

DAY = 86400
#: The grid recipe of the STHSL authors' script: 3 km cells from the events' minimum corner.
CELL_KM = 3.0
KM_PER_DEG_LAT = 111.0
KM_PER_DEG_LON = 84.0
_TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
_CITATION = "Li et al., STHSL, ICDE 2022; Xia et al., ST-SHN, IJCAI 2021 (data: LZH-YS1998/STHSL)"
_LICENSE = "none stated (repository); upstream city open-data portals"


@dataclass(frozen=True)
class _City:
    name: str
    city: str
    timezone: str
    archive: str
    member: str
    tensors: tuple[str, ...]
    categories: tuple[str, ...]
    grid: tuple[int, int]
    start: str  # first day of the event table
    days: int  # days of the event table
    tensor_start: str  # first day of the concatenated tensors


CHICAGO = _City(
    name="chicago-crime",
    city="Chicago",
    timezone="America/Chicago",
    archive="chicago-crime/CHI_Crime.zip",
    member="CHI_Crime.csv",
    tensors=("chicago-crime/trn.pkl", "chicago-crime/val.pkl", "chicago-crime/tst.pkl"),
    categories=("THEFT", "BATTERY", "ASSAULT", "CRIMINAL DAMAGE"),
    grid=(14, 12),
    start="2016-01-01",
    days=731,
    tensor_start="2016-01-01",
)
NYC = _City(
    name="nyc-crime",
    city="New York City",
    timezone="America/New_York",
    archive="nyc-crime/NYC_Crime.zip",
    member="NYC_Crime.csv",
    tensors=("nyc-crime/val.pkl", "nyc-crime/tst.pkl"),
    categories=("BURGLARY", "GRAND LARCENY", "ROBBERY", "FELONY ASSAULT"),
    grid=(16, 16),
    start="2014-01-01",
    days=730,
    tensor_start="2015-09-01",
)


# ---------------------------------------------------------------------------------- events
#: Parsed event tables by (file, size, mtime): the CSV parse is the slow part of these loaders.
_PARSED: dict[tuple[str, int, int], pd.DataFrame] = {}


def _parse_events(path: Path, city: _City) -> pd.DataFrame:
    """The event table of ``city`` (a copy of a per-process cache keyed by file, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _PARSED:
        for old in [k for k in _PARSED if k[0] == key[0]]:
            del _PARSED[old]
        _PARSED[key] = _read_events(path, city)
    df = _PARSED[key].copy()
    df.attrs = dict(_PARSED[key].attrs)
    return df


def _read_events(path: Path, city: _City) -> pd.DataFrame:
    raw = zip_member(path, city.member)
    src = f"{path}:{city.member}"
    if city is CHICAGO:
        df = pd.read_csv(
            io.BytesIO(raw),
            header=None,
            names=["time", "offense", "lat", "lon"],
            dtype={"time": str, "offense": str},
            keep_default_na=False,
        )
        first_line = 1
    else:
        df = pd.read_csv(io.BytesIO(raw), dtype={"Sector": str, "Occurrence Date": str})
        expected = [
            "Occurrence Date",
            "Day of Week",
            "Offense",
            "Sector",
            "Precinct",
            "Latitude",
            "Longitude",
        ]
        if list(df.columns) != expected:
            raise DataFormatError(f"{src}: columns {list(df.columns)}; expected {expected}")
        df = df.rename(
            columns={
                "Occurrence Date": "time",
                "Day of Week": "day_of_week",
                "Offense": "offense",
                "Sector": "sector",
                "Precinct": "precinct",
                "Latitude": "lat",
                "Longitude": "lon",
            }
        )
        first_line = 2
    times = pd.to_datetime(df["time"], format=_TIME_FORMAT, errors="coerce")
    _fail_first(src, times.isna(), df["time"], first_line, f"time not in {_TIME_FORMAT!r}")
    df["time"] = times
    for col in ("lat", "lon"):
        vals = pd.to_numeric(df[col], errors="coerce")
        _fail_first(src, vals.isna(), df[col], first_line, f"{col} is not a number")
        df[col] = vals.astype(np.float64)
    bad = ~df["offense"].isin(city.categories)
    _fail_first(src, bad, df["offense"], first_line, f"offense not one of {list(city.categories)}")
    df["offense"] = pd.Categorical(df["offense"], categories=list(city.categories))
    if city is NYC:
        df["precinct"] = df["precinct"].astype(np.int64)
        df["day_of_week"] = df["day_of_week"].astype("category")
    cols = ["time", "offense", "lat", "lon"]
    df = df[cols + [c for c in df.columns if c not in cols]]
    df.attrs.update(
        name=city.name,
        timezone=city.timezone,
        time_reference="local",
        source=f"{city.archive} ({_CITATION})",
    )
    return df


def _fail_first(src: str, bad: pd.Series, values: pd.Series, first_line: int, what: str) -> None:
    if bool(bad.any()):
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataFormatError(
            f"{src}: line {i + first_line}: {what} (got {values.iloc[i]!r}); "
            f"{int(bad.sum())} row(s) like this"
        )


def _table(city: _City):
    def load_table(paths: dict[str, Path]) -> pd.DataFrame:
        return _parse_events(paths[city.archive], city)

    load_table.__doc__ = (
        f"{city.city} crime events: one row per incident, columns ``time`` (naive local time, "
        f"{city.timezone}; ``attrs['timezone']``), ``offense`` (categorical, in the grid tensors' "
        f"category order {list(city.categories)}), ``lat``, ``lon`` (degrees)"
        + (
            ", and ``day_of_week``, ``sector``, ``precinct`` as in the file."
            if city is NYC
            else "."
        )
    )
    return load_table


# ---------------------------------------------------------------------------------- grid
def grid_cells(
    lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float
) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each event in the STHSL grid (3 km cells from ``(lat0, lon0)``)."""
    row = np.floor((lat - lat0) * KM_PER_DEG_LAT / CELL_KM).astype(np.int64)
    col = np.floor((lon - lon0) * KM_PER_DEG_LON / CELL_KM).astype(np.int64)
    return row, col


def grid_counts(events: pd.DataFrame, city: _City) -> tuple[np.ndarray, dict]:
    """Daily counts per cell and category ``[rows, cols, days, C]`` from the event table."""
    rows, cols = city.grid
    lat0, lon0 = float(events["lat"].min()), float(events["lon"].min())
    r, c = grid_cells(events["lat"].to_numpy(), events["lon"].to_numpy(), lat0, lon0)
    day = (events["time"].dt.normalize() - pd.Timestamp(city.start)).dt.days.to_numpy()
    k = events["offense"].cat.codes.to_numpy()
    inside = (r < rows) & (c < cols) & (day >= 0) & (day < city.days)
    counts = np.zeros((rows, cols, city.days, len(city.categories)))
    np.add.at(counts, (r[inside], c[inside], day[inside], k[inside]), 1)
    dropped = {"outside grid or span": int((~inside).sum())}
    return counts, dropped


def _grid_origin(path: Path, city: _City) -> tuple[float, float]:
    """Minimum latitude and longitude of the events (the grid origin), reading only those columns."""
    raw = zip_member(path, city.member)
    if city is CHICAGO:
        df = pd.read_csv(io.BytesIO(raw), header=None, usecols=[2, 3], names=["lat", "lon"])
    else:
        df = pd.read_csv(io.BytesIO(raw), usecols=["Latitude", "Longitude"])
        df.columns = ["lat", "lon"]
    vals = df.apply(pd.to_numeric, errors="coerce")
    if vals.isna().any().any():
        # the full parser names the first bad row
        _parse_events(path, city)
    return float(vals["lat"].min()), float(vals["lon"].min())


def _load_grid(paths: dict[str, Path], city: _City, source: str) -> STGraph:
    if source not in ("tensors", "events"):
        raise ValueError(f"{city.name}: source must be 'tensors' or 'events', got {source!r}")
    rows, cols = city.grid
    lat0, lon0 = _grid_origin(paths[city.archive], city)
    if source == "tensors":
        parts = []
        for rel in city.tensors:
            arr = np.asarray(load_verified_pickle(paths[rel], source=str(paths[rel])))
            if (
                arr.ndim != 4
                or arr.shape[:2] != (rows, cols)
                or arr.shape[3] != len(city.categories)
            ):
                raise DataFormatError(
                    f"{paths[rel]}: shape {arr.shape}; expected ({rows}, {cols}, days, "
                    f"{len(city.categories)})"
                )
            parts.append(arr)
        counts = np.concatenate(parts, axis=2)
        start, dropped = city.tensor_start, {}
        how = "grid tensors " + " + ".join(Path(p).name for p in city.tensors) + " (STHSL)"
    else:
        counts, dropped = grid_counts(_parse_events(paths[city.archive], city), city)
        start = city.start
        how = f"rebuilt from {city.member} with the STHSL grid recipe"
    days = counts.shape[2]
    rr, cc = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    lat_c = lat0 + (rr.ravel() + 0.5) * CELL_KM / KM_PER_DEG_LAT
    lon_c = lon0 + (cc.ravel() + 0.5) * CELL_KM / KM_PER_DEG_LON
    x = counts.reshape(rows * cols, days, len(city.categories))
    meta = {
        "variables": [
            {"name": c.lower().replace(" ", "_"), "unit": "count/day"} for c in city.categories
        ],
        "domain": "crime",
        "city": city.city,
        "crs": "EPSG:4326",
        "interval": DAY,
        "spatial_scale": CELL_KM * 1000.0,
        "timezone": city.timezone,
        "time_reference": "local",
        "node_ids": [f"r{r}c{c}" for r, c in zip(rr.ravel(), cc.ravel(), strict=True)],
        "grid": {
            "rows": rows,
            "cols": cols,
            "cell_km": CELL_KM,
            "origin_lat": lat0,
            "origin_lon": lon0,
            "km_per_deg_lat": KM_PER_DEG_LAT,
            "km_per_deg_lon": KM_PER_DEG_LON,
            "node": "row * cols + col",
        },
        "categories": list(city.categories),
        "graph": {"kind": "grid 4-neighbour", "self_loops": "none", "directed": False},
        "dropped": dropped,
        "sources": sources(
            city.name, (city.archive, *city.tensors), citation=_CITATION, license=_LICENSE
        ),
        "provenance": [
            f"stgraph.datasets.load({city.name!r}, source={source!r}): {how}",
            f"time: {start} + 1 day * step (local calendar days written as UTC midnight)",
            "pos: cell centres, origin = min lat/lon of the events, 3 km cells "
            "(row = floor((lat - min_lat) * 111 / 3), col = floor((lon - min_lon) * 84 / 3))",
            "edges: 4-neighbour grid, both directions",
        ],
    }
    return STGraph(
        x=x.astype(np.float32),
        mask=np.ones(x.shape, dtype=bool),
        time=step_times(start, days, DAY),
        pos=np.stack([lon_c, lat_c], axis=1).astype(np.float32),
        edge_index=grid_edges(rows, cols),
        meta=meta,
    )


def _needs(city: _City):
    def needs(options: dict) -> tuple[str, ...]:
        if options.get("source", "tensors") == "events":
            return (city.archive,)
        return (city.archive, *city.tensors)

    return needs


@register(
    "chicago-crime",
    title="Chicago crimes 2016–2017: daily counts of 4 crime types on a 14 × 12 grid of 3 km cells",
    files=(CHICAGO.archive, *CHICAGO.tensors),
    needs=_needs(CHICAGO),
    facts={
        "N": 168,
        "T": 731,
        "V": 4,
        "interval": DAY,
        "span": ["2016-01-01", "2017-12-31"],
        "missing_share": 0.0,
        "variables": [
            {"name": c.lower().replace(" ", "_"), "unit": "count/day"} for c in CHICAGO.categories
        ],
        "domain": "crime",
        "city": "Chicago",
        "events": 321877,
        "source": "LZH-YS1998/STHSL Datasets/CHI_crime (Li et al., ICDE 2022; Xia et al., "
        "IJCAI 2021); upstream City of Chicago data portal",
        "license": _LICENSE,
    },
)
def load_chicago_crime(paths: dict[str, Path], *, source: str = "tensors") -> STGraph:
    """Chicago crimes, 2016–2017: daily counts per 3 km grid cell and crime type (STHSL).

    Dataset information:
        + Nodes: 168 grid cells (14 rows × 12 columns; node = row · 12 + col)
        + Time steps: 731
        + Variables: 4 — ``theft``, ``battery``, ``assault``, ``criminal_damage`` (the tensors'
          category order), counts per day
        + Sampling rate: daily
        + Span: 2016-01-01 .. 2017-12-31 (trn 609 days + val 30 + tst 92, concatenated)
        + Missing values: 0.00 % (cells without events have zero counts)
        + Coordinates: cell centres; origin = the events' minimum latitude/longitude, cells of
          3 km = 3/111 ° latitude × 3/84 ° longitude (the authors' recipe)
        + Edges: 4-neighbour grid, both directions (596 edges)
        + Source: github.com/LZH-YS1998/STHSL ``Datasets/CHI_crime``; raw events with
          :func:`stgraph.datasets.load_table` (321,877 rows)

    We rebuilt the tensors from the CSV with the recipe: they agree in every cell and day except
    one event — the CSV's first row, which the authors' script read as a header (the tensors
    hold 321,876 events, the CSV 321,877 rows).

    Args:
        source: ``"tensors"`` (the published ``trn``/``val``/``tst`` pickles, default) or
            ``"events"`` (rebuilt from the event CSV, including that first row).
    """
    return _load_grid(paths, CHICAGO, source)


@register(
    "nyc-crime",
    title="NYC crimes 2015-09 .. 2015-12: daily counts of 4 crime types on a 16 × 16 grid of 3 km cells",
    files=(NYC.archive, *NYC.tensors),
    needs=_needs(NYC),
    facts={
        "N": 256,
        "T": 122,
        "V": 4,
        "interval": DAY,
        "span": ["2015-09-01", "2015-12-31"],
        "missing_share": 0.0,
        "variables": [
            {"name": c.lower().replace(" ", "_"), "unit": "count/day"} for c in NYC.categories
        ],
        "domain": "crime",
        "city": "New York City",
        "events": 191580,
        "source": "LZH-YS1998/STHSL Datasets/NYC_crime (Li et al., ICDE 2022; Xia et al., "
        "IJCAI 2021); upstream NYC OpenData (NYPD complaints)",
        "license": _LICENSE,
    },
)
def load_nyc_crime(paths: dict[str, Path], *, source: str = "tensors") -> STGraph:
    """New York City crimes: daily counts per 3 km grid cell and crime type (STHSL).

    Dataset information (``source="tensors"``, default):
        + Nodes: 256 grid cells (16 × 16; node = row · 16 + col)
        + Time steps: 122 (only ``val.pkl`` + ``tst.pkl`` are published in a usable size;
          ``trn.pkl`` is not available)
        + Variables: 4 — ``burglary``, ``grand_larceny``, ``robbery``, ``felony_assault``
        + Sampling rate: daily
        + Span: 2015-09-01 .. 2015-12-31
        + Missing values: 0.00 %
        + Coordinates: cell centres (the Chicago recipe: 3 km cells from the events' minimum
          latitude/longitude)
        + Edges: 4-neighbour grid, both directions (960 edges)
        + Source: github.com/LZH-YS1998/STHSL ``Datasets/NYC_crime``; raw events with
          :func:`stgraph.datasets.load_table` (191,580 rows, 2014-01-01 .. 2015-12-31)

    Verified, not assumed: rebuilding the counts from the CSV with the Chicago recipe and the
    category order BURGLARY, GRAND LARCENY, ROBBERY, FELONY ASSAULT reproduces ``val`` + ``tst``
    exactly as days 608..729 of 2014-01-01 .. 2015-12-31, i.e. 2015-09-01 .. 2015-12-31.

    Args:
        source: ``"tensors"`` (122 days) or ``"events"`` (all 730 days, 2014-01-01 ..
            2015-12-31, rebuilt from the CSV; its last 122 days equal the tensors).
    """
    return _load_grid(paths, NYC, source)


# The event tables (registered after the graph loaders that create the two entries).
register_table(CHICAGO.name, files=(CHICAGO.archive,))(_table(CHICAGO))
register_table(NYC.name, files=(NYC.archive,))(_table(NYC))
