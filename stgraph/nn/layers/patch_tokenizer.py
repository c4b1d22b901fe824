"""Temporal patches per node and variable -> tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def patchify(x: Tensor, patch_len: int) -> Tensor:
    """``[N, L, ...]`` -> ``[N, S, P, ...]`` with ``S = ceil(L / P)``, zero-padded at the front
    (the most recent step always closes the last patch)."""
    pad = (-x.size(1)) % patch_len
    if pad:
        x = torch.cat([x.new_zeros(x.size(0), pad, *x.shape[2:]), x], dim=1)
    return x.view(x.size(0), -1, patch_len, *x.shape[2:])


class PatchTokenizer(torch.nn.Module):
    r"""Embeds non-overlapping temporal patches of each node and variable (PatchTST-style).

    Nie et al., "A Time Series is Worth 64 Words", ICLR 2023: a window of ``L`` steps becomes
    ``S = ceil(L / P)`` tokens, which cuts the cost of every later layer by ``P``. Each patch of
    variable :math:`v` at node :math:`n` is embedded together with its observation mask and the
    node's level features, plus the variable's name embedding :math:`e_v`:

    .. math:: z_{nsv} = W\,[m_{nsv} \odot \hat x_{nsv};\ m_{nsv};\ \lambda_{nv}] + b + e_v

    Missing values enter only as 0 with mask 0, so their stored value never leaks. A patch is
    ``valid`` when at least one of its steps is observed.

    Args:
        patch_len (int): ``P``.
        channels (int): token size.
        level_features (int): size of the per-node level features (default ``2``).
        graph_values (bool): also embed each step on the graph's scale,
            :math:`(x - \bar\mu_{gv}) / s_{gv} = \lambda_{nv,0} + e^{\lambda_{nv,1}}\,\hat x`,
            the absolute level that the instance normalisation takes away (a jam at 15 mph and
            a dip from 70 to 60 look alike after it); a product the linear embedding could not
            form from :math:`\hat x` and :math:`\lambda` (default ``False``).

    Shapes:
        - **input:** ``x`` and ``mask`` :math:`(N, L, V)`, ``level`` :math:`(N, V, F_\lambda)`,
          ``var_emb`` :math:`(V, C)`
        - **output:** tokens :math:`(N, S, V, C)`, valid :math:`(N, S, V)`
    """

    def __init__(
        self, patch_len: int, channels: int, level_features: int = 2, graph_values: bool = False
    ) -> None:
        super().__init__()
        self.patch_len, self.channels, self.level_features = patch_len, channels, level_features
        self.graph_values = bool(graph_values)
        self.lin = torch.nn.Linear(
            (3 if graph_values else 2) * patch_len + level_features, channels
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(
        self, x: Tensor, mask: Tensor, level: Tensor, var_emb: Tensor
    ) -> tuple[Tensor, Tensor]:
        m = mask.to(x.dtype)
        xp = patchify(x * m, self.patch_len)  # [N,S,P,V]
        mp = patchify(m, self.patch_len)
        s = xp.size(1)
        lv = level.unsqueeze(1).expand(-1, s, -1, -1)  # [N,S,V,F]
        parts = [xp.transpose(2, 3), mp.transpose(2, 3)]
        if self.graph_values:  # (x - mu_g) / s_g = level_0 + exp(level_1) * x_norm
            xg = (level[..., :1].transpose(1, 2) + level[..., 1:].exp().transpose(1, 2) * x) * m
            parts.append(patchify(xg, self.patch_len).transpose(2, 3))
        feats = torch.cat([*parts, lv], dim=-1)
        tokens = F.gelu(self.lin(feats) + var_emb)
        return tokens, mp.amax(2) > 0

    def __repr__(self) -> str:
        extra = ", graph_values=True" if self.graph_values else ""
        return f"{self.__class__.__name__}(patch_len={self.patch_len}, channels={self.channels}{extra})"
