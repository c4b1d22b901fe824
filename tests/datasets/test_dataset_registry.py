"""The registry's file handling: lookup order, sha256, downloads, error messages."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import os
import pickle
import re
import shutil
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from stgraph import datasets
from stgraph.datasets import files as registry_files
from stgraph.datasets._pickle import load_verified_pickle
from stgraph.errors import ChecksumError, ConfigError, DataFormatError, DatasetNotFoundError

PEDALME = "pgt-pedalme/pedalme_london.json"
LOS_FILES = (
    "los-loop/los_speed.csv",
    "los-loop/los_adj.csv",
    "metr-la-graph/graph_sensor_locations.csv",
)


def _copy(data_dir: Path, root: Path, *rels: str) -> None:
    for rel in rels:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(data_dir / rel, root / rel)


def _files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


# ---------------------------------------------------------------------------------- the table
def test_file_table_matches_manifest(data_dir):
    text = (data_dir / "MANIFEST.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| `([^`]+)` \| ([\d,]+) \| `([0-9a-f]{64})` \| (\S+) \| `([^`]+)` \| `([0-9a-f]{12})` \|$",
        text,
        flags=re.M,
    )
    assert len(rows) == len(registry_files.FILES)
    for path, size, sha, repo, repo_path, commit12 in rows:
        f = registry_files.FILES[path]
        assert (f.size, f.sha256, f.repo, f.repo_path) == (
            int(size.replace(",", "")),
            sha,
            repo,
            repo_path,
        )
        assert f.commit.startswith(commit12) and len(f.commit) == 40
        assert f.url == f"https://raw.githubusercontent.com/{repo}/{f.commit}/{repo_path}"
        assert (data_dir / path).stat().st_size == f.size


def test_every_dataset_file_is_in_the_table():
    for name in datasets.list_datasets():
        spec = datasets.REGISTRY[name]
        assert set(spec.files) <= set(registry_files.FILES)
        assert set(spec.table_files) <= set(spec.files)


def test_info_reports_files_and_facts(data_dir):
    for name in datasets.list_datasets():
        info = datasets.info(name, root=data_dir)
        for key in (
            "N",
            "T",
            "interval",
            "span",
            "missing_share",
            "variables",
            "source",
            "license",
            "files",
            "description",
        ):
            assert key in info, (name, key)
        assert all(f["local"] == str(data_dir / f["path"]) for f in info["files"])
        assert all(f["url"].startswith("https://raw.githubusercontent.com/") for f in info["files"])
    assert datasets.info("los-loop")["options"] == {"adjacency": "tgcn"}
    with pytest.raises(KeyError, match="unknown data set 'nope'"):
        datasets.info("nope")


# ---------------------------------------------------------------------------------- checksums
def test_verification_is_cached_per_path_size_mtime(data_dir, tmp_path, monkeypatch):
    _copy(data_dir, tmp_path, PEDALME)
    target = tmp_path / PEDALME
    calls = []
    real = registry_files.sha256_of
    monkeypatch.setattr(registry_files, "sha256_of", lambda p: calls.append(p) or real(p))
    sha = registry_files.FILES[PEDALME].sha256
    registry_files.verify_file(target, sha)
    registry_files.verify_file(target, sha)
    assert len(calls) == 1
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a "modified" file
    registry_files.verify_file(target, sha)
    assert len(calls) == 2


def test_truncated_csv_is_a_checksum_error_and_format_error_without_checks(data_dir, tmp_path):
    _copy(data_dir, tmp_path, *LOS_FILES)
    speed = tmp_path / "los-loop/los_speed.csv"
    lines = speed.read_bytes().splitlines(keepends=True)
    # keep 999 lines, then 10 fields and a digit of line 1000: a file cut mid-row
    cut = b"".join(lines[:999]) + b",".join(lines[999].split(b",")[:10]) + b",6"
    speed.write_bytes(cut)
    actual = hashlib.sha256(cut).hexdigest()
    expected = registry_files.FILES["los-loop/los_speed.csv"].sha256

    with pytest.raises(ChecksumError) as err:
        datasets.load("los-loop", root=tmp_path, download=False)
    msg = str(err.value)
    assert str(speed) in msg and expected in msg and actual in msg

    with pytest.raises(
        DataFormatError, match=r"los_speed\.csv: line 1000 .*11 of 207 fields.*cut short"
    ):
        datasets.load("los-loop", root=tmp_path, download=False, verify=False)

    # cut at a field boundary of the last column: every row is complete, the newline is missing
    cut = b"".join(lines[:999]) + lines[999].rstrip(b"\n")[:-1]
    speed.write_bytes(cut)
    with pytest.raises(
        DataFormatError, match=r"los_speed\.csv: line 1000 .*without a final newline"
    ):
        datasets.load("los-loop", root=tmp_path, download=False, verify=False)


def test_non_numeric_cell_named_without_checks(data_dir, tmp_path):
    _copy(data_dir, tmp_path, *LOS_FILES)
    speed = tmp_path / "los-loop/los_speed.csv"
    lines = speed.read_text().splitlines(keepends=True)
    fields = lines[5].split(",")
    fields[3] = "n/a"
    lines[5] = ",".join(fields)
    speed.write_text("".join(lines))
    with pytest.raises(DataFormatError, match=r"line 6 \(data row 4\) field 4 is 'n/a'"):
        datasets.load("los-loop", root=tmp_path, download=False, verify=False)


def test_pickles_are_verified_even_without_checks(data_dir, tmp_path):
    _copy(data_dir, tmp_path, *LOS_FILES, "metr-la-graph/adj_mx.pkl")
    pkl = tmp_path / "metr-la-graph/adj_mx.pkl"
    pkl.write_bytes(pkl.read_bytes() + b"\x00")
    with pytest.raises(ChecksumError, match="adj_mx.pkl"):
        datasets.load("los-loop", root=tmp_path, download=False, verify=False, adjacency="dcrnn")
    # the T-GCN adjacency does not need the pickle: it loads
    g = datasets.load("los-loop", root=tmp_path, download=False, verify=False)
    assert g.num_nodes == 207


def test_wrong_checksum_names_file_and_both_hashes(data_dir, tmp_path):
    _copy(data_dir, tmp_path, PEDALME)
    target = tmp_path / PEDALME
    raw = bytearray(target.read_bytes())
    raw[100] ^= 0x01
    target.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError) as err:
        datasets.load("pedalme", root=tmp_path, download=False)
    msg = str(err.value)
    assert PEDALME in msg
    assert registry_files.FILES[PEDALME].sha256 in msg
    assert hashlib.sha256(bytes(raw)).hexdigest() in msg


def test_pickles_are_hashed_on_the_bytes_that_are_unpickled(data_dir, tmp_path):
    # a pickled file modified after a check, keeping its size and mtime: the (path, size, mtime)
    # memory still says "verified", but loading hashes the bytes it unpickles and refuses them
    rel = "melbourne-pedestrian/Pedestrian_Melbourne.zip"
    _copy(data_dir, tmp_path, rel)
    target = tmp_path / rel
    sha = registry_files.FILES[rel].sha256
    registry_files.verify_file(target, sha)  # remembered for (path, size, mtime)
    st = target.stat()
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size
    registry_files.verify_file(target, sha)  # the memory alone is fooled
    with pytest.raises(ChecksumError) as err:
        datasets.load(
            "melbourne-pedestrian", root=tmp_path, cache_dir=tmp_path / "c", download=False
        )
    assert hashlib.sha256(bytes(raw)).hexdigest() in str(err.value)
    with pytest.raises(ChecksumError):
        load_verified_pickle(target, member="Pedestrian_Melbourne.pkl", source=str(target))
    # bytes with a digest are checked too; a path of no registry file needs one
    adj = data_dir / "metr-la-graph/adj_mx.pkl"
    good = adj.read_bytes()
    ids, _, mx = load_verified_pickle(
        good,
        source="adj",
        sha256=registry_files.FILES["metr-la-graph/adj_mx.pkl"].sha256,
        encoding="latin1",
    )
    assert len(ids) == mx.shape[0] == 207
    with pytest.raises(ChecksumError):
        load_verified_pickle(good[:-1], source="adj", sha256=hashlib.sha256(good).hexdigest())
    other = tmp_path / "copy.pkl"
    other.write_bytes(good)
    with pytest.raises(ValueError, match="not a registry file"):
        load_verified_pickle(other, source=str(other))


def test_liverpool_bearing_empty_is_counted_and_garbage_is_an_error(data_dir, tmp_path):
    rel = "liverpool-bus/route14_outbound.csv"
    _copy(data_dir, tmp_path, rel)
    text = (tmp_path / rel).read_text().splitlines(keepends=True)
    header = text[0].replace('"', "").strip().split(",")
    col = header.index("bearing")
    empty = sum(1 for line in text[1:] if line.split(",")[col] == "")
    bus = datasets.load_table("liverpool-bus", root=tmp_path, download=False)
    assert empty > 0 and bus.attrs["missing"] == {"bearing": empty}
    assert int(bus["bearing"].isna().sum()) == empty
    cells = text[5].split(",")
    cells[col] = "north"
    text[5] = ",".join(cells)
    (tmp_path / rel).write_text("".join(text))
    with pytest.raises(DataFormatError, match=r"line 6: bearing = 'north'"):
        datasets.load_table("liverpool-bus", root=tmp_path, download=False, verify=False)


def test_restricted_unpickler_refuses_other_globals():
    payload = pickle.dumps(io.BytesIO)  # a global outside numpy
    with pytest.raises(DataFormatError, match=r"references _io\.BytesIO"):
        load_verified_pickle(payload, source="evil.pkl")
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(load_verified_pickle(pickle.dumps(arr), source="ok.pkl"), arr)


# ---------------------------------------------------------------------------------- not found
def test_missing_file_message_says_what_and_where(tmp_path):
    root, cache = tmp_path / "data", tmp_path / "cache"
    root.mkdir()
    with pytest.raises(DatasetNotFoundError) as err:
        datasets.load("los-loop", root=root, cache_dir=cache, download=False)
    msg = str(err.value)
    for rel in LOS_FILES:
        assert str(root / rel) in msg and str(cache / rel) in msg
        assert registry_files.FILES[rel].url in msg
    assert "metr-la-graph/adj_mx.pkl" not in msg  # not needed for adjacency="tgcn"
    assert not _files_under(cache)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_failed_download_is_dataset_not_found(tmp_path):
    mirror = f"http://127.0.0.1:{_closed_port()}"
    cache = tmp_path / "cache"
    with pytest.raises(
        DatasetNotFoundError, match=r"download failed: http://127\.0\.0\.1:\d+/pgt-pedalme"
    ):
        datasets.load("pedalme", root=tmp_path / "none", cache_dir=cache, mirror=mirror, timeout=5)
    assert not _files_under(cache)


# ---------------------------------------------------------------------------------- downloads
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture
def server(tmp_path):
    """An HTTP server on 127.0.0.1 serving ``tmp_path / "served"``; yields (url, folder)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_Quiet, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.network
def test_download_from_local_mirror_then_cache(data_dir, tmp_path, server, monkeypatch):
    url, served = server
    _copy(data_dir, served, PEDALME)
    cache = tmp_path / "cache"
    monkeypatch.setenv("STGRAPH_MIRROR", url)
    monkeypatch.setenv("STGRAPH_CACHE", str(cache))
    monkeypatch.delenv("STGRAPH_DATA", raising=False)

    g = datasets.load("pedalme")
    assert tuple(g.x.shape) == (15, 35, 1)
    cached = cache / PEDALME
    assert cached.read_bytes() == (data_dir / PEDALME).read_bytes()
    assert _files_under(cache) == [cached]  # no temp file left beside it

    # the second load reads the cache: the mirror is gone and nothing is downloaded
    (served / PEDALME).unlink()
    g2 = datasets.load("pedalme")
    assert bool((g2.x == g.x).all())
    assert datasets.fetch("pedalme") == [cached]


@pytest.mark.network
def test_corrupted_download_is_rejected_and_nothing_written(data_dir, tmp_path, server):
    url, served = server
    _copy(data_dir, served, PEDALME)
    target = served / PEDALME
    raw = bytearray(target.read_bytes())
    raw[-10] ^= 0x20
    target.write_bytes(bytes(raw))
    cache = tmp_path / "cache"
    with pytest.raises(ChecksumError) as err:
        datasets.load("pedalme", root=tmp_path / "none", cache_dir=cache, mirror=url)
    assert hashlib.sha256(bytes(raw)).hexdigest() in str(err.value)
    assert "Nothing was written" in str(err.value)
    assert not _files_under(cache)


# ---------------------------------------------------------------------------------- API errors
def test_api_errors_are_clear(data_dir):
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['adjacancy'\].*adjacency='tgcn'"):
        datasets.load("los-loop", root=data_dir, adjacancy="dcrnn")
    with pytest.raises(ValueError, match=r"adjacency must be 'tgcn' or 'dcrnn'"):
        datasets.load("los-loop", root=data_dir, adjacency="other")
    with pytest.raises(KeyError, match="known: "):
        datasets.load("metr-la", root=data_dir)
    for name in ("geolife", "geolife-small", "liverpool-bus"):
        with pytest.raises(ValueError, match=rf"load_table\('{name}'\).*trajectories"):
            datasets.load(name, root=data_dir)
    with pytest.raises(ValueError, match="no raw table"):
        datasets.load_table("los-loop", root=data_dir)
    assert datasets.list_datasets(kind="table") == [
        "chicago-crime",
        "geolife",
        "geolife-small",
        "liverpool-bus",
        "nyc-crime",
    ]
    assert len(datasets.list_datasets(kind="graph")) == 12


def test_sensor_without_location_is_named(data_dir, tmp_path):
    _copy(data_dir, tmp_path, *LOS_FILES)
    loc = tmp_path / "metr-la-graph/graph_sensor_locations.csv"
    lines = loc.read_text().splitlines(keepends=True)
    dropped = lines[10].split(",")[1]  # header index,sensor_id,latitude,longitude
    loc.write_text("".join(lines[:10] + lines[11:]))
    with pytest.raises(
        DataFormatError, match=rf"1 of the 207 sensors .* no location: \['{dropped}'\]"
    ):
        datasets.load("los-loop", root=tmp_path, download=False, verify=False)


def test_fetch_returns_every_file_of_a_dataset(data_dir):
    paths = datasets.fetch("los-loop", root=data_dir, download=False)
    assert paths == [data_dir / p for p in datasets.REGISTRY["los-loop"].files]
    assert paths[-1].name == "adj_mx.pkl"  # fetch gets the optional files too
    with pytest.raises(TypeError, match="unknown argument"):
        datasets.fetch("los-loop", roots=data_dir)
