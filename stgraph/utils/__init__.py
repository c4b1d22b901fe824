"""Small shared helpers."""

from stgraph.utils.atomic import atomic_dir, atomic_path, atomic_write_bytes, atomic_write_text
from stgraph.utils.seed import seed_everything

__all__ = [
    "atomic_dir",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "seed_everything",
]
