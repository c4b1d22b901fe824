"""PyG-style layers -> blocks -> models of the STFM backbone (one layer per module).

Every layer has ``reset_parameters()``, a typed ``forward`` and a docstring with its idea,
formula and shapes; none has a parameter that depends on the number of nodes or on the graph.

The backbone in a plain PyG training loop, outside the stgraph trainer::

    import torch
    from torch_geometric.loader import DataLoader
    from stgraph import datasets
    from stgraph.data import SlidingWindows
    from stgraph.nn import STFM

    graph = datasets.load("los-loop")                  # STGraph: x [N, T, V], mask, time, pos, ...
    loader = DataLoader(SlidingWindows(graph, 12, 12, stop=1600), batch_size=32, shuffle=True)
    model = STFM(channels=64, depth=2, patch_len=6, levels=2)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for batch in loader:                               # a PyG Batch of windows
        pred = model(batch)                            # [B*N, 12, V], original units
        loss = ((pred - batch.y).abs() * batch.y_mask).sum() / batch.y_mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

The same weights then run on any other graph (``model(other_batch)``); the per-graph structure
(random-walk encodings, KD coarsening) is computed on first use and cached.
"""

from stgraph.nn.blocks.st_block import STBlock
from stgraph.nn.heads.anomaly import AnomalyScoreHead
from stgraph.nn.heads.classification import GraphClassificationHead, NodeClassificationHead
from stgraph.nn.heads.forecast import ForecastHead
from stgraph.nn.heads.kriging import KrigingHead
from stgraph.nn.heads.reconstruction import ReconstructionHead
from stgraph.nn.layers.dcgru_cell import DCGRUCell
from stgraph.nn.layers.diffusion_conv import DiffusionConv, DiffusionSupports, diffusion_supports
from stgraph.nn.layers.directed_conv import DirectedDynamicConv, normalized_adjacency
from stgraph.nn.layers.feed_forward import FeedForward
from stgraph.nn.layers.hierarchical_pooling import HierarchicalPooling
from stgraph.nn.layers.instance_norm import MaskedInstanceNorm
from stgraph.nn.layers.name_encoder import VariableNameEncoder, encode_name
from stgraph.nn.layers.node_context import NodeContextEncoder
from stgraph.nn.layers.partition_attention import PartitionAttention
from stgraph.nn.layers.patch_tokenizer import PatchTokenizer, patchify
from stgraph.nn.layers.spatial_encoding import SpatialEncoding
from stgraph.nn.layers.step_recurrence import StepRecurrence
from stgraph.nn.layers.temporal_mixing import TemporalMixing
from stgraph.nn.layers.time_encoding import TimeEncoding, time_features
from stgraph.nn.layers.variable_attention import VariableCrossAttention
from stgraph.nn.layers.variable_readout import VariableReadout
from stgraph.nn.models.stfm import STFM, STFMState
from stgraph.nn.structure import (
    GraphStructure,
    attention_groups,
    batch_structure,
    cached_structure,
    clear_structure_cache,
    coarsen,
    compute_structure,
    kd_partition,
    random_walk_encoding,
    relative_coordinates,
)

__all__ = [
    "DCGRUCell",
    "DiffusionConv",
    "DiffusionSupports",
    "diffusion_supports",
    "STFM",
    "AnomalyScoreHead",
    "DirectedDynamicConv",
    "FeedForward",
    "ForecastHead",
    "GraphClassificationHead",
    "GraphStructure",
    "HierarchicalPooling",
    "KrigingHead",
    "MaskedInstanceNorm",
    "NodeClassificationHead",
    "NodeContextEncoder",
    "PartitionAttention",
    "PatchTokenizer",
    "ReconstructionHead",
    "STBlock",
    "STFMState",
    "SpatialEncoding",
    "StepRecurrence",
    "TemporalMixing",
    "TimeEncoding",
    "VariableCrossAttention",
    "VariableNameEncoder",
    "VariableReadout",
    "attention_groups",
    "batch_structure",
    "cached_structure",
    "clear_structure_cache",
    "coarsen",
    "compute_structure",
    "encode_name",
    "kd_partition",
    "normalized_adjacency",
    "patchify",
    "random_walk_encoding",
    "relative_coordinates",
    "time_features",
]
