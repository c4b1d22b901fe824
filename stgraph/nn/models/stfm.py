"""The STFM backbone: one set of weights for any graph, variables and sampling interval."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Batch

from stgraph.data.stgraph import STGraph, resolve_interval
from stgraph.data.weights import model_edge_weights
from stgraph.data.windows import last_observed
from stgraph.nn.blocks.st_block import STBlock
from stgraph.nn.heads.anomaly import AnomalyScoreHead
from stgraph.nn.heads.classification import GraphClassificationHead, NodeClassificationHead
from stgraph.nn.heads.forecast import ForecastHead
from stgraph.nn.heads.kriging import KrigingHead
from stgraph.nn.heads.reconstruction import ReconstructionHead
from stgraph.nn.layers.hierarchical_pooling import HierarchicalPooling
from stgraph.nn.layers.instance_norm import MaskedInstanceNorm
from stgraph.nn.layers.name_encoder import VariableNameEncoder
from stgraph.nn.layers.node_context import NodeContextEncoder
from stgraph.nn.layers.patch_tokenizer import PatchTokenizer
from stgraph.nn.layers.seasonal import SeasonalAnchor
from stgraph.nn.layers.spatial_encoding import SpatialEncoding
from stgraph.nn.layers.time_encoding import CALENDAR, TimeEncoding
from stgraph.nn.layers.variable_attention import VariableCrossAttention
from stgraph.nn.sparse import normalized_adjacency
from stgraph.nn.structure import AddGraphStructure, GraphStructure, broadcast_graphs

#: Tasks whose heads decode the input window: they share one reconstruction readout.
RECONSTRUCTION_TASKS = ("reconstruction", "anomaly", "kriging")


@dataclass
class STFMState:
    """What :meth:`STFM.encode` returns: tokens plus what the heads need to decode them."""

    tokens: Tensor  # [N, S, C]
    loc: Tensor  # [N, 1, V]
    scale: Tensor  # [N, 1, V]
    x_norm: Tensor  # [N, L, V]
    mask: Tensor  # [N, L, V]
    var_emb: Tensor  # [V, C]
    batch: Tensor  # [N]
    last_time: Tensor  # [B] unix seconds of the last input step
    interval: Tensor  # [B] seconds
    structure: GraphStructure
    global_scale: Tensor | None = None  # [N, 1, V] the graph-level std of each variable
    last_value: Tensor | None = None  # [N, 1, V] last observed input (loc where none)
    season: Tensor | None = None  # [N, H, V] seasonal reference of the target steps
    season_mask: Tensor | None = None  # [N, H, V]
    season_skill: Tensor | None = None  # [N, V, 2] the reference's skill on the input window
    season_gap: Tensor | None = None  # [N, 1, V] the input's last gap to its reference
    season_gap_scale: Tensor | None = None  # [N, 1, V] its mean absolute gap


def _transform_batch(transform: AddGraphStructure, data: Batch) -> Batch:
    """A shallow copy of ``data`` with the structure and affinities of each of its graphs (as
    :class:`~stgraph.nn.AddGraphStructure` gives them), batched by PyG's own rule. Edges of a PyG
    batch are stored graph after graph, so each graph's edges are a contiguous run."""
    ptr = [int(v) for v in data.ptr.tolist()]
    starts = torch.tensor(ptr[1:], device=data.x.device)
    metas = {k: data.meta_values(k) for k in ("crs", "edge_weight", "dyn_edge_weight")}
    runs = {}
    for key in ("edge_index", "dyn_edge_index"):
        index = data.get(key)
        if index is not None:
            owner = torch.bucketize(index[0], starts, right=True)
            runs[key] = (index, torch.bincount(owner, minlength=len(ptr) - 1).tolist())
    parts, offset = [], {k: 0 for k in runs}
    for g in range(len(ptr) - 1):
        a, b = ptr[g], ptr[g + 1]
        part = STGraph(meta={k: v[g] for k, v in metas.items()}, validate=False)
        part.num_nodes = b - a
        part.x = data.x[a:b]
        if data.pos is not None:
            part.pos = data.pos[a:b]
        for key, (index, counts) in runs.items():
            e0, e1 = offset[key], offset[key] + counts[g]
            part[key] = index[:, e0:e1] - a
            weight = data.get(key.replace("index", "weight"))
            if weight is not None:
                part[key.replace("index", "weight")] = weight[e0:e1]
            offset[key] = e1
        transform.forward(part)
        for key in ("x", "pos", "edge_index", "edge_weight", "dyn_edge_index", "dyn_edge_weight"):
            if key in part._store:
                del part[key]
        parts.append(part)
    derived = Batch.from_data_list(parts)
    out = copy.copy(data)
    for key in derived.keys():
        if key not in ("batch", "ptr", "meta", "num_nodes"):
            out[key] = derived[key]
    return out


class STFM(torch.nn.Module):
    r"""Spatio-temporal foundation backbone: patch tokens -> [STBlock] x depth -> graph U-Net.

    1. :class:`MaskedInstanceNorm` per node and variable (undone by the heads);
    2. :class:`PatchTokenizer` per node, variable and patch of ``P`` steps, variable tokens from
       :class:`VariableNameEncoder` (character-level: unseen names still embed), merged by
       :class:`VariableCrossAttention` with the patch's :class:`TimeEncoding` as query offset;
    3. :class:`SpatialEncoding` (random-walk encoding, relative coordinates, optional
       :class:`NodeContextEncoder` of named static features);
    4. ``depth`` :class:`STBlock` (temporal attention, directed/dynamic message passing,
       partition attention), then :class:`HierarchicalPooling` over ``levels`` KD levels;
    5. heads: :class:`ForecastHead` (any horizon) and, on request, one reconstruction readout
       (shared by the reconstruction, anomaly and kriging heads) and classification heads; the
       forecast is de-normalised around the window mean, the last observed value or a learned
       blend of the two (``anchor``).

    The per-graph structure (random-walk encodings, KD coarsening, edge affinities) comes from
    :attr:`transform`, an :class:`~stgraph.nn.AddGraphStructure` with this model's options:
    apply it once per graph (``graph = model.transform(graph)``) and every window and batch of the
    graph carries it; a graph without it is transformed at every call (correct, not cached).

    No parameter depends on the number of nodes, node identity, the variables or the city;
    every cost is linear in ``N`` (attention only within cells of at most ``cluster_size``).
    The defaults are ``configs/model/small.yaml``, the measured single-city model: ``STFM()`` is
    that model.

    Args:
        channels (int): token size ``C`` (default ``64``).
        depth (int): number of :class:`STBlock` (default ``2``).
        heads (int): attention heads (default ``4``).
        patch_len (int): steps per token ``P`` (default ``3``).
        levels (int): coarse levels of the U-Net (default ``2``; ``0`` disables it).
        cluster_size (int): maximum items per KD cell (default ``16``).
        rwse_steps (int): random-walk encoding length (default ``6``).
        ffn_ratio (float): feed-forward expansion (default ``2.0``).
        dropout (float): dropout (default ``0.0``).
        norm_eps (float): relative floor of the instance normalisation (default ``0.1``).
        tasks (sequence of str): extra heads among ``"reconstruction"``, ``"anomaly"``,
            ``"kriging"`` (default none); any of them builds the one reconstruction readout.
        node_classes (int): classes of a node classification head (default ``0``: none).
        graph_classes (int): classes of a graph classification head (default ``0``: none).
        calendar (sequence of str): calendar parts of the :class:`TimeEncoding` (default
            ``("time_of_day", "day_of_week")``).
        global_residual (bool): the forecast adds to the de-normalised per-node forecast a
            second term on the graph's scale, :math:`\hat y = \mu_n + \sigma_n \hat z_1 +
            s_g \hat z_2`, so that a large change after a quiet window (a jam building up on a
            free-flowing road, where :math:`\sigma_n` is small) needs no huge normalised output
            (default ``True``).
        anchor (str): the level the forecast is de-normalised around: ``"mean"``, the window
            mean :math:`\mu_n` of the instance normalisation (RevIN); ``"last"``, the last
            observed value (NLinear's normalisation); or ``"blend"``,
            :math:`\mu_n + a_{hv}\,(x_{\text{last}} - \mu_n)` with :math:`a_{hv} =
            \sigma\big((q_h W) \cdot e_v / \sqrt C + b^\top e_v\big)` learned from the target
            step's time query and the variable (near steps lean on the last value, far ones on
            the mean; default ``"blend"``).
        pos_frequencies (int): Fourier octaves of the relative coordinates in the
            :class:`SpatialEncoding` (default ``0``: only the smooth coordinates, which on a
            single city are less of a node identity to memorise).
        graph_values (bool): the :class:`PatchTokenizer` also embeds the inputs on the graph's
            scale, next to the instance-normalised ones (default ``True``).
        decoder_hops (int): diffusion hops between neighbouring nodes' target steps in the
            :class:`ForecastHead` (``graph_hops``; default ``1``).
        season (bool or str): read the window's seasonal reference (``season``/``season_mask``
            of :class:`~stgraph.data.SlidingWindows`) with a :class:`SeasonalAnchor`: the tokens
            see the input's gap to it, and ``True`` (= ``"level"``) moves the forecast's level
            towards it by a learned gate, ``"anomaly"`` forecasts the reference plus a gated
            share of the input's last gap to it, with the residual in that gap's scale
            (default ``False``; the pretrained foundation model sets ``"anomaly"``).

    Shapes:
        - **input:** ``x``, ``mask`` :math:`(N, L, V)`, ``time`` :math:`(B, L)`, graph tensors
        - **output:** :meth:`forecast` :math:`(N, H, V)` in the units of ``x``
    """

    def __init__(
        self,
        channels: int = 64,
        *,
        depth: int = 2,
        heads: int = 4,
        patch_len: int = 3,
        levels: int = 2,
        cluster_size: int = 16,
        rwse_steps: int = 6,
        ffn_ratio: float = 2.0,
        dropout: float = 0.0,
        norm_eps: float = 0.1,
        tasks: tuple[str, ...] | list[str] = (),
        node_classes: int = 0,
        graph_classes: int = 0,
        calendar: tuple[str, ...] | list[str] = CALENDAR,
        global_residual: bool = True,
        anchor: str = "blend",
        pos_frequencies: int = 0,
        graph_values: bool = True,
        decoder_hops: int = 1,
        season: bool | str = False,
    ) -> None:
        super().__init__()
        if season not in (False, True, *SeasonalAnchor.MODES):
            raise ValueError(f"season={season!r}: expected a bool, 'level' or 'anomaly'")
        unknown = set(tasks) - set(RECONSTRUCTION_TASKS)
        if unknown:
            raise ValueError(
                f"unknown tasks {sorted(unknown)}; known: reconstruction, anomaly, kriging"
            )
        self.channels, self.depth, self.heads, self.patch_len = channels, depth, heads, patch_len
        self.levels, self.cluster_size, self.rwse_steps = levels, cluster_size, rwse_steps
        self.tasks = tuple(tasks)
        self.norm = MaskedInstanceNorm(norm_eps)
        self.names = VariableNameEncoder(channels)
        self.tokenizer = PatchTokenizer(patch_len, channels, graph_values=graph_values)
        self.time_encoding = TimeEncoding(channels, calendar)
        self.merge = VariableCrossAttention(channels, heads)
        self.spatial = SpatialEncoding(channels, rwse_steps, pos_frequencies)
        self.context = NodeContextEncoder(channels)
        self.blocks = torch.nn.ModuleList(
            STBlock(channels, heads, ffn_ratio, dropout) for _ in range(depth)
        )
        self.hierarchy = (
            HierarchicalPooling(channels, levels, heads, ffn_ratio, dropout) if levels else None
        )
        self.final_norm = torch.nn.LayerNorm(channels)
        self.global_residual = bool(global_residual)
        self.forecast_head = ForecastHead(
            channels, heads, outputs=2 if global_residual else 1, graph_hops=decoder_hops
        )
        if anchor not in ("mean", "last", "blend"):
            raise ValueError(f"anchor={anchor!r}: expected 'mean', 'last' or 'blend'")
        self.anchor = anchor
        # blend: per target step and variable, a = sigmoid((q W) . e_v + b . e_v) of the time query
        self.anchor_query = torch.nn.Linear(channels, channels) if anchor == "blend" else None
        self.anchor_bias = torch.nn.Linear(channels, 1) if anchor == "blend" else None
        # one readout of the input window for every head that decodes it
        self.reconstruction_head = (
            ReconstructionHead(channels, patch_len)
            if any(t in self.tasks for t in RECONSTRUCTION_TASKS)
            else None
        )
        mode = "level" if season is True else season
        self.seasonal = SeasonalAnchor(channels, patch_len, mode) if mode else None
        self.anomaly_head = AnomalyScoreHead() if "anomaly" in self.tasks else None
        self.kriging_head = KrigingHead() if "kriging" in self.tasks else None
        self.node_head = NodeClassificationHead(channels, node_classes) if node_classes else None
        self.graph_head = (
            GraphClassificationHead(channels, graph_classes) if graph_classes else None
        )

    @property
    def transform(self) -> AddGraphStructure:
        """The :class:`~stgraph.nn.AddGraphStructure` this model reads (its ``rwse_steps``,
        ``cluster_size`` and the ``levels + 2`` KD levels its attention and pooling use)."""
        return AddGraphStructure(self.rwse_steps, self.cluster_size, self.levels + 2)

    def reset_parameters(self) -> None:
        for m in self.children():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            elif isinstance(m, torch.nn.ModuleList):
                for b in m:
                    b.reset_parameters()

    # ------------------------------------------------------------------ encoder
    def encode(
        self,
        x: Tensor,
        mask: Tensor,
        edge_index: Tensor,
        *,
        structure: GraphStructure,
        time: Tensor | None = None,
        batch: Tensor | None = None,
        edge_weight: Tensor | None = None,
        node_attr: Tensor | None = None,
        node_attr_names: list[str] | None = None,
        dyn_edge_index: Tensor | None = None,
        dyn_edge_time: Tensor | None = None,
        dyn_edge_weight: Tensor | None = None,
        variables: list[str] | None = None,
        units: list[str] | None = None,
        interval: Tensor | None = None,
        season: Tensor | None = None,
        season_mask: Tensor | None = None,
    ) -> STFMState:
        """Tokens of every node (see the class docstring), from tensors.

        Args:
            x, mask: ``[N, L, V]``.
            edge_index: ``[2, E]``.
            structure: the :class:`~stgraph.nn.structure.GraphStructure` of the graph (or batch);
                its adjacencies are built from ``edge_index``/``edge_weight`` when it has none.
            time: ``[B, L]`` (or ``[L]``) unix seconds; ``None``: step indices times ``interval``.
            batch: ``[N]`` graph of each node (default: one graph).
            edge_weight: ``[E]`` affinities (see :func:`~stgraph.data.model_edge_weights`).
            interval: ``[B]`` seconds per step; ``None``: the median step of each row of
                ``time`` (:func:`~stgraph.data.resolve_interval`), an error without ``time``.
            season, season_mask: ``[N, L + H, V]`` the window's seasonal reference
                (:func:`~stgraph.data.seasonal_reference`), read with ``season=True``.
        """
        n, length, v = x.shape
        dev = x.device
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=dev)
        if time is not None and time.dim() == 1:
            time = time.view(1, -1)
        if interval is None:
            rows = [None] if time is None else list(time)
            interval = torch.tensor([resolve_interval(None, r) for r in rows], dtype=torch.long)
        interval = interval.to(dev).view(-1)
        if time is None:  # no timestamps: calendar features of step indices only
            time = torch.arange(length, device=dev).view(1, -1) * interval.view(-1, 1).long()
        structure = structure.to(dev)
        if structure.adj is None:  # adjacencies of the graph's edges, kept for the heads
            adj = normalized_adjacency(edge_index, edge_weight, n)
            structure = dataclasses.replace(structure, adj=adj)
        adj = structure.adj
        x_norm, loc, scale, level = self.norm(x, mask, batch, edge_index, edge_weight)
        variables = variables or [f"var{i}" for i in range(v)]
        if len(variables) != v:
            raise ValueError(f"{len(variables)} variable names for {v} variables in x")
        var_emb = self.names(variables, units)
        tokens, valid = self.tokenizer(x_norm, mask, level, var_emb)  # [N,S,V,C], [N,S,V]
        s = tokens.size(1)
        pad = s * self.patch_len - length
        last = (
            (torch.arange(s, device=dev) + 1) * self.patch_len - 1 - pad
        )  # last step of each patch
        te = broadcast_graphs(self.time_encoding(time[:, last], interval), batch)  # [N,S,C]
        h = self.merge(tokens, valid, te) + te
        ctx = None
        if node_attr is not None and node_attr.numel():
            names = node_attr_names or [f"attr{i}" for i in range(node_attr.size(1))]
            ctx = self.context(node_attr, self.names(list(names)), batch)
        h = h + self.spatial(structure.rwse, structure.rel_pos, structure.has_pos, ctx).unsqueeze(1)
        future = (None, None, None, None, None)
        if self.seasonal is not None:
            if season is None or season_mask is None:  # no reference: as if none was observed
                season = torch.zeros_like(x)
                season_mask = torch.zeros_like(mask)
            h = h + self.seasonal.embed(
                x, mask, season[:, :length], season_mask[:, :length], loc, scale
            )
            past, past_ok = season[:, :length], season_mask[:, :length]
            skill = self.seasonal.input_skill(x, mask, past, past_ok)
            future = (season[:, length:], season_mask[:, length:], skill, None, None)
            if self.seasonal.mode == "anomaly":
                gap = self.seasonal.input_anomaly(x, mask, past, past_ok, scale)
                future = (*future[:3], *gap)
        dyn_step = None
        if dyn_edge_index is not None and dyn_edge_index.numel():
            dyn_step = torch.div(dyn_edge_time + pad, self.patch_len, rounding_mode="floor")
        last_value = None
        if self.anchor != "mean":  # last observed value per node and variable
            value, found = last_observed(x, mask)  # [N, V] each
            last_value = torch.where(found.unsqueeze(1), value.unsqueeze(1), loc)
        for block in self.blocks:
            h = block(h, adj, structure, dyn_edge_index, dyn_step, dyn_edge_weight)
        if self.hierarchy is not None:
            h = self.hierarchy(h, structure)
        h = self.final_norm(h)
        global_scale = None  # only the global-residual forecast reads it; level is log(sigma / s_g)
        if self.global_residual:
            global_scale = scale * torch.exp(-level[:, :, 1]).unsqueeze(1)
        return STFMState(
            h,
            loc,
            scale,
            x_norm,
            mask,
            var_emb,
            batch,
            time[:, -1],
            interval,
            structure,
            global_scale,
            last_value,
            *future,
        )

    def with_structure(self, data: STGraph) -> STGraph:
        """``data`` if it carries this model's structure (see :attr:`transform`), else a
        transformed shallow copy (each graph of a PyG batch on its own; nothing is cached).

        Raises:
            ValueError: ``data`` carries structure built with other options.
        """
        transform = self.transform
        ok = transform.matches(data)
        if ok:
            return data
        if ok is False:
            raise ValueError(
                f"the graph carries structure built with other options than this model's "
                f"{transform!r}; apply model.transform to the graph again"
            )
        if isinstance(data, Batch):
            return _transform_batch(transform, data)
        return transform(data)

    def encode_data(self, data: STGraph) -> STFMState:
        """:meth:`encode` on an :class:`~stgraph.data.STGraph` or a PyG batch of them, read
        from its typed attributes (structure, affinities, ``variables``, ``units``,
        ``node_attr_names``, ``intervals``)."""
        data = self.with_structure(data)
        edge_weight, dyn_edge_weight = model_edge_weights(data)  # distances -> affinities
        edge_index = data.edge_index
        if edge_index is None:
            edge_index = torch.empty(2, 0, dtype=torch.long, device=data.x.device)
        adj = normalized_adjacency(edge_index, edge_weight, data.x.size(0))
        return self.encode(
            data.x,
            data.mask,
            edge_index,
            structure=GraphStructure.from_data(data, adj),
            time=data.time,
            batch=data.get("batch"),
            edge_weight=edge_weight,
            node_attr=data.node_attr,
            node_attr_names=data.node_attr_names if data.node_attr is not None else None,
            dyn_edge_index=data.dyn_edge_index,
            dyn_edge_time=data.dyn_edge_time,
            dyn_edge_weight=dyn_edge_weight,
            variables=data.variables,
            units=data.units,
            interval=data.intervals,
            season=data.get("season"),
            season_mask=data.get("season_mask"),
        )

    # ------------------------------------------------------------------ heads
    def forecast(
        self, state: STFMState, *, y_time: Tensor | None = None, horizon: int | None = None
    ) -> Tensor:
        """Forecast ``[N, H, V]`` in original units, at ``y_time`` ``[B, H]`` (or the next
        ``horizon`` steps at the input's interval)."""
        if y_time is None:
            if horizon is None:
                raise ValueError("forecast: pass y_time or horizon")
            steps = torch.arange(1, horizon + 1, device=state.tokens.device)
            y_time = state.last_time.view(-1, 1) + steps.view(1, -1) * state.interval.view(-1, 1)
        if y_time.dim() == 1:
            y_time = y_time.view(1, -1)
        lead = (y_time - state.last_time.view(-1, 1)).float()
        query = self.time_encoding(y_time, state.interval, lead)  # [B,H,C]
        y = self.forecast_head(state.tokens, query, state.var_emb, state.batch, state.structure.adj)
        loc = state.loc
        if self.anchor == "last":
            loc = state.last_value
        elif self.anchor_query is not None and self.anchor_bias is not None:
            logit = torch.einsum("bhc,vc->bhv", self.anchor_query(query), state.var_emb)
            logit = logit / state.var_emb.size(-1) ** 0.5 + self.anchor_bias(state.var_emb).view(
                1, 1, -1
            )
            a = broadcast_graphs(torch.sigmoid(logit), state.batch)  # [N, H, V]
            loc = state.loc + a * (state.last_value - state.loc)
        scale = state.scale
        reference = (
            self.seasonal is not None
            and state.season is not None
            and state.season.size(1) == y.size(1)
        )
        if reference and self.seasonal.mode == "anomaly":
            loc, scale = self.seasonal.anomaly_anchor(
                loc,
                scale,
                state.season,
                state.season_mask,
                state.season_gap,
                state.season_gap_scale,
                query,
                state.tokens[:, -1],
                state.var_emb,
                state.batch,
                state.season_skill,
            )
        elif reference:
            loc = self.seasonal.anchor(
                loc,
                state.season,
                state.season_mask,
                query,
                state.tokens[:, -1],
                state.var_emb,
                state.batch,
                state.season_skill,
            )
        if self.global_residual:
            return MaskedInstanceNorm.inverse(y[..., 0], loc, scale) + (
                y[..., 1] * state.global_scale
            )
        return MaskedInstanceNorm.inverse(y, loc, scale)

    def _readout(self, state: STFMState, task: str) -> Tensor:
        """The shared reconstruction readout ``[N, L, V]`` in normalised units."""
        if self.reconstruction_head is None:
            raise RuntimeError(
                f"this STFM was built without tasks=[{task!r}] (tasks reconstruction, anomaly or "
                "kriging build its reconstruction readout)"
            )
        return self.reconstruction_head(state.tokens, state.var_emb, state.x_norm.size(1))

    def reconstruct(self, state: STFMState) -> Tensor:
        """The input window ``[N, L, V]`` in original units (needs a reconstruction readout)."""
        y = self._readout(state, "reconstruction")
        return MaskedInstanceNorm.inverse(y, state.loc, state.scale)

    def anomaly_score(self, state: STFMState) -> tuple[Tensor, Tensor]:
        """Per-entry ``[N, L, V]`` and per-node ``[N]`` anomaly scores (needs the anomaly task)."""
        if self.anomaly_head is None:
            raise RuntimeError("this STFM was built without tasks=['anomaly']")
        return self.anomaly_head(self._readout(state, "anomaly"), state.x_norm, state.mask)

    def krige(self, state: STFMState, index: Tensor | None = None) -> Tensor:
        """Estimated window ``[K, L, V]`` at nodes ``index`` (needs the kriging task)."""
        if self.kriging_head is None:
            raise RuntimeError("this STFM was built without tasks=['kriging']")
        return self.kriging_head(self._readout(state, "kriging"), state.loc, state.scale, index)

    def classify_nodes(self, state: STFMState) -> Tensor:
        """Node class logits ``[N, K]`` (needs ``node_classes``)."""
        if self.node_head is None:
            raise RuntimeError("this STFM was built without node_classes")
        return self.node_head(state.tokens)

    def classify_graphs(self, state: STFMState) -> Tensor:
        """Graph class logits ``[B, K]`` (needs ``graph_classes``)."""
        if self.graph_head is None:
            raise RuntimeError("this STFM was built without graph_classes")
        return self.graph_head(state.tokens, state.batch)

    def forward(self, data: STGraph, horizon: int | None = None) -> Tensor:
        """Forecast for an :class:`~stgraph.data.STGraph` (batch): at ``data.y_time`` when
        present, else ``horizon`` steps ahead."""
        state = self.encode_data(data)
        y_time = getattr(data, "y_time", None)
        if y_time is not None and horizon is not None and y_time.size(-1) != horizon:
            y_time = None
        return self.forecast(state, y_time=y_time, horizon=horizon)

    def __repr__(self) -> str:
        fh = self.forecast_head
        extra = [
            "global_residual=False" if not self.global_residual else "",
            f"anchor={self.anchor!r}" if self.anchor != "blend" else "",
            f"pos_frequencies={self.spatial.frequencies}" if self.spatial.frequencies else "",
            "graph_values=False" if not self.tokenizer.graph_values else "",
            f"decoder_hops={fh.graph_hops}" if fh.graph_hops != 1 else "",
            ""
            if self.seasonal is None
            else (
                "season=True" if self.seasonal.mode == "level" else f"season={self.seasonal.mode!r}"
            ),
        ]
        return (
            f"{self.__class__.__name__}(channels={self.channels}, depth={self.depth}, "
            f"heads={self.heads}, patch_len={self.patch_len}, levels={self.levels}, "
            f"cluster_size={self.cluster_size}" + "".join(f", {e}" for e in extra if e) + ")"
        )
