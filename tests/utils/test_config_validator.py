"""The one config validator (train and build configs): keys, types, overrides, variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from stgraph.errors import ConfigError
from stgraph.utils.config import apply_overrides, expand_env, from_dict, read_config


@dataclass
class Inner:
    k: int
    tags: list[str] = field(default_factory=list)


@dataclass
class Outer:
    name: str
    rate: float = 0.5
    inner: Inner | None = None
    items: list[Inner] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    origin: str | None = field(default=None, init=False)


def test_nested_dataclasses_lists_and_conversions():
    cfg = from_dict(
        Outer, {"name": "a", "rate": 2, "inner": {"k": 3}, "items": [{"k": 1, "tags": ["x"]}]}
    )
    assert cfg == Outer(name="a", rate=2.0, inner=Inner(3), items=[Inner(1, ["x"])])
    assert isinstance(cfg.rate, float) and cfg.origin is None


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"name": "a", "colour": 1}, r"f\.yaml: unknown key 'colour'; allowed here: \['inner',"),
        (
            {"name": "a", "items": [{"k": 1, "kk": 2}]},
            r"'items\[0\]\.kk' \(no 'kk' in items\[0\]\)",
        ),
        ({"name": "a", "origin": "x"}, r"unknown key 'origin'"),  # init=False: not a config key
        ({"rate": 1.0}, r"missing required key 'name'"),
        ({"name": "a", "inner": {}}, r"missing required key 'inner\.k'"),
        ({"name": "a", "rate": "fast"}, r"rate = 'fast': expected float, got str"),
        ({"name": "a", "inner": {"k": True}}, r"inner\.k = True: expected int"),
        ({"name": "a", "items": {"k": 1}}, r"items: expected a list, got dict"),
        ({"name": "a", "options": [1]}, r"options: expected a mapping, got list"),
        ([1, 2], r"top level: expected a mapping, got list"),
    ],
)
def test_errors_name_the_key_path_and_the_file(raw, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(Outer, raw, source="f.yaml")


def test_overrides_parse_yaml_create_sections_and_index_lists():
    raw = {"name": "a", "items": [{"k": 1}, {"k": 2}]}
    apply_overrides(raw, ["rate=0.1", "inner.k=7", "items.1.k=9", "options={a: [1, 2]}"])
    assert raw == {
        "name": "a",
        "items": [{"k": 1}, {"k": 9}],
        "rate": 0.1,
        "inner": {"k": 7},
        "options": {"a": [1, 2]},
    }
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides(raw, ["rate"])
    with pytest.raises(ConfigError, match=r"'name' is not a section"):
        apply_overrides(raw, ["name.first=b"])
    with pytest.raises(ConfigError, match=r"'x' is not an index of a list of 2"):
        apply_overrides(raw, ["items.x.k=1"])


def test_read_config_applies_overrides_before_checking(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: a\ninner: {k: 1}\n")
    cfg, source = read_config(Outer, path, overrides=["inner.k=5"])
    assert cfg.inner == Inner(5) and source == str(path)
    with pytest.raises(ConfigError, match=rf"{path}: inner\.k = 'x': expected int"):
        read_config(Outer, path, overrides=["inner.k=x"])


def test_expand_env(monkeypatch):
    monkeypatch.setenv("STG_TEST_ROOT", "/data")
    assert expand_env({"a": ["${STG_TEST_ROOT}/x", 3]}, "w") == {"a": ["/data/x", 3]}
    monkeypatch.delenv("STG_TEST_ROOT")
    with pytest.raises(ConfigError, match=r"w: environment variable STG_TEST_ROOT is not set"):
        expand_env("$STG_TEST_ROOT/x", "w")


# ------------------------------------------------------------- faults found by tests/fuzz


@dataclass
class Typed:
    weights: dict[str, float] = field(default_factory=dict)
    rate: float = 0.5


def test_dict_fields_check_their_keys_and_values():
    assert from_dict(Typed, {"weights": {"a": 1}}).weights == {"a": 1.0}
    with pytest.raises(ConfigError, match=r"weights key 1 = 1: expected str"):
        from_dict(Typed, {"weights": {1: 0.5}})
    with pytest.raises(ConfigError, match=r"weights\.a = 'x': expected float"):
        from_dict(Typed, {"weights": {"a": "x"}})


def test_nan_and_huge_ints_in_float_fields_are_config_errors():
    with pytest.raises(ConfigError, match=r"rate = nan: expected a number"):
        from_dict(Typed, {"rate": float("nan")})
    with pytest.raises(ConfigError, match=r"rate = 1{400}: beyond the float range"):
        from_dict(Typed, {"rate": int("1" * 400)})


def test_set_value_that_is_not_yaml_is_a_config_error():
    with pytest.raises(ConfigError, match=r"--set 'rate=\[1': the value is not valid YAML"):
        apply_overrides({}, ["rate=[1"])


def test_non_utf8_config_file_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"\xeename: demo\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: not UTF-8 text \(byte b'\\xee' at offset 0\)"):
        read_config(Outer, path)
