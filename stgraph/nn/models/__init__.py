"""Part of :mod:`stgraph.nn`."""
