"""Layer-level tests of stgraph.nn on hand-built graphs: shapes, reprs, and dense references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stgraph.nn import (
    AnomalyScoreHead,
    DirectedDynamicConv,
    FeedForward,
    ForecastHead,
    GraphClassificationHead,
    HierarchicalPooling,
    KrigingHead,
    MaskedInstanceNorm,
    NodeClassificationHead,
    NodeContextEncoder,
    PartitionAttention,
    PatchTokenizer,
    ReconstructionHead,
    SpatialEncoding,
    STBlock,
    TemporalMixing,
    TimeEncoding,
    VariableCrossAttention,
    VariableNameEncoder,
    VariableReadout,
    attention_groups,
    compute_structure,
    kd_partition,
    random_walk_encoding,
)
from stgraph.nn.layers.time_encoding import time_features
from stgraph.nn.sparse import MIN_DEGREE, normalized_adjacency, random_walk_weights
from stgraph.nn.structure import coarsen

# A four-node directed graph: 0 -> 1 -> 2 -> 3 and 3 -> 0 (weights 1, 2, 3, 4).
EDGE_INDEX = torch.tensor([[0, 1, 2, 3], [1, 2, 3, 0]])
EDGE_WEIGHT = torch.tensor([1.0, 2.0, 3.0, 4.0])


def test_masked_instance_norm_ignores_missing_values_and_inverts():
    torch.manual_seed(0)
    x = torch.randn(4, 12, 2) * 5 + 30
    mask = torch.rand(4, 12, 2) > 0.3
    mask[3] = False  # node 3 unobserved
    norm = MaskedInstanceNorm()
    assert repr(norm) == "MaskedInstanceNorm(eps=0.1)"
    xn, loc, scale, level = norm(x, mask, edge_index=EDGE_INDEX, edge_weight=EDGE_WEIGHT)
    assert xn.shape == (4, 12, 2) and loc.shape == scale.shape == (4, 1, 2)
    assert level.shape == (4, 2, 2)
    assert bool((xn[~mask] == 0).all())
    # missing entries' stored values do not matter
    x2 = torch.where(mask, x, torch.full_like(x, 1e6))
    xn2, loc2, scale2, _ = norm(x2, mask, edge_index=EDGE_INDEX, edge_weight=EDGE_WEIGHT)
    assert torch.allclose(xn, xn2) and torch.allclose(loc, loc2) and torch.allclose(scale, scale2)
    # observed node 0 mean is the masked mean
    m0 = mask[0, :, 0]
    assert torch.isclose(loc[0, 0, 0], x[0, m0, 0].mean(), atol=1e-4)
    # unobserved node 3 takes the weighted mean of its observed neighbours 2 (w=3) and 0 (w=4)
    expect = (3 * loc[2] + 4 * loc[0]) / 7
    assert torch.allclose(loc[3], expect, atol=1e-5)
    assert torch.allclose(MaskedInstanceNorm.inverse(xn, loc, scale)[mask], x[mask], atol=1e-3)


def test_variable_name_encoder_any_names():
    enc = VariableNameEncoder(16)
    assert repr(enc) == "VariableNameEncoder(16, char_channels=32)"
    e = enc(["speed", "flow", "never-seen variable ä", "speed"], ["mph", "veh/h", "", "mph"])
    assert e.shape == (4, 16)
    assert torch.allclose(e[0], e[3])
    assert not torch.allclose(e[0], e[1])


def test_time_features_calendar():
    # 2012-03-01 00:00 UTC was a Thursday; +6 h is a quarter of the day
    t0 = 1330560000
    f = time_features(torch.tensor([[t0, t0 + 6 * 3600]]), torch.tensor([300]))
    assert f.shape == (1, 2, 11)
    assert torch.allclose(f[0, 0, :2], torch.tensor([0.0, 1.0]), atol=1e-6)
    assert torch.allclose(f[0, 1, :2], torch.tensor([1.0, 0.0]), atol=1e-6)
    dow = 3 / 7  # Monday = 0
    assert torch.allclose(f[0, 0, 4], torch.tensor(math.sin(2 * math.pi * dow)), atol=1e-5)
    assert torch.isclose(f[0, 0, 6], torch.tensor(math.log(300 / 3600) / 4))
    assert torch.all(f[..., 7:] == 0)  # inputs have no lead
    te = TimeEncoding(8)
    assert te(torch.tensor([[t0]]), torch.tensor([3600])).shape == (1, 1, 8)
    assert repr(te) == "TimeEncoding(8)"


def test_time_features_lead_in_steps():
    # one and two steps ahead on a 5-minute and on an hourly series: the step features depend on
    # the steps ahead only, the absolute lead on the seconds
    t0 = 1330560000
    for interval in (300, 3600):
        lead = torch.tensor([[interval, 2 * interval]])
        f = time_features(t0 + lead, torch.tensor([interval]), lead)
        assert torch.allclose(f[0, :, 8], torch.exp(-torch.tensor([1.0, 2.0])))
        assert torch.allclose(f[0, :, 9], torch.exp(-torch.tensor([1.0, 2.0]) / 3))
        assert torch.allclose(f[0, :, 10], torch.exp(-torch.tensor([1.0, 2.0]) / 12))
        assert torch.allclose(f[0, :, 7], torch.log1p(lead[0].float() / 3600) / 4)
        if interval == 300:  # 5 and 10 minutes ahead: far apart in steps, close in absolute lead
            assert (f[0, 0, 8] - f[0, 1, 8]) > 10 * (f[0, 1, 7] - f[0, 0, 7])


def test_time_encoding_calendar_parts():
    torch.manual_seed(0)
    t0, day = 1330560000, 86400
    times, iv = torch.tensor([[t0, t0 + day, t0 + 3600]]), torch.tensor([300])
    both, tod_only = TimeEncoding(16), TimeEncoding(16, calendar=["time_of_day"])
    tod_only.load_state_dict(both.state_dict())  # same weights: only the features differ
    a, b = both(times, iv), tod_only(times, iv)
    # Thursday and Friday at the same clock time: one encoding without day of week, two with it
    assert torch.allclose(b[0, 0], b[0, 1]) and not torch.allclose(a[0, 0], a[0, 1])
    assert not torch.allclose(b[0, 0], b[0, 2])  # the time of day still counts
    assert repr(tod_only) == "TimeEncoding(16, calendar=['time_of_day'])"
    with pytest.raises(ValueError, match="unknown parts \\['month'\\]"):
        TimeEncoding(16, calendar=["month"])


def test_tokenizer_graph_values_are_the_graph_normalised_inputs():
    # two graphs in a batch; graph_values adds (x - mean_g) / std_g per step, the absolute level
    # that the instance normalisation takes away (a jam at 15 mph looks like any other dip)
    torch.manual_seed(0)
    x = torch.cat([torch.randn(5, 6, 2) * 4 + 50, torch.randn(3, 6, 2) * 9 + 20])
    mask = torch.rand(8, 6, 2) > 0.2
    batch = torch.tensor([0] * 5 + [1] * 3)
    x_norm, _, _, level = MaskedInstanceNorm()(x, mask, batch)
    tok = PatchTokenizer(3, 16, graph_values=True)
    assert repr(tok) == "PatchTokenizer(patch_len=3, channels=16, graph_values=True)"
    var_emb = torch.randn(2, 16)
    tokens, valid = tok(x_norm, mask, level, var_emb)
    m = mask.float()
    ref = torch.empty(8, 2, 2, 16)
    for g in (0, 1):
        rows = batch == g
        mu = (x[rows] * m[rows]).sum((0, 1)) / m[rows].sum((0, 1))
        sd = (((x[rows] - mu) * m[rows]) ** 2).sum((0, 1)).div(m[rows].sum((0, 1))).sqrt()
        xg = (x[rows] - mu) / sd * m[rows]  # [n, 6, 2]
        for s in range(2):
            sl = slice(3 * s, 3 * s + 3)
            feats = torch.cat(
                [
                    (x_norm[rows] * m[rows])[:, sl].transpose(1, 2),
                    m[rows][:, sl].transpose(1, 2),
                    xg[:, sl].transpose(1, 2),
                    level[rows],
                ],
                dim=-1,
            )
            ref[rows, s] = torch.nn.functional.gelu(tok.lin(feats) + var_emb)
    assert torch.allclose(tokens, ref, atol=1e-4)
    assert PatchTokenizer(3, 16).lin.in_features == tok.lin.in_features - 3


def test_tokenizer_and_variable_merge_shapes_and_masks():
    torch.manual_seed(0)
    x, mask = torch.randn(4, 10, 3), torch.rand(4, 10, 3) > 0.5
    mask[1] = False
    tok = PatchTokenizer(4, 16)
    assert repr(tok) == "PatchTokenizer(patch_len=4, channels=16)"
    var_emb = torch.randn(3, 16)
    tokens, valid = tok(x, mask, torch.zeros(4, 3, 2), var_emb)
    assert tokens.shape == (4, 3, 3, 16) and valid.shape == (4, 3, 3)
    assert not bool(valid[1].any())
    merge = VariableCrossAttention(16, heads=4)
    assert repr(merge) == "VariableCrossAttention(16, heads=4)"
    y = merge(tokens, valid)
    assert y.shape == (4, 3, 16)
    assert torch.allclose(y[1], merge.missing.expand(3, 16))  # all missing -> learned token
    # invalid variable tokens get no weight: perturbing them changes nothing
    tokens2 = torch.where(valid.unsqueeze(-1), tokens, torch.randn_like(tokens))
    assert torch.allclose(merge(tokens2, valid), y, atol=1e-6)


def test_spatial_and_context_encoders():
    enc = SpatialEncoding(16, rwse_steps=4)
    assert repr(enc) == "SpatialEncoding(16, rwse_steps=4, frequencies=3)"
    ctx = NodeContextEncoder(16)
    c = ctx(torch.randn(5, 3), torch.randn(3, 16))
    assert c.shape == (5, 16) and repr(ctx) == "NodeContextEncoder(16)"
    assert enc(torch.rand(5, 4), torch.randn(5, 2), torch.ones(5, 1), c).shape == (5, 16)


def test_temporal_mixing_and_feed_forward():
    tm, ff = TemporalMixing(16, heads=2), FeedForward(16)
    assert repr(tm) == "TemporalMixing(16, heads=2)" and repr(ff) == "FeedForward(16, ratio=2.0)"
    x = torch.randn(4, 3, 16)
    assert tm(x).shape == (4, 3, 16) and ff(x).shape == (4, 3, 16)
    # per node: node 0's output does not depend on node 1
    x2 = x.clone()
    x2[1] += 1
    assert torch.allclose(tm(x2)[0], tm(x)[0])


def test_directed_dynamic_conv_matches_dense_formula():
    torch.manual_seed(0)
    conv = DirectedDynamicConv(8)
    assert repr(conv) == "DirectedDynamicConv(8, 8)"
    x = torch.randn(4, 2, 8)
    dyn = torch.tensor([[0, 2], [3, 3]])  # 0 -> 3 and 2 -> 3 at steps 1 and 5
    dyn_step = torch.tensor([0, 1])  # their patch indices
    dyn_w = torch.tensor([1.0, 3.0])
    out = conv(x, EDGE_INDEX, EDGE_WEIGHT, dyn, dyn_step, dyn_w)
    assert out.shape == (4, 2, 8)
    a = torch.zeros(4, 4)
    a[EDGE_INDEX[0], EDGE_INDEX[1]] = EDGE_WEIGHT  # a[src, dst]
    a_in = a.t() / a.t().sum(1, keepdim=True)
    a_out = a / a.sum(1, keepdim=True)
    agg_dyn = torch.zeros_like(x)
    agg_dyn[3, 0], agg_dyn[3, 1] = x[0, 0], x[2, 1]  # one dynamic edge per patch
    ref = conv.lin(
        torch.cat(
            [
                x,
                torch.einsum("ij,jsc->isc", a_in, x),
                torch.einsum("ij,jsc->isc", a_out, x),
                agg_dyn,
            ],
            -1,
        )
    )
    assert torch.allclose(out, ref, atol=1e-5)
    # direction matters: reversed edges give another result
    assert not torch.allclose(
        conv(x, EDGE_INDEX.flip(0), EDGE_WEIGHT), conv(x, EDGE_INDEX, EDGE_WEIGHT)
    )
    # gradients flow through the cached sparse operator
    xg = x.clone().requires_grad_()
    conv(xg, adj=normalized_adjacency(EDGE_INDEX, EDGE_WEIGHT, 4)).sum().backward()
    xd = x.clone().requires_grad_()
    F.linear(
        torch.cat(
            [xd, torch.einsum("ij,jsc->isc", a_in, xd), torch.einsum("ij,jsc->isc", a_out, xd)], -1
        ),
        conv.lin.weight[:, :24],
        conv.lin.bias,
    ).sum().backward()
    assert torch.allclose(xg.grad, xd.grad, atol=1e-5)


def test_random_walk_normalisation_one_rule_for_both_convolutions():
    """One normalisation: A_in averages over edges into a node, A_out over edges out of it;
    weights in absolute value; the degree floored at 1e-12 (no edges: a zero row; weights that
    sum below the floor: a row summing to d / 1e-12, not renormalised)."""
    ei = torch.tensor([[0, 1, 2, 0], [1, 2, 0, 2]])  # node 3 has no edges at all
    w = torch.tensor([1.0, -2.0, 3.0, 1e-14])
    a_in, a_out = normalized_adjacency(ei, w, 4)
    dense = torch.zeros(4, 4)
    dense[ei[0], ei[1]] = w.abs()
    deg_in, deg_out = dense.sum(0), dense.sum(1)
    torch.testing.assert_close(a_in.dense(), dense.t() / deg_in.clamp_min(MIN_DEGREE).view(-1, 1))
    torch.testing.assert_close(a_out.dense(), dense / deg_out.clamp_min(MIN_DEGREE).view(-1, 1))
    assert bool((a_in.dense()[3] == 0).all()) and bool((a_out.dense()[3] == 0).all())
    # where the degree is positive every row of A_in sums to 1, whatever the weights' scale
    torch.testing.assert_close(a_in.dense()[:3].sum(1), torch.ones(3))
    # a vanishing degree is not renormalised: a lone edge of weight 1e-14 keeps 1e-14 / 1e-12
    tiny = torch.tensor([1e-14])
    along, against = random_walk_weights(torch.tensor([[0], [1]]), tiny, 2)
    torch.testing.assert_close(along, torch.tensor([1e-14 / MIN_DEGREE]))
    torch.testing.assert_close(against, along)
    # the diffusion convolution of DCRNN uses the same operators, bit for bit
    from stgraph.nn.layers.diffusion_conv import diffusion_supports

    sup = diffusion_supports(ei, w, 4)
    assert torch.equal(sup.forward.dense(), a_in.dense())
    assert torch.equal(sup.backward.dense(), a_out.dense())
    # unweighted: 1 per edge
    u_in, _ = normalized_adjacency(ei, None, 4)
    torch.testing.assert_close(u_in.dense()[2], torch.tensor([0.5, 0.5, 0.0, 0.0]))


def test_random_walk_encoding_matches_dense_powers():
    ei = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 0, 0], [1, 0, 2, 1, 3, 2, 0, 3, 2]])
    rw = random_walk_encoding(ei, 4, 5)
    a = torch.zeros(4, 4, dtype=torch.float64)
    a[ei[0], ei[1]] = 1
    a = ((a + a.t()) > 0).double()
    p = a / a.sum(1, keepdim=True)
    ref = torch.stack([torch.diagonal(torch.linalg.matrix_power(p, k)) for k in range(1, 6)], 1)
    assert torch.allclose(rw.double(), ref, atol=1e-6)


def test_kd_partition_balanced_and_permutation_equivariant():
    rng = np.random.default_rng(0)
    pts = rng.random((300, 2))
    cells = kd_partition(pts, 16)
    counts = np.bincount(cells)
    assert counts.max() <= 16 and counts.min() >= 8 and counts.sum() == 300
    perm = rng.permutation(300)
    cells_p = kd_partition(pts[perm], 16)
    groups = {frozenset(np.flatnonzero(cells == c)) for c in range(cells.max() + 1)}
    groups_p = {frozenset(perm[np.flatnonzero(cells_p == c)]) for c in range(cells_p.max() + 1)}
    assert groups == groups_p
    assign, sizes = coarsen(pts, 16)
    assert sizes[0] == 300 and sizes[-1] == 1 and len(assign) == len(sizes) - 1


def _dense_partition_reference(layer, x, cells, parent_of_cell):
    """Dense N x (N + K) attention with a mask: same cell, or a cell of the same parent."""
    n, s, c = x.shape
    h, d = layer.heads, c // layer.heads
    q, k, v = layer.qkv(x).split(c, -1)
    k_cells = int(cells.max()) + 1
    ctx = torch.zeros(k_cells, s, c).index_add_(0, cells, x) / torch.bincount(cells).view(-1, 1, 1)
    _, kc, vc = layer.qkv(ctx).split(c, -1)
    keys, vals = torch.cat([k, kc]), torch.cat([v, vc])
    allow = torch.cat(
        [
            cells.view(-1, 1) == cells.view(1, -1),
            parent_of_cell[cells].view(-1, 1) == parent_of_cell.view(1, -1),
        ],
        dim=1,
    )  # [N, N + K]
    qh = q.view(n, s, h, d).permute(1, 2, 0, 3)
    kh = keys.view(-1, s, h, d).permute(1, 2, 0, 3)
    vh = vals.view(-1, s, h, d).permute(1, 2, 0, 3)
    score = qh @ kh.transpose(-1, -2) / math.sqrt(d)
    score = score.masked_fill(~allow, float("-inf"))
    y = (torch.softmax(score, -1) @ vh).permute(2, 0, 1, 3).reshape(n, s, c)
    return layer.out(y)


def test_partition_attention_equals_dense_reference():
    torch.manual_seed(0)
    n = 70
    pos = torch.rand(n, 2)
    st = compute_structure(
        torch.empty(2, 0, dtype=torch.long), n, pos, crs="metres", cluster_size=8
    )
    layer = PartitionAttention(16, heads=4)
    assert repr(layer) == "PartitionAttention(16, heads=4)"
    x = torch.randn(n, 2, 16)
    members, ctx_members, group_ctx, slots = attention_groups(st, 0)
    ctx = torch.zeros(st.sizes[1], 2, 16).index_add_(0, st.assign[0], x)
    ctx = ctx / torch.bincount(st.assign[0]).view(-1, 1, 1)
    out = layer(x, members, ctx, ctx_members, group_ctx, slots)
    ref = _dense_partition_reference(layer, x, st.assign[0], st.assign[1])
    assert out.shape == (n, 2, 16)
    assert torch.allclose(out, ref, atol=1e-5)
    # without precomputed slots as well
    assert torch.allclose(layer(x, members, ctx, ctx_members, group_ctx), out)


def test_hierarchy_block_and_heads_shapes():
    torch.manual_seed(0)
    n, s, c = 50, 2, 16
    pos = torch.rand(n, 2)
    src = torch.arange(n)
    ei = torch.stack([src, (src + 1) % n])
    st = compute_structure(ei, n, pos, crs="metres", cluster_size=8)
    st.adj = normalized_adjacency(ei, None, n)
    x = torch.randn(n, s, c)
    hp = HierarchicalPooling(c, levels=2, heads=2)
    assert repr(hp) == "HierarchicalPooling(16, levels=2, heads=2)"
    assert hp(x, st).shape == (n, s, c)
    blk = STBlock(c, heads=2)
    assert repr(blk) == "STBlock(16, heads=2)"
    assert blk(x, st.adj, st).shape == (n, s, c)
    var_emb = torch.randn(3, c)
    fh = ForecastHead(c, heads=2)
    assert fh(x, torch.randn(1, 7, c), var_emb).shape == (n, 7, 3)
    recon = ReconstructionHead(c, 6)(x, var_emb, 10)
    assert recon.shape == (n, 10, 3)
    x_norm = torch.randn(n, 10, 3)
    mask = torch.rand(n, 10, 3) > 0.2
    scores, node = AnomalyScoreHead()(recon, x_norm, mask)
    assert scores.shape == (n, 10, 3) and node.shape == (n,) and bool((scores >= 0).all())
    torch.testing.assert_close(scores, (recon - x_norm).abs() * mask)
    assert list(AnomalyScoreHead().parameters()) == list(KrigingHead().parameters()) == []
    loc, scale = torch.randn(n, 1, 3), torch.rand(n, 1, 3) + 0.5
    k = KrigingHead()(recon, loc, scale, torch.tensor([1, 4]))
    assert k.shape == (2, 10, 3)
    torch.testing.assert_close(k, recon[[1, 4]] * scale[[1, 4]] + loc[[1, 4]])
    assert NodeClassificationHead(c, 5)(x).shape == (n, 5)
    batch = torch.cat([torch.zeros(20, dtype=torch.long), torch.ones(30, dtype=torch.long)])
    assert GraphClassificationHead(c, 4)(x, batch).shape == (2, 4)
    assert VariableReadout(c, 2)(x, var_emb).shape == (n, s, 3, 2)


@pytest.mark.parametrize(
    "cls,args",
    [
        (TemporalMixing, (16,)),
        (PartitionAttention, (16,)),
        (DirectedDynamicConv, (16,)),
        (VariableCrossAttention, (16,)),
        (STBlock, (16,)),
        (ForecastHead, (16,)),
    ],
)
def test_reset_parameters_reinitialises(cls, args):
    torch.manual_seed(0)
    layer = cls(*args)
    before = [p.detach().clone() for p in layer.parameters()]
    layer.reset_parameters()
    after = list(layer.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_forecast_head_graph_hops_diffuse_between_neighbouring_nodes():
    """One hop: a node's forecast moves only when its own tokens or those of its in- or
    out-neighbours change; zero hop weights give the head without hops; nodes permute."""
    torch.manual_seed(0)
    n, s, c = 12, 4, 16
    ei = torch.tensor([[0, 1, 2, 3, 5, 6, 8], [1, 2, 3, 4, 6, 7, 9]])  # chains 0->4, 5->7, 8->9
    adj = normalized_adjacency(ei, torch.rand(ei.size(1)) + 0.5, n)
    fh = ForecastHead(c, heads=2, graph_hops=1)
    assert repr(fh) == "ForecastHead(16, heads=2, hidden=8, graph_hops=1)"
    x, query, var_emb = torch.randn(n, s, c), torch.randn(1, 5, c), torch.randn(2, c)
    with torch.no_grad():
        y = fh(x, query, var_emb, adj=adj)
        x2 = x.clone()
        x2[2] += 1.0
        moved = (fh(x2, query, var_emb, adj=adj) - y).abs().amax(dim=(1, 2)) > 1e-6
        assert moved.nonzero().view(-1).tolist() == [1, 2, 3]
        # the same head without the hops: zero hop weights
        plain = ForecastHead(c, heads=2)
        plain.load_state_dict(
            {k: v for k, v in fh.state_dict().items() if not k.startswith("hop_")}
        )
        for w in (*fh.hop_in, *fh.hop_out):
            w.weight.zero_()
        assert torch.allclose(fh(x, query, var_emb, adj=adj), plain(x, query, var_emb), atol=1e-6)
    with pytest.raises(ValueError, match="graph_hops needs adj"):
        fh(x, query, var_emb)
    with pytest.raises(ValueError, match="graph_hops=-1"):
        ForecastHead(c, graph_hops=-1)


def test_relative_coordinates_use_the_one_metric_projection():
    """Lon/lat go through stgraph.utils.geo.project (UTM), then about the centroid in units of
    the RMS radius; projected coordinates are taken as metres."""
    from stgraph.nn.structure import relative_coordinates
    from stgraph.utils.geo import project

    rng = np.random.default_rng(0)
    pos = torch.tensor(np.stack([-97 + 8 * rng.random(50), 35 + 6 * rng.random(50)], 1))
    xy = project(pos[:, 0].numpy(), pos[:, 1].numpy())[0]
    c = xy - xy.mean(0)
    want = c / np.sqrt((c**2).sum(1).mean())
    torch.testing.assert_close(
        relative_coordinates(pos).double(), torch.from_numpy(want), atol=1e-6, rtol=0
    )
    metres = torch.tensor(xy)
    torch.testing.assert_close(
        relative_coordinates(metres, crs="EPSG:32614"), relative_coordinates(pos), atol=1e-6, rtol=0
    )
