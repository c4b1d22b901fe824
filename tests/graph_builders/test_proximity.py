"""proximity.connect: DCRNN's Gaussian kernel on PEMS-BAY, and kNN / radius / Delaunay properties."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.spatial import Delaunay

from graph_builders import osm, proximity
from graph_builders.osm.topology import haversine_m
from stgraph.data import STGraph
from stgraph.datasets._pickle import load_verified_pickle
from stgraph.errors import DataFormatError

ADJ_BAY_SHA = "116275f5704d0d492018e14c047f7ae5004385b450aa907f88424055a4a97370"  # MANIFEST.md


@pytest.fixture(scope="module")
def bay(data_dir):
    d = data_dir / "pems-bay-graph"
    loc = pd.read_csv(d / "graph_sensor_locations_bay.csv", header=None, names=["id", "lat", "lon"])
    return d, loc


def test_gaussian_reproduces_dcrnn_adj_mx_bay(bay):
    d, loc = bay
    raw = (d / "adj_mx_bay.pkl").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == ADJ_BAY_SHA  # verified before unpickling
    ids, _, adj = load_verified_pickle(
        raw, sha256=ADJ_BAY_SHA, source="adj_mx_bay.pkl", encoding="latin1"
    )
    node_ids = loc["id"].astype(str).tolist()
    assert node_ids == list(ids)
    ei, ew, summary = proximity.connect(
        loc[["lon", "lat"]].to_numpy(),
        method="gaussian",
        distances=d / "distances_bay_2017.csv",
        node_ids=node_ids,
        include_self=True,
    )
    ours = proximity.to_dense(ei, ew, len(ids))
    nnz_ours, nnz_ref = int((ours != 0).sum()), int((adj != 0).sum())
    diff = float(np.abs(ours - adj).max())
    print(f"PEMS-BAY: nnz ours {nnz_ours}, adj_mx_bay {nnz_ref}, max abs diff {diff:.3g}")
    assert nnz_ours == nnz_ref
    assert diff < 1e-6  # adj_mx_bay is float32
    assert summary["dropped"] == {}
    # road distances are directed: so is the kernel graph
    assert not np.allclose(ours, ours.T)
    # without self-loops the diagonal goes, nothing else changes
    ei2, ew2, _ = proximity.connect(
        loc[["lon", "lat"]].to_numpy(), distances=d / "distances_bay_2017.csv", node_ids=node_ids
    )
    assert ei2.size(1) == nnz_ref - int((np.diag(adj) != 0).sum())


def test_unknown_ids_in_distance_table_are_counted(bay):
    d, loc = bay
    table = pd.read_csv(d / "distances_bay_2017.csv", header=None)
    keep = loc["id"].astype(str).tolist()[:100]
    _, _, summary = proximity.connect(None, distances=table, node_ids=keep)
    ids = table.iloc[:, 0].astype(str).isin(keep) & table.iloc[:, 1].astype(str).isin(keep)
    assert summary["dropped"]["distance_row_unknown_id"] == int((~ids).sum())


def test_duplicate_pairs_in_distance_table_are_counted_last_row_wins(bay):
    d, loc = bay
    table = pd.read_csv(d / "distances_bay_2017.csv", header=None)
    node_ids = loc["id"].astype(str).tolist()
    ref, dropped = proximity.distance_matrix(table, node_ids)
    assert dropped == {}
    again = table.iloc[:50].copy()  # the first 50 pairs given a second time, 1 km longer
    again[2] = again[2] + 1000.0
    mat, dropped = proximity.distance_matrix(pd.concat([table, again]), node_ids)
    assert dropped == {"distance_row_duplicate": 50}
    idx = {k: i for i, k in enumerate(node_ids)}
    i = again[0].astype(str).map(idx).to_numpy()
    j = again[1].astype(str).map(idx).to_numpy()
    np.testing.assert_array_equal(mat[i, j], again[2].to_numpy())
    changed = np.zeros(ref.shape, dtype=bool)
    changed[i, j] = True
    np.testing.assert_array_equal(mat[~changed], ref[~changed])
    _, _, summary = proximity.connect(None, distances=pd.concat([table, again]), node_ids=node_ids)
    assert summary["dropped"] == {"distance_row_duplicate": 50}


def test_gaussian_on_coordinates_matches_dense_recipe(bay):
    _, loc = bay
    pos = loc[["lon", "lat"]].to_numpy()
    ei, ew, summary = proximity.connect(pos, method="gaussian")
    n = len(pos)
    dense = haversine_m(pos[:, None, 0], pos[:, None, 1], pos[None, :, 0], pos[None, :, 1])
    sigma = dense.std()
    w = np.exp(-((dense / sigma) ** 2))
    w[w < 0.1] = 0
    np.fill_diagonal(w, 0)
    assert summary["sigma"] == pytest.approx(sigma, rel=1e-6)
    ours = proximity.to_dense(ei, ew, n)
    assert ((ours != 0) == (w != 0)).mean() > 0.9999
    assert np.abs(ours - w).max() < 1e-4
    assert np.allclose(ours, ours.T)  # great-circle distances are symmetric


def test_knn_radius_delaunay(bay):
    _, loc = bay
    pos = loc[["lon", "lat"]].to_numpy()
    n = len(pos)
    dense = haversine_m(pos[:, None, 0], pos[:, None, 1], pos[None, :, 0], pos[None, :, 1])
    np.fill_diagonal(dense, np.inf)
    # knn (directed): each node receives exactly k edges from its k nearest, weights in metres
    ei, ew, _ = proximity.connect(pos, method="knn", k=5)
    assert ei.size(1) == 5 * n
    assert (torch.bincount(ei[1], minlength=n) == 5).all()
    kth = np.sort(dense, 1)[:, 4]
    src, dst = ei.numpy()
    assert (ew.double().numpy() <= kth[dst] + 1e-3).all()
    assert np.allclose(ew.double().numpy(), dense[src, dst], rtol=1e-5, atol=1e-2)
    assert not (src == dst).any()
    # knn symmetrised
    ei_u, _, _ = proximity.connect(pos, method="knn", k=5, directed=False)
    pairs = set(map(tuple, ei_u.numpy().T.tolist()))
    assert all((b, a) in pairs for a, b in pairs) and len(pairs) >= 5 * n
    # radius: exactly the pairs within the radius, both directions
    ei_r, ew_r, _ = proximity.connect(pos, method="radius", radius_m=2000.0)
    ref = set(zip(*np.nonzero(dense <= 2000.0), strict=True))
    assert set(map(tuple, ei_r.numpy().T.tolist())) == {(int(a), int(b)) for a, b in ref}
    assert float(ew_r.max()) <= 2000.0 + 1e-3
    # delaunay: every triangle side, symmetric, planar (E <= 6N)
    ei_d, ew_d, _ = proximity.connect(pos, method="delaunay")
    xy, _ = osm.project(pos[:, 0], pos[:, 1])
    tri = Delaunay(xy).simplices
    sides = {(int(a), int(b)) for t in tri for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0]))}
    sides |= {(b, a) for a, b in sides}
    assert set(map(tuple, ei_d.numpy().T.tolist())) == sides
    assert ei_d.size(1) <= 6 * n and (ew_d > 0).all()
    # binary weights and self-loops on request
    ei_b, ew_b, _ = proximity.connect(pos, method="knn", k=3, weight="binary", include_self=True)
    assert (ew_b == 1).all() and int((ei_b[0] == ei_b[1]).sum()) == n


def test_connect_returns_stgraph_and_rejects_bad_input(bay):
    _, loc = bay
    pos = loc[["lon", "lat"]].to_numpy()
    g = STGraph(x=torch.zeros(len(pos), 2, 1), pos=torch.from_numpy(pos), meta={"city": "bay"})
    h = proximity.connect_graph(g, method="knn", k=4)
    assert isinstance(h, STGraph) and h.edge_index.size(1) == 4 * len(pos)
    assert torch.equal(h.edge_index, proximity.connect(pos, method="knn", k=4).edge_index)
    with pytest.raises(DataFormatError, match="connect_graph"):
        proximity.connect(g, method="knn")
    with pytest.warns(DeprecationWarning, match="'radius_m'"):
        old = proximity.connect(pos, method="radius", radius=2000.0)
    assert torch.equal(old.edge_index, proximity.connect(pos, method="radius", radius_m=2000.0)[0])
    assert h.meta["proximity"]["method"] == "knn" and g.edge_index is None
    h.validate()
    bad = pos.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match="row 7"):
        proximity.connect(bad, method="knn")
    with pytest.raises(ValueError, match="method='mst'"):
        proximity.connect(pos, method="mst")
    with pytest.raises(ValueError, match="node_ids"):
        proximity.connect(pos, distances=pd.DataFrame({"a": [1], "b": [2], "c": [3.0]}))
