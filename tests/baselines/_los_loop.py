"""Los-loop for the model tests: the registry when it works, else read from the CSVs directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stgraph.data import STGraph

#: T-GCN protocol: first 80 % of the 2016 steps train, the rest test.
TRAIN_STEPS = int(2016 * 0.8)


def load_los_loop(data_dir: Path) -> STGraph:
    """Los-loop as an :class:`STGraph`: 207 sensors, 2016 five-minute steps from 2012-03-01."""
    try:
        from stgraph.datasets import load

        return load("los-loop", root=data_dir, download=False)
    except ImportError:  # the registry is being written in parallel
        pass
    import pandas as pd

    speed = pd.read_csv(data_dir / "los-loop" / "los_speed.csv")
    adj = np.loadtxt(data_dir / "los-loop" / "los_adj.csv", delimiter=",")
    np.fill_diagonal(adj, 0.0)  # like the registry: self-loops are not edges
    src, dst = np.nonzero(adj)
    t0 = int(pd.Timestamp("2012-03-01", tz="UTC").timestamp())
    return STGraph(
        x=torch.tensor(speed.to_numpy().T, dtype=torch.float32).unsqueeze(-1),
        time=t0 + 300 * torch.arange(len(speed)),
        edge_index=torch.tensor(np.stack([src, dst])),
        edge_weight=torch.tensor(adj[src, dst], dtype=torch.float32),
        meta={"interval": 300, "variables": [{"name": "speed", "unit": "mph"}]},
    )
