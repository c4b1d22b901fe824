"""Property-based fuzzing of the registry loaders, the shared readers and the config loader.

Inputs are the real files mutated (cut short, bytes flipped, junk bytes or junk rows inserted,
lines dropped or repeated, numbers replaced by extreme values) and random CSV/JSON/YAML text.
Every test asserts the one contract of issue 16: the call gives a typed stgraph error
(:class:`~stgraph.errors.STGraphError`) or a valid result (an STGraph that passes ``validate()``
and has the registry's size), never another exception.

The default run is bounded (``FUZZ_EXAMPLES`` examples per test, 25); set
``STGRAPH_FUZZ_EXAMPLES=N`` for a longer campaign.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stgraph import datasets
from stgraph.datasets._common import as_matrix, read_json, read_numeric_csv
from stgraph.errors import STGraphError
from stgraph.utils.config import read_config
from stgraph.utils.readers import normalize_ids, read_node_link, read_uctb, zip_member

pytestmark = pytest.mark.fuzz

FUZZ_EXAMPLES = int(os.environ.get("STGRAPH_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
REPO = Path(__file__).resolve().parents[2]

JUNK_ROWS = [
    b"nan,nan,nan\n",
    b"1e308,-1e308,1e39\n",
    b"abc,def\n",
    b",,,,,\n",
    b"\xff\xfe\x00garbage\n",
    b'"unterminated,1,2\n',
    b"inf,-inf,1\n",
    b"1;2;3\n",
    b"\n\n",
]
EXTREME = [
    b"1e308",
    b"-1e30",
    b"1e20",
    b"nan",
    b".nan",
    b".inf",
    b"-1",
    b'"x"',
    b"null",
    b"[]",
    b"{}",
    b"1.5",
    b"1" * 400,
]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with 1-3 mutations: cut, byte flip, junk bytes or row, line drop/repeat, number swap."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["cut", "cut_line", "flip", "junk", "row", "drop", "dup", "number"])
        )
        at = draw(st.integers(0, max(len(out) - 1, 0)))
        if kind == "cut":
            out = out[:at]
        elif kind == "cut_line":
            out = out[: out.rfind(b"\n", 0, at) + 1]
        elif kind == "flip" and out:
            out[at] ^= draw(st.integers(1, 255))
        elif kind == "junk":
            out[at:at] = draw(st.binary(min_size=1, max_size=12))
        elif kind == "row":
            start = out.rfind(b"\n", 0, at) + 1
            out[start:start] = draw(st.sampled_from(JUNK_ROWS))
        elif kind in ("drop", "dup"):
            start = out.rfind(b"\n", 0, at) + 1
            end = out.find(b"\n", at)
            end = len(out) if end < 0 else end + 1
            line = bytes(out[start:end])
            out[start:end] = b"" if kind == "drop" else line * 2
        elif kind == "number":
            digits = [i for i in range(at, min(at + 200, len(out))) if chr(out[i]).isdigit()]
            if digits:
                i = digits[0]
                j = i
                while j < len(out) and (chr(out[j]).isdigit() or out[j] in b".e-+"):
                    j += 1
                out[i:j] = draw(st.sampled_from(EXTREME))
    return bytes(out)


def _typed_error_or_valid(fn, *args, **kwargs):
    """Call ``fn``; an STGraphError is an accepted outcome (returns ``None``)."""
    try:
        return fn(*args, **kwargs)
    except STGraphError:
        return None


# ---------------------------------------------------------------------------------- registry
CASES = {
    "chickenpox": "pgt-chickenpox/chickenpox.json",
    "pedalme": "pgt-pedalme/pedalme_london.json",
    "los-loop": "los-loop/los_adj.csv",
    "los-loop:speed": "los-loop/los_speed.csv",
    "los-loop:locations": "metr-la-graph/graph_sensor_locations.csv",
    "hangzhou-metro": "hangzhou-metro/graph.csv",
    "noaa-central-us-daily": "noaa-central-us-daily/Stationinfo.dat",
}


@pytest.fixture(scope="module")
def registry_root(tmp_path_factory, data_dir) -> Path:
    root = tmp_path_factory.mktemp("fuzz-data")
    for name in {c.split(":")[0] for c in CASES}:
        for rel in datasets.REGISTRY[name].files:
            if (data_dir / rel).is_file() and not (root / rel).exists():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(data_dir / rel, root / rel)
    return root


@pytest.mark.parametrize("case", sorted(CASES))
def test_registry_loader_on_mutated_files(case, registry_root, data_dir):
    name, rel = case.split(":")[0], CASES[case]
    original = (data_dir / rel).read_bytes()
    if len(original) > 400_000:  # big files: mutate the head and keep the tail as it is
        head, tail = original[:20_000], original[20_000:]
    else:
        head, tail = original, b""
    spec = datasets.REGISTRY[name]

    @FUZZ
    @given(data=mutated(head))
    def check(data: bytes) -> None:
        target = registry_root / rel
        target.write_bytes(data + (tail if len(data) >= len(head) - 1 else b""))
        try:
            g = _typed_error_or_valid(
                datasets.load, name, root=registry_root, download=False, verify=False
            )
        finally:
            target.write_bytes(original)
        if g is not None:
            g.validate()
            for k, got in (("N", g.num_nodes), ("T", g.num_steps), ("V", g.num_variables)):
                assert spec.facts[k] in (None, got), (k, got)

    check()


# ---------------------------------------------------------------------------------- _common
_cells = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet='0123456789.-+eE,na "x', max_size=6),
    st.sampled_from(["", "nan", "inf", "1e308", "-0", "\u00e9"]),
)


@FUZZ
@given(
    rows=st.lists(st.lists(_cells, min_size=1, max_size=5), min_size=0, max_size=6),
    header=st.booleans(),
    newline=st.booleans(),
    raw_prefix=st.binary(max_size=3),
)
def test_read_numeric_csv_random(tmp_path_factory, rows, header, newline, raw_prefix):
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    text = "\n".join(",".join(r) for r in rows) + ("\n" if newline else "")
    path.write_bytes(raw_prefix + text.encode())
    out = _typed_error_or_valid(read_numeric_csv, path, header=header)
    if out is not None:
        _, values = out
        assert values.dtype == np.float64 and values.ndim == 2
        assert np.isfinite(values.astype(np.float32)).all()


_json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=False),
        st.text(max_size=4),
    ),
    lambda kids: (
        st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=3), kids, max_size=4)
    ),
    max_leaves=30,
)


@FUZZ
@given(value=_json_values, ncols=st.one_of(st.none(), st.integers(0, 4)))
def test_as_matrix_random(value, ncols):
    arr = _typed_error_or_valid(as_matrix, value, path=Path("f.json"), key="X", shape=(None, ncols))
    if arr is not None:
        assert arr.ndim == 2 and (ncols is None or arr.shape[1] == ncols)
        assert np.isfinite(arr.astype(np.float32)).all()


@FUZZ
@given(data=st.one_of(st.binary(max_size=64), _json_values.map(lambda v: json.dumps(v).encode())))
def test_read_json_random(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("json") / "d.json"
    path.write_bytes(data)
    doc = _typed_error_or_valid(read_json, path, keys=("a",))
    assert doc is None or (isinstance(doc, dict) and "a" in doc)


# ---------------------------------------------------------------------------------- readers
@pytest.fixture(scope="module")
def node_link_head(data_dir) -> bytes:
    """A small node-link JSON cut from Montevideo's: its first 3 stops and their links."""
    doc = json.loads((data_dir / "pgt-montevideo-bus/montevideo_bus.json").read_bytes())
    nodes = doc["nodes"][:3]
    ids = {n["id"] for n in nodes}
    links = [e for e in doc["links"] if e["source"] in ids and e["target"] in ids]
    nodes = [{k: n[k] for k in ("id", "lon", "lat")} | {"y": n["y"][:24]} for n in nodes]
    return json.dumps({"nodes": nodes, "links": links}, indent=1).encode()


def test_read_node_link_mutated(tmp_path_factory, node_link_head):
    @FUZZ
    @given(data=mutated(node_link_head))
    def check(data: bytes) -> None:
        path = tmp_path_factory.mktemp("nl") / "g.json"
        path.write_bytes(data)
        out = _typed_error_or_valid(read_node_link, path)
        if out is not None:
            locations, readings, _links = out
            assert len(locations) == readings.shape[1]
            assert readings.to_numpy().dtype == np.float64

    check()


_station = st.lists(
    st.one_of(st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=3), st.none()),
    min_size=0,
    max_size=6,
)
_uctb_docs = st.one_of(
    _json_values,
    st.fixed_dictionaries(
        {
            "TimeRange": st.one_of(
                st.just(["2021-01-01", "2021-01-02"]), st.lists(st.text(max_size=10), max_size=3)
            ),
            "TimeFitness": st.one_of(st.integers(-2, 120), st.text(max_size=3), st.none()),
            "Node": st.fixed_dictionaries(
                {
                    "TrafficNode": st.lists(
                        st.lists(st.floats(allow_nan=True, width=32), min_size=2, max_size=2),
                        max_size=4,
                    ).map(np.array),
                    "StationInfo": st.lists(_station, min_size=0, max_size=3),
                }
            ),
        }
    ),
)


@FUZZ
@given(doc=_uctb_docs, member=st.sampled_from(["a.pkl", "a.txt"]))
def test_read_uctb_random_pickles(tmp_path_factory, doc, member):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(member, pickle.dumps(doc))
    path = tmp_path_factory.mktemp("uctb") / "d.zip"
    path.write_bytes(buf.getvalue())
    out = _typed_error_or_valid(read_uctb, path, sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    if out is not None:
        locations, readings, info = out
        assert readings.shape[1] == len(locations) + 1  # time + one column per station
        assert locations["latitude"].abs().le(90).all()


@FUZZ
@given(data=st.binary(max_size=200), member=st.text(max_size=5))
def test_zip_member_random_bytes(data, member):
    out = _typed_error_or_valid(zip_member, data, member, source="x.zip")
    assert out is None or isinstance(out, bytes)


@FUZZ
@given(values=st.lists(st.one_of(st.integers(), st.floats(), st.text(max_size=5), st.none())))
def test_normalize_ids_is_total(values):
    out = normalize_ids(values)
    assert len(out) == len(values) and all(isinstance(v, str) for v in out)


# ---------------------------------------------------------------------------------- config
@dataclasses.dataclass
class _Inner:
    k: int = 1
    r: float = 0.5
    names: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Config:
    name: str
    inner: _Inner = dataclasses.field(default_factory=_Inner)
    flag: bool = False
    maybe: float | None = None
    table: dict[str, int] = dataclasses.field(default_factory=dict)


_REAL_CONFIG = b"""name: demo
inner: {k: 3, r: 0.25, names: [a, b]}
flag: true
maybe: null
table: {x: 1, y: 2}
"""
_override = st.one_of(
    st.text(alphabet="abcdeiknmrt.=0123456789[]{}:-' _", max_size=16),
    st.sampled_from(
        ["inner.k=2", "inner.names.0=z", "inner=3", "table.x=[1]", "x.y.z=1", "a=", "=", "k"]
    ),
)


def test_config_loader_on_mutated_yaml(tmp_path_factory):
    @FUZZ
    @given(data=mutated(_REAL_CONFIG), overrides=st.lists(_override, max_size=3))
    def check(data: bytes, overrides: list[str]) -> None:
        path = tmp_path_factory.mktemp("cfg") / "c.yaml"
        path.write_bytes(data)
        out = _typed_error_or_valid(read_config, _Config, path, overrides=overrides)
        if out is not None:
            cfg, _ = out
            assert isinstance(cfg, _Config) and isinstance(cfg.inner, _Inner)
            assert isinstance(cfg.inner.k, int) and isinstance(cfg.inner.r, float)
            assert cfg.inner.r == cfg.inner.r  # not NaN
            assert all(isinstance(k, str) and isinstance(v, int) for k, v in cfg.table.items())
            assert all(isinstance(n, str) for n in cfg.inner.names)

    check()


@pytest.mark.parametrize(
    "config",
    sorted((REPO / "configs" / "train" / "forecast").glob("*.yaml"))[:2],
    ids=lambda p: p.name,
)
def test_train_config_on_mutated_real_files(config, tmp_path_factory):
    from stgraph.train.config import TrainConfig

    original = config.read_bytes()

    @FUZZ
    @given(data=mutated(original), overrides=st.lists(_override, max_size=2))
    def check(data: bytes, overrides: list[str]) -> None:
        path = tmp_path_factory.mktemp("train") / config.name
        path.write_bytes(data)
        out = _typed_error_or_valid(read_config, TrainConfig, path, overrides=overrides)
        assert out is None or isinstance(out[0], TrainConfig)

    check()
