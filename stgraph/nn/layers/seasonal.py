"""The seasonal reference of a window: what the same slot of the last weeks looked like."""

from __future__ import annotations

import torch
from torch import Tensor

from stgraph.nn.layers.patch_tokenizer import patchify
from stgraph.nn.structure import broadcast_graphs


class SeasonalAnchor(torch.nn.Module):
    r"""Reads the window's seasonal reference (:func:`~stgraph.data.seasonal_reference`).

    A window of ``L`` steps cannot see the weekly profile that a historical average is built
    from; the reference :math:`s` (the mean of the same slot over the last weeks before the
    window, or days where no week is at hand) brings it in without the window's own future.

    * **input side** (:meth:`embed`): per patch, the normalised gap between the input and its
      reference, :math:`(x - s)/\sigma_n`, and where both are observed, embedded to ``C`` and
      averaged over variables, so that the tokens know how well the season explains the recent
      past of each node;
    * **output side** (:meth:`anchor`): the forecast's level moves from the anchor :math:`\ell`
      towards the reference of each target step, :math:`\ell + g\,(s - \ell)`, with
      :math:`g_{nhv} = \sigma\big((q_h W_q + u_n W_u) \cdot e_v / \sqrt C + b^\top e_v
      + w^\top k_{nv}\big)` from the target step's time query, the node's last token, the
      variable and the reference's skill on the input window :math:`k_{nv}` (the log ratio of its
      mean error to that of persistence, and whether it could be measured), and :math:`g = 0`
      where the step has no reference. The gate starts open (:math:`w = 0`, bias
      ``gate_bias``): on strongly periodic data the reference is the better level at once.

    With ``mode="anomaly"`` the output side is instead the reference plus a learned share of
    the input's last gap to it, and the head's residual is counted in that gap's scale
    (:meth:`anomaly_anchor`): :math:`s_h + \rho_{nhv}\,a_{nv} + \hat r\,\delta_{nv}`, with
    :math:`a` the gap at the last step where input and reference are both observed,
    :math:`\delta` the mean absolute gap over the input window and :math:`\rho` the gate above
    (starting at 1/2). The reference alone, and the reference plus a persisting anomaly, are
    then what the model starts from, and a residual is as large as the reference's own recent
    error rather than the window's spread (on a daily profile, mostly the profile itself).

    Args:
        channels (int): token size ``C``.
        patch_len (int): steps per token ``P``.
        mode (str): ``"level"`` (default) or ``"anomaly"``.
    """

    MODES = ("level", "anomaly")

    def __init__(self, channels: int, patch_len: int, mode: str = "level") -> None:
        super().__init__()
        if mode not in self.MODES:
            raise ValueError(f"mode={mode!r}: expected one of {self.MODES}")
        self.mode = mode
        self.channels, self.patch_len = channels, patch_len
        self.gap = torch.nn.Linear(2 * patch_len, channels)
        self.query = torch.nn.Linear(channels, channels)
        self.node = torch.nn.Linear(channels, channels, bias=False)
        self.bias = torch.nn.Linear(channels, 1)
        self.skill = torch.nn.Linear(2, 1)
        self.reset_parameters()

    #: initial gate logit: sigmoid(1) = 0.73 towards the reference
    gate_bias = 1.0

    def reset_parameters(self) -> None:
        for m in (self.gap, self.query, self.node, self.bias):
            m.reset_parameters()
        torch.nn.init.zeros_(self.skill.weight)
        torch.nn.init.constant_(self.skill.bias, self.gate_bias if self.mode == "level" else 0.0)

    @staticmethod
    def input_anomaly(
        x: Tensor, mask: Tensor, season: Tensor, season_mask: Tensor, scale: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The input's gap to its reference (``[N, L, V]`` each; ``scale`` ``[N, 1, V]``): at the
        last step where both are observed (0 where there is none), and its mean absolute value
        over the window (``scale`` where fewer than 2 steps have both; at least 5 % of
        ``scale``). Returns ``(gap, gap_scale)``, each ``[N, 1, V]``."""
        both = mask & season_mask
        gap = torch.where(both, x - season, torch.zeros_like(x))
        steps = torch.arange(1, x.size(1) + 1, device=x.device).view(1, -1, 1)
        pos = (both.long() * steps).amax(1, keepdim=True)  # [N, 1, V], 0: none
        last = gap.gather(1, (pos - 1).clamp_min(0))
        count = both.sum(1, keepdim=True)
        mad = gap.abs().sum(1, keepdim=True) / count.clamp_min(1)
        spread = torch.where(count >= 2, mad, scale)
        return last, torch.maximum(spread, 0.05 * scale)

    @staticmethod
    def input_skill(x: Tensor, mask: Tensor, season: Tensor, season_mask: Tensor) -> Tensor:
        """``[N, V, 2]``: log(mean |x - s| / mean |x_t - x_{t-1}|) over the input window (0 where
        it cannot be measured), and 1 where it could."""
        both = mask & season_mask
        n_s = both.sum(1)
        e_s = ((x - season).abs() * both).sum(1) / n_s.clamp_min(1)
        step = mask[:, 1:] & mask[:, :-1]
        n_p = step.sum(1)
        e_p = ((x[:, 1:] - x[:, :-1]).abs() * step).sum(1) / n_p.clamp_min(1)
        ok = (n_s > 0) & (n_p > 0)
        eps = 1e-3 * (e_s + e_p).amax(0, keepdim=True).clamp_min(1e-6)
        ratio = torch.log((e_s + eps) / (e_p + eps)).clamp(-5, 5)
        return torch.stack([torch.where(ok, ratio, torch.zeros_like(ratio)), ok.float()], -1)

    def embed(
        self,
        x: Tensor,
        mask: Tensor,
        season: Tensor,
        season_mask: Tensor,
        loc: Tensor,
        scale: Tensor,
    ) -> Tensor:
        """Token features ``[N, S, C]`` of the input's gap to its reference (``[N, L, V]`` each;
        ``loc``/``scale`` ``[N, 1, V]``)."""
        both = mask & season_mask
        gap = torch.where(both, (x - season) / scale, torch.zeros_like(x)).clamp(-10, 10)
        feats = torch.cat(
            [patchify(gap, self.patch_len), patchify(both.float(), self.patch_len)], 2
        )
        n, s, _, v = feats.shape
        out = self.gap(feats.permute(0, 1, 3, 2))  # [N, S, V, C]
        return out.mean(2)

    def anchor(
        self,
        loc: Tensor,
        season: Tensor,
        season_mask: Tensor,
        query: Tensor,
        last_token: Tensor,
        var_emb: Tensor,
        batch: Tensor,
        skill: Tensor | None = None,
    ) -> Tensor:
        """The level ``[N, H, V]``: ``loc`` (``[N, 1, V]`` or ``[N, H, V]``) moved towards the
        reference ``season`` ``[N, H, V]`` of each target step; ``query`` ``[B, H, C]``,
        ``last_token`` ``[N, C]``, ``var_emb`` ``[V, C]``, ``skill`` ``[N, V, 2]``
        (:meth:`input_skill`; ``None``: not measured)."""
        g = torch.sigmoid(self._logit(query, last_token, var_emb, batch, skill))
        g = g * season_mask.to(g.dtype)
        return loc + g * (torch.where(season_mask, season, loc.expand_as(season)) - loc)

    def anomaly_anchor(
        self,
        loc: Tensor,
        scale: Tensor,
        season: Tensor,
        season_mask: Tensor,
        gap: Tensor,
        gap_scale: Tensor,
        query: Tensor,
        last_token: Tensor,
        var_emb: Tensor,
        batch: Tensor,
        skill: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(level, scale)``, each ``[N, H, V]``: the reference ``season`` plus the gated share
        of the input's last ``gap`` (:meth:`input_anomaly`) and ``gap_scale`` where a target
        step has a reference, ``loc`` and ``scale`` (``[N, 1, V]`` or ``[N, H, V]``) where it
        has none; the other arguments as :meth:`anchor`."""
        rho = torch.sigmoid(self._logit(query, last_token, var_emb, batch, skill))
        level = torch.where(season_mask, season + rho * gap, loc.expand_as(season))
        spread = torch.where(season_mask, gap_scale.expand_as(season), scale.expand_as(season))
        return level, spread

    def _logit(
        self,
        query: Tensor,
        last_token: Tensor,
        var_emb: Tensor,
        batch: Tensor,
        skill: Tensor | None,
    ) -> Tensor:
        """The gate's logit ``[N, H, V]``."""
        root = var_emb.size(-1) ** 0.5
        logit = broadcast_graphs(torch.einsum("bhc,vc->bhv", self.query(query), var_emb), batch)
        logit = logit + (self.node(last_token) @ var_emb.t()).unsqueeze(1)
        logit = logit / root + self.bias(var_emb).view(1, 1, -1)
        if skill is None:
            skill = logit.new_zeros(logit.size(0), logit.size(2), 2)
        return logit + self.skill(skill).squeeze(-1).unsqueeze(1)

    def __repr__(self) -> str:
        mode = f", mode={self.mode!r}" if self.mode != "level" else ""
        return f"{self.__class__.__name__}({self.channels}, patch_len={self.patch_len}{mode})"


__all__ = ["SeasonalAnchor"]
