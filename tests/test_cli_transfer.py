"""The transfer commands end to end: evaluate (zero-shot), finetune and predict on a built graph."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from stgraph import cli, datasets


@pytest.fixture(scope="module")
def graph_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("mel") / "graph"
    datasets.load("melbourne-pedestrian").slice_time(0, 24 * 30).save(out)
    return out


def test_evaluate_a_pretrained_checkpoint_zero_shot_on_a_graph_dir(
    tiny_pretrained, graph_dir, tmp_path, capsys
):
    out = tmp_path / "zs"
    argv = [
        "evaluate",
        "--checkpoint",
        str(tiny_pretrained),
        "--graph",
        str(graph_dir),
        "--horizon",
        "6",
        "-o",
        str(out),
    ]
    assert cli.main(argv) == 0
    table = capsys.readouterr().out
    assert "stfm zero-shot" in table and "historical_average" in table and "last_value" in table
    assert "count/hour" in table and "mph" not in table
    rows = json.loads((out / "zero-shot.json").read_text())
    assert [r["dataset"] for r in rows] == [graph_dir.parent.name] * 3  # the dir above graph/


def test_finetune_then_predict_from_the_shell(tiny_pretrained, graph_dir, tmp_path, capsys):
    run = tmp_path / "ft"
    argv = [
        "finetune",
        "--checkpoint",
        str(tiny_pretrained),
        "--graph",
        str(graph_dir),
        "--mode",
        "head",
        "--budget",
        "3d",
        "--epochs",
        "1",
        "--horizon",
        "6",
        "--set",
        "train.num_threads=1",
        "--set",
        "output.progress=false",
        "-o",
        str(run),
    ]
    assert cli.main(argv) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finetune"]["mode"] == "head" and "72" in metrics["finetune"]["budget"]
    assert metrics["model"] == "stfm-head"
    out = tmp_path / "f.parquet"
    assert (
        cli.main(
            [
                "predict",
                "--checkpoint",
                str(run),
                "--graph",
                str(graph_dir),
                "--horizon",
                "6",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    df = pd.read_parquet(out)
    assert len(df) == 55 * 6 and set(df["step"]) == set(range(1, 7))
    assert (df["unit"] == "count/hour").all()
    last = datasets.load("melbourne-pedestrian").slice_time(0, 24 * 30).time[-1]
    assert df["time"].min() == pd.Timestamp(int(last) + 3600, unit="s", tz="UTC")


def test_a_pretrained_checkpoint_needs_data(tiny_pretrained, capsys):
    assert cli.main(["evaluate", "--checkpoint", str(tiny_pretrained)]) == 1
    assert "--dataset" in capsys.readouterr().err
