"""experiments/baselines.py writes one JSON row per model and horizon plus a Markdown table."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "baselines.py"


def _load():
    spec = importlib.util.spec_from_file_location("baselines_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_baselines_on_chickenpox_pgt(tmp_path, data_dir):
    mod = _load()
    rc = mod.main(
        [
            "--dataset",
            "chickenpox",
            "--protocol",
            "pgt",
            "--models",
            "last_value",
            "historical_average",
            "--workdir",
            str(tmp_path / "runs"),
            "--results",
            str(tmp_path / "res"),
        ]
    )
    assert rc == 0
    rows = json.loads((tmp_path / "res" / "baselines-chickenpox-pgt.json").read_text())
    assert [r["model"] for r in rows] == ["last_value", "historical_average"]
    for r in rows:
        assert {
            "dataset",
            "protocol",
            "model",
            "horizon_steps",
            "mae",
            "rmse",
            "mape",
            "mse",
        } <= set(r)
        assert r["dataset"] == "chickenpox" and r["protocol"] == "pgt" and r["horizon_steps"] == 1
        assert r["rmse"] == pytest.approx(r["mse"] ** 0.5)
    md = (tmp_path / "res" / "baselines-chickenpox-pgt.md").read_text()
    assert "| last_value |" in md and "0.7418" in md  # the published PGT DCRNN reference is stated


def test_unknown_model_is_rejected(tmp_path, data_dir):
    with pytest.raises(SystemExit, match="not in"):
        _load().main(
            [
                "--dataset",
                "chickenpox",
                "--protocol",
                "pgt",
                "--models",
                "nope",
                "--workdir",
                str(tmp_path),
                "--results",
                str(tmp_path),
            ]
        )
