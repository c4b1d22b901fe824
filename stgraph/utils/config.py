"""The one config validator: YAML mappings into typed dataclasses, ``--set`` overrides, ``$VARS``.

Training configs (:mod:`stgraph.train.config`), pretraining configs and build configs
(:mod:`graph_builders.build.config`) are dataclasses whose fields carry their defaults and help;
this module turns a raw mapping into one of them, with the same rules everywhere:

- every key must be a field of the dataclass (fields with ``init=False`` are set by the code, not
  by a config); an unknown key or a missing required one is a :class:`~stgraph.errors.ConfigError`
  naming the key's full path (``train.epoch``, ``sources[0].option``) and the file;
- values are checked against the field's type hint: ``int``, ``float`` (an ``int`` is accepted and
  converted; NaN refused), ``str``, ``bool``, ``X | None``, unions, ``list[X]``, ``dict[K, V]``
  (keys and values) and nested dataclasses; ``Any`` accepts anything;
- ``--set key.sub=value`` overrides (values parsed as YAML) are applied to the raw mapping before
  validation, so they are checked exactly like the file; a numeric part indexes a list
  (``sources.0.options.k=4``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import yaml

from stgraph.errors import ConfigError
from stgraph.utils.yamlio import read_yaml_mapping

__all__ = ["apply_overrides", "check_type", "expand_env", "from_dict", "read_config"]

T = TypeVar("T")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def check_type(value: object, tp: object, where: str, source: str) -> object:
    """``value`` checked against the type hint ``tp`` (and converted: ``int`` -> ``float``, a mapping
    -> the dataclass ``tp``); ``where`` is the key's path and ``source`` the file, for errors.

    Raises:
        ConfigError: ``value`` does not fit ``tp``.
    """
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _check_union(value, tp, where, source)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {where}: expected a list, got {type(value).__name__}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [check_type(v, item_tp, f"{where}[{i}]", source) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {where}: expected a mapping, got {type(value).__name__}")
        key_tp, item_tp = typing.get_args(tp) or (Any, Any)
        return {
            check_type(k, key_tp, f"{where} key {k!r}", source): check_type(
                v, item_tp, _join(where, str(k)), source
            )
            for k, v in value.items()
        }
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where=where, source=source)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if value != value:  # NaN (YAML .nan) passes every range check and breaks training quietly
            raise ConfigError(f"{source}: {where} = nan: expected a number")
        try:
            return float(value)
        except OverflowError:  # an int beyond float's range
            raise ConfigError(f"{source}: {where} = {value}: beyond the float range") from None
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"{source}: {where} = {value!r}: expected int")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(
            f"{source}: {where} = {value!r}: expected {tp.__name__}, got {type(value).__name__}"
        )
    return value


def _check_union(value: object, tp: object, where: str, source: str) -> object:
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    options = [a for a in args if a is not type(None)]
    if len(options) == 1:  # ``X | None``: the error of X, which names the inner key
        return check_type(value, options[0], where, source)
    for arg in options:
        try:
            return check_type(value, arg, where, source)
        except ConfigError:
            pass
    names = " | ".join(getattr(a, "__name__", str(a)) for a in args)
    raise ConfigError(f"{source}: {where} = {value!r}: expected {names}")


def from_dict(cls: type[T], raw: object, where: str = "", source: str = "<config>") -> T:
    """An instance of the dataclass ``cls`` from the mapping ``raw``, every key and type checked.

    Args:
        cls: the dataclass; its fields with ``init=False`` are not config keys.
        raw: the mapping (e.g. read from YAML).
        where: the path of ``raw`` in the whole config (``""`` at the top level), for errors.
        source: the file the mapping came from, for errors.

    Raises:
        ConfigError: ``raw`` is not a mapping, has a key ``cls`` lacks, lacks a required key, or
            a value of the wrong type; the message names the key's path and ``source``.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{source}: {where or 'top level'}: expected a mapping, got {type(raw).__name__}"
        )
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(raw) - set(fields), key=str)
    if unknown:
        key = _join(where, str(unknown[0]))
        inside = f" (no {unknown[0]!r} in {where})" if where else ""
        raise ConfigError(f"{source}: unknown key {key!r}{inside}; allowed here: {sorted(fields)}")
    kwargs = {}
    for name, f in fields.items():
        path = _join(where, name)
        if name in raw:
            kwargs[name] = check_type(raw[name], hints[name], path, source)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required key {path!r}")
    return cls(**kwargs)


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str] | None) -> dict[str, Any]:
    """Apply ``key.sub=value`` strings (values parsed as YAML) to a raw config mapping, in place.

    Missing sections are created; a numeric part indexes a list (``sources.0.path=x.csv``).

    Raises:
        ConfigError: an item is not ``key=value``, its value is not valid YAML, or its path runs
            through a value that is not a section (or an index beyond a list).
    """
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr=0.01")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node: object = raw
        for p in parts[:-1]:
            node = _child(node, p, item)
        last = parts[-1]
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or type(exc).__name__
            raise ConfigError(
                f"--set {item!r}: the value is not valid YAML ({problem}); quote it, e.g. "
                f"--set '{key}=\"{text}\"'"
            ) from None
        if isinstance(node, list):
            node[_index(node, last, item)] = value
        else:
            node[last] = value  # type: ignore[index]
    return raw


def _index(node: list, part: str, item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(
            f"--set {item!r}: {part!r} is not an index of a list of {len(node)} entries"
        )
    return int(part)


def _child(node: object, part: str, item: str) -> object:
    if isinstance(node, list):
        child = node[_index(node, part, item)]
    elif isinstance(node, dict):
        child = node.setdefault(part, {})
    else:
        child = None
    if not isinstance(child, (dict, list)):
        raise ConfigError(f"--set {item!r}: {part!r} is not a section")
    return child


def expand_env(value: T, where: str) -> T:
    """``value`` with ``$VAR`` / ``${VAR}`` expanded in every string (lists and mappings too).

    Raises:
        ConfigError: a variable is not set (naming it, the value and ``where``).
    """
    if isinstance(value, str):
        out = os.path.expandvars(value)
        left = re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", out)
        if left:
            raise ConfigError(
                f"{where}: environment variable {left[0]} is not set (in {value!r}); e.g. export "
                f"{left[0]}=/path/to/data"
            )
        return out  # type: ignore[return-value]
    if isinstance(value, list):
        return [expand_env(v, where) for v in value]  # type: ignore[return-value]
    if isinstance(value, dict):
        return {k: expand_env(v, where) for k, v in value.items()}  # type: ignore[return-value]
    return value


def read_config(
    cls: type[T],
    path: str | os.PathLike | None = None,
    *,
    raw: Mapping[str, Any] | None = None,
    overrides: Sequence[str] | None = None,
) -> tuple[T, str]:
    """Read a YAML file (or take ``raw``), apply ``overrides`` and validate into ``cls``.

    Returns:
        ``(config, source)``: the dataclass and the name used in errors (the path, or
        ``"<config>"``).
    """
    source = str(path) if path is not None else "<config>"
    data = read_yaml_mapping(path) if path is not None else dict(raw or {})
    return from_dict(cls, apply_overrides(data, overrides), source=source), source
