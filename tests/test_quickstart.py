"""`stgraph quickstart` when no data is reachable: names every file it needs and where, exits 1."""

from __future__ import annotations

from stgraph.quickstart import run_quickstart


def test_quickstart_offline_without_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("STGRAPH_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("STGRAPH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("STGRAPH_MIRROR", "http://127.0.0.1:9")  # discard port: nothing answers
    assert run_quickstart(tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "melbourne-pedestrian/Pedestrian_Melbourne.zip" in err
    assert str(tmp_path / "empty") in err  # says where to put them
    assert not (tmp_path / "out").exists()  # nothing written
