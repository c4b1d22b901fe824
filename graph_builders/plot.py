"""PNG maps of graphs: edges as lines, nodes coloured by a variable or a static attribute."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stgraph.utils.atomic import atomic_path


def _node_values(graph, color_by: str | None) -> tuple[np.ndarray | None, str | None]:
    """Per-node values to colour by: a variable (mean over observed steps) or a node_attr column."""
    if color_by is None:
        return None, None
    meta = graph.meta or {}
    variables = [v["name"] for v in meta.get("variables", [])]
    if color_by in variables:
        v = variables.index(color_by)
        x = graph.x[:, :, v].double().numpy()
        m = graph.mask[:, :, v].numpy()
        count = m.sum(1)
        total = np.where(m, x, 0.0).sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            vals = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        unit = (meta["variables"][v] or {}).get("unit", "")
        return vals, f"{color_by} (mean{', ' + unit if unit else ''})"
    names = meta.get("node_attr_names") or []
    if color_by in names and graph.node_attr is not None:
        return graph.node_attr[:, names.index(color_by)].double().numpy(), color_by
    raise KeyError(
        f"color_by={color_by!r}: not a variable ({variables}) nor a node attribute ({list(names)})"
    )


def plot_graph(
    graph,
    path: str | os.PathLike,
    *,
    color_by: str | None = None,
    title: str | None = None,
    dpi: int = 150,
) -> Path:
    """Draw ``graph`` on its lon/lat coordinates and write a PNG to ``path`` atomically.

    Edges are straight lines between node positions; road graphs carrying ``road_geom`` are drawn
    as their road polylines instead; nodes are dots coloured by ``color_by`` — a variable name (its
    mean over the observed steps) or a ``meta["node_attr_names"]`` entry — with a colour bar.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    if graph.pos is None:
        raise ValueError("plot_graph: the graph has no pos (lon/lat) to draw")
    pos = graph.pos.double().numpy()
    values, label = _node_values(graph, color_by)
    n = len(pos)
    lat0 = float(np.nanmean(pos[:, 1])) if n else 0.0

    fig = Figure(figsize=(8, 8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    segments = None
    meta = graph.meta or {}
    geom, ptr = getattr(graph, "road_geom", None), getattr(graph, "road_geom_ptr", None)
    ei = graph.edge_index
    n_lines = n if meta.get("road_node") == "segment" else (ei.size(1) if ei is not None else -1)
    if geom is not None and ptr is not None and ptr.numel() == n_lines + 1:
        # road polylines: of the edges (intersection mode) or of the segment nodes (segment mode)
        g, pp = geom.double().numpy(), ptr.numpy()
        segments = [g[pp[i] : pp[i + 1]] for i in range(len(pp) - 1)]
    elif ei is not None and ei.numel():
        e = ei.numpy()
        segments = np.stack([pos[e[0]], pos[e[1]]], 1)
    if segments is not None and len(segments):
        lw = 0.6 if n < 5000 else 0.3
        ax.add_collection(LineCollection(segments, colors="0.55", linewidths=lw, zorder=1))
    size = max(2.0, min(20.0, 4000.0 / max(n, 1)))
    if values is not None:
        ok = np.isfinite(values)
        if (~ok).any():
            ax.scatter(pos[~ok, 0], pos[~ok, 1], s=size, c="0.8", zorder=2, label="no value")
        sc = ax.scatter(pos[ok, 0], pos[ok, 1], s=size, c=values[ok], cmap="viridis", zorder=3)
        fig.colorbar(sc, ax=ax, shrink=0.7, label=label)
    else:
        ax.scatter(pos[:, 0], pos[:, 1], s=size, c="tab:blue", zorder=3)
    ax.set_aspect(1.0 / max(np.cos(np.radians(lat0)), 1e-6))
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    n_e = 0 if ei is None else int(ei.size(1))
    ax.set_title(title or f"{meta.get('city') or 'graph'}: {n} nodes, {n_e} edges")
    ax.autoscale_view()
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return target
