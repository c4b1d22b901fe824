"""PNG maps of graphs: edges as lines, nodes coloured by a variable or a static attribute."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from stgraph.errors import ConfigError, DataFormatError
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
    raise ConfigError(
        f"color_by={color_by!r}: not a variable ({variables}) nor a node attribute ({list(names)})"
    )


#: Most edges drawn in one map; beyond it a reproducible random sample is drawn and the title
#: says so (the colour of the nodes, not a solid grey mass of lines, is what a map shows).
MAX_DRAWN_EDGES = 20_000


def _edge_lines(graph, pos: np.ndarray) -> tuple[list | np.ndarray | None, int]:
    """The lines to draw and how many edges they stand for: road polylines when the graph has
    them, else one straight segment per node pair (``i -> j`` and ``j -> i`` drawn once)."""
    meta = graph.meta or {}
    geom, ptr = getattr(graph, "road_geom", None), getattr(graph, "road_geom_ptr", None)
    ei = graph.edge_index
    n = len(pos)
    n_lines = n if meta.get("road_node") == "segment" else (ei.size(1) if ei is not None else -1)
    if geom is not None and ptr is not None and ptr.numel() == n_lines + 1:
        g, pp = geom.double().numpy(), ptr.numpy()
        return [g[pp[i] : pp[i + 1]] for i in range(len(pp) - 1)], n_lines
    if ei is None or not ei.numel():
        return None, 0
    e = ei.numpy()
    pairs = np.unique(np.sort(e[:, e[0] != e[1]], axis=0), axis=1)  # undirected, no self-loops
    return np.stack([pos[pairs[0]], pos[pairs[1]]], 1), int(ei.size(1))


def _thin(lines, max_lines: int) -> tuple[list | np.ndarray, bool]:
    if len(lines) <= max_lines:
        return lines, False
    keep = np.sort(np.random.default_rng(0).choice(len(lines), max_lines, replace=False))
    return (lines[keep] if isinstance(lines, np.ndarray) else [lines[i] for i in keep]), True


def _edge_alpha(n_lines: int) -> float:
    """Nearly opaque for a few hundred lines, fainter as they crowd (0.3 at 5,000, 0.1 beyond
    50,000): where lines pile up the map darkens instead of turning solid."""
    return float(np.clip(np.sqrt(500.0 / max(n_lines, 1)), 0.1, 0.9))


def plot_graph(
    graph,
    path: str | os.PathLike,
    *,
    color_by: str | None = None,
    title: str | None = None,
    dpi: int = 150,
    vmin: float | None = None,
    vmax: float | None = None,
    max_edges: int = MAX_DRAWN_EDGES,
) -> Path:
    """Draw ``graph`` on its lon/lat coordinates and write a PNG to ``path`` atomically.

    Edges are straight lines between node positions (a pair linked both ways drawn once); road
    graphs carrying ``road_geom`` are drawn as their road polylines instead. Lines fade as they
    get many (alpha from 0.9 down to 0.1), and beyond ``max_edges`` a reproducible random
    sample of them is drawn (the title says how many). Nodes are dots coloured by ``color_by`` —
    a variable name (its mean over the observed steps) or a ``meta["node_attr_names"]`` entry —
    with a colour bar; ``vmin``/``vmax`` fix its range, so that maps of several graphs or
    models share one scale. The figure takes the map's aspect; ticks are at round steps with
    the decimals they need.

    Returns:
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    from stgraph.utils.plotting import map_figsize, style_map_axes

    if graph.pos is None:
        raise DataFormatError("plot_graph: the graph has no pos (lon/lat) to draw")
    pos = graph.pos.double().numpy()
    values, label = _node_values(graph, color_by)
    n = len(pos)
    fig = Figure(figsize=map_figsize(pos[:, 0], pos[:, 1], extra_w=1.5 if label else 0.3))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    lines, _ = _edge_lines(graph, pos)
    thinned = False
    if lines is not None and len(lines):
        lines, thinned = _thin(lines, max_edges)
        lw = 0.6 if n < 5000 and len(lines) < 5000 else 0.3
        ax.add_collection(
            LineCollection(
                lines, colors="0.45", linewidths=lw, alpha=_edge_alpha(len(lines)), zorder=1
            )
        )
    size = max(2.0, min(20.0, 4000.0 / max(n, 1)))
    if values is not None:
        ok = np.isfinite(values)
        if (~ok).any():
            ax.scatter(pos[~ok, 0], pos[~ok, 1], s=size, c="0.8", zorder=2, label="no value")
        sc = ax.scatter(
            pos[ok, 0], pos[ok, 1], s=size, c=values[ok], cmap="viridis", vmin=vmin, vmax=vmax
        )
        sc.set_zorder(3)
        fig.colorbar(sc, ax=ax, shrink=0.7, label=label)
    else:
        ax.scatter(pos[:, 0], pos[:, 1], s=size, c="tab:blue", zorder=3)
    ax.autoscale_view()
    style_map_axes(ax, pos[:, 0], pos[:, 1])
    meta = graph.meta or {}
    ei = graph.edge_index
    n_e = 0 if ei is None else int(ei.size(1))
    shown = f" (showing {len(lines):,} lines)" if thinned else ""
    ax.set_title(title or f"{meta.get('city') or 'graph'}: {n:,} nodes, {n_e:,} edges{shown}")
    fig.tight_layout()
    target = Path(path)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return target
