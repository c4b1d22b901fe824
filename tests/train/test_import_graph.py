"""No import circles in ``stgraph``.

The graph is read from the source with :mod:`ast`: an edge for every ``import`` of a
``stgraph`` module, at module level or inside a function (a lazy import that closes a circle is
still a circle), to the module it names (``from pkg import name`` names ``pkg.name`` when that
is a module, else ``pkg``). The import of a package's ``__init__`` that Python runs before any of
its submodules is not an edge of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph() -> nx.DiGraph:
    """Modules of ``stgraph`` and the ``stgraph`` modules each one imports."""
    files = {_module_name(p): p for p in (ROOT / "stgraph").rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(files)
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names
                ]
            for t in targets:
                if t in files and t != name:
                    graph.add_edge(name, t)
    return graph


def test_the_graph_sees_the_imports_it_should():
    g = import_graph()
    assert g.has_edge("stgraph.train.trainer", "stgraph.train.evaluate")
    assert g.has_edge("stgraph.train.assemble", "stgraph.datasets")  # inside a function
    assert g.has_edge("stgraph.tasks.registry", "stgraph.baselines")


def test_no_import_circles():
    g = import_graph()
    circles = [sorted(c) for c in nx.strongly_connected_components(g) if len(c) > 1]
    assert circles == []
