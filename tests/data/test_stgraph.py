"""STGraph: validation, NaN handling, io, batching, slicing and conversions on real Los-loop data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch_geometric.loader import DataLoader

import stgraph
from stgraph.data import SlidingWindows, STGraph
from stgraph.errors import DataFormatError, STGraphValidationError

T0 = 1330560000  # 2012-03-01 00:00 UTC


@pytest.fixture(scope="module")
def los(data_dir) -> STGraph:
    """Los-loop read directly with pandas (independent of the registry under test elsewhere)."""
    speed = pd.read_csv(data_dir / "los-loop" / "los_speed.csv")
    loc = pd.read_csv(data_dir / "metr-la-graph" / "graph_sensor_locations.csv")
    loc = loc.set_index(loc["sensor_id"].astype(str)).loc[list(speed.columns)]
    adj = np.loadtxt(data_dir / "los-loop" / "los_adj.csv", delimiter=",")
    np.fill_diagonal(adj, 0)
    src, dst = np.nonzero(adj)
    x = torch.tensor(speed.to_numpy().T[:, :, None], dtype=torch.float32)
    return STGraph(
        x=x,
        time=T0 + 300 * torch.arange(x.size(1)),
        pos=torch.tensor(loc[["longitude", "latitude"]].to_numpy(), dtype=torch.float32),
        edge_index=torch.tensor(np.stack([src, dst])),
        edge_weight=torch.tensor(adj[src, dst], dtype=torch.float32),
        meta={
            "variables": [{"name": "speed", "unit": "mph"}],
            "city": "Los Angeles",
            "interval": 300,
            "node_ids": list(speed.columns),
        },
    )


def test_real_graph_fields(los):
    assert (los.num_nodes, los.num_steps, los.num_variables) == (207, 2016, 1)
    assert los.variables == ["speed"] and los.units == ["mph"]
    assert los.missing_share == 0.0
    # METR-LA sensors lie in Los Angeles
    assert -118.6 < float(los.pos[:, 0].min()) and float(los.pos[:, 0].max()) < -118.1
    assert 33.9 < float(los.pos[:, 1].min()) and float(los.pos[:, 1].max()) < 34.4
    assert "city='Los Angeles'" in repr(los) and "x=[207, 2016, 1]" in repr(los)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"mask": torch.ones(3, 4, 2, dtype=torch.bool)}, "mask"),
        ({"time": torch.arange(4)}, "time"),  # wrong length
        ({"time": torch.tensor([0, 1, 1, 2, 3])}, "strictly increase"),
        ({"pos": torch.zeros(3, 2)}, "pos"),  # wrong node count
        ({"pos": torch.tensor([[0.0, 0.0]] * 4 + [[200.0, 0.0]])}, "lon"),
        ({"edge_index": torch.tensor([[0, 1], [1, 5]])}, "edge_index"),
        (
            {"edge_index": torch.tensor([[0, 1], [1, 2]]), "edge_weight": torch.ones(3)},
            "edge_weight",
        ),
        (
            {"dyn_edge_index": torch.tensor([[0], [1]]), "dyn_edge_time": torch.tensor([9])},
            "dyn_edge_time",
        ),
        ({"node_attr": torch.zeros(4, 3)}, "node_attr"),
        ({"meta": {"variables": [{"name": "a", "unit": ""}] * 2}}, "variables"),
    ],
)
def test_validation_names_the_field(kwargs, field):
    with pytest.raises(STGraphValidationError, match=field):
        STGraph(x=torch.zeros(5, 5, 1), **kwargs)


def test_mismatched_x_shape_is_an_error():
    with pytest.raises(STGraphValidationError, match=r"x: expected 3 dims"):
        STGraph(x=torch.zeros(5, 5))


def test_nan_becomes_mask_and_observed_nan_is_rejected():
    x = torch.ones(2, 3, 1)
    x[1, 2, 0] = float("nan")
    g = STGraph(x=x)
    assert not bool(g.mask[1, 2, 0]) and float(g.x[1, 2, 0]) == 0.0 and int(g.mask.sum()) == 5
    with pytest.raises(STGraphValidationError, match="NaN"):
        STGraph(x=x, mask=torch.ones(2, 3, 1, dtype=torch.bool))


def test_save_load_roundtrip(los, tmp_path):
    g = los.slice_time(0, 100)
    g.dyn_edge_index = torch.tensor([[0, 3], [1, 4]])
    g.dyn_edge_time = torch.tensor([2, 50])
    out = g.save(tmp_path / "g")
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "tensors.safetensors"]
    h = stgraph.load(out)
    for key in (
        "x",
        "mask",
        "time",
        "pos",
        "edge_index",
        "edge_weight",
        "dyn_edge_index",
        "dyn_edge_time",
    ):
        assert torch.equal(h[key], g[key]), key
    assert h.meta == g.meta
    doc = json.loads((out / "meta.json").read_text())
    assert doc["tensors"]["x"]["shape"] == [207, 100, 1]


def test_failed_save_leaves_previous_directory_intact(los, tmp_path):
    g = los.slice_time(0, 10)
    target = g.save(tmp_path / "g")
    before = (target / "tensors.safetensors").read_bytes()
    bad = los.slice_time(0, 20)
    bad.extra = object()  # neither a tensor nor JSON
    with pytest.raises(TypeError, match="extra"):
        bad.save(target)
    assert (target / "tensors.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["g"]  # no temp directory left behind


def test_load_rejects_foreign_files(tmp_path):
    d = tmp_path / "x"
    d.mkdir()
    (d / "meta.json").write_text("{not json")
    (d / "tensors.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(DataFormatError, match="meta.json"):
        stgraph.load(d)
    with pytest.raises(FileNotFoundError, match="tensors.safetensors"):
        stgraph.load(tmp_path / "missing")


def test_batching_offsets_static_and_dynamic_edges(los):
    g = los.slice_time(0, 40)
    g.dyn_edge_index = torch.tensor([[0, 5], [1, 6]])
    g.dyn_edge_time = torch.tensor([1, 3])
    windows = SlidingWindows(g, 4, 2)
    batch = next(iter(DataLoader(windows, batch_size=3)))
    n, e = g.num_nodes, g.edge_index.size(1)
    assert batch.x.shape == (3 * n, 4, 1) and batch.y.shape == (3 * n, 2, 1)
    assert batch.time.shape == (3, 4) and int(batch.time[1, 0]) == int(g.time[1])
    assert torch.equal(batch.edge_index[:, e : 2 * e], g.edge_index + n)
    # window 0 sees both dynamic edges (steps 1, 3); window 1 sees them at steps 0, 2; window 2 only the second
    assert batch.dyn_edge_index.size(1) == 5
    assert torch.equal(batch.dyn_edge_index[:, -1], torch.tensor([5 + 2 * n, 6 + 2 * n]))
    assert batch.dyn_edge_time.tolist() == [1, 3, 0, 2, 1]


def test_slice_time_by_dates_and_steps(los):
    day2 = los.slice_time("2012-03-02", "2012-03-03")
    assert day2.num_steps == 288 and int(day2.time[0]) == T0 + 86400
    assert torch.equal(day2.x, los.x[:, 288:576])
    assert los.slice_time(-12).num_steps == 12
    with pytest.raises(IndexError):
        los.slice_time(10, 5)


def test_select_nodes_keeps_edges_between_kept_nodes(los):
    keep = torch.tensor([5, 0, 17, 3])
    sub = los.select_nodes(keep)
    assert sub.num_nodes == 4 and torch.equal(sub.x, los.x[keep])
    assert sub.meta["node_ids"] == [los.meta["node_ids"][i] for i in keep.tolist()]
    old = set(map(tuple, los.edge_index.t().tolist()))
    for s, d in sub.edge_index.t().tolist():
        assert (int(keep[s]), int(keep[d])) in old
    expected = sum(1 for s, d in old if s in keep.tolist() and d in keep.tolist())
    assert sub.edge_index.size(1) == expected


def test_to_pandas_long_table(los):
    g = los.slice_time(0, 3).select_nodes([0, 1])
    g.mask[1, 2, 0] = False
    df = g.to_pandas()
    assert len(df) == 2 * 3 * 1
    assert list(df.columns) == [
        "node",
        "node_id",
        "step",
        "time",
        "variable",
        "unit",
        "value",
        "observed",
    ]
    assert df["time"].iloc[0] == pd.Timestamp("2012-03-01 00:00", tz="UTC")
    assert df.loc[(df.node == 1) & (df.step == 2), "value"].isna().all()
    assert len(g.to_pandas(observed_only=True)) == 5
    assert df.loc[(df.node == 0) & (df.step == 1), "value"].item() == pytest.approx(
        float(los.x[0, 1, 0])
    )


def test_to_networkx(los):
    g = los.to_networkx()
    assert g.number_of_nodes() == 207 and g.number_of_edges() == los.edge_index.size(1)
    s, d = los.edge_index[:, 0].tolist()
    assert g.edges[s, d, 0]["weight"] == pytest.approx(float(los.edge_weight[0]))
    assert g.nodes[0]["node_id"] == los.meta["node_ids"][0]
    assert g.graph["city"] == "Los Angeles"


def test_pos_metres_distances(los):
    m = los.pos_metres()
    # distance between two sensors vs haversine within 0.5 %
    lon1, lat1, lon2, lat2 = map(
        np.radians, [*los.pos[0].double().tolist(), *los.pos[100].double().tolist()]
    )
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    hav = 2 * 6_371_008.8 * np.arcsin(np.sqrt(a))
    assert float((m[0] - m[100]).norm()) == pytest.approx(hav, rel=5e-3)


def test_every_registry_graph_keeps_its_interval():
    """One rule (declared meta['interval'], else the median step of time): every registry graph
    gets the interval its metadata declares, which is also the median step where it has
    timestamps (so the old rules, time-first in the backbone, meta-first in the baselines,
    agreed on all of them); pedalme has no timestamps and keeps its declared week."""
    from stgraph import datasets
    from stgraph.data import resolve_interval

    seen = {}
    for name in datasets.list_datasets():
        try:
            g = datasets.load(name)
        except ValueError as exc:  # GPS tables, not graphs
            assert "not a graph" in str(exc)
            continue
        declared = g.meta["interval"]
        assert g.interval == declared == int(g.intervals[0]), name
        if g.time is not None:
            assert resolve_interval(None, g.time) == declared, name
        seen[name] = declared
    assert seen["los-loop"] == 300 and seen["chickenpox"] == 604800 and seen["pedalme"] == 604800


def test_interval_rule_and_its_error():
    from stgraph.data import resolve_interval

    t = torch.tensor([0, 60, 120, 240, 300])
    assert resolve_interval(None, t) == 60 and resolve_interval(900, t) == 900
    assert resolve_interval(torch.tensor([30]), None) == 30
    with pytest.raises(STGraphValidationError, match="no timestamps"):
        resolve_interval(None, None)
    with pytest.raises(STGraphValidationError, match="seconds > 0"):
        resolve_interval(0, t)


def test_typed_attributes_of_a_batch(los):
    from torch_geometric.loader import DataLoader

    from stgraph.data import SlidingWindows

    g = los.slice_time(0, 40)
    b = next(iter(DataLoader(SlidingWindows(g, 12, 3), batch_size=4)))
    assert b.variables == ["speed"] and b.units == g.units and b.intervals.tolist() == [300] * 4
    other = g.clone()
    other.meta = {**g.meta, "variables": [{"name": "flow", "unit": "veh/h"}]}
    mixed = next(
        iter(DataLoader([SlidingWindows(g, 12, 3)[0], SlidingWindows(other, 12, 3)[0]], 2))
    )
    with pytest.raises(ValueError, match="variables"):
        _ = mixed.variables


def test_data_model_does_not_import_its_io():
    """stgraph.data.stgraph -> stgraph.data.serialization <- stgraph.data.io -> stgraph.data.stgraph:
    one direction, no circle (no import of io anywhere in the data model, not even deferred)."""
    import ast

    import stgraph.data.io as io_module
    import stgraph.data.stgraph as model_module

    def imported(module) -> set[str]:
        tree = ast.parse(open(module.__file__, encoding="utf-8").read())
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                out.add(node.module)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
        return out

    assert "stgraph.data.io" not in imported(model_module)
    assert "stgraph.data.stgraph" in imported(io_module)
