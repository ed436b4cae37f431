"""The fast paths of validation check exactly what the slow ones did: the character class
against `unicodedata`, the unknown-key walk against a walk over every value, and the cached
address parsing against `ipaddress`."""

from __future__ import annotations

import io
import ipaddress
import json
import sys
import tarfile
import unicodedata
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.inventory import validate_config_dir
from phoenix.inventory.jsonfile import MAX_DEPTH, _depth
from phoenix.inventory.models import (
    HypervisorConfig,
    LxcFile,
    LxcGuest,
    NetworkConfig,
    ipv4_interface,
)
from phoenix.inventory.problems import _BIDI, is_invisible, unsafe_character
from phoenix.inventory.typecheck import _extras, _walked_fields
from phoenix.recipes import registry
from phoenix.recipes.bundle import Bundle
from phoenix.recipes.runner import _pack, pack

# Default-ignorable code points outside category Cf (Unicode's DerivedCoreProperties):
# invisible too, so refused with the format characters.
_IGNORABLE = {0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180B, 0x180C, 0x180D, 0x180F, 0x3164}
_IGNORABLE |= {*range(0xFE00, 0xFE10), 0xFFA0, *range(0xE0100, 0xE01F0)}


def test_the_character_class_is_exactly_the_unicode_categories() -> None:
    """Every code point: unsafe iff category Cc/Zl/Zp/Cs/Cf or default-ignorable, as the
    docstring says (this fails if a range in the class is off by one). A format character
    Unicode added after this Python's version is unassigned (Cn) here."""
    for point in range(sys.maxunicode + 1):
        char = chr(point)
        category = unicodedata.category(char)
        expected = category in ("Cc", "Zl", "Zp", "Cs", "Cf") or point in _IGNORABLE
        found = unsafe_character(char) == char
        assert found is expected or (found and category == "Cn"), f"U+{point:04X}"
        assert is_invisible(char) is (found and category not in ("Cc", "Zl", "Zp", "Cs")) or (
            char in _BIDI
        ), f"U+{point:04X}"


def test_invisible_characters_are_named_as_such(minimal_dir: Path) -> None:
    """RLM, ZWSP, the soft hyphen, a tag character and a variation selector in a model name:
    refused, at the name's path, as invisible."""
    for char in ("\u200f", "\u200b", "\u00ad", "\U000e0041", "\ufe0f"):
        edit = json.loads((minimal_dir / "phoenix_lxc_configs.json").read_text())
        edit["lxc_configs"]["102"]["vllm_served_model_name"] = f"demo{char}-chat"
        (minimal_dir / "phoenix_lxc_configs.json").write_text(json.dumps(edit))
        result = CliRunner().invoke(app, ["-c", str(minimal_dir), "validate", "--json"])
        problems = json.loads(result.stdout)
        found = [p for p in problems if p["path"] == "lxc_configs.102.vllm_served_model_name"]
        assert result.exit_code == 1 and found, problems
        assert "invisible character" in found[0]["message"], found


def test_the_first_unsafe_character_is_reported() -> None:
    assert unsafe_character("ok\u202eevil\n") == "\u202e"
    assert unsafe_character("a\x7fb\x85") == "\x7f"
    assert unsafe_character("plain text, ünïcödé") is None


def _every_value(obj: Any, loc: list[str | int]) -> list[tuple[list[str | int], str]]:
    """The walk before it was made fast: every field of every model, every item."""
    out: list[tuple[list[str | int], str]] = []
    if isinstance(obj, BaseModel):
        if obj.model_config.get("extra") == "allow" and obj.model_extra:
            out += [(loc, key) for key in obj.model_extra]
        for name, info in type(obj).model_fields.items():
            out += _every_value(getattr(obj, name), [*loc, info.alias or name])
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            out += _every_value(item, [*loc, i])
    elif isinstance(obj, dict):
        for key, item in obj.items():
            out += _every_value(item, [*loc, key])
    return out


GUEST: dict[str, Any] = {
    "name": "g",
    "surprise": 1,
    "network_config": {"bridge": "vmbr0", "ip": "10.0.0.5/24", "odd": True},
    "firewall": {"enabled": True, "rules": [{"type": "in", "action": "ACCEPT", "x": 1}]},
    "volumes": [{"name": "v", "pool": "local", "size_gb": 1, "mount_point": "/v", "y": 2}],
    "mount_points": [{"host_path": "/h", "container_path": "/c", "z": 3}],
    "vllm_engine_config": {"ServerConfig": {"port": 8000, "deep": 1}, "Extra": {}},
    "health_check": {"command": "true", "hc": 1},
    "gateway": {
        "path_routes": [{"path": "/a", "ctid": 101, "port": 80, "pr": 1}],
        "host_routes": [{"hostname": "h.example", "ctid": 101, "port": 80, "hr": 1}],
        "api_keys": [{"name": "k", "sha256": "0" * 64, "ak": 1}],
        "gw": 1,
    },
    "tests": {"nested": {"not": "a model"}},
    "vllm_parameters": {"free": {"form": 1}},
}


def test_the_unknown_key_walk_finds_what_a_walk_over_every_value_finds() -> None:
    guest = LxcGuest.model_validate(GUEST)
    fast = list(_extras(guest, ["lxc_configs", "101"]))
    slow = _every_value(guest, ["lxc_configs", "101"])
    assert fast == slow
    keys = {key for _, key in fast}
    # One unknown key at each level of nesting, so a field left out of the walk shows here.
    assert {"surprise", "odd", "x", "y", "z", "deep", "Extra", "hc", "pr", "hr", "gw"} <= keys
    wrapped = LxcFile.model_validate({"lxc_configs": {"101": GUEST}, "top": 1})
    assert list(_extras(wrapped, [])) == _every_value(wrapped, [])
    hyp = HypervisorConfig.model_validate(
        {"network": {"interfaces": {"name": "vmbr0", "i": 1}}, "phoenix": {"p": 1}, "h": 1}
    )
    assert list(_extras(hyp, [])) == _every_value(hyp, [])


def test_only_fields_that_can_hold_a_model_are_walked() -> None:
    _, fields = _walked_fields(LxcGuest)
    walked = {name for name, _ in fields}
    assert {"network_config", "gateway", "volumes", "mount_points", "firewall"} <= walked
    assert not walked & {"name", "features", "tests", "vllm_parameters", "dependencies"}


def test_the_cached_interface_is_the_parsed_one() -> None:
    for text in ("10.0.0.5/24", "192.168.1.1/32", "10.200.3.4/16"):
        assert ipv4_interface(text) == ipaddress.IPv4Interface(text)
        assert ipv4_interface(text).network == ipaddress.IPv4Interface(text).network
    net = NetworkConfig.model_validate({"bridge": "vmbr0", "ip": "10.0.0.5/24"})
    assert net.address == "10.0.0.5"
    assert net.interface == ipaddress.IPv4Interface("10.0.0.5/24")


class CountingCatalog:
    """The registry's answers, counting how often each name is asked about."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()

    def feature_search_paths(self, name: str, scripts_dir: Path) -> list[Path]:
        return registry.feature_search_paths(name, scripts_dir)

    def find_feature(self, name: str, scripts_dir: Path) -> object | None:
        self.asked[f"feature {name}"] += 1
        return registry.find_feature(name, scripts_dir)

    def find_application(self, script: str, scripts_dir: Path) -> object | None:
        self.asked[f"application {script}"] += 1
        return registry.find_application(script, scripts_dir)

    def application_needs(
        self, script: str, scripts_dir: Path, values: Mapping[str, object]
    ) -> str | None:
        return registry.application_needs(script, scripts_dir, values)


def _many_guests(config_dir: Path, n: int) -> None:
    path = config_dir / "phoenix_lxc_configs.json"
    data = json.loads(path.read_text())
    for i in range(n):
        data["lxc_configs"][str(2000 + i)] = {
            "name": f"many-{i}",
            "clone_from_ctid": "900",
            "features": ["base_setup", "nosuch"],
            "application_script": "serve.sh",
        }
    path.write_text(json.dumps(data))


def test_each_recipe_name_is_looked_up_once_and_still_reported_for_every_guest(
    minimal_dir: Path,
) -> None:
    _many_guests(minimal_dir, 50)
    catalog = CountingCatalog()
    inventory, problems = validate_config_dir(minimal_dir, catalog)
    assert inventory is not None
    assert catalog.asked == Counter(
        {"feature base_setup": 1, "feature nosuch": 1, "application serve.sh": 1}
    )
    no_recipe = [p for p in problems if "'nosuch' has no recipe" in p.message]
    not_there = [p for p in problems if "'serve.sh' is not in" in p.message]
    assert len(no_recipe) == len(not_there) == 50
    assert no_recipe[0].path == "lxc_configs.2000.features[1]"
    assert str(minimal_dir / "scripts") in no_recipe[0].message  # where it looked
    assert not any("base_setup" in p.message for p in problems)


def test_the_cli_hands_in_the_registry(minimal_dir: Path) -> None:
    _many_guests(minimal_dir, 1)
    result = CliRunner().invoke(app, ["-c", str(minimal_dir), "validate", "--json"])
    assert result.exit_code == 0, result.output
    messages = [p["message"] for p in json.loads(result.stdout)]
    assert any("'nosuch' has no recipe" in m for m in messages)
    assert any("'serve.sh' is not in" in m for m in messages)


def test_without_a_catalog_only_the_recipe_warnings_are_left_out(
    minimal_dir: Path, tmp_path: Path
) -> None:
    """The library default: no catalog, no 'no recipe' warning; the checks of the config
    dir itself (an application path escaping it, a feature script linked out) stay."""
    _many_guests(minimal_dir, 1)
    secret = tmp_path / "secret"
    secret.write_text("x")
    (minimal_dir / "scripts").mkdir()
    (minimal_dir / "scripts" / "phoenix_hypervisor_feature_install_nosuch.sh").symlink_to(secret)
    data = json.loads((minimal_dir / "phoenix_lxc_configs.json").read_text())
    data["lxc_configs"]["102"]["application_script"] = "../escape.sh"
    (minimal_dir / "phoenix_lxc_configs.json").write_text(json.dumps(data))
    inventory, problems = validate_config_dir(minimal_dir)
    assert inventory is None
    messages = [p.message for p in problems]
    assert not any("has no recipe" in m or "is not in" in m for m in messages)
    assert any("escapes the scripts folder" in m for m in messages)
    assert any("'nosuch' is a symlink to a file outside the config dir" in m for m in messages)


def test_depth_counts_levels_of_objects_and_lists() -> None:
    values: list[Any] = [1, "s", {}, [], {"a": [{"b": 1}]}, [[], [[[]]]]]
    assert [_depth(v) for v in values] == [
        0,
        0,
        1,
        1,
        3,
        4,
    ]
    deep: Any = []
    for _ in range(MAX_DEPTH):
        deep = [deep, {"k": "v"}]
    assert _depth(deep) == MAX_DEPTH + 1


def test_a_bundle_is_packed_once_per_content_and_packing_stays_deterministic() -> None:
    def bundle(entry: dict[str, Any]) -> Bundle:
        return Bundle("feature-x", "x.sh", b"#!/bin/sh\ntrue\n", {"f": b"1"}, entry)

    first, same, other = bundle({"a": 1}), bundle({"a": 1}), bundle({"a": 2})
    assert _pack(first) == _pack(same), "the tarball itself is deterministic"
    assert pack(first) is pack(same), "equal content: packed once"
    assert pack(other) != pack(first)
    with tarfile.open(fileobj=io.BytesIO(pack(other)), mode="r:gz") as tar:
        entry = tar.extractfile("guest.json")
        assert entry is not None and json.loads(entry.read()) == {"a": 2}
