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
    model = STFM()                                     # configs/model/small.yaml
    graph = model.transform(graph)                     # structure + edge affinities, once
    loader = DataLoader(SlidingWindows(graph, 12, 12, stop=1600), batch_size=32, shuffle=True)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    for batch in loader:                               # a PyG Batch of windows
        pred = model(batch)                            # [B*N, 12, V], original units
        loss = ((pred - batch.y).abs() * batch.y_mask).sum() / batch.y_mask.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

The same weights then run on any other graph (``model(other_batch)``). The per-graph structure
(random-walk encodings, KD coarsening, edge affinities) is :class:`AddGraphStructure`, a PyG
transform: applied once to the graph, every window and batch of it carries the result; a graph
that was not transformed is transformed at every forward pass (correct, but slower).
"""

from stgraph.nn.adapters import (
    DEFAULT_TARGETS,
    LoRA,
    adapter_names,
    adapter_parameters,
    add_adapters,
    merge_adapters,
)
from stgraph.nn.blocks.st_block import STBlock
from stgraph.nn.heads.anomaly import AnomalyScoreHead
from stgraph.nn.heads.classification import GraphClassificationHead, NodeClassificationHead
from stgraph.nn.heads.forecast import ForecastHead
from stgraph.nn.heads.kriging import KrigingHead
from stgraph.nn.heads.reconstruction import ReconstructionHead
from stgraph.nn.layers.dcgru_cell import DCGRUCell
from stgraph.nn.layers.diffusion_conv import DiffusionConv, DiffusionSupports, diffusion_supports
from stgraph.nn.layers.directed_conv import DirectedDynamicConv
from stgraph.nn.layers.feed_forward import FeedForward
from stgraph.nn.layers.hierarchical_pooling import HierarchicalPooling
from stgraph.nn.layers.instance_norm import MaskedInstanceNorm
from stgraph.nn.layers.name_encoder import VariableNameEncoder, encode_name
from stgraph.nn.layers.node_context import NodeContextEncoder
from stgraph.nn.layers.partition_attention import PartitionAttention
from stgraph.nn.layers.patch_tokenizer import PatchTokenizer, patchify
from stgraph.nn.layers.seasonal import SeasonalAnchor
from stgraph.nn.layers.spatial_encoding import SpatialEncoding
from stgraph.nn.layers.temporal_mixing import TemporalMixing
from stgraph.nn.layers.time_encoding import TimeEncoding, time_features
from stgraph.nn.layers.variable_attention import VariableCrossAttention
from stgraph.nn.layers.variable_readout import VariableReadout
from stgraph.nn.models.stfm import STFM, STFMState
from stgraph.nn.sparse import SparseOperator, normalized_adjacency, random_walk_weights
from stgraph.nn.structure import (
    AddGraphStructure,
    GraphStructure,
    attention_groups,
    coarsen,
    compute_structure,
    kd_partition,
    random_walk_encoding,
    relative_coordinates,
    structure_tensors,
)

__all__ = [
    "DEFAULT_TARGETS",
    "LoRA",
    "adapter_names",
    "adapter_parameters",
    "add_adapters",
    "merge_adapters",
    "AddGraphStructure",
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
    "SeasonalAnchor",
    "ReconstructionHead",
    "STBlock",
    "STFMState",
    "SpatialEncoding",
    "SparseOperator",
    "TemporalMixing",
    "TimeEncoding",
    "VariableCrossAttention",
    "VariableNameEncoder",
    "VariableReadout",
    "attention_groups",
    "coarsen",
    "compute_structure",
    "encode_name",
    "kd_partition",
    "normalized_adjacency",
    "patchify",
    "random_walk_encoding",
    "random_walk_weights",
    "relative_coordinates",
    "structure_tensors",
    "time_features",
]
