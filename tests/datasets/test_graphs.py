"""The registry's proximity graphs use the one Gaussian kernel and its one sigma rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stgraph import datasets
from stgraph.data.weights import gaussian_affinity
from stgraph.datasets._graphs import proximity_edges
from stgraph.utils.geo import haversine_matrix

# four points on a line of longitudes at the equator, ~1.11 km apart, and one far off
LON = np.array([0.0, 0.01, 0.02, 0.03, 0.2])
LAT = np.zeros(5)


def test_sigma_is_the_std_of_all_distances_diagonal_included():
    d = haversine_matrix(LON, LAT)
    _, _, info = proximity_edges(LON, LAT, method="gaussian", threshold=0.0)
    assert info["sigma_m"] == pytest.approx(float(d.std()))  # all 25 entries, zeros included
    assert info["sigma_m"] != pytest.approx(float(d[~np.eye(5, dtype=bool)].std()))


@pytest.mark.parametrize("method", ["knn", "gaussian"])
def test_weights_are_gaussian_affinity_of_the_distances(method):
    d = haversine_matrix(LON, LAT)
    ei, w, info = proximity_edges(LON, LAT, method=method, k=2, threshold=0.1)
    expected = gaussian_affinity(torch.from_numpy(d))[ei[0], ei[1]].float()
    assert torch.allclose(w, expected)
    assert not (ei[0] == ei[1]).any()
    if method == "knn":  # every node receives its two nearest, sorted by source
        assert torch.bincount(ei[1], minlength=5).tolist() == [2] * 5
    else:  # kept pairs are exactly those with weight >= threshold
        full = gaussian_affinity(torch.from_numpy(d)).numpy()
        keep = (full >= 0.1) & ~np.eye(5, dtype=bool)
        assert ei.shape[1] == int(keep.sum())
    ei2, w2, _ = proximity_edges(LON, LAT, method=method, k=2, threshold=0.1, sigma=2000.0)
    d2 = torch.from_numpy(d)[ei2[0], ei2[1]]
    assert ei2.shape[1] > 0 and torch.allclose(w2, torch.exp(-((d2 / 2000.0) ** 2)).float())


def test_melbourne_sigma(data_dir):
    g = datasets.load("melbourne-pedestrian", root=data_dir)
    assert g.meta["graph"]["sigma_m"] == pytest.approx(674.9, abs=0.05)  # 662.0 off-diagonal
    assert g.edge_index.shape[1] == 55 * 8
