"""Shared pieces of the package's pictures: lead-time axes and readable map axes.

Used by the evaluation reports (:mod:`stgraph.train.reports`, :mod:`stgraph.train.transfer`)
and the build maps (:mod:`graph_builders.plot`), so that every picture labels lead times in
minutes or hours and every map has ticks that do not overlap.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["lead_times", "map_figsize", "style_map_axes"]


def lead_times(steps: int, interval_s: int | None) -> tuple[list[float], str]:
    """The x values and axis label of horizon steps ``1 .. steps``: minutes up to three hours,
    hours up to three days, days beyond; ``"horizon step"`` when the interval is unknown."""
    if not interval_s:
        return list(range(1, steps + 1)), "horizon step"
    span = steps * interval_s
    unit, div = (
        ("minutes", 60)
        if span < 3 * 3600
        else ("hours", 3600)
        if span < 3 * 86400
        else ("days", 86400)
    )
    return [(s + 1) * interval_s / div for s in range(steps)], f"lead time ({unit})"


def map_figsize(
    lon: np.ndarray, lat: np.ndarray, *, width: float = 7.0, extra_w: float = 1.2
) -> tuple[float, float]:
    """A figure size whose map area has the data's aspect (degrees scaled by ``cos(lat)``),
    ``width`` inches of map plus ``extra_w`` for a colour bar; height in ``[3, 9]`` inches."""
    lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
    ok = np.isfinite(lon) & np.isfinite(lat)
    if not ok.any():
        return width + extra_w, width
    dx = float(np.ptp(lon[ok])) * max(math.cos(math.radians(float(np.mean(lat[ok])))), 1e-6)
    dy = float(np.ptp(lat[ok]))
    ratio = dy / dx if dx > 0 else 1.0
    return width + extra_w, float(np.clip(width * ratio + 1.0, 3.0, 9.0))


def _degree_formatter(step: float) -> Any:
    from matplotlib.ticker import FuncFormatter

    decimals = max(0, math.ceil(-math.log10(step) - 1e-9)) if step > 0 else 2
    return FuncFormatter(lambda v, _pos: f"{v:.{decimals}f}")


def style_map_axes(ax: Any, lon: np.ndarray, lat: np.ndarray, *, labels: bool = True) -> None:
    """Lon/lat axes that read: equal ground distances (aspect ``1 / cos(lat)``), at most one
    x tick per inch of axis at round steps, as few decimals as the step needs, no offset."""
    from matplotlib.ticker import MaxNLocator

    lat = np.asarray(lat, dtype=float)
    lat0 = float(np.nanmean(lat)) if lat.size and np.isfinite(lat).any() else 0.0
    ax.set_aspect(1.0 / max(math.cos(math.radians(lat0)), 1e-6), adjustable="datalim")
    fig = ax.figure
    box = ax.get_position()
    w_in, h_in = box.width * fig.get_figwidth(), box.height * fig.get_figheight()
    # x labels side by side need about an inch each; y labels only their line height
    for axis, per_tick, values in ((ax.xaxis, w_in / 0.9, lon), (ax.yaxis, h_in / 0.6, lat)):
        loc = MaxNLocator(nbins=max(3, int(per_tick)), steps=[1, 2, 5, 10])
        axis.set_major_locator(loc)
        v = np.asarray(values, dtype=float)
        v = v[np.isfinite(v)]
        ticks = loc.tick_values(float(v.min()), float(v.max())) if v.size else [0.0, 1.0]
        step = float(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
        axis.set_major_formatter(_degree_formatter(step))
    ax.tick_params(labelsize=8)
    if labels:
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
