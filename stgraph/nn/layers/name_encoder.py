"""Variable embeddings computed from variable names, so unseen names still get an embedding."""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import Tensor

#: Characters with their own embedding; every other character maps to ``<unk>``.
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789 "
_PAD, _UNK = 0, 1
_INDEX = {c: i + 2 for i, c in enumerate(ALPHABET)}


def encode_name(name: str, unit: str = "", max_len: int = 32) -> list[int]:
    """Character ids of ``"name [unit]"``: lower-cased, separators ``_-./`` as spaces."""
    text = name if not unit else f"{name} {unit}"
    text = re.sub(r"[_\-./\[\]()]+", " ", text.lower()).strip()[:max_len]
    return [_INDEX.get(c, _UNK) for c in text] or [_UNK]


class VariableNameEncoder(torch.nn.Module):
    r"""Embeds a variable from the characters of its name and unit (ClimaX-style variable tokens).

    Nguyen et al., "ClimaX: A foundation model for weather and climate", ICML 2023, learn one
    embedding per known variable; a table keyed by name cannot embed a name it has not seen. Here
    the embedding is a function of the characters: a fixed alphabet of 37 symbols (+ ``<unk>``)
    is embedded, mixed by a width-3 convolution (character trigrams) and pooled:

    .. math:: e(v) = W_o\,[\mathrm{mean}_c;\ \max_c]\ \mathrm{GELU}(\mathrm{Conv}_3(E[c_1..c_k]))

    so ``"speed"``, ``"speed_mph"`` and ``"avg speed [km/h]"`` share most of their features.

    Args:
        out_channels (int): embedding size.
        char_channels (int): character embedding size (default ``32``).
        max_len (int): characters kept (default ``32``).

    Shapes:
        - **input:** a list of ``V`` names (and optional units)
        - **output:** :math:`(V, C_{out})`
    """

    def __init__(self, out_channels: int, char_channels: int = 32, max_len: int = 32) -> None:
        super().__init__()
        self.out_channels, self.char_channels, self.max_len = out_channels, char_channels, max_len
        self.embed = torch.nn.Embedding(len(ALPHABET) + 2, char_channels, padding_idx=_PAD)
        self.conv = torch.nn.Conv1d(char_channels, char_channels, kernel_size=3, padding=1)
        self.out = torch.nn.Linear(2 * char_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.embed.reset_parameters()
        with torch.no_grad():
            self.embed.weight[_PAD].zero_()
        self.conv.reset_parameters()
        self.out.reset_parameters()

    def forward(self, names: list[str], units: list[str] | None = None) -> Tensor:
        units = units or [""] * len(names)
        ids = [encode_name(n, u, self.max_len) for n, u in zip(names, units, strict=True)]
        width = max(len(i) for i in ids)
        dev = self.embed.weight.device
        idx = torch.tensor([i + [_PAD] * (width - len(i)) for i in ids], device=dev)
        valid = (idx != _PAD).unsqueeze(-1)
        h = F.gelu(self.conv(self.embed(idx).transpose(1, 2))).transpose(1, 2)  # [V, k, C]
        mean = (h * valid).sum(1) / valid.sum(1).clamp_min(1)
        mx = h.masked_fill(~valid, float("-inf")).amax(1)
        return self.out(torch.cat([mean, mx], dim=-1))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.out_channels}, char_channels={self.char_channels})"
