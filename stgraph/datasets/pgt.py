"""PyTorch Geometric Temporal's JSON data sets: chickenpox, PedalMe, England COVID, Montevideo bus."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stgraph.data.stgraph import STGraph
from stgraph.data.weights import DISTANCE_M
from stgraph.datasets._common import (
    as_matrix,
    check_range,
    numeric_columns,
    read_json,
    sources,
    step_times,
)
from stgraph.datasets._graphs import median_neighbour_distance
from stgraph.datasets.registry import register
from stgraph.errors import DataFormatError
from stgraph.utils.readers import normalize_ids, read_node_link

CHICKENPOX = "pgt-chickenpox/chickenpox.json"
PEDALME = "pgt-pedalme/pedalme_london.json"
COVID = "pgt-england-covid/england_covid.json"
MONTEVIDEO = "pgt-montevideo-bus/montevideo_bus.json"

_PGT_CITATION = "Rozemberczki et al., PyTorch Geometric Temporal, CIKM 2021"
_PGT_LICENSE = "MIT (repository)"
WEEK, DAY, HOUR = 7 * 86400, 86400, 3600


def _edge_array(value: object, *, path: Path, key: str, n: int) -> np.ndarray:
    """``[2, E]`` int64 node indices from a JSON list of ``[source, target]`` pairs in ``[0, n)``."""
    try:
        raw = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raw = None
    if raw is None or (raw.size and (raw.ndim != 2 or raw.shape[1] != 2)):
        raise DataFormatError(
            f"{path}: {key} must be a list of [source, target] pairs of node indices"
        )
    raw = raw.reshape(-1, 2)
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(raw) | (raw != np.round(raw)) | (raw < 0) | (raw >= n)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataFormatError(
            f"{path}: {key}[{i}][{j}] = {float(raw[i, j])!r} is not a node index in [0, {n}) "
            f"({int(bad.any(axis=1).sum())} such pair(s))"
        )
    return raw.astype(np.int64).T


def _weights(value: object, *, path: Path, key: str, count: int) -> np.ndarray:
    """``count`` finite, non-negative float64 edge weights from a JSON list of numbers."""
    try:
        w = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError, OverflowError):
        raise DataFormatError(f"{path}: {key} must be a list of numbers") from None
    if w.shape != (count,):
        raise DataFormatError(f"{path}: {key} has {w.size} values for {count} edges")
    check_range(w, path=path, what=lambda i: f"{key}[{i}]", lo=0.0)
    return w


def _drop_self_loops(edges: np.ndarray, *weights: np.ndarray | None) -> list:
    keep = edges[0] != edges[1]
    return [edges[:, keep]] + [None if w is None else w[keep] for w in weights]


@register(
    "chickenpox",
    title="Hungarian chickenpox: weekly change in reported cases, 20 counties (PGT)",
    files=(CHICKENPOX,),
    facts={
        "N": 20,
        "T": 521,
        "V": 1,
        "interval": WEEK,
        "span": ["2005-01-10", "2014-12-29"],
        "missing_share": 0.0,
        "variables": [{"name": "cases_change", "unit": "standardised"}],
        "domain": "epidemiology",
        "city": "Hungary",
        "source": "benedekrozemberczki/pytorch_geometric_temporal dataset/chickenpox.json "
        "(Rozemberczki et al., arXiv 2102.08100; UCI 'Hungarian Chickenpox Cases')",
        "license": _PGT_LICENSE,
    },
)
def load_chickenpox(paths: dict[str, Path]) -> STGraph:
    """Hungarian chickenpox: weekly reported cases of the 20 Hungarian counties (PGT).

    Rozemberczki et al., "Chickenpox Cases in Hungary: a Benchmark Dataset for Spatiotemporal
    Signal Processing with Graph Neural Networks" (arXiv 2102.08100), as shipped by PyTorch
    Geometric Temporal. The PGT benchmark: 4 lags -> next week, MSE on these values.

    Dataset information:
        + Nodes: 20 counties (``meta["node_ids"]``: county names, e.g. ``BUDAPEST``)
        + Time steps: 521
        + Variables: 1 (``cases_change``: standardised week-over-week change in cases)
        + Sampling rate: weekly
        + Span: 2005-01-10 .. 2014-12-29 (week starts, Mondays)
        + Missing values: 0.00 %
        + Coordinates: none in the source (``pos`` is ``None``)
        + Edges: 41 county adjacencies, both directions (82 edges); the file's 20 self-loops are
          dropped (PyG layers add their own)
        + Source: github.com/benedekrozemberczki/pytorch_geometric_temporal ``dataset/chickenpox.json``

    What the values are: ``FX`` is not the case count itself but its week-over-week change,
    standardised per county: ``FX[i] = (c[i+1] - c[i] - mean) / std``, with ``c`` the 522 weekly
    counts of the UCI table (weeks of 2005-01-03 .. 2014-12-29). We checked this against the first
    three UCI rows: the ratio of change to ``FX`` is the same for both of the first two steps in
    every county. Step ``i`` is therefore stamped with week ``i + 1``: 2005-01-10 + 7 days·i
    (calendar dates written as UTC midnight, ``meta["time_reference"] == "local"``).
    """
    path = paths[CHICKENPOX]
    doc = read_json(path, keys=("edges", "node_ids", "FX"))
    ids = doc["node_ids"]
    if not isinstance(ids, dict) or sorted(ids.values()) != list(range(len(ids))):
        raise DataFormatError(f"{path}: node_ids must map each county to 0..N-1")
    n = len(ids)
    fx = as_matrix(doc["FX"], path=path, key="FX", shape=(None, n))
    names = [None] * n
    for name, i in ids.items():
        names[i] = name
    edges = _edge_array(doc["edges"], path=path, key="edges", n=n)
    (edge_index,) = _drop_self_loops(edges)
    t = fx.shape[0]
    meta = {
        "variables": [{"name": "cases_change", "unit": "standardised"}],
        "domain": "epidemiology",
        "city": "Hungary",
        "crs": "EPSG:4326",
        "interval": WEEK,
        "spatial_scale": None,
        "timezone": "Europe/Budapest",
        "time_reference": "local",
        "node_ids": names,
        "graph": {"kind": "county adjacency", "self_loops": "dropped", "directed": False},
        "sources": sources(
            "chickenpox",
            [CHICKENPOX],
            citation=_PGT_CITATION + "; Rozemberczki et al., arXiv 2102.08100",
            license=_PGT_LICENSE,
        ),
        "provenance": [
            "stgraph.datasets.load('chickenpox'): x = FX (rows = weeks, columns = counties)",
            "values: standardised week-over-week change of weekly cases (checked against UCI)",
            "time: 2005-01-10 + 7 days * step (week of the later count of each change)",
            f"edges: file's edges without its {int((edges[0] == edges[1]).sum())} self-loops",
        ],
    }
    return STGraph(
        x=fx.T[:, :, None].astype(np.float32),
        mask=np.ones((n, t, 1), dtype=bool),
        time=step_times("2005-01-10", t, WEEK),
        edge_index=edge_index,
        meta=meta,
    )


@register(
    "pedalme",
    title="PedalMe London: weekly bicycle deliveries of 15 London localities (PGT)",
    files=(PEDALME,),
    facts={
        "N": 15,
        "T": 35,
        "V": 1,
        "interval": WEEK,
        "span": None,
        "missing_share": 0.0,
        "variables": [{"name": "deliveries", "unit": "transformed count"}],
        "domain": "logistics",
        "city": "London",
        "source": "benedekrozemberczki/pytorch_geometric_temporal dataset/pedalme_london.json",
        "license": _PGT_LICENSE,
    },
)
def load_pedalme(paths: dict[str, Path]) -> STGraph:
    """PedalMe London: weekly bicycle delivery demand of 15 London localities (PGT).

    Dataset information:
        + Nodes: 15 localities (no names or coordinates in the source: ``pos`` is ``None``,
          ``meta["node_ids"]`` are the indices as strings)
        + Time steps: 35
        + Variables: 1 (``deliveries``: transformed weekly delivery counts, as shipped)
        + Sampling rate: weekly
        + Span: 2020–2021 per PGT's docstring; no dates in the file, so ``time`` is ``None``
        + Missing values: 0.00 %
        + Edges: 210 weighted directed edges (the file's 225 pairs without its 15 self-loops)
        + Source: github.com/benedekrozemberczki/pytorch_geometric_temporal ``dataset/pedalme_london.json``
    """
    path = paths[PEDALME]
    doc = read_json(path, keys=("edges", "weights", "X"))
    x = as_matrix(doc["X"], path=path, key="X", shape=(None, None))
    t, n = x.shape
    edges = _edge_array(doc["edges"], path=path, key="edges", n=n)
    weights = _weights(doc["weights"], path=path, key="weights", count=edges.shape[1])
    edge_index, edge_weight = _drop_self_loops(edges, weights)
    meta = {
        "variables": [{"name": "deliveries", "unit": "transformed count"}],
        "domain": "logistics",
        "city": "London",
        "crs": "EPSG:4326",
        "interval": WEEK,
        "spatial_scale": None,
        "timezone": "Europe/London",
        "time_reference": "local",
        "node_ids": [str(i) for i in range(n)],
        "graph": {"kind": "weighted locality graph", "self_loops": "dropped", "directed": True},
        "sources": sources("pedalme", [PEDALME], citation=_PGT_CITATION, license=_PGT_LICENSE),
        "provenance": [
            "stgraph.datasets.load('pedalme'): x = X (rows = weeks, columns = localities)",
            "time: none (the source has no dates); interval = 1 week",
            "edges: file's weighted edges without its self-loops",
        ],
    }
    return STGraph(
        x=x.T[:, :, None].astype(np.float32),
        mask=np.ones((n, t, 1), dtype=bool),
        edge_index=edge_index,
        edge_weight=edge_weight.astype(np.float32),
        meta=meta,
    )


@register(
    "england-covid",
    title="England COVID-19: daily new cases of 129 NUTS3 regions with daily mobility graphs (PGT)",
    files=(COVID,),
    facts={
        "N": 129,
        "T": 61,
        "V": 1,
        "interval": DAY,
        "span": ["2020-03-13", "2020-05-12"],
        "missing_share": 0.0,
        "variables": [{"name": "new_cases", "unit": "count"}],
        "domain": "epidemiology",
        "city": "England",
        "source": "benedekrozemberczki/pytorch_geometric_temporal dataset/england_covid.json "
        "(Panagopoulos et al., AAAI 2021)",
        "license": _PGT_LICENSE,
    },
)
def load_england_covid(paths: dict[str, Path]) -> STGraph:
    """England COVID-19: daily new cases per NUTS3 region, with a mobility graph per day (PGT).

    Panagopoulos et al., "Transfer Graph Neural Networks for Pandemic Forecasting", AAAI 2021;
    mobility = Facebook Data for Good movement counts between regions.

    Dataset information:
        + Nodes: 129 NUTS3 regions (no names or coordinates in the source: ``pos`` is ``None``)
        + Time steps: 61
        + Variables: 1 (``new_cases``, daily count)
        + Sampling rate: daily
        + Span: 2020-03-13 .. 2020-05-12. The file has no dates (61 periods). The authors'
          repository (geopanag/pandemic_tgnn, ``data/England/graphs/EN_2020-03-13.csv`` ..
          ``EN_2020-05-12.csv``, 61 files) dates them, and period 0's edge weights (180647,
          160550, 1498, 4321, 1169, ...) are those of ``EN_2020-03-13.csv``. (PGT's docstring and
          our MANIFEST say "from 3 March", which would need 71 periods.)
        + Missing values: 0.00 %
        + Edges: dynamic only — ``dyn_edge_index``/``dyn_edge_weight``/``dyn_edge_time``, one
          directed weighted graph per day (movement counts); self-loops (movement within a
          region) are kept, as they carry data
        + Source: github.com/benedekrozemberczki/pytorch_geometric_temporal ``dataset/england_covid.json``
    """
    path = paths[COVID]
    doc = read_json(path, keys=("edge_mapping", "time_periods", "y"))
    y = as_matrix(doc["y"], path=path, key="y", shape=(None, None))
    t, n = y.shape
    if not isinstance(doc["time_periods"], int) or doc["time_periods"] != t:
        raise DataFormatError(f"{path}: time_periods = {doc['time_periods']} but y has {t} rows")
    mapping = doc["edge_mapping"]
    if (
        not isinstance(mapping, dict)
        or {"edge_index", "edge_weight"} - set(mapping)
        or not all(isinstance(mapping[k], dict) for k in ("edge_index", "edge_weight"))
    ):
        raise DataFormatError(f"{path}: edge_mapping must hold edge_index and edge_weight")
    idx_parts, w_parts, t_parts = [], [], []
    for step in range(t):
        key = str(step)
        if key not in mapping["edge_index"] or key not in mapping["edge_weight"]:
            raise DataFormatError(f"{path}: edge_mapping has no graph for period {key!r}")
        e = _edge_array(mapping["edge_index"][key], path=path, key=f"edge_index[{key}]", n=n)
        w = _weights(
            mapping["edge_weight"][key], path=path, key=f"edge_weight[{key}]", count=e.shape[1]
        )
        idx_parts.append(e)
        w_parts.append(w)
        t_parts.append(np.full(e.shape[1], step, dtype=np.int64))
    meta = {
        "variables": [{"name": "new_cases", "unit": "count"}],
        "domain": "epidemiology",
        "city": "England",
        "crs": "EPSG:4326",
        "interval": DAY,
        "spatial_scale": None,
        "timezone": "Europe/London",
        "time_reference": "local",
        "node_ids": [str(i) for i in range(n)],
        "graph": {"kind": "daily mobility (dynamic)", "self_loops": "kept", "directed": True},
        "sources": sources(
            "england-covid",
            [COVID],
            citation="Panagopoulos et al., AAAI 2021; " + _PGT_CITATION,
            license=_PGT_LICENSE,
        ),
        "provenance": [
            "stgraph.datasets.load('england-covid'): x = y (rows = days, columns = regions)",
            "time: 2020-03-13 + 1 day * step (dates of the authors' daily graph files)",
            "dynamic edges: edge_mapping[edge_index|edge_weight][str(step)], self-loops kept",
        ],
    }
    return STGraph(
        x=y.T[:, :, None].astype(np.float32),
        mask=np.ones((n, t, 1), dtype=bool),
        time=step_times("2020-03-13", t, DAY),
        dyn_edge_index=np.concatenate(idx_parts, axis=1),
        dyn_edge_weight=np.concatenate(w_parts).astype(np.float32),
        dyn_edge_time=np.concatenate(t_parts),
        meta=meta,
    )


#: CRS of the Montevideo stop coordinates: chosen because it puts every stop in Montevideo
#: (lat -34.92..-34.72, lon -56.28..-56.02). EPSG:31981 (SIRGAS 2000 / UTM 21S) agrees to < 1 m;
#: EPSG:32621 (UTM 21N) would put the stops at 55 deg N.
MONTEVIDEO_CRS = "EPSG:32721"


def montevideo_lonlat(
    easting: np.ndarray, northing: np.ndarray, *, crs: str = MONTEVIDEO_CRS
) -> tuple[np.ndarray, np.ndarray]:
    """Convert projected stop coordinates (metres) to lon/lat degrees with pyproj."""
    from pyproj import Transformer

    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(np.asarray(easting, float), np.asarray(northing, float))
    return np.asarray(lon), np.asarray(lat)


@register(
    "montevideo-bus",
    title="Montevideo buses: hourly passenger inflow at 675 stops of 11 lines, October 2020 (PGT)",
    files=(MONTEVIDEO,),
    facts={
        "N": 675,
        "T": 744,
        "V": 1,
        "interval": HOUR,
        "span": ["2020-10-01T00:00", "2020-10-31T23:00"],
        "missing_share": 0.0,
        "variables": [{"name": "inflow", "unit": "passengers/hour"}],
        "domain": "public transport",
        "city": "Montevideo",
        "source": "benedekrozemberczki/pytorch_geometric_temporal dataset/montevideo_bus.json "
        "(upstream: Uruguay open data, STM Montevideo)",
        "license": _PGT_LICENSE,
    },
)
def load_montevideo_bus(paths: dict[str, Path], *, crs: str = MONTEVIDEO_CRS) -> STGraph:
    """Montevideo buses: hourly passenger inflow at the stops of 11 bus lines (PGT).

    Dataset information:
        + Nodes: 675 bus stops (``meta["node_ids"]``: stop ids)
        + Time steps: 744
        + Variables: 1 (``inflow``: passengers boarding per hour)
        + Sampling rate: 1 hour
        + Span: 2020-10-01 00:00 .. 2020-10-31 23:00, Montevideo local time (UTC-3 all month,
          no daylight saving in Uruguay since 2015). Stamps are the local clock written as UTC,
          ``meta["time_reference"] == "local"``; add 3 h for true UTC.
        + Missing values: 0.00 % (zeros are counts of zero)
        + Coordinates: the file's ``lon``/``lat`` are projected metres; converted with pyproj from
          ``crs`` (default EPSG:32721, WGS 84 / UTM 21S — the choice that lands every stop in
          Montevideo; EPSG:31981 agrees to < 1 m, EPSG:32621 would put them at 55° N)
        + Edges: 690 directed links between consecutive stops of a line; ``edge_weight`` is the
          file's weight, the distance between the stops in metres (as PGT uses it)
        + Source: github.com/benedekrozemberczki/pytorch_geometric_temporal ``dataset/montevideo_bus.json``

    Args:
        crs: CRS of the file's projected coordinates.
    """
    path = paths[MONTEVIDEO]
    locations, readings, links = read_node_link(path, values_key="y")
    ids = locations["sensor_id"].tolist()
    n = len(ids)
    xy = numeric_columns(locations, ["x", "y"], path=path)
    y = as_matrix(readings.to_numpy().T, path=path, key="nodes[*].y", shape=(n, None))
    index = {v: i for i, v in enumerate(ids)}
    try:
        src = [index[v] for v in normalize_ids(links["source"])]
        dst = [index[v] for v in normalize_ids(links["target"])]
        w = _weights(links["weight"].tolist(), path=path, key="links[*].weight", count=len(src))
    except KeyError as exc:
        raise DataFormatError(
            f"{path}: a link refers to an unknown stop or lacks a field: {exc}"
        ) from None
    lon, lat = montevideo_lonlat(xy[:, 0], xy[:, 1], crs=crs)
    t = y.shape[1]
    meta = {
        "variables": [{"name": "inflow", "unit": "passengers/hour"}],
        "domain": "public transport",
        "city": "Montevideo",
        "crs": "EPSG:4326",
        "interval": HOUR,
        "spatial_scale": median_neighbour_distance(lon, lat),
        "timezone": "America/Montevideo",
        "time_reference": "local",
        "node_ids": ids,
        "graph": {
            "kind": "bus line succession",
            "self_loops": "none",
            "directed": True,
            "edge_weight": "distance between consecutive stops (m)",
        },
        "edge_weight": DISTANCE_M,
        "source_crs": crs,
        "sources": sources(
            "montevideo-bus", [MONTEVIDEO], citation=_PGT_CITATION, license=_PGT_LICENSE
        ),
        "provenance": [
            "stgraph.datasets.load('montevideo-bus'): x = nodes[*].y (hourly inflow)",
            "time: 2020-10-01 00:00 + 1 h * step, Montevideo local clock (UTC-3) written as UTC",
            f"pos: nodes[*].lon/lat (projected metres) -> EPSG:4326 with pyproj from {crs}",
            "edges: links (directed), weight = distance (m)",
        ],
    }
    return STGraph(
        x=y[:, :, None].astype(np.float32),
        mask=np.ones((n, t, 1), dtype=bool),
        time=step_times("2020-10-01T00:00", t, HOUR),
        pos=np.stack([lon, lat], axis=1).astype(np.float32),
        edge_index=np.array([src, dst], dtype=np.int64),
        edge_weight=w.astype(np.float32),
        meta=meta,
    )
