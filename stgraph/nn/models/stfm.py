"""The STFM backbone: one set of weights for any graph, variables and sampling interval."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from stgraph.data.weights import model_edge_weights
from stgraph.data.windows import last_observed
from stgraph.nn.blocks.st_block import STBlock
from stgraph.nn.heads.anomaly import AnomalyScoreHead
from stgraph.nn.heads.classification import GraphClassificationHead, NodeClassificationHead
from stgraph.nn.heads.forecast import ForecastHead
from stgraph.nn.heads.kriging import KrigingHead
from stgraph.nn.heads.reconstruction import ReconstructionHead
from stgraph.nn.layers.directed_conv import normalized_adjacency
from stgraph.nn.layers.hierarchical_pooling import HierarchicalPooling
from stgraph.nn.layers.instance_norm import MaskedInstanceNorm
from stgraph.nn.layers.name_encoder import VariableNameEncoder
from stgraph.nn.layers.node_context import NodeContextEncoder
from stgraph.nn.layers.patch_tokenizer import PatchTokenizer
from stgraph.nn.layers.spatial_encoding import SpatialEncoding
from stgraph.nn.layers.step_recurrence import StepRecurrence
from stgraph.nn.layers.time_encoding import CALENDAR, TimeEncoding
from stgraph.nn.layers.variable_attention import VariableCrossAttention
from stgraph.nn.structure import GraphStructure, batch_structure, broadcast_graphs


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
    step_state: Tensor | None = None  # [N, V, H_r] state of the step-level recurrent path
    last_value: Tensor | None = None  # [N, 1, V] last observed input (loc where none)


def _first(value: Any) -> Any:
    """A list-valued meta entry, collated by PyG into one list per graph -> the first graph's."""
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple)):
        return value[0]
    return value


def _meta_of(data: Any) -> dict:
    meta = getattr(data, "meta", None) or {}
    out: dict = {}
    variables = meta.get("variables") or []
    if variables and isinstance(variables[0], list):  # collated: one list per graph
        variables = variables[0]
    out["variables"] = [v["name"] for v in variables] or None
    out["units"] = [v.get("unit", "") or "" for v in variables] or None
    crs = meta.get("crs", "EPSG:4326")
    out["crs"] = crs[0] if isinstance(crs, (list, tuple)) else crs
    interval = meta.get("interval")
    if isinstance(interval, Tensor):
        interval = interval.view(-1)
    elif isinstance(interval, (list, tuple)):
        interval = None if any(i is None for i in interval) else torch.tensor(interval).view(-1)
    elif interval is not None:
        interval = torch.tensor([interval])
    out["interval"] = interval
    names = meta.get("node_attr_names")
    out["node_attr_names"] = _first(names) if names else None
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
    5. heads: :class:`ForecastHead` (any horizon) and, on request, reconstruction, anomaly,
       kriging and classification heads; the forecast is de-normalised around the window mean,
       the last observed value or a learned blend of the two (``anchor``); optionally
       (``step_hidden``) a
       :class:`StepRecurrence` path at single-step resolution whose forecast adds to the
       tokens' one, and (``persistence_gate``) a gate towards the last observed value.

    No parameter depends on the number of nodes, node identity, the variables or the city;
    every cost is linear in ``N`` (attention only within cells of at most ``cluster_size``).

    Args:
        channels (int): token size ``C`` (default ``64``).
        depth (int): number of :class:`STBlock` (default ``2``).
        heads (int): attention heads (default ``4``).
        patch_len (int): steps per token ``P`` (default ``4``).
        levels (int): coarse levels of the U-Net (default ``2``; ``0`` disables it).
        cluster_size (int): maximum items per KD cell (default ``16``).
        rwse_steps (int): random-walk encoding length (default ``6``).
        ffn_ratio (float): feed-forward expansion (default ``2.0``).
        dropout (float): dropout (default ``0.0``).
        norm_eps (float): relative floor of the instance normalisation (default ``0.1``).
        tasks (sequence of str): extra heads among ``"reconstruction"``, ``"anomaly"``,
            ``"kriging"`` (default none).
        node_classes (int): classes of a node classification head (default ``0``: none).
        graph_classes (int): classes of a graph classification head (default ``0``: none).
        calendar (sequence of str): calendar parts of the :class:`TimeEncoding` (default
            ``("time_of_day", "day_of_week")``).
        global_residual (bool): the forecast adds to the de-normalised per-node forecast a
            second term on the graph's scale, :math:`\hat y = \mu_n + \sigma_n \hat z_1 +
            s_g \hat z_2`, so that a large change after a quiet window (a jam building up on a
            free-flowing road, where :math:`\sigma_n` is small) needs no huge normalised output
            (default ``False``).
        step_hidden (int): state size of a :class:`StepRecurrence` path (a GRU over the single
            steps of each node with diffusion inputs) whose forecast is added to the tokens'
            forecast; ``0`` leaves it out (default ``0``).
        step_hops (int): diffusion hops of that path's inputs (default ``2``).
        persistence_gate (bool): that path also gates between the forecast and the last
            observed value, :math:`\hat y \leftarrow \hat y + g\,(x_{\text{last}} - \hat y)`
            per node, step and variable (needs ``step_hidden``; default ``False``).
        anchor (str): the level the forecast is de-normalised around: ``"mean"``, the window
            mean :math:`\mu_n` of the instance normalisation (RevIN); ``"last"``, the last
            observed value (NLinear's normalisation); or ``"blend"``,
            :math:`\mu_n + a_{hv}\,(x_{\text{last}} - \mu_n)` with :math:`a_{hv} =
            \sigma\big((q_h W) \cdot e_v / \sqrt C + b^\top e_v\big)` learned from the target
            step's time query and the variable (near steps lean on the last value, far ones on
            the mean; default ``"mean"``).
        pos_frequencies (int): Fourier octaves of the relative coordinates in the
            :class:`SpatialEncoding` (default ``3``; ``0`` keeps only the smooth coordinates,
            which on a single city are less of a node identity to memorise).
        graph_values (bool): the :class:`PatchTokenizer` also embeds the inputs on the graph's
            scale, next to the instance-normalised ones (default ``False``).
        decoder_hops (int): diffusion hops between neighbouring nodes' target steps in the
            :class:`ForecastHead` (``graph_hops``; default ``0``).

    Shapes:
        - **input:** ``x``, ``mask`` :math:`(N, L, V)`, ``time`` :math:`(B, L)`, graph tensors
        - **output:** :meth:`forecast` :math:`(N, H, V)` in the units of ``x``
    """

    def __init__(
        self,
        channels: int = 64,
        depth: int = 2,
        heads: int = 4,
        patch_len: int = 4,
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
        global_residual: bool = False,
        step_hidden: int = 0,
        step_hops: int = 2,
        persistence_gate: bool = False,
        anchor: str = "mean",
        pos_frequencies: int = 3,
        graph_values: bool = False,
        decoder_hops: int = 0,
    ) -> None:
        super().__init__()
        unknown = set(tasks) - {"reconstruction", "anomaly", "kriging"}
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
        self.step_hidden, self.step_hops = int(step_hidden), int(step_hops)
        if persistence_gate and not self.step_hidden:
            raise ValueError("persistence_gate needs the step path: set step_hidden > 0")
        self.persistence_gate = bool(persistence_gate)
        if anchor not in ("mean", "last", "blend"):
            raise ValueError(f"anchor={anchor!r}: expected 'mean', 'last' or 'blend'")
        self.anchor = anchor
        # blend: per target step and variable, a = sigmoid((q W) . e_v + b . e_v) of the time query
        self.anchor_query = torch.nn.Linear(channels, channels) if anchor == "blend" else None
        self.anchor_bias = torch.nn.Linear(channels, 1) if anchor == "blend" else None
        self.step = (
            StepRecurrence(
                channels,
                self.step_hidden,
                self.step_hops,
                2 if global_residual else 1,
                gate=self.persistence_gate,
            )
            if self.step_hidden
            else None
        )
        self.reconstruction_head = (
            ReconstructionHead(channels, patch_len) if "reconstruction" in tasks else None
        )
        self.anomaly_head = AnomalyScoreHead(channels, patch_len) if "anomaly" in tasks else None
        self.kriging_head = KrigingHead(channels, patch_len) if "kriging" in tasks else None
        self.node_head = NodeClassificationHead(channels, node_classes) if node_classes else None
        self.graph_head = (
            GraphClassificationHead(channels, graph_classes) if graph_classes else None
        )

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
        time: Tensor | None = None,
        batch: Tensor | None = None,
        ptr: Tensor | None = None,
        edge_weight: Tensor | None = None,
        pos: Tensor | None = None,
        node_attr: Tensor | None = None,
        node_attr_names: list[str] | None = None,
        dyn_edge_index: Tensor | None = None,
        dyn_edge_time: Tensor | None = None,
        dyn_edge_weight: Tensor | None = None,
        variables: list[str] | None = None,
        units: list[str] | None = None,
        interval: Tensor | None = None,
        crs: str | None = "EPSG:4326",
        structure: GraphStructure | None = None,
    ) -> STFMState:
        """Tokens of every node (see the class docstring). ``time`` is ``[B, L]`` (or ``[L]``)."""
        n, length, v = x.shape
        dev = x.device
        if batch is None:
            batch = torch.zeros(n, dtype=torch.long, device=dev)
        if ptr is None:
            counts = torch.bincount(batch)
            ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
        num_graphs = ptr.numel() - 1
        if time is not None and time.dim() == 1:
            time = time.view(1, -1)
        interval = self._interval(time, interval, num_graphs, dev)
        if time is None:  # no timestamps: calendar features of step indices only
            time = torch.arange(length, device=dev).view(1, -1) * interval.view(-1, 1).long()
        if structure is None:
            structure = batch_structure(
                edge_index.cpu(),
                ptr.cpu(),
                None if pos is None else pos.cpu(),
                edge_weight=None if edge_weight is None else edge_weight.cpu(),
                crs=crs,
                rwse_steps=self.rwse_steps,
                cluster_size=self.cluster_size,
            )
        structure = structure.to(dev)
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
        adj = structure.adj
        if adj is None:  # a structure built without adjacencies: computed here, kept for the heads
            adj = normalized_adjacency(edge_index, edge_weight, n)
            structure = dataclasses.replace(structure, adj=adj)
        dyn_step = None
        if dyn_edge_index is not None and dyn_edge_index.numel():
            dyn_step = torch.div(dyn_edge_time + pad, self.patch_len, rounding_mode="floor")
        step_state = None if self.step is None else self.step(x_norm, mask, adj)
        last_value = None
        if self.persistence_gate or self.anchor != "mean":  # last observed value per node/variable
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
            step_state,
            last_value,
        )

    @staticmethod
    def _interval(time: Tensor | None, interval: Tensor | None, num_graphs: int, dev) -> Tensor:
        if time is not None and time.size(1) > 1:
            return (time[:, 1:] - time[:, :-1]).median(dim=1).values.clamp_min(1).to(dev)
        if interval is not None:
            return interval.to(dev).view(-1).expand(num_graphs).clone()
        return torch.full((num_graphs,), 3600, dtype=torch.long, device=dev)

    def encode_data(self, data: Any) -> STFMState:
        """:meth:`encode` on an :class:`~stgraph.data.STGraph` or a PyG batch of them."""
        meta = _meta_of(data)
        edge_weight, dyn_edge_weight = model_edge_weights(data)  # distances -> affinities
        return self.encode(
            data.x,
            data.mask,
            data.edge_index,
            time=getattr(data, "time", None),
            batch=getattr(data, "batch", None),
            ptr=getattr(data, "ptr", None),
            edge_weight=edge_weight,
            pos=getattr(data, "pos", None),
            node_attr=getattr(data, "node_attr", None),
            node_attr_names=meta["node_attr_names"],
            dyn_edge_index=getattr(data, "dyn_edge_index", None),
            dyn_edge_time=getattr(data, "dyn_edge_time", None),
            dyn_edge_weight=dyn_edge_weight,
            variables=meta["variables"],
            units=meta["units"],
            interval=meta["interval"],
            crs=meta["crs"],
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
        gate = None
        if state.step_state is not None and self.step is not None:
            step = self.step.readout(state.step_state, query, state.var_emb, state.batch)
            if self.step.gate:
                gate, step = torch.sigmoid(step[..., -1]), step[..., :-1]
            y = y + (step if self.global_residual else step[..., 0])
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
        if self.global_residual:
            out = MaskedInstanceNorm.inverse(y[..., 0], loc, state.scale) + (
                y[..., 1] * state.global_scale
            )
        else:
            out = MaskedInstanceNorm.inverse(y, loc, state.scale)
        if gate is not None and state.last_value is not None:
            out = out + gate * (state.last_value - out)
        return out

    def reconstruct(self, state: STFMState) -> Tensor:
        """The input window ``[N, L, V]`` in original units (needs ``tasks`` with reconstruction)."""
        if self.reconstruction_head is None:
            raise RuntimeError("this STFM was built without tasks=['reconstruction']")
        y = self.reconstruction_head(state.tokens, state.var_emb, state.x_norm.size(1))
        return MaskedInstanceNorm.inverse(y, state.loc, state.scale)

    def anomaly_score(self, state: STFMState) -> tuple[Tensor, Tensor]:
        """Per-entry ``[N, L, V]`` and per-node ``[N]`` anomaly scores (needs the anomaly task)."""
        if self.anomaly_head is None:
            raise RuntimeError("this STFM was built without tasks=['anomaly']")
        return self.anomaly_head(state.tokens, state.var_emb, state.x_norm, state.mask)

    def krige(self, state: STFMState, index: Tensor | None = None) -> Tensor:
        """Estimated window ``[K, L, V]`` at nodes ``index`` (needs the kriging task)."""
        if self.kriging_head is None:
            raise RuntimeError("this STFM was built without tasks=['kriging']")
        return self.kriging_head(
            state.tokens, state.var_emb, state.loc, state.scale, state.x_norm.size(1), index
        )

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

    def forward(self, data: Any, horizon: int | None = None) -> Tensor:
        """Forecast for an :class:`~stgraph.data.STGraph` (batch): at ``data.y_time`` when
        present, else ``horizon`` steps ahead."""
        state = self.encode_data(data)
        y_time = getattr(data, "y_time", None)
        if y_time is not None and horizon is not None and y_time.size(-1) != horizon:
            y_time = None
        return self.forecast(state, y_time=y_time, horizon=horizon)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(channels={self.channels}, depth={self.depth}, "
            f"heads={self.heads}, patch_len={self.patch_len}, levels={self.levels}, "
            f"cluster_size={self.cluster_size}"
            + (", global_residual=True" if self.global_residual else "")
            + (f", step_hidden={self.step_hidden}" if self.step_hidden else "")
            + (", persistence_gate=True" if self.persistence_gate else "")
            + (f", anchor={self.anchor!r}" if self.anchor != "mean" else "")
            + (
                f", pos_frequencies={self.spatial.frequencies}"
                if self.spatial.frequencies != 3
                else ""
            )
            + (", graph_values=True" if self.tokenizer.graph_values else "")
            + (
                f", decoder_hops={self.forecast_head.graph_hops}"
                if self.forecast_head.graph_hops
                else ""
            )
            + ")"
        )
