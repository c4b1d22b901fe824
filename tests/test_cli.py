"""The `stgraph` command: help with examples, datasets, train + evaluate, pretrain, later commands;
conventions (--version, -q/-v logging, one-line errors and exit 1, --debug, broken pipes, -o)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stgraph.cli import build_parser, main

COMMANDS = [
    "datasets",
    "train",
    "evaluate",
    "quickstart",
    "build",
    "pretrain",
    "finetune",
    "predict",
]
REPO = Path(__file__).resolve().parents[1]


def _stgraph(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    """Run ``python -m stgraph.cli ARGS`` in a fresh interpreter (exit status and streams)."""
    return subprocess.run(
        [sys.executable, "-m", "stgraph.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=REPO,
        **kw,
    )


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
def test_transfer_commands_name_their_required_arguments(cmd, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([cmd])
    assert exit_.value.code == 2
    assert "--checkpoint" in capsys.readouterr().err


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
    err = capsys.readouterr().err
    assert "not a checkpoint directory" in err and "nothing" in err


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


def test_version():
    from stgraph import __version__

    out = _stgraph("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"stgraph {__version__}"


def test_library_error_is_one_line_on_stderr_with_status_1(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dataset: {name: chickenpox}\nmodel: {name: last_value}\ntrian: {}\n")
    out = _stgraph("train", "--config", str(cfg))
    assert out.returncode == 1 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("stgraph train: error: ") and "unknown key 'trian'" in lines[0]


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(tmp_path, how):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dataset: {name: chickenpox}\nmodel: {name: last_value}\ntrian: {}\n")
    args = ["train", "--config", str(cfg)] + (["--debug"] if how == "flag" else [])
    out = _stgraph(*args, env={"STGRAPH_DEBUG": "1"} if how == "env" else None)
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr and "ConfigError" in out.stderr


def test_os_errors_name_the_path(tmp_path, capsys):
    # a directory where a config file is expected, an unknown data set: one line each, status 1
    assert main(["train", "--config", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path) in err[0] and err[0].startswith("stgraph train: error:")
    assert main(["datasets", "info", "no-such-set"]) == 1
    err = capsys.readouterr().err
    assert "stgraph datasets: error: unknown data set 'no-such-set'" in err


def test_usage_errors_stay_argparse_status_2():
    out = _stgraph("train")
    assert out.returncode == 2 and "--config" in out.stderr


def test_closed_pipe_ends_quietly(data_dir):
    """`stgraph datasets list | head -1`: the reader is gone before the listing is written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "stgraph.cli", "datasets", "list"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=REPO,
    )
    proc.stdout.close()  # like `head` exiting: every write of the listing hits a closed pipe
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception" not in err
    assert proc.returncode == 1


def test_quiet_and_verbose_go_through_logging(data_dir):
    loud = _stgraph("datasets", "fetch", "chickenpox")
    assert loud.returncode == 0
    assert loud.stdout.strip().endswith("chickenpox.json")  # the result: on stdout
    assert "1 file(s) local, sha256 verified" in loud.stderr  # information: on stderr
    quiet = _stgraph("-q", "datasets", "fetch", "chickenpox")
    assert quiet.returncode == 0 and quiet.stderr == "" and quiet.stdout == loud.stdout
    verbose = _stgraph("datasets", "fetch", "chickenpox", "-v")
    assert "INFO stgraph: chickenpox: 1 file(s)" in verbose.stderr


def test_every_writing_command_takes_dash_o():
    parser = build_parser()
    for argv in (
        ["train", "--config", "c.yaml", "-o", "D"],
        ["pretrain", "--config", "c.yaml", "-o", "D"],
        ["quickstart", "-o", "D"],
        ["build", "--config", "c.yaml", "-o", "D"],
        ["datasets", "fetch", "chickenpox", "-o", "D"],
    ):
        assert parser.parse_args(argv).output == "D", argv
    assert parser.parse_args(["quickstart"]).output == "quickstart-output"  # default as before
    assert parser.parse_args(["train", "--config", "c.yaml"]).output is None


def test_train_output_flag_wins_over_the_config(tmp_path, capsys, data_dir):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        "dataset: {name: chickenpox}\nprotocol: {name: pgt}\nmodel: {name: last_value}\n"
        f"output: {{dir: {tmp_path / 'from-config'}, tensorboard: false, progress: false}}\n"
    )
    assert main(["-q", "train", "--config", str(cfg), "-o", str(tmp_path / "from-flag")]) == 0
    assert (tmp_path / "from-flag" / "metrics.json").is_file()
    assert not (tmp_path / "from-config").exists()


def test_fetch_output_is_the_download_folder(tmp_path, capsys):
    # nothing local under an empty root, downloads refused (tests never reach the network):
    # the message (one per missing file, so a list) names the folder given with -o
    env = {"STGRAPH_DATA": str(tmp_path / "empty"), "STGRAPH_MIRROR": "http://127.0.0.1:9"}
    out = _stgraph("datasets", "fetch", "chickenpox", "-o", str(tmp_path / "dl"), env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.startswith("stgraph datasets: error: chickenpox: 1 file(s) not found")
    assert str(tmp_path / "dl") in out.stderr


def test_pretrain_command_runs_a_config(tmp_path, data_dir):
    cfg = tmp_path / "pretrain.yaml"
    cfg.write_text(
        "corpus: {sources: [{dataset: chickenpox}]}\n"
        "windows: {input_steps: [4, 6], horizon: [1, 2], batch_size: 4, node_budget: 64}\n"
        f"model: {{config: {REPO / 'configs/model/tiny.yaml'}}}\n"
        "train: {steps: 3, checkpoint_every: 3, log_every: 1, warmup_steps: 1, num_threads: 1}\n"
        "output: {dir: runs/never-used, tensorboard: false, progress: false}\nseed: 1\n"
    )
    run = tmp_path / "run"
    out = _stgraph("pretrain", "--config", str(cfg), "--set", "train.steps=2", "-o", str(run))
    assert out.returncode == 0, out.stderr
    assert "pretrained 2 steps" in out.stdout and str(run) in out.stdout
    assert (run / "model.safetensors").is_file() and (run / "sources.json").is_file()
    bad = _stgraph("pretrain", "--config", str(cfg), "--set", "train.stpes=2")
    assert bad.returncode == 1 and bad.stderr.startswith("stgraph pretrain: error: ")
    assert len(bad.stderr.strip().splitlines()) == 1


_NO_TORCH = (
    "import sys; from stgraph.cli import main\n"
    "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
    "heavy = sorted(m for m in ('torch', 'torch_geometric', 'pandas', 'graph_builders')"
    " if m in sys.modules)\nprint('heavy:', heavy, file=sys.stderr)"
)


@pytest.mark.xfail(
    "def __getattr__" not in (REPO / "stgraph" / "__init__.py").read_text(),
    reason="stgraph/__init__.py imports stgraph.data (torch) eagerly; needs its PEP 562 form",
    strict=True,
)
def test_help_imports_neither_torch_nor_the_builders():
    out = subprocess.run([sys.executable, "-c", _NO_TORCH], capture_output=True, text=True)
    assert "heavy: []" in out.stderr, out.stderr
