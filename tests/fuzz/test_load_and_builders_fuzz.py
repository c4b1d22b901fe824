"""Property-based fuzzing of ``STGraph.load`` and the trajectory, raster and moving-sensor builders.

``STGraph.load`` gets saved directories whose ``meta.json`` or ``tensors.safetensors`` bytes are
mutated (cut, flipped, junk inserted), whose ``meta.json`` fields are replaced by random JSON,
and directories written from random tensors (random names, dtypes and shapes) declared
consistently, as a careful forger would. The builders get random point tables (numbers, NaN,
inf, huge values, text, duplicate and unsorted rows) and random rasters. Each test asserts the
contract of issue 16: a typed stgraph error (:class:`~stgraph.errors.STGraphError`) or a graph
that passes ``validate()``, never another exception.

Bounded by default (``STGRAPH_FUZZ_EXAMPLES``, 25 per test); marked ``fuzz``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from graph_builders import moving, raster, trajectories
from stgraph.data import STGraph
from stgraph.data.serialization import sha256_file
from stgraph.errors import STGraphError

pytestmark = pytest.mark.fuzz

FUZZ_EXAMPLES = int(os.environ.get("STGRAPH_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@pytest.fixture(autouse=True)
def _small_memory_budget(monkeypatch):
    """Random times span centuries: a small budget refuses those graphs at once (the refusal is
    a typed error too) instead of building gigabytes."""
    monkeypatch.setenv("STGRAPH_MEMORY_BUDGET", "64M")


def _valid_or_typed_error(fn, *args, **kwargs) -> STGraph | None:
    try:
        g = fn(*args, **kwargs)
    except STGraphError:
        return None
    assert isinstance(g, STGraph)
    g.validate()
    assert bool(torch.isfinite(g.x).all())
    return g


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 7, 2, generator=gen)
    x[0, 0, 0] = float("nan")
    g = STGraph(
        x=x,
        time=torch.arange(7) * 60 + 1_700_000_000,
        pos=torch.tensor([[10.0, 50.0], [10.1, 50.0], [10.2, 50.1], [10.0, 50.2], [9.9, 50.1]]),
        edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]),
        edge_weight=torch.rand(4, generator=gen),
        node_attr=torch.randn(5, 3, generator=gen),
        dyn_edge_index=torch.tensor([[0, 4], [2, 3]]),
        dyn_edge_time=torch.tensor([0, 6]),
        meta={"variables": [{"name": "a", "unit": "m"}, {"name": "b", "unit": "s"}]},
        node_ids=[f"n{i}" for i in range(5)],
    )
    return g.save(tmp_path_factory.mktemp("fuzz-load") / "g")


def _copy(saved: Path, tmp: Path) -> Path:
    d = tmp / "g"
    if d.exists():
        shutil.rmtree(d)
    shutil.copytree(saved, d)
    return d


@st.composite
def mutated_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["cut", "flip", "junk", "swap"]))
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "cut":
            out = out[:at]
        elif kind == "flip" and out:
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "junk":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "swap" and len(out) > at + 8:
            out[at : at + 8] = draw(st.binary(min_size=8, max_size=8))
    return bytes(out)


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(data=st.data(), which=st.sampled_from(["meta.json", "tensors.safetensors"]))
def test_load_mutated_bytes(saved, tmp_path, data, which):
    d = _copy(saved, tmp_path)
    f = d / which
    f.write_bytes(data.draw(mutated_bytes(f.read_bytes())))
    if which == "tensors.safetensors" and data.draw(st.booleans()):
        doc = json.loads((d / "meta.json").read_text())  # no sha256: reach the tensor checks
        doc.pop("sha256")
        (d / "meta.json").write_text(json.dumps(doc))
    _valid_or_typed_error(STGraph.load, d)


@FUZZ
@given(
    key=st.sampled_from(
        ["format", "version", "class", "meta", "attributes", "tensors", "sha256", "extra"]
    ),
    path=st.lists(st.text(max_size=6), max_size=2),
    value=JSON,
)
def test_load_meta_json_fields_replaced(saved, tmp_path, key, path, value):
    d = _copy(saved, tmp_path)
    doc = json.loads((d / "meta.json").read_text())
    node = doc
    for part in [key, *path][:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[[key, *path][-1]] = value
    (d / "meta.json").write_text(json.dumps(doc))
    _valid_or_typed_error(STGraph.load, d)


NAMES = st.sampled_from(
    [
        "x",
        "mask",
        "time",
        "pos",
        "edge_index",
        "edge_weight",
        "dyn_edge_index",
        "dyn_edge_time",
        "node_attr",
        "y",
        "../../x",
        "validate",
        "meta",
        "__dict__",
        "to",
        "num_nodes",
        "extra",
    ]
)
DTYPES = st.sampled_from([torch.float32, torch.float64, torch.int64, torch.int32, torch.bool])


@st.composite
def tensor(draw: st.DrawFn) -> torch.Tensor:
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3))
    dtype = draw(DTYPES)
    values = draw(
        st.lists(
            st.sampled_from([0, 1, 2, 3, -1, 1e39, float("nan"), float("inf"), 181.0]),
            min_size=int(np.prod(shape)),
            max_size=int(np.prod(shape)),
        )
    )
    t = torch.tensor(values, dtype=torch.float64).reshape(shape)
    if dtype in (torch.int64, torch.int32):
        t = torch.nan_to_num(t, nan=0.0, posinf=7.0, neginf=-7.0).clamp(-9, 9)
    return t.to(dtype)


@FUZZ
@given(tensors=st.dictionaries(NAMES, tensor(), min_size=1, max_size=7))
def test_load_forged_tensors_declared_consistently(saved, tmp_path, tensors):
    d = _copy(saved, tmp_path)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(d / "tensors.safetensors"))
    doc = json.loads((d / "meta.json").read_text())
    doc["tensors"] = {
        k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in tensors.items()
    }
    doc["sha256"] = sha256_file(d / "tensors.safetensors")
    doc["meta"]["variables"] = []
    (d / "meta.json").write_text(json.dumps(doc))
    _valid_or_typed_error(STGraph.load, d)


# ------------------------------------------------------------------------------ builders
CELLS = st.sampled_from(
    [0.0, 116.3, 116.35, 39.9, 39.95, 181.0, -91.0, 1e39, float("nan"), float("inf"), "x", None]
)
TIMES = st.sampled_from(
    [
        "2008-10-23 02:53:04",
        "2008-10-23 02:53:10",
        "2008-10-23 03:10:00",
        "2008-10-23 02:53:04",
        "garbage",
        "",
        None,
        1224730384,
        1e30,
        "2262-04-12",
        "1677-09-20",
    ]
)


@st.composite
def point_table(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(0, 30))
    lon = [draw(st.one_of(st.floats(116.2, 116.5), CELLS)) for _ in range(n)]
    lat = [draw(st.one_of(st.floats(39.85, 40.05), CELLS)) for _ in range(n)]
    t = [draw(TIMES) for _ in range(n)]
    ids = [draw(st.sampled_from([1, 2, "a", None])) for _ in range(n)]
    speed = [draw(st.one_of(st.floats(0, 40), CELLS)) for _ in range(n)]
    return pd.DataFrame({"lon": lon, "lat": lat, "time": t, "id": ids, "speed": speed})


GRID = {"cell_m": 2000, "bbox": (116.2, 39.85, 116.5, 40.05)}


@FUZZ
@given(table=point_table(), interval=st.sampled_from(["10min", "1h", 1]))
def test_trajectories_random_tables(table, interval):
    _valid_or_typed_error(
        trajectories.from_points,
        table,
        grid=GRID,
        interval=interval,
        lon_col="lon",
        lat_col="lat",
        time_col="time",
        id_col="id",
    )


@FUZZ
@given(table=point_table(), mode=st.sampled_from(["knn", "interpolate"]), k=st.integers(1, 4))
def test_moving_random_tables(table, mode, k):
    nodes = np.array([[116.3, 39.9], [116.4, 39.95], [116.35, 40.0]])
    _valid_or_typed_error(
        moving.from_tracks,
        table,
        interval="10min",
        mode=mode,
        k=k,
        nodes=nodes if mode == "interpolate" else None,
        lon_col="lon",
        lat_col="lat",
        time_col="time",
        id_col="id",
    )


@FUZZ
@given(
    shape=st.tuples(st.integers(0, 4), st.integers(0, 5), st.integers(0, 5)),
    fill=st.sampled_from([0.0, float("nan"), float("inf"), 1e39, -1e39]),
    lat0=st.sampled_from([50.0, 89.9, -95.0, float("nan")]),
    step=st.sampled_from([0.25, -0.25, 0.0, 100.0]),
    coarsen=st.integers(1, 3),
    data=st.data(),
)
def test_raster_random_arrays(shape, fill, lat0, step, coarsen, data):
    t, h, w = shape
    arr = np.random.default_rng(0).normal(size=shape)
    if arr.size:
        arr.flat[data.draw(st.integers(0, arr.size - 1))] = fill
    coords = {
        "time": pd.date_range("2020-01-01", periods=t, freq="h").to_numpy(),
        "latitude": lat0 + step * np.arange(h),
        "longitude": 355.0 + 0.25 * np.arange(w),
    }
    _valid_or_typed_error(
        raster.from_grid,
        arr,
        dims=("time", "latitude", "longitude"),
        coords=coords,
        coarsen=coarsen,
    )


@FUZZ
@given(data=st.data())
def test_raster_mutated_grib(data_dir, tmp_path, data):
    pytest.importorskip("cfgrib")
    # one whole day (24 hourly messages of 3,360 bytes): a shorter cut from midnight is refused
    # as a file cut between messages, and the valid path would never be reached unmutated
    src = (data_dir / "era5-uk-t2m" / "era5-2mt-2019-03-uk.grib").read_bytes()[: 3360 * 24]
    path = tmp_path / "cut.grib"
    path.write_bytes(data.draw(mutated_bytes(src)))
    _valid_or_typed_error(raster.from_grid, path)
