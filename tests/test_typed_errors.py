"""Every user-facing failure of the builders and of the user-facing option checks is a typed
:mod:`stgraph.errors` error (issue 16, item 1: one exception hierarchy).

An AST scan of ``graph_builders/`` and of the user-facing modules of :data:`MODULES` refuses a
``raise ValueError``/``raise TypeError`` (a call or the bare class, ``builtins.`` too): a bad
option or config value is a :class:`~stgraph.errors.ConfigError`, wrong input data a
:class:`~stgraph.errors.DataFormatError` (both subclass ``ValueError``, so ``except ValueError``
still catches them). :data:`ALLOWED` lists the raises kept on purpose, each with its reason.

The behaviour tests call the builders and options on real data with a bad value and check that
the error is typed and names the option.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stgraph.errors import ConfigError, DataFormatError, STGraphError

REPO = Path(__file__).resolve().parents[1]

#: The user-facing stgraph modules held to the rule besides every module of ``graph_builders/``.
MODULES = (
    "stgraph/data/windows.py",
    "stgraph/data/splits.py",
    "stgraph/data/scalers.py",
    "stgraph/data/interop.py",
    "stgraph/tasks/predict.py",
    "stgraph/tasks/finetune.py",
)

#: ``(path, enclosing function) -> reason`` for a plain ValueError/TypeError kept on purpose.
#: Empty: none is kept.
ALLOWED: dict[tuple[str, str], str] = {}

_PLAIN = {"ValueError", "TypeError", "builtins.ValueError", "builtins.TypeError"}


def _name(node: ast.expr) -> str | None:
    """The dotted name of a raised class (``raise X(...)`` or ``raise X``)."""
    if isinstance(node, ast.Call):
        node = node.func
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def plain_raises(source: str, rel: str) -> list[str]:
    """The ``raise ValueError``/``raise TypeError`` of one module not in :data:`ALLOWED`, as
    ``path:line (function)``."""
    found = []

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = child.name
            if isinstance(child, ast.Raise) and child.exc is not None:
                if _name(child.exc) in _PLAIN and (rel, scope) not in ALLOWED:
                    found.append(f"{rel}:{child.lineno} ({scope}): raise {_name(child.exc)}")
            visit(child, inner)

    visit(ast.parse(source, filename=rel), "<module>")
    return found


def scanned_files(root: Path = REPO) -> list[Path]:
    """Every module of ``graph_builders/`` and the modules of :data:`MODULES`."""
    return sorted((root / "graph_builders").rglob("*.py")) + [root / m for m in MODULES]


def test_no_plain_value_or_type_error_is_raised():
    files = scanned_files()
    assert len(files) > 25 and all(f.is_file() for f in files)  # the scan covers them all
    found = []
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        found += plain_raises(path.read_text(encoding="utf-8"), rel)
    assert found == [], "raise a stgraph.errors type instead:\n" + "\n".join(found)


def test_every_allowed_entry_is_still_needed():
    for (rel, scope), reason in ALLOWED.items():
        assert reason.strip(), (rel, scope)
        source = (REPO / rel).read_text(encoding="utf-8")
        saved = dict(ALLOWED)
        ALLOWED.clear()
        try:
            assert any(f"({scope})" in f for f in plain_raises(source, rel)), (rel, scope)
        finally:
            ALLOWED.update(saved)


@pytest.mark.parametrize(
    "snippet",
    [
        "def f(x):\n    raise ValueError(f'x: bad {x}')",
        "def f():\n    raise TypeError('no')",
        "def f():\n    raise ValueError",
        "import builtins\ndef f():\n    raise builtins.ValueError('x')",
        "class A:\n    def m(self):\n        if True:\n            raise TypeError('x')",
        "raise ValueError('at import')",
    ],
)
def test_an_injected_plain_raise_is_caught(snippet):
    assert plain_raises(snippet, "graph_builders/injected.py")


@pytest.mark.parametrize(
    "snippet",
    [
        "from stgraph.errors import ConfigError\ndef f():\n    raise ConfigError('k: bad')",
        "def f():\n    try:\n        pass\n    except ValueError:\n        raise",
        "def f(e):\n    raise e",
        "def f():\n    raise KeyError('split part')",
    ],
)
def test_typed_raises_pass(snippet):
    assert plain_raises(snippet, "graph_builders/ok.py") == []


# ------------------------------------------------------------------ behaviour on real inputs


@pytest.fixture(scope="module")
def los_loop(data_dir):
    from stgraph import datasets

    return datasets.load("los-loop")


def _raises(kind: type[STGraphError], option: str):
    """``pytest.raises`` of ``kind`` whose message names ``option`` first (``option: ...`` or
    ``option=...``)."""
    return pytest.raises(kind, match=rf"^{option}[:=]")


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"coarsen": 0}, "coarsen"),
        ({"coarsen": 1.5}, "coarsen"),
        ({"neighbourhood": 5}, "neighbourhood"),
        ({"reduce": "max"}, "reduce"),
        ({"boundary": "wrap"}, "boundary"),
    ],
)
def test_raster_grid_options(data_dir, options, name):
    from graph_builders import raster

    with _raises(ConfigError, name):
        raster.from_grid(data_dir / "era5-uk-t2m" / "era5-2mt-2019-03-uk.grib", **options)


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"method": "knn", "k": 0}, "k"),
        ({"method": "knn", "k": -3}, "k"),
        ({"method": "knn", "k": 2.5}, "k"),
        ({"method": "radius", "radius_m": -100.0}, "radius_m"),
        ({"method": "radius", "radius_m": float("nan")}, "radius_m"),
        ({"method": "gaussian", "threshold": 1.5}, "threshold"),
        ({"method": "gaussian", "sigma_m": 0.0}, "sigma_m"),
        ({"method": "x"}, "method"),
        ({"method": "knn", "metric": "euclidean"}, "metric"),
        ({"method": "knn", "weight": "cosine"}, "weight"),
    ],
)
def test_proximity_options(los_loop, options, name):
    from graph_builders import proximity

    with _raises(ConfigError, name):
        proximity.connect(los_loop.pos.numpy(), **options)


def test_proximity_bad_positions_are_a_data_error(los_loop):
    from graph_builders import proximity

    pos = los_loop.pos.numpy().copy()
    with _raises(DataFormatError, "pos"):
        proximity.connect(pos[:, :1], method="knn")
    pos[7, 1] = 123.0  # latitude beyond 90
    with pytest.raises(DataFormatError, match="row 7"):
        proximity.connect(pos, method="knn")
    with pytest.raises(DataFormatError, match="connect_graph"):
        proximity.connect(los_loop, method="knn")


def test_sensors_and_events_interval(data_dir):
    from graph_builders import events, sensors
    from graph_builders.regions import Grid

    loc = data_dir / "metr-la-graph" / "graph_sensor_locations.csv"
    speed = data_dir / "los-loop" / "los_speed.csv"
    for bad in ("abc", "-5min", 0):
        with _raises(ConfigError, "interval"):
            sensors.from_table(loc, speed, start="2012-03-01", interval=bad, method="knn", k=3)
    points = pd.read_csv(data_dir / "geolife-small" / "geolife_small.csv", sep=";")
    grid = Grid.from_bbox(116.2, 39.85, 116.5, 40.05, cell_m=1000)
    cols = {"lon_col": "X", "lat_col": "Y", "time_col": "t"}
    for options, option in [
        ({"interval": "abc"}, "interval"),
        # west > east: was "no event left to count", naming no option
        ({"bbox": (116.5, 39.85, 116.2, 40.05)}, "bbox"),
        ({"neighbourhood": 5}, "neighbourhood"),  # was a plain ValueError of stgraph.utils.grid
        ({"max_invalid_share": 2.0}, "max_invalid_share"),  # was accepted
        ({"duplicates": "merge"}, "duplicates"),
    ]:
        with _raises(ConfigError, option):
            events.from_points(points, regions=grid, **{"interval": "1h", **cols, **options})


def test_grid_and_bbox(data_dir):
    from graph_builders import osm, trajectories
    from graph_builders.regions import Grid, as_grid

    with _raises(ConfigError, "grid"):
        Grid.from_bbox(116.5, 39.85, 116.2, 40.05, cell_m=1000)  # west > east
    with _raises(ConfigError, "grid"):
        as_grid([116.2, 39.85, 116.5, 40.05])
    with _raises(ConfigError, "bbox"):
        osm.road_graph(data_dir / "osm-monaco" / "monaco.osm.pbf", bbox=(7.44, 43.72, 7.40, 43.75))
    with _raises(ConfigError, "node"):
        osm.road_graph(data_dir / "osm-monaco" / "monaco.osm.pbf", node="edge")
    with _raises(ConfigError, "network"):
        osm.road_graph(data_dir / "osm-monaco" / "monaco.osm.pbf", network="rail")
    with pytest.raises(ConfigError, match="exactly one of road_graph=... or grid="):
        trajectories.from_points(data_dir / "geolife-small" / "geolife_small.csv", interval="1h")
    with _raises(ConfigError, "max_gap"):  # named as itself, not as "interval"
        trajectories.from_points(
            data_dir / "geolife-small" / "geolife_small.csv",
            grid={"cell_m": 1000, "bbox": (116.2, 39.85, 116.5, 40.05)},
            interval="1h",
            max_gap="soon",
            lon_col="X",
            lat_col="Y",
            time_col="t",
            id_col="trajectory_id",
        )


def test_windows_splits_scalers(los_loop):
    from stgraph.data import SlidingWindows, chronological_split
    from stgraph.data.scalers import StandardScaler, make_scaler

    with pytest.raises(ConfigError, match="input_steps=0"):
        SlidingWindows(los_loop, 0, 12)
    with pytest.raises(ConfigError, match="stride=0"):
        SlidingWindows(los_loop, 12, 3, stride=0)
    with _raises(ConfigError, "start/stop"):
        SlidingWindows(los_loop, 12, 3, start=0, stop=los_loop.num_steps + 1)
    with _raises(ConfigError, "ratios"):
        chronological_split(los_loop, ratios=(0.7, 0.2, 0.2))
    with _raises(ConfigError, "dates"):
        chronological_split(los_loop, dates=("2012-03-05", "2012-03-03"))
    with _raises(ConfigError, "scaler"):
        make_scaler("robust")
    with pytest.raises(DataFormatError, match=r"\[N, T, V\]"):
        StandardScaler().fit(los_loop.x[:, :, 0])


def test_forecast_and_finetune_options(los_loop):
    from stgraph.baselines import LastValue
    from stgraph.tasks.finetune import configure_finetune, parse_budget
    from stgraph.tasks.predict import forecast_table

    model = LastValue(input_steps=12, horizon=3)
    with _raises(ConfigError, "horizon"):
        forecast_table(model, los_loop, input_steps=12, horizon=0)
    with _raises(ConfigError, "start"):
        forecast_table(model, los_loop, input_steps=12, horizon=3, start=1000)
    train = (0, int(los_loop.num_steps * 0.7))
    for bad in ("abc", "12", "0%", "5 fortnights"):
        with pytest.raises(ConfigError, match=rf"^budget {bad!r}"):
            parse_budget(bad, los_loop, train)
    with pytest.raises(ConfigError, match="mode 'linear'"):
        configure_finetune(model, "linear")


def test_errors_still_are_value_errors(los_loop):
    """Old ``except ValueError`` handlers keep catching the typed errors."""
    from graph_builders import proximity

    assert issubclass(ConfigError, ValueError) and issubclass(DataFormatError, ValueError)
    with pytest.raises(ValueError):
        proximity.connect(np.zeros((3, 3)), method="knn")
