"""No call that can run code from a file, or a shell, appears in the package (issue 16, item 5).

An AST scan of ``stgraph/`` and ``graph_builders/`` (imports and aliases resolved, so
``from pickle import loads as l; l(b)`` is caught too) refuses:

- unpickling (``pickle.load``/``loads``/``Unpickler``, ``pandas.read_pickle``, ``joblib.load``,
  ``dill``, ``numpy.load(allow_pickle=True)``) outside the one verified, numpy-only unpickler in
  :mod:`stgraph.utils.readers`;
- ``torch.load`` without ``weights_only=True``;
- ``yaml.load``/``unsafe_load``/``full_load`` (``yaml.safe_load`` only) and ``yaml.Loader``;
- ``eval``/``exec``/``compile`` and ``os.system``/``os.popen``;
- ``subprocess`` with ``shell=True``;
- archive extraction to disk (``extractall``, ``extract``, ``shutil.unpack_archive``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("stgraph", "graph_builders")

#: The one place that may unpickle: the numpy-only unpickler, fed only sha256-verified bytes.
UNPICKLER = ("stgraph/utils/readers.py", {"_NumpyOnlyUnpickler", "load_verified_pickle"})

_UNPICKLE = {
    "pickle.load",
    "pickle.loads",
    "pickle.Unpickler",
    "_pickle.load",
    "_pickle.loads",
    "_pickle.Unpickler",
    "cPickle.load",
    "cPickle.loads",
    "dill.load",
    "dill.loads",
    "joblib.load",
    "pandas.read_pickle",
    "torch.serialization.load",
}
_ALWAYS = {
    "yaml.load": "yaml.load (use yaml.safe_load)",
    "yaml.unsafe_load": "yaml.unsafe_load",
    "yaml.full_load": "yaml.full_load (use yaml.safe_load)",
    "yaml.load_all": "yaml.load_all (use yaml.safe_load_all)",
    "yaml.Loader": "yaml.Loader",
    "yaml.UnsafeLoader": "yaml.UnsafeLoader",
    "eval": "eval",
    "exec": "exec",
    "compile": "compile",
    "builtins.eval": "eval",
    "builtins.exec": "exec",
    "os.system": "os.system",
    "os.popen": "os.popen",
    "shutil.unpack_archive": "shutil.unpack_archive",
}
_SUBPROCESS = {"subprocess." + f for f in ("run", "call", "check_call", "check_output", "Popen")}


def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted origin, for every import in the module (at any depth)."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    names[a.asname] = a.name
                else:
                    names[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                names[a.asname or a.name] = f"{node.module}.{a.name}"
    return names


def _dotted(node: ast.AST, aliases: dict[str, str]) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    base = aliases.get(node.id, node.id)
    base = {"pd": "pandas", "np": "numpy"}.get(base, base)
    return ".".join([base, *reversed(parts)])


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


class _Scanner(ast.NodeVisitor):
    def __init__(self, rel: str, aliases: dict[str, str]) -> None:
        self.rel, self.aliases = rel, aliases
        self.scope: list[str] = []
        self.found: list[str] = []

    def _allowed_unpickle(self) -> bool:
        path, names = UNPICKLER
        return self.rel == path and bool(self.scope) and self.scope[0] in names

    def _flag(self, node: ast.AST, what: str) -> None:
        self.found.append(f"{self.rel}:{node.lineno}: {what}")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.scope.append(node.name)
        for base in node.bases:
            if _dotted(base, self.aliases) in _UNPICKLE and not self._allowed_unpickle():
                self._flag(node, f"subclass of {_dotted(base, self.aliases)}")
        for stmt in node.body:
            self.visit(stmt)
        self.scope.pop()

    def visit_Attribute(self, node: ast.Attribute) -> None:
        name = _dotted(node, self.aliases)
        if name in ("yaml.Loader", "yaml.UnsafeLoader"):
            self._flag(node, name)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        name = _dotted(node.func, self.aliases)
        attr = node.func.attr if isinstance(node.func, ast.Attribute) else None
        if name in _UNPICKLE and not self._allowed_unpickle():
            self._flag(node, f"{name} (unpickling outside {UNPICKLER[0]})")
        elif name in _ALWAYS and name not in ("yaml.Loader", "yaml.UnsafeLoader"):
            self._flag(node, _ALWAYS[name])
        elif name == "torch.load" and not _is_true(_keyword(node, "weights_only")):
            self._flag(node, "torch.load without weights_only=True")
        elif name == "numpy.load" and not _is_false_or_absent(_keyword(node, "allow_pickle")):
            self._flag(node, "numpy.load with allow_pickle")
        elif name in _SUBPROCESS and _keyword(node, "shell") is not None:
            if not (
                isinstance(_keyword(node, "shell"), ast.Constant)
                and not _keyword(node, "shell").value
            ):
                self._flag(node, f"{name} with shell=")
        elif attr == "extractall" or (
            attr == "extract" and not ast.unparse(node.func).endswith(".str.extract")
        ):
            self._flag(node, f".{attr}() (archive extraction to disk)")
        self.generic_visit(node)


def _is_false_or_absent(node: ast.expr | None) -> bool:
    return node is None or (isinstance(node, ast.Constant) and node.value is False)


def scan_source(source: str, rel: str) -> list[str]:
    """The forbidden calls in one module's source, as ``path:line: what``."""
    tree = ast.parse(source, filename=rel)
    scanner = _Scanner(rel, _aliases(tree))
    scanner.visit(tree)
    return scanner.found


def scan_packages(root: Path = REPO) -> list[str]:
    """The forbidden calls in every module of :data:`PACKAGES` under ``root``."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            found += scan_source(path.read_text(encoding="utf-8"), rel)
    return found


def test_no_forbidden_call_in_the_package():
    n_files = sum(len(list((REPO / p).rglob("*.py"))) for p in PACKAGES)
    assert n_files > 50  # the scan really covers the packages
    assert scan_packages() == []


def test_the_verified_unpickler_is_the_one_exception():
    source = (REPO / UNPICKLER[0]).read_text(encoding="utf-8")
    assert "pickle.Unpickler" in source  # the exception is real: the scan allows it by name
    assert scan_source(source, UNPICKLER[0]) == []
    assert scan_source(source, "stgraph/datasets/elsewhere.py") != []  # not allowed elsewhere


@pytest.mark.parametrize(
    "snippet",
    [
        "import pickle\npickle.load(open('f', 'rb'))",
        "import pickle\nobj = pickle.loads(b'')",
        "from pickle import loads as l\nl(b'')",
        "import pickle as pk\nclass U(pk.Unpickler):\n    pass",
        "import pandas as pd\npd.read_pickle('f')",
        "import numpy as np\nnp.load('f.npy', allow_pickle=True)",
        "import torch\ntorch.load('w.pt')",
        "import torch\ntorch.load('w.pt', weights_only=False)",
        "from torch import load\nload('w.pt', map_location='cpu')",
        "import yaml\nyaml.load(open('c.yaml'))",
        "import yaml\nyaml.load(open('c.yaml'), Loader=yaml.Loader)",
        "import yaml\nyaml.unsafe_load('a: 1')",
        "eval('1 + 1')",
        "exec('x = 1')",
        "import os\nos.system('ls')",
        "import subprocess\nsubprocess.run('ls', shell=True)",
        "from subprocess import Popen\nPopen('ls', shell=True)",
        "import zipfile\nzipfile.ZipFile('a.zip').extractall('out')",
        "import tarfile\nwith tarfile.open('a.tar') as t:\n    t.extractall()",
        "import shutil\nshutil.unpack_archive('a.zip', 'out')",
    ],
)
def test_an_injected_forbidden_call_is_caught(snippet, tmp_path):
    # in a module of the package (not the allowed unpickler)...
    assert scan_source(snippet, "stgraph/datasets/injected.py"), snippet
    # ...and through the whole scan of a tree that holds it
    for package in PACKAGES:
        (tmp_path / package).mkdir(exist_ok=True)
    (tmp_path / "stgraph" / "injected.py").write_text(snippet + "\n")
    assert len(scan_packages(tmp_path)) >= 1


@pytest.mark.parametrize(
    "snippet",
    [
        "import yaml\nyaml.safe_load('a: 1')",
        "import torch\ntorch.load('w.pt', weights_only=True)",
        "import numpy as np\nnp.load('f.npy')",
        "import subprocess\nsubprocess.run(['ls'], check=True)",
        "import subprocess\nsubprocess.run(['ls'], shell=False)",
        "import zipfile\nzipfile.ZipFile('a.zip').read('m')",
        "import json\njson.loads('{}')",
        "import pandas as pd\npd.Series(['a1']).str.extract(r'(\\d)')",
    ],
)
def test_safe_calls_pass(snippet):
    assert scan_source(snippet, "stgraph/datasets/ok.py") == []
