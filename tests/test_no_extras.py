"""``pip install stgraph`` without extras: the packages of ``[osm]`` and ``[raster]`` are hidden
(an import hook makes them unimportable in a fresh interpreter; nothing is installed or removed).

``import stgraph`` and ``import graph_builders`` work, ``stgraph build --help`` shows its options,
sensor and event builds run from a config, and each path that needs a missing package says in one
line which extra installs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tomllib

from stgraph.utils.extras import EXTRA_OF

REPO = Path(__file__).resolve().parents[1]
#: The import names of the packages the extras install (what a bare install lacks).
HIDDEN = ["osmium", "pyrosm", "osmnx", "geopandas", "shapely", "h3", "xarray", "cfgrib", "eccodes"]
HIDDEN += ["gribapi", "zarr"]

#: What a bare install looks like to Python: ``None`` in ``sys.modules`` makes ``import x`` raise
#: ModuleNotFoundError and ``importlib.util.find_spec(x)`` return ``None``, as for a package that
#: is not installed.
HOOK = textwrap.dedent(
    f"""
    import sys
    for name in {HIDDEN!r}:
        sys.modules[name] = None
    """
)


def _run(code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", HOOK + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or REPO,
        timeout=550,  # a loaded machine: each run imports torch in a fresh interpreter
    )


def test_the_hidden_packages_are_the_extras():
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    declared = {req.split(">")[0].split("=")[0].strip().lower() for req in extras["osm"]}
    declared |= {req.split(">")[0].split("=")[0].strip().lower() for req in extras["raster"]}
    assert {"osmium", "shapely", "osmnx", "geopandas", "pyrosm", "h3"} <= declared
    assert {"xarray", "cfgrib", "eccodes", "zarr"} <= declared
    for name in HIDDEN:
        assert EXTRA_OF[name] in extras, name  # each message names a real extra


def test_imports_help_and_a_sensor_and_event_build(tmp_path):
    code = """
    import json, sys
    import numpy as np, pandas as pd
    import stgraph, graph_builders
    from graph_builders import events, osm, sensors, trajectories, fusion, raster  # noqa: F401
    from stgraph.cli import main
    out = sys.argv[1]
    rng = np.random.default_rng(0)
    ids = [f"{i:06d}" for i in range(1, 9)]
    pd.DataFrame({"sensor_id": ids, "longitude": 2.1 + 0.1 * rng.random(8),
                  "latitude": 41.3 + 0.1 * rng.random(8)}).to_csv(f"{out}/loc.csv", index=False)
    wide = pd.DataFrame(rng.random((48, 8)), columns=ids)
    wide.insert(0, "datetime", pd.date_range("2020-01-01", periods=48, freq="h").astype(str))
    wide.to_csv(f"{out}/rd.csv", index=False)
    pd.DataFrame({"Longitude": 2.1 + 0.1 * rng.random(200), "Latitude": 41.3 + 0.1 * rng.random(200),
                  "Time": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 72, 200), "h")}
                 ).to_csv(f"{out}/ev.csv", index=False)
    cfg = {"name": "bare", "sources": [
        {"kind": "sensors", "locations": f"{out}/loc.csv", "readings": f"{out}/rd.csv"},
        {"kind": "events", "path": f"{out}/ev.csv", "options": {"regions": {"cell_m": 2000}}}]}
    import yaml
    with open(f"{out}/bare.yaml", "w") as fh:
        yaml.safe_dump(cfg, fh)
    code = main(["build", "-q", "--config", f"{out}/bare.yaml", "--interval", "1h", "-o", f"{out}/b"])
    assert code == 0, code
    summary = json.load(open(f"{out}/b/summary.json"))
    print("NODES", summary["nodes"], [v["name"] for v in summary["variables"]])
    """
    r = _run(code, str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "NODES 8" in r.stdout or "NODES" in r.stdout, r.stdout
    # stgraph build --help: its options, without the builders
    r = _run("from stgraph.cli import main; main(['build', '--help'])")
    assert r.returncode == 0, r.stderr[-2000:]
    for flag in ("--config", "--sensors", "--events", "--osm", "--time-col", "--event-type"):
        assert flag in r.stdout


def _one_line_error(r: subprocess.CompletedProcess, extra: str, package: str) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout[-1000:], r.stderr[-3000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr  # one line, no traceback
    assert f"pip install 'stgraph[{extra}]'" in lines[0] and package in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("argv", "extra", "package"),
    [
        (["--osm", "{data}/osm-monaco/monaco.osm.pbf"], "osm", "osmium"),
        (["--raster", "{data}/era5-uk-t2m/era5-2mt-2019-03-uk.grib"], "raster", "xarray"),
    ],
)
def test_cli_missing_extra_is_one_line(data_dir, argv, extra, package, tmp_path):
    argv = [a.format(data=data_dir) for a in argv]
    if not Path(argv[1]).exists():
        pytest.skip(f"{argv[1]} not in the data folder")
    code = f"""
    import sys
    from stgraph.cli import main
    sys.exit(main(["build", *{argv!r}, "-o", {str(tmp_path / "o")!r}]))
    """
    line = _one_line_error(_run(code), extra, package)
    assert line.startswith("stgraph build: error: ")


def test_library_paths_name_the_extra(data_dir):
    code = f"""
    import json
    out = {{}}
    from stgraph.utils.extras import MissingExtraError
    from stgraph.errors import STGraphError
    def attempt(key, fn):
        try:
            fn()
        except MissingExtraError as exc:
            assert isinstance(exc, (ImportError, STGraphError))
            out[key] = str(exc)
    from stgraph import datasets
    attempt("era5", lambda: datasets.load("era5-uk-t2m"))
    from graph_builders import events, osm
    import pandas as pd
    df = pd.DataFrame({{"longitude": [2.1, 2.2], "latitude": [41.3, 41.4],
                        "time": ["2020-01-01", "2020-01-02"]}})
    attempt("h3", lambda: events.from_points(df, regions=8))
    attempt("osm", lambda: osm.road_graph({str(data_dir / "osm-monaco" / "monaco.osm.pbf")!r}))
    attempt("osmnx", lambda: osm.road_graph("Monaco"))
    print(json.dumps(out))
    """
    r = _run(code)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(got) == {"era5", "h3", "osm", "osmnx"}, got
    for key, (package, extra) in {
        "era5": ("xarray", "raster"),
        "h3": ("h3", "osm"),
        "osm": ("osmium", "osm"),
        "osmnx": ("osmnx", "osm"),
    }.items():
        assert "\n" not in got[key]
        assert (
            f"needs {package}, which is not installed: pip install 'stgraph[{extra}]'" in got[key]
        )
