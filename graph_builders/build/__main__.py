"""``python -m graph_builders.build ...``: the same as ``stgraph build ...``."""

import sys

from stgraph.cli import main

raise SystemExit(main(["build", *sys.argv[1:]]))
