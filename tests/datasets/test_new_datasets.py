"""The data sets added for the pretraining corpus on the real files: Hangzhou metro, NOAA, Irish wind.

Every check reads the raw files independently (scipy, pandas, pyreadr) and compares with what the
loader gives.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import torch

from stgraph import datasets
from stgraph.data.stgraph import STGraph
from stgraph.datasets.files import FILES
from stgraph.datasets.weather import dms_to_degrees
from stgraph.errors import ChecksumError, DataFormatError

DAY = 86400
NOAA = "noaa-central-us-daily"
NOAA_FILES = [
    f"{NOAA}/{f}.dat"
    for f in ("Stationinfo", "Times_1990", "Tmax_1990", "Tmin_1990", "Precip_1990")
]
WIND = "ireland-wind/wind.rda"
HZ = ("hangzhou-metro/inflow_tensor.mat", "hangzhou-metro/outflow_tensor.mat")
HZ_GRAPH = "hangzhou-metro/graph.csv"


def _utc(s: str) -> int:
    return int(pd.Timestamp(s, tz="UTC").timestamp())


def _check_common(g: STGraph, name: str, first: str, last: str, interval: int) -> None:
    """Shapes, time axis, metadata and the registry's facts agree with the graph."""
    g.validate()
    info = datasets.info(name)
    assert (info["N"], info["T"], info["V"]) == tuple(g.x.shape)
    assert int(g.time[0]) == _utc(first) and int(g.time[-1]) == _utc(last)
    assert bool((g.time.diff() == interval).all())
    assert g.meta["interval"] == info["interval"] == interval
    assert [pd.Timestamp(s) for s in info["span"]] == [pd.Timestamp(first), pd.Timestamp(last)]
    assert info["missing_share"] == pytest.approx(g.missing_share, abs=1e-7)
    assert info["variables"] == g.meta["variables"]
    assert bool((g.x[~g.mask] == 0).all())
    assert bool((g.edge_index[0] != g.edge_index[1]).all())  # no self-loops
    assert g.meta["sources"] and g.meta["provenance"]
    assert "Dataset information" in info["description"]
    json.dumps(g.meta)  # metadata must be JSON (STGraph.save)


@pytest.fixture(scope="module")
def load(data_dir):
    cache = {}

    def _load(name, **options):
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = datasets.load(name, root=data_dir, download=False, **options)
        return cache[key]

    return _load


def _copy(data_dir: Path, root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / rel, root / rel)


def _flip_byte(path: Path, at: int) -> bytes:
    raw = bytearray(path.read_bytes())
    raw[at] ^= 0x01
    path.write_bytes(bytes(raw))
    return bytes(raw)


# ---------------------------------------------------------------------------------- Hangzhou
def test_hangzhou_metro(load, data_dir):
    g = load("hangzhou-metro")
    assert tuple(g.x.shape) == (80, 3600, 2)
    _check_common(g, "hangzhou-metro", "2019-01-01 00:00", "2019-01-25 23:50", 600)
    assert g.variables == ["inflow", "outflow"]
    assert g.units == ["passengers/10 min"] * 2
    assert g.pos is None and g.meta["spatial_scale"] is None  # no coordinates in the files
    assert g.missing_share == 0.0
    assert g.meta["timezone"] == "Asia/Shanghai" and g.meta["time_reference"] == "local"

    inflow = scipy.io.loadmat(data_dir / HZ[0])["inflow_tensor"]
    outflow = scipy.io.loadmat(data_dir / HZ[1])["outflow_tensor"]
    assert inflow.shape == (80, 25, 144)
    # station 7, 2019-01-03 08:30 = day 2, slot 51 = step 2 * 144 + 51
    assert float(g.x[7, 2 * 144 + 51, 0]) == float(inflow[7, 2, 51]) > 0
    assert float(g.x[79, 24 * 144 + 143, 1]) == float(outflow[79, 24, 143])
    assert g.x[:, :, 0].double().sum().item() == float(inflow.sum()) == 29_309_420
    assert g.x[:, :, 1].double().sum().item() == float(outflow.sum()) == 29_327_817
    assert bool((g.x[:, :144, 0].numpy() == inflow[:, 0, :]).all())

    # 81-node graph, node 54 dropped: rows 0..53 = graph 0..53, rows 54..79 = graph 55..80
    adj = pd.read_csv(data_dir / HZ_GRAPH, index_col=0).to_numpy()
    assert adj.shape == (81, 81) and int(adj.sum()) == 2 * 85
    ids = [int(i) for i in g.meta["node_ids"]]
    assert ids == [i for i in range(81) if i != 54]
    assert g.meta["graph"]["dropped_node"] == 54 and g.meta["dropped"] == {
        "graph nodes without trips": 1
    }
    edges = {tuple(e) for e in g.edge_index.t().tolist()}
    expected = {(a, b) for a in range(80) for b in range(80) if adj[ids[a], ids[b]]}
    bridge = {(53, 54), (54, 53)}  # graph 53 <-> 55: the neighbours of the dropped station
    assert g.meta["graph"]["bridged"] == [[53, 55]]
    assert edges == expected | bridge and len(edges) == 2 * (85 - 2 + 1)
    assert bool((g.edge_weight == 1).all())

    plain = load("hangzhou-metro", bridge=False)
    assert {tuple(e) for e in plain.edge_index.t().tolist()} == expected
    assert plain.meta["graph"]["bridged"] == []
    # without the bridge line 2 beyond node 54 (graph 55..66 = rows 54..65) is cut off
    reach, frontier = {0}, [0]
    while frontier:
        nxt = [int(b) for a in frontier for b in plain.edge_index[1][plain.edge_index[0] == a]]
        frontier = [b for b in nxt if b not in reach]
        reach.update(frontier)
    assert set(range(80)) - reach == set(range(54, 66))


def test_hangzhou_tampered_file_is_refused(data_dir, tmp_path):
    _copy(data_dir, tmp_path, *HZ, HZ_GRAPH)
    raw = _flip_byte(tmp_path / HZ[1], 5000)
    with pytest.raises(ChecksumError) as err:
        datasets.load("hangzhou-metro", root=tmp_path, download=False)
    msg = str(err.value)
    assert HZ[1] in msg and FILES[HZ[1]].sha256 in msg
    assert hashlib.sha256(raw).hexdigest() in msg


def test_hangzhou_graph_of_wrong_size_is_named(data_dir, tmp_path):
    _copy(data_dir, tmp_path, *HZ, HZ_GRAPH)
    adj = pd.read_csv(tmp_path / HZ_GRAPH, index_col=0).iloc[:80, :80]
    adj.to_csv(tmp_path / HZ_GRAPH)
    with pytest.raises(DataFormatError, match=r"graph\.csv: 80 nodes; expected 81"):
        datasets.load("hangzhou-metro", root=tmp_path, download=False, verify=False)


# ---------------------------------------------------------------------------------- NOAA
def test_noaa_central_us_daily(load, data_dir):
    g = load(NOAA)
    assert tuple(g.x.shape) == (137, 1461, 3)
    _check_common(g, NOAA, "1990-01-01", "1993-12-31", DAY)
    assert g.variables == ["tmax", "tmin", "precip"] and g.units == ["°F", "°F", "in"]

    read = lambda f: pd.read_csv(data_dir / f"{NOAA}/{f}", sep=r"\s+", header=None)  # noqa: E731
    stations = read("Stationinfo.dat")
    tmax, tmin, precip = (read(f"{v}_1990.dat").to_numpy() for v in ("Tmax", "Tmin", "Precip"))
    times = read("Times_1990.dat")
    assert tmax.shape == (1461, 328) and len(stations) == 328
    assert (times.iloc[0, 1:].tolist(), times.iloc[-1, 1:].tolist()) == (
        [1990, 1, 1],
        [1993, 12, 31],
    )

    # the kept stations: those with any value; 191 of 328 have none at all
    has = (tmax > -9998) | (tmin > -9998) | (precip > -99)
    keep = np.nonzero(has.any(axis=0))[0]
    assert len(keep) == 137 and g.meta["dropped"] == {"stations without any value": 191}
    assert g.meta["node_ids"] == [str(int(s)) for s in stations.iloc[keep, 0]]
    assert np.allclose(g.pos[:, 0].numpy(), stations.iloc[keep, 2], atol=1e-5)  # lon
    assert np.allclose(g.pos[:, 1].numpy(), stations.iloc[keep, 1], atol=1e-5)  # lat
    assert float(g.pos[:, 0].min()) >= -100 and float(g.pos[:, 0].max()) <= -80
    assert float(g.pos[:, 1].min()) >= 32 and float(g.pos[:, 1].max()) <= 46

    # values and mask against the raw tables
    for v, raw, code in ((0, tmax, -9998), (1, tmin, -9998), (2, precip, -99)):
        sub = raw[:, keep]
        assert bool((g.mask[:, :, v].numpy() == (sub > code).T).all())
        assert np.allclose(g.x[:, :, v].numpy(), np.where(sub > code, sub, 0).T, atol=1e-6)
    # the first station on 1990-01-01: 35 °F (first value of Tmax_1990.dat)
    assert keep[0] == 0 and float(g.x[0, 0, 0]) == tmax[0, 0] == 35
    day = (pd.Timestamp("1992-07-04") - pd.Timestamp("1990-01-01")).days
    j = int(np.nonzero(tmin[day, keep] > -9998)[0][40])  # the 41st station with a Tmin that day
    assert float(g.x[j, day, 1]) == tmin[day, keep[j]] and bool(g.mask[j, day, 1])
    assert float(g.x[:, :, 2].max()) == pytest.approx(10.44, abs=1e-5)

    # missing shares: 2.0 % of Tmax among the kept stations (MANIFEST), 59 % over all stations
    share = 1 - np.stack([tmax > -9998, tmin > -9998, precip > -99])[:, :, keep].mean()
    assert g.missing_share == pytest.approx(share, abs=1e-7) and 0.02 < share < 0.03
    assert 1 - float(g.mask[:, :, 0].float().mean()) == pytest.approx(0.0195, abs=5e-4)

    # kNN proximity graph: every station receives exactly k = 8 edges
    assert torch.bincount(g.edge_index[1], minlength=137).tolist() == [8] * 137
    gg = load(NOAA, graph="gaussian", threshold=0.5)
    assert float(gg.edge_weight.min()) >= 0.5
    ei = gg.edge_index.t().tolist()
    assert {(b, a) for a, b in ei} == {tuple(e) for e in ei}


def test_noaa_tampered_file_is_refused(data_dir, tmp_path):
    _copy(data_dir, tmp_path, *NOAA_FILES)
    target = tmp_path / NOAA_FILES[3]  # Tmin_1990.dat
    raw = target.read_bytes().replace(b"-9999", b"-9990", 1)  # a plausible-looking edit
    target.write_bytes(raw)
    with pytest.raises(ChecksumError, match=r"Tmin_1990\.dat"):
        datasets.load(NOAA, root=tmp_path, download=False)
    # without the sha256 check the loader's own checks still hold: the edited entry would count
    # as a (bogus) reading and keep a station the registry's graph does not have
    with pytest.raises(DataFormatError, match=r"N = 138 \(expected 137\)"):
        datasets.load(NOAA, root=tmp_path, download=False, verify=False)


# ---------------------------------------------------------------------------------- Ireland
def test_dms_conversion():
    # Valentia Observatory 51°56'N 10°15'W; Rosslare's entry has seconds
    assert dms_to_degrees("51d56'N") == pytest.approx(51 + 56 / 60)
    assert dms_to_degrees("10d15'W") == pytest.approx(-10.25)
    assert dms_to_degrees("52d16'56.791\"N") == pytest.approx(52 + 16 / 60 + 56.791 / 3600)
    assert dms_to_degrees("6d21'25.056\"W") == pytest.approx(-(6 + 21 / 60 + 25.056 / 3600))
    assert dms_to_degrees("33d52'S") == pytest.approx(-(33 + 52 / 60))
    for bad in ("51.93", "51d75'N", "51d56'X", ""):
        with pytest.raises(ValueError, match="DMS|below 60"):
            dms_to_degrees(bad)


def test_ireland_wind(load, data_dir):
    pyreadr = pytest.importorskip("pyreadr")
    g = load("ireland-wind")
    assert tuple(g.x.shape) == (12, 6574, 1)
    _check_common(g, "ireland-wind", "1961-01-01", "1978-12-31", DAY)
    assert g.variables == ["wind_speed"] and g.units == ["knots"]
    assert g.missing_share == 0.0

    frames = pyreadr.read_r(str(data_dir / WIND))
    wind, loc = frames["wind"], frames["wind.loc"]
    codes = list(wind.columns[3:])
    assert g.meta["node_ids"] == codes == ["RPT", "VAL", "ROS", "KIL", "SHA", "BIR", "DUB",
                                           "CLA", "MUL", "CLO", "BEL", "MAL"]  # fmt: skip
    assert np.allclose(g.x[:, :, 0].numpy(), wind[codes].to_numpy().T, atol=1e-5)
    assert float(g.x[0, 0, 0]) == pytest.approx(15.04)  # RPT, 1961-01-01
    assert float(g.x[1, 2, 0]) == pytest.approx(16.88)  # VAL, 1961-01-03
    last = wind.iloc[-1]
    assert (int(last["year"]), int(last["month"]), int(last["day"])) == (78, 12, 31)
    assert float(g.x[11, -1, 0]) == pytest.approx(float(last["MAL"]))

    # coordinates: DMS joined on the station code (wind.loc is in another order than wind)
    val = codes.index("VAL")
    assert g.meta["node_names"][val] == "Valentia"
    assert g.pos[val].tolist() == pytest.approx([-10.25, 51 + 56 / 60], abs=1e-5)
    ros = codes.index("ROS")
    assert g.pos[ros].tolist() == pytest.approx([-6.35696, 52.282442], abs=1e-5)
    by_code = loc.assign(Code=loc["Code"].astype(str)).set_index("Code")
    assert dms_to_degrees(by_code.loc["MAL", "Latitude"]) == pytest.approx(55 + 22 / 60)
    assert float(g.pos[:, 0].max()) < -6 and float(g.pos[:, 1].min()) > 51.5  # Ireland

    assert torch.bincount(g.edge_index[1], minlength=12).tolist() == [4] * 12
    # Valentia's nearest neighbours include Shannon and Roche's Point, not Malin Head
    src_of_val = {codes[int(s)] for s in g.edge_index[0][g.edge_index[1] == val]}
    assert {"SHA", "RPT"} <= src_of_val and "MAL" not in src_of_val


def test_ireland_tampered_file_is_refused(data_dir, tmp_path):
    _copy(data_dir, tmp_path, WIND)
    raw = _flip_byte(tmp_path / WIND, 40_000)
    with pytest.raises(ChecksumError) as err:
        datasets.load("ireland-wind", root=tmp_path, download=False)
    assert hashlib.sha256(raw).hexdigest() in str(err.value)


# ---------------------------------------------------------------------------------- registry
def test_new_files_are_registered_with_their_pinned_commits():
    assert FILES[HZ_GRAPH].commit == "99a31275f12504f59b0c3d3debd50fea92b2e973"
    assert FILES[HZ[0]].commit == "cf0e230d1e436cf14e193e94681368782878c178"
    assert FILES[WIND].url == (
        "https://raw.githubusercontent.com/r-spatial/gstat/"
        "2a578765502dd29520dcc3b40af42c953237faa3/data/wind.rda"
    )
    assert "pemsd7m-graph/PeMSD7_W_228.csv" in FILES
    for name in ("hangzhou-metro", NOAA, "ireland-wind"):
        assert name in datasets.list_datasets(kind="graph")
