"""The `stgraph` command: help with examples, datasets, train + evaluate, later commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stgraph.cli import build_parser, main

COMMANDS = ["datasets", "train", "evaluate", "quickstart", "build", "finetune", "predict"]


def test_console_entry_point_help():
    exe = Path(sys.executable).parent / "stgraph"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in COMMANDS:
        assert cmd in out


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help_with_an_example(cmd, capsys):
    with pytest.raises(SystemExit) as info:
        main([cmd, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out and f"stgraph {cmd}" in out


@pytest.mark.parametrize("cmd", ["finetune", "predict"])
def test_later_commands_say_so_in_one_line(cmd, capsys):
    assert main([cmd]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "not available yet" in out[0]


def test_datasets_list_and_info(capsys, data_dir):
    assert main(["datasets", "list"]) == 0
    listing = capsys.readouterr().out
    for name in ("los-loop", "chickenpox", "england-covid", "era5-uk-t2m"):
        assert name in listing
    assert main(["datasets", "info", "chickenpox"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "chickenpox"


def test_train_then_evaluate(tmp_path, capsys, data_dir):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "dataset: {name: chickenpox}\nprotocol: {name: pgt}\nmodel: {name: last_value}\n"
        f"output: {{dir: {tmp_path / 'run'}, tensorboard: false, progress: false}}\n"
    )
    assert main(["train", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "| last_value |" in out and "Protocol `pgt`" in out
    first = json.loads((tmp_path / "run" / "metrics.json").read_text())
    (tmp_path / "run" / "metrics.json").unlink()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run")]) == 0
    again = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert again["average"] == first["average"]
    assert (tmp_path / "run" / "metrics.md").read_text().startswith("| model |")


def test_errors_are_one_clear_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dataset: {name: chickenpox}\nmodel: {name: last_value}\ntrian: {}\n")
    assert main(["train", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert "unknown key 'trian'" in err and str(cfg) in err
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nothing")]) == 1
    assert "config.yaml" in capsys.readouterr().err


def test_parser_builds_without_side_effects():
    env_before = dict(os.environ)
    build_parser()
    assert dict(os.environ) == env_before


def test_evaluate_on_another_dataset_keeps_its_own_statistics(tmp_path, capsys, data_dir):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "dataset: {name: chickenpox}\nprotocol: {name: pgt}\nmodel: {name: historical_average}\n"
        f"output: {{dir: {tmp_path / 'run'}, tensorboard: false, progress: false}}\n"
    )
    assert main(["train", "--config", str(cfg)]) == 0
    capsys.readouterr()
    # pedalme has 15 nodes, chickenpox 20: the fitted table must be pedalme's, not the checkpoint's
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--dataset", "pedalme"]) == 0
    out = json.loads((tmp_path / "run" / "metrics-pedalme.json").read_text())
    assert out["dataset"] == "pedalme" and len(out["node_mae"]) == 15


def test_help_does_not_import_the_builders():
    code = (
        "import sys; from stgraph.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.startswith('graph_builders')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
