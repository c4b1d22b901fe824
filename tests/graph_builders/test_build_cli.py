"""``stgraph build``: configs and flags -> graph directory, map PNG, summary.json; config errors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from graph_builders import osm
from graph_builders.build import BuildFlags, config_from_flags, load_config, run_build
from graph_builders.mapmatch import simulate_tracks
from stgraph.cli import add_build_arguments, build_from_args
from stgraph.data import load
from stgraph.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "build"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def data_env(data_dir, monkeypatch):
    monkeypatch.setenv("STGRAPH_DATA", str(data_dir))
    return data_dir


def _check_outputs(out: Path) -> dict:
    for f in ("graph/meta.json", "graph/tensors.safetensors", "map.png", "summary.json"):
        assert (out / f).is_file(), f
    assert (out / "map.png").read_bytes()[:8] == PNG
    summary = json.loads((out / "summary.json").read_text())
    g = load(out / "graph")
    assert summary["nodes"] == g.num_nodes and summary["steps"] == g.num_steps
    assert summary["edges"] == g.edge_index.shape[1]
    assert [v["name"] for v in summary["variables"]] == g.variables
    assert summary["dropped_total"] == sum(summary["dropped"].values())
    return summary


def test_build_via_config(data_env, tmp_path, capsys):
    result = run_build(CONFIGS / "liverpool-bus.yaml", output=tmp_path / "out")
    summary = _check_outputs(tmp_path / "out")
    assert summary["name"] == "liverpool-bus" and summary["city"] == "Liverpool"
    assert [v["name"] for v in summary["variables"]] == [
        "count",
        "trajectories",
        "buses.speed",
        "probes.speed",
    ]
    # every GPS fix is either counted or dropped by reason
    buses = next(s for s in summary["sources"] if s["name"] == "buses")
    match = buses["report"]["matching"]
    assert match["points_matched"] + sum(buses["dropped"].values()) == 1533
    assert float(result.graph.x[..., 0].sum()) == match["points_matched"]
    assert summary["dyn_edges"] > 0 and summary["interval_s"] == 900
    printed = capsys.readouterr().out
    assert "stgraph build liverpool-bus" in printed and "dropped" in printed


def test_build_via_flags(tmp_path):
    roads = osm.road_graph(osm.helsinki_sample_path())
    tracks = simulate_tracks(roads, n_tracks=5, seed=4)
    gps = tmp_path / "gps.csv"
    tracks[["track", "time", "lon", "lat"]].to_csv(gps, index=False)
    parser = add_build_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        [
            "--osm",
            str(osm.helsinki_sample_path()),
            "--trajectories",
            str(gps),
            "--interval",
            "15min",
            "-o",
            str(tmp_path / "flags"),
            "--color-by",
            "count",
            "--city",
            "Helsinki",
        ]
    )
    assert build_from_args(args) == 0
    summary = _check_outputs(tmp_path / "flags")
    assert summary["nodes"] == roads.num_nodes and summary["color_by"] == "count"
    assert summary["interval_s"] == 900
    assert summary["sources"][0]["kind"] == "roads"
    match = summary["sources"][1]["report"]["matching"]
    assert match["points_in"] == len(tracks) == match["points_matched"]


def test_build_through_stgraph_cli(data_env, tmp_path):
    cli = pytest.importorskip("stgraph.cli")
    out = tmp_path / "cli"
    code = cli.main(["build", "--config", str(CONFIGS / "west-oakland.yaml"), "-o", str(out)])
    assert code == 0
    summary = _check_outputs(out)
    assert summary["steps"] == 0 and summary["nodes"] > 10


def test_every_config_validates_and_points_at_real_files(data_env):
    names = sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    assert {
        "helsinki-roads",
        "monaco",
        "andorra",
        "baltimore",
        "west-oakland",
        "los-loop",
        "melbourne-pedestrian",
        "montevideo-bus",
        "era5-uk",
        "chicago-crime",
        "nyc-crime",
        "geolife",
        "liverpool-bus",
    } <= set(names)
    for name in names:
        cfg = load_config(CONFIGS / f"{name}.yaml")
        assert cfg.name == name
        files = [cfg.roads.path] if cfg.roads else []
        for s in cfg.sources:
            files += [f for f in (s.path, s.locations, s.readings) if f]
        assert files, name
        for f in files:
            assert Path(f).is_file() and str(data_env) in f, (name, f)


def _write(tmp_path, doc) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_config_errors_name_key_and_file(data_env, tmp_path):
    base = yaml.safe_load((CONFIGS / "liverpool-bus.yaml").read_text())
    bad = dict(base, colour_by="count")
    with pytest.raises(ConfigError, match=r"cfg\.yaml.*'colour_by'"):
        load_config(_write(tmp_path, bad))
    bad = dict(base, sources=[dict(base["sources"][0], option={"x": 1})])
    with pytest.raises(ConfigError, match=r"cfg\.yaml.*'option'.*sources\[0\]"):
        load_config(_write(tmp_path, bad))
    bad = dict(
        base, sources=[dict(base["sources"][0], options={"grid": {"cell_m": 250}, "cel_m": 3})]
    )
    with pytest.raises(ConfigError, match=r"cfg\.yaml.*'cel_m'"):
        load_config(_write(tmp_path, bad))
    bad = dict(base, sources=[dict(base["sources"][0], kind="lidar")])
    with pytest.raises(ConfigError, match="lidar"):
        load_config(_write(tmp_path, bad))
    bad = dict(base, roads={"path": "${STGRAPH_NO_SUCH_VAR}/x.pbf"})
    with pytest.raises(ConfigError, match="STGRAPH_NO_SUCH_VAR"):
        load_config(_write(tmp_path, bad))
    with pytest.raises(ConfigError, match="nothing to build"):
        load_config(_write(tmp_path, {"name": "empty"}))


def test_flag_errors_are_clear(tmp_path, capsys):
    parser = add_build_arguments(argparse.ArgumentParser())
    with pytest.raises(ConfigError, match="--config"):
        build_from_args(parser.parse_args(["-o", str(tmp_path)]))
    with pytest.raises(ConfigError, match="LOCATIONS.csv:READINGS.csv"):
        config_from_flags(flags=BuildFlags(sensors=["only_one.csv"]))


def test_time_and_type_flags_become_builder_options(tmp_path):
    ev, loc, rd = (tmp_path / n for n in ("ev.csv", "loc.csv", "rd.csv"))
    for f in (ev, loc, rd):
        f.write_text("a\n")
    parser = add_build_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        ["--events", str(ev), "--time", "year=2017,Month=Month,day=Day,hour=Hour"]
        + ["--event-type", "Part of the day", "--tz", "Europe/Madrid"]
        + ["--sensors", f"{loc}:{rd}", "--time-col", "datetime", "--interval", "1D"]
    )
    flags = BuildFlags(**{k: getattr(args, k) for k in BuildFlags.__dataclass_fields__})
    cfg = config_from_flags(flags=flags)
    sensors, events_src = cfg.sources
    assert sensors.options == {"time_col": "datetime", "tz": "Europe/Madrid"}
    assert events_src.options["time"] == {
        "year": 2017,
        "month": "Month",
        "day": "Day",
        "hour": "Hour",
    }
    assert events_src.options["types"] == "Part of the day"
    assert events_src.options["tz"] == "Europe/Madrid" and "time_col" not in events_src.options
    with pytest.raises(ConfigError, match="--event-type applies to --events"):
        config_from_flags(flags=BuildFlags(sensors=[f"{loc}:{rd}"], event_type="kind"))
    with pytest.raises(ConfigError, match="PART=COLUMN_OR_VALUE"):
        config_from_flags(flags=BuildFlags(events=[str(ev)], time_parts="year2017"))
    with pytest.raises(ConfigError, match="give one for --events"):
        config_from_flags(flags=BuildFlags(events=[str(ev)], time_parts="year=2017", time_col="t"))


def test_bad_input_file_is_a_clear_error(tmp_path):
    path = tmp_path / "gps.csv"
    path.write_text("a,b\n1,2\n")
    parser = add_build_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--trajectories", str(path), "-o", str(tmp_path / "o")])
    from stgraph.errors import DataFormatError

    with pytest.raises(DataFormatError, match="gps.csv.*lon"):
        build_from_args(args)


def test_set_overrides_are_checked_like_the_file(data_env, tmp_path):
    path = CONFIGS / "liverpool-bus.yaml"
    cfg = load_config(
        path, overrides=["sources.0.options.grid.cell_m=500", "fuse.max_dist_m=300", "city=L"]
    )
    assert cfg.sources[0].options["grid"] == {"cell_m": 500}
    assert cfg.fuse.max_dist_m == 300.0 and isinstance(cfg.fuse.max_dist_m, float)
    assert cfg.city == "L" and cfg.sources[1].options["radius_m"] == 400  # the rest unchanged
    with pytest.raises(ConfigError, match=r"liverpool-bus\.yaml: fuse\.max_dist_m = 'far'"):
        load_config(path, overrides=["fuse.max_dist_m=far"])
    with pytest.raises(ConfigError, match=r"unknown key 'colour_by'"):
        load_config(path, overrides=["colour_by=count"])
    with pytest.raises(ConfigError, match=r"'5' is not an index of a list of 2"):
        load_config(path, overrides=["sources.5.path=x.csv"])
    with pytest.raises(ConfigError, match=r"unknown option 'cel_m' in sources\[0\]\.options"):
        load_config(path, overrides=["sources.0.options.cel_m=3"])


def test_set_through_stgraph_build(data_env, tmp_path, capsys):
    cli = pytest.importorskip("stgraph.cli")
    out = tmp_path / "set"
    cfg = str(CONFIGS / "west-oakland.yaml")
    argv = ["build", "--config", cfg, "--set", "name=wo", "--set", "city=Oakland CA", "-o"]
    assert cli.main([*argv, str(out)]) == 0
    summary = _check_outputs(out)
    assert summary["name"] == "wo" and summary["city"] == "Oakland CA"
    assert load(out / "graph").meta["build"] == "wo"
    capsys.readouterr()
    assert cli.main(["build", "--config", cfg, "--set", "roads.paht=x", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "unknown key 'roads.paht'" in err and "west-oakland.yaml" in err
