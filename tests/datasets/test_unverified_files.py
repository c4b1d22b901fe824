"""Registry files read with ``verify=False``: the loaders' own checks still hold.

Each test modifies a copy of a real file (in ``tmp_path``) the way a truncated download, a bad
edit or a stray byte would, and checks that loading it is a :class:`DataFormatError` naming the
file (and row/column where there is one), never a graph of the wrong size, a wrong edge weight or
another exception (issue 16, "Registry files loaded with verify=False").
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stgraph import datasets
from stgraph.errors import DataFormatError
from stgraph.utils.readers import read_uctb

LOS = ("los-loop/los_speed.csv", "los-loop/los_adj.csv", "metr-la-graph/graph_sensor_locations.csv")
CHICKENPOX = "pgt-chickenpox/chickenpox.json"
PEDALME = "pgt-pedalme/pedalme_london.json"


def _root(data_dir: Path, tmp_path: Path, *rels: str) -> Path:
    root = tmp_path / "data"
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / rel, root / rel)
    return root


def _load(name: str, root: Path):
    return datasets.load(name, root=root, download=False, verify=False)


def _edit_csv_field(path: Path, line: int, field: int, value: str) -> None:
    lines = path.read_text().splitlines()
    cells = lines[line - 1].split(",")
    cells[field - 1] = value
    lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def _edit_json(path: Path, edit) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def test_speed_csv_cut_at_a_row_boundary_is_refused_with_both_counts(data_dir, tmp_path):
    root = _root(data_dir, tmp_path, *LOS)
    path = root / LOS[0]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:1016]))  # header + 1015 complete rows
    with pytest.raises(DataFormatError, match=r"T = 1015 \(expected 2016\)") as info:
        _load("los-loop", root)
    assert "los_speed.csv" in str(info.value)


def test_negative_adjacency_weight_is_refused(data_dir, tmp_path):
    root = _root(data_dir, tmp_path, *LOS)
    _edit_csv_field(root / LOS[1], line=1, field=2, value="-1e30")
    with pytest.raises(
        DataFormatError, match=r"los_adj\.csv: line 1, field 2 = -1e\+30 is outside"
    ):
        _load("los-loop", root)


def test_value_beyond_float32_names_file_line_and_field(data_dir, tmp_path):
    root = _root(data_dir, tmp_path, *LOS)
    _edit_csv_field(root / LOS[0], line=6, field=3, value="1e308")
    with pytest.raises(
        DataFormatError, match=r"los_speed\.csv: line 6, field 3 = 1e\+308 is beyond"
    ):
        _load("los-loop", root)
    root = _root(data_dir, tmp_path / "json", CHICKENPOX)
    _edit_json(root / CHICKENPOX, lambda d: d["FX"][3].__setitem__(2, 1e308))
    with pytest.raises(DataFormatError, match=r"chickenpox\.json: FX\[3\]\[2\] = 1e\+308"):
        _load("chickenpox", root)


@pytest.mark.parametrize("rel", [LOS[0], LOS[2]])
def test_non_utf8_byte_names_the_file(data_dir, tmp_path, rel):
    root = _root(data_dir, tmp_path, *LOS)
    path = root / rel
    path.write_bytes(b"\xff" + path.read_bytes())
    with pytest.raises(DataFormatError, match=rf"{Path(rel).name}: not UTF-8 text \(byte b'\\xff'"):
        _load("los-loop", root)


def test_string_in_a_location_column_names_line_and_column(data_dir, tmp_path):
    root = _root(data_dir, tmp_path, *LOS)
    header = (root / LOS[2]).read_text().splitlines()[0].split(",")
    _edit_csv_field(root / LOS[2], line=6, field=header.index("latitude") + 1, value="abc")
    with pytest.raises(DataFormatError, match=r"line 6, column 'latitude': 'abc' is not"):
        _load("los-loop", root)


def test_edge_index_of_1e20_is_refused(data_dir, tmp_path):
    root = _root(data_dir, tmp_path, CHICKENPOX)
    _edit_json(root / CHICKENPOX, lambda d: d["edges"][0].__setitem__(0, 1e20))
    with pytest.raises(DataFormatError, match=r"edges\[0\]\[0\] = 1e\+20 is not a node index"):
        _load("chickenpox", root)


def test_fractional_edge_index_is_not_truncated(data_dir, tmp_path):
    root = _root(data_dir, tmp_path, CHICKENPOX)
    _edit_json(root / CHICKENPOX, lambda d: d["edges"][5].__setitem__(1, 2.5))
    with pytest.raises(DataFormatError, match=r"edges\[5\]\[1\] = 2\.5 is not a node index"):
        _load("chickenpox", root)


def test_string_in_a_numeric_field_names_the_entry(data_dir, tmp_path):
    root = _root(data_dir, tmp_path, CHICKENPOX)
    _edit_json(root / CHICKENPOX, lambda d: d["FX"][3].__setitem__(2, "abc"))
    with pytest.raises(DataFormatError, match=r"FX\[3\]\[2\] is 'abc', not a number"):
        _load("chickenpox", root)
    root = _root(data_dir, tmp_path / "p", PEDALME)
    _edit_json(root / PEDALME, lambda d: d["weights"].__setitem__(3, "x"))
    with pytest.raises(DataFormatError, match=r"pedalme_london\.json: weights must be"):
        _load("pedalme", root)


def test_fewer_weeks_than_the_registry_says_are_refused(data_dir, tmp_path):
    root = _root(data_dir, tmp_path, CHICKENPOX)
    _edit_json(root / CHICKENPOX, lambda d: d.__setitem__("FX", d["FX"][:100]))
    with pytest.raises(DataFormatError, match=r"T = 100 \(expected 521\)"):
        _load("chickenpox", root)


def test_loader_options_other_than_the_defaults_skip_the_size_facts(data_dir):
    g = datasets.load("los-loop", adjacency="dcrnn", download=False)
    assert (g.num_nodes, g.num_steps) == (207, 2016)


def _uctb_zip(path: Path, obj: object) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("Pedestrian.pkl", pickle.dumps(obj))
    path.write_bytes(buf.getvalue())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def _uctb(**changes: object) -> dict:
    doc = {
        "TimeRange": ["2021-01-01", "2021-01-02"],
        "TimeFitness": 60,
        "Node": {
            "TrafficNode": np.array([[1.0, -1.0], [3.0, 4.0]]),
            "StationInfo": [[1, "2009", -37.8, 144.9, "a"], [2, "2009", -37.81, 144.96, "b"]],
        },
    }
    for key, value in changes.items():
        (doc["Node"] if key in ("TrafficNode", "StationInfo") else doc)[key] = value
    return doc


@pytest.mark.parametrize(
    "obj, match",
    [
        ([1, 2, 3], r"not a UCTB data set \(a list\)"),
        (_uctb(StationInfo=[[1, "2009"], [2, "2009"]]), r"StationInfo rows must be"),
        (_uctb(StationInfo=[[1, "d", "x", 1.0, "a"], [2, "d", 1, 1, "b"]]), r"StationInfo rows"),
        (_uctb(StationInfo=[[1, "d", 95.0, 1.0, "a"], [2, "d", 1, 1, "b"]]), r"StationInfo\[0\]"),
        (_uctb(TimeRange=["garbage", "x"]), r"TimeRange\[0\] = 'garbage' is not a time"),
        (_uctb(TimeFitness=0), r"TimeFitness = 0"),
        (_uctb(TrafficNode=np.array([[np.nan, 1.0], [1.0, 1.0]])), r"non-finite counts"),
    ],
)
def test_uctb_zip_with_a_wrong_pickle_is_a_format_error(tmp_path, obj, match):
    path = tmp_path / "Pedestrian.zip"
    sha = _uctb_zip(path, obj)
    with pytest.raises(DataFormatError, match=match) as info:
        read_uctb(path, sha256=sha)
    assert str(path) in str(info.value)


def test_uctb_reference_reads(tmp_path):
    path = tmp_path / "Pedestrian.zip"
    locations, readings, info = read_uctb(path, sha256=_uctb_zip(path, _uctb()))
    assert locations["sensor_id"].tolist() == ["1", "2"] and info["missing_marked"] == 1
    assert np.isnan(readings["2"].iloc[0]) and readings["1"].tolist() == [1.0, 3.0]
