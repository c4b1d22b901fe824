"""Reading YAML config files with errors that name the file."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from stgraph.errors import ConfigError


def read_yaml_mapping(path: str | os.PathLike) -> dict[str, Any]:
    """The top-level mapping of a YAML file (an empty file is ``{}``).

    Raises:
        ConfigError: the file is missing, is not UTF-8 or not valid YAML, or does not hold a
            mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start : exc.start + 1]!r} at offset "
            f"{exc.start})"
        ) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return dict(data)
