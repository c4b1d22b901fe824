"""Calendar and sampling-interval encoding of timestamps."""

from __future__ import annotations

import math

import torch
from torch import Tensor

_DAY, _WEEK = 86_400, 7 * 86_400
#: Calendar parts :class:`TimeEncoding` can use.
CALENDAR = ("time_of_day", "day_of_week")


def time_features(time: Tensor, interval: Tensor, lead: Tensor | None = None) -> Tensor:
    r"""Calendar features of unix timestamps.

    ``[sin, cos](2\pi k\,\mathrm{tod})`` for ``k = 1, 2``, ``[sin, cos](2\pi\,\mathrm{dow})``,
    ``log(interval / 1 h) / 4``, ``log(1 + lead / 1 h) / 4`` and, with ``k = lead / interval`` the
    steps ahead, ``exp(-k)``, ``exp(-k / 3)``, ``exp(-k / 12)`` (``lead``: seconds after the last
    input step; no lead, for inputs, gives zeros). The absolute lead alone hardly tells near steps
    apart (5 and 10 minutes ahead differ by 0.018); the decaying step features do (0.37 against
    0.14 for ``exp(-k)``), so a query can ask for "the next step" on any sampling interval.
    1970-01-01 was a Thursday; day of week counts from Monday.

    Args:
        time: int64 ``[B, S]`` unix seconds.
        interval: ``[B]`` seconds between steps.
        lead: ``[B, S]`` seconds ahead, or ``None``.

    Returns:
        ``[B, S, 11]``.
    """
    tod = torch.remainder(time, _DAY).to(torch.float32) / _DAY
    dow = torch.remainder(time + 3 * _DAY, _WEEK).to(torch.float32) / _WEEK
    feats = [
        torch.sin(2 * math.pi * tod),
        torch.cos(2 * math.pi * tod),
        torch.sin(4 * math.pi * tod),
        torch.cos(4 * math.pi * tod),
        torch.sin(2 * math.pi * dow),
        torch.cos(2 * math.pi * dow),
    ]
    iv = torch.log(interval.to(torch.float32).clamp_min(1.0) / 3600.0).view(-1, 1) / 4
    feats.append(iv.expand_as(tod))
    if lead is None:
        feats.extend([torch.zeros_like(tod)] * 4)
    else:
        lead = lead.float().clamp_min(0)
        feats.append(torch.log1p(lead / 3600.0) / 4)
        steps = lead / interval.to(torch.float32).clamp_min(1.0).view(-1, 1)
        feats.extend(torch.exp(-steps / tau) for tau in (1.0, 3.0, 12.0))
    return torch.stack(feats, dim=-1)


class TimeEncoding(torch.nn.Module):
    r"""Embeds timestamps by time of day, day of week, sampling interval and lead time.

    The calendar part follows the temporal embeddings of STID (Shao et al., CIKM 2022) and
    Informer, computed from the timestamps instead of learned per-slot tables, so any sampling
    interval works; the interval itself enters as :math:`\log(\Delta t)`:

    .. math:: \mathrm{TE}(t) = W\,\phi(t, \Delta t, \ell) + b

    with :math:`\phi` from :func:`time_features`.

    A part left out of ``calendar`` enters as zeros, so the weights keep their shape and a model
    trained without a part loads into one with it (and back). Leaving ``"day_of_week"`` out suits
    series too short to have seen each weekday more than once (a week of Los-loop), where it can
    only be memorised.

    Args:
        out_channels (int): embedding size.
        calendar (sequence of str): parts of :data:`CALENDAR` to use (default both).

    Shapes:
        - **input:** ``time`` :math:`(B, S)` int64, ``interval`` :math:`(B)`, ``lead``
          :math:`(B, S)` or ``None``
        - **output:** :math:`(B, S, C_{out})`
    """

    num_features = 11

    def __init__(self, out_channels: int, calendar: tuple[str, ...] | list[str] = CALENDAR) -> None:
        super().__init__()
        unknown = set(calendar) - set(CALENDAR)
        if unknown:
            raise ValueError(
                f"calendar: unknown parts {sorted(unknown)}; known: {', '.join(CALENDAR)}"
            )
        self.out_channels = out_channels
        self.calendar = tuple(c for c in CALENDAR if c in calendar)
        keep = torch.ones(self.num_features)
        if "time_of_day" not in self.calendar:
            keep[0:4] = 0
        if "day_of_week" not in self.calendar:
            keep[4:6] = 0
        self.register_buffer("keep", keep, persistent=False)
        self.lin = torch.nn.Linear(self.num_features, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()

    def forward(self, time: Tensor, interval: Tensor, lead: Tensor | None = None) -> Tensor:
        return self.lin(time_features(time, interval, lead) * self.keep)

    def __repr__(self) -> str:
        extra = "" if self.calendar == CALENDAR else f", calendar={list(self.calendar)}"
        return f"{self.__class__.__name__}({self.out_channels}{extra})"
