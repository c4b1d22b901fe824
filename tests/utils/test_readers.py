"""The readers the registry and the builders share: checksums, safe unpickling, UCTB, node-link."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from stgraph.errors import ChecksumError, DataFormatError
from stgraph.utils.readers import (
    load_verified_pickle,
    normalize_ids,
    read_node_link,
    read_uctb,
    read_verified_bytes,
    sha256_of,
    zip_member,
)

MELBOURNE_SHA = "d8c94234dd64ead84813e0cb6a5a99a785f898b0dacee8bbca77119ff757e32e"


def _sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def test_sha256_and_verified_read(tmp_path):
    path = tmp_path / "f.bin"
    raw = bytes(range(256)) * 5000  # > 1 MiB: several chunks
    path.write_bytes(raw)
    assert sha256_of(path) == _sha(raw)
    assert read_verified_bytes(path, f"  {_sha(raw).upper()} \n") == raw  # case, white space
    with pytest.raises(ChecksumError, match=r"f\.bin: sha256 mismatch .* not loaded"):
        read_verified_bytes(path, "0" * 64)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_pickles_only_after_the_checksum_and_only_numpy(tmp_path):
    arr = np.arange(6.0).reshape(2, 3)
    good = pickle.dumps({"a": [arr, 3]})
    path = tmp_path / "x.pkl"
    path.write_bytes(good)
    out = load_verified_pickle(path, source="x.pkl", sha256=_sha(good))
    assert np.array_equal(out["a"][0], arr) and out["a"][1] == 3
    with pytest.raises(ValueError, match="no sha256 given"):
        load_verified_pickle(path, source="x.pkl")
    with pytest.raises(ChecksumError, match="not unpickled"):
        load_verified_pickle(good, source="x.pkl", sha256=_sha(good + b"x"))
    evil = pickle.dumps(io.BytesIO(b"x"))  # any non-numpy global is refused
    with pytest.raises(DataFormatError, match=r"references _io\.BytesIO"):
        load_verified_pickle(evil, source="evil.pkl", sha256=_sha(evil))
    archive = _zip({"inner.pkl": good})
    got = load_verified_pickle(archive, source="a.zip", sha256=_sha(archive), member="inner.pkl")
    assert np.array_equal(got["a"][0], arr)
    with pytest.raises(DataFormatError, match=r"a\.zip: archive has no member 'nope'"):
        zip_member(archive, "nope", source="a.zip")
    with pytest.raises(DataFormatError, match="not a valid zip"):
        zip_member(b"plain bytes", "x")


def test_read_uctb_melbourne(data_dir):
    path = data_dir / "melbourne-pedestrian" / "Pedestrian_Melbourne.zip"
    with pytest.raises(ChecksumError):
        read_uctb(path, sha256="0" * 64)
    loc, readings, info = read_uctb(path, sha256=MELBOURNE_SHA)
    assert list(loc.columns) == ["sensor_id", "install_date", "latitude", "longitude", "name"]
    assert len(loc) == 55 and loc["sensor_id"].iloc[0] == "1" and loc["name"].iloc[0] == "Bou292_T"
    assert readings.shape == (16056, 56) and list(readings.columns[1:]) == loc["sensor_id"].tolist()
    assert str(readings["time"].iloc[0]) == "2021-01-01 00:00:00"
    assert readings["time"].diff().iloc[1:].eq(np.timedelta64(1, "h")).all()
    assert info == {
        "time_range": ["2021-01-01", "2022-11-01"],
        "interval_min": 60,
        "missing_marked": 12393,
    }
    assert int(readings.drop(columns="time").isna().to_numpy().sum()) == 12393  # -1 -> NaN
    assert float(readings.iloc[0, 1]) == 349.0


def _uctb_zip(tmp_path, counts, pkls=("d.pkl",)):
    doc = {
        "TimeRange": ["2021-01-01", "2021-01-02"],
        "TimeFitness": 60,
        "Node": {
            "TrafficNode": np.asarray(counts),
            "StationInfo": [
                [7.0, "2020-01-01", -37.8, 144.9, "a"],
                [8, "2020-01-01", -37.7, 145.0, "b"],
            ],
        },
    }
    raw = _zip({name: pickle.dumps(doc) for name in pkls})
    path = tmp_path / "u.zip"
    path.write_bytes(raw)
    return path, _sha(raw)


def test_read_uctb_checks_the_format(tmp_path):
    path, sha = _uctb_zip(tmp_path, [[1, -1], [2, 3]])
    loc, readings, info = read_uctb(path, sha256=sha)
    assert loc["sensor_id"].tolist() == ["7", "8"]  # integral float ids lose their .0
    assert np.isnan(readings["8"].iloc[0]) and info["missing_marked"] == 1
    path, sha = _uctb_zip(tmp_path, [[1, -2], [2, 3]])
    with pytest.raises(DataFormatError, match="counts below -1"):
        read_uctb(path, sha256=sha)
    path, sha = _uctb_zip(tmp_path, [[1, 2, 3]])
    with pytest.raises(DataFormatError, match=r"shape \(1, 3\) for 2 stations"):
        read_uctb(path, sha256=sha)
    path, sha = _uctb_zip(tmp_path, [[1, 2]], pkls=("a.pkl", "b.pkl"))
    with pytest.raises(DataFormatError, match="expected one .pkl inside"):
        read_uctb(path, sha256=sha)


def test_read_node_link_montevideo(data_dir):
    loc, readings, links = read_node_link(data_dir / "pgt-montevideo-bus" / "montevideo_bus.json")
    assert loc.shape == (675, 3) and list(loc.columns) == ["sensor_id", "x", "y"]
    assert readings.shape == (744, 675) and list(readings.columns) == loc["sensor_id"].tolist()
    assert len(links) == 690 and {"source", "target", "weight"} <= set(links.columns)
    assert loc["x"].abs().max() > 1000  # projected metres, as stored (not degrees)


def test_read_node_link_checks_the_format(tmp_path):
    path = tmp_path / "g.json"
    nodes = [
        {"id": 1.0, "lon": 0, "lat": 0, "y": [1, 2]},
        {"id": 2, "lon": 1, "lat": 1, "y": [3, 4]},
    ]
    path.write_text(
        json.dumps({"nodes": nodes, "links": [{"source": 1, "target": 2, "weight": 5}]})
    )
    loc, readings, links = read_node_link(path)
    assert loc["sensor_id"].tolist() == ["1", "2"] and readings["2"].tolist() == [3.0, 4.0]
    path.write_text(json.dumps({"nodes": [nodes[0], dict(nodes[1], id=1)]}))
    with pytest.raises(DataFormatError, match="node id '1' is repeated"):
        read_node_link(path)
    path.write_text(json.dumps({"nodes": [nodes[0], dict(nodes[1], y=[1])]}))
    with pytest.raises(DataFormatError, match="different lengths"):
        read_node_link(path)
    path.write_text(json.dumps({"nodes": [{"id": 1, "lon": 0, "lat": 0}]}))
    with pytest.raises(DataFormatError, match="node 0 lacks one of"):
        read_node_link(path)
    path.write_text("{not json")
    with pytest.raises(DataFormatError, match="not a node-link JSON"):
        read_node_link(path)


def test_normalize_ids():
    assert normalize_ids([773869.0, " 12 ", 5, np.float32(2.0), 1.5, float("nan")]) == [
        "773869",
        "12",
        "5",
        "2",
        "1.5",
        "nan",
    ]


def test_node_link_value_beyond_float_range_is_a_format_error(tmp_path):
    """Found by tests/fuzz: an integer too large for a float gave a bare OverflowError."""
    from stgraph.errors import DataFormatError
    from stgraph.utils.readers import read_node_link

    path = tmp_path / "g.json"
    doc = {"nodes": [{"id": 1, "lon": 0, "lat": 0, "y": [int("1" * 400), 0]}], "links": []}
    path.write_text(json.dumps(doc))
    with pytest.raises(DataFormatError, match=r"g\.json: nodes\[\*\]\.y are not numbers"):
        read_node_link(path)
