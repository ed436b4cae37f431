"""The loader's shortcuts for big inventories say exactly what the slow way says: an
address in `ipaddress`'s own spelling is checked with integers, a plain-ASCII file is not
walked for control characters, and the cycle collector is paused only while loading."""

from __future__ import annotations

import gc
import ipaddress
import itertools
import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from phoenix.inventory import validate_config_dir
from phoenix.inventory.jsonfile import JsonFileError, _depth, _text_depth, parse_json
from phoenix.inventory.models import LxcGuest, NetworkConfig, canonical_cidr
from phoenix.inventory.problems import Problem

from .helpers import LXC, edit_guest


def _slow_check(text: str) -> str:
    """What validation said of an address before the integer shortcut existed."""
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        return "invalid"
    net = iface.network
    if net.prefixlen < 32 and iface.ip in (net.network_address, net.broadcast_address):
        return "network or broadcast"
    return str(iface)


def _check(text: str) -> str:
    try:
        return NetworkConfig(bridge="vmbr0", ip=text).ip
    except ValidationError as exc:
        message = str(exc.errors()[0]["msg"])
        return "network or broadcast" if "network or broadcast" in message else "invalid"


OCTETS = ["0", "1", "9", "10", "99", "100", "199", "200", "249", "250", "255", "256", "01"]
PREFIXES = ["0", "1", "8", "9", "24", "30", "31", "32", "33", "024", "05", "255.255.255.0"]


@pytest.mark.parametrize("first", ["10", "0", "255", "1"])
def test_the_integer_check_agrees_with_ipaddress(first: str) -> None:
    for b, c, prefix in itertools.product(OCTETS, ["0", "255", "7"], PREFIXES):
        for d in ("0", "1", "254", "255"):
            text = f"{first}.{b}.{c}.{d}/{prefix}"
            assert _check(text) == _slow_check(text), text


def test_only_ipaddress_spelling_takes_the_integer_path() -> None:
    assert canonical_cidr("10.0.0.5/24") == (0x0A000005, 24)
    for other in ("10.0.0.05/24", "10.0.0.5/024", "10.0.0.5/255.255.255.0", "10.0.0.5/24\n"):
        assert canonical_cidr(other) is None
    assert canonical_cidr("\u0661.0.0.5/24") is None  # an Arabic-Indic digit is not "1"
    # the other spellings still validate, into the canonical one
    assert NetworkConfig(bridge="vmbr0", ip="10.0.0.5/255.255.255.0").ip == "10.0.0.5/24"
    assert NetworkConfig(bridge="vmbr0", ip="10.0.0.5/024").address == "10.0.0.5"


def _messages(problems: list[Problem]) -> list[str]:
    return [p.render() for p in problems]


@pytest.mark.parametrize(
    ("ip", "gw", "expected"),
    [
        ("10.0.0.5/24", "10.0.1.1", "gateway 10.0.1.1 is outside the guest's subnet 10.0.0.0/24"),
        ("10.0.0.5/32", "10.0.0.1", "gateway 10.0.0.1 is outside the guest's subnet 10.0.0.5/32"),
        ("10.0.0.5/24", "10.0.0.5", "gateway 10.0.0.5 is the guest's own address"),
        ("10.0.0.5/0", "192.168.1.1", None),
        ("10.0.0.5/24", "10.0.0.1", None),
    ],
)
def test_gateway_checks_by_integer(
    minimal_dir: Path, ip: str, gw: str, expected: str | None
) -> None:
    # A bridge of its own: the other guests' vmbr0 has another address (bridge_problems).
    edit_guest(minimal_dir, "102", network_config={"bridge": "vmbr9", "ip": ip, "gw": gw})
    _, problems = validate_config_dir(minimal_dir)
    found = [m for m in _messages(problems) if "lxc_configs.102.network_config.gw" in m]
    assert found == (
        [] if expected is None else [f"{LXC}: lxc_configs.102.network_config.gw: {expected}"]
    )


def test_a_model_built_without_validation_still_gets_its_gateway_checked() -> None:
    from phoenix.inventory.checks.addresses import network_problems

    net = NetworkConfig.model_construct(name="eth0", bridge="vmbr0", ip="10.0.0.5/255.255.255.0")
    net.gw = "10.0.1.1"
    guest = LxcGuest.model_construct(network_config=net)
    [problem] = network_problems(102, guest)
    assert problem.message == "gateway 10.0.1.1 is outside the guest's subnet 10.0.0.0/24"


@pytest.mark.parametrize(
    ("written", "bad"),
    [
        ('"a\\u0007b"', True),  # an escape that makes a control character
        ('"a\\nb"', True),
        ('"a\\u202eb"', True),  # a bidi override, escaped
        ('"a\u202eb"', True),  # ... and raw
        ('"a\x7fb"', True),  # DEL, raw (JSON allows it in a string)
        ('"a\\\\nb"', False),  # a backslash then "n": harmless, yet the walk must run
        ('"caf\u00e9"', False),  # non-ASCII, harmless
        ('"caf\\u00e9"', False),
    ],
    # ids without backslashes, so each case can be run alone (mutation testing does)
    ids=[
        *("bel-escaped", "newline-escaped", "bidi-escaped", "bidi-raw", "del-raw"),
        *("backslash-n", "accent-raw", "accent-escaped"),
    ],
)
def test_control_characters_found_whatever_the_spelling(
    minimal_dir: Path, written: str, bad: bool
) -> None:
    path = minimal_dir / LXC
    data = json.loads(path.read_text())
    data["lxc_configs"]["102"]["description"] = "PLACEHOLDER"
    path.write_text(json.dumps(data, indent=4).replace('"PLACEHOLDER"', written))
    _, problems = validate_config_dir(minimal_dir)
    found = [
        p for p in problems if p.path == "lxc_configs.102.description" and "control" in p.message
    ]
    assert bool(found) == bad, _messages(problems)


def test_the_collector_is_paused_only_while_loading(minimal_dir: Path) -> None:
    assert gc.isenabled()
    inventory, _ = validate_config_dir(minimal_dir)
    assert inventory is not None
    assert gc.isenabled()
    gc.disable()
    try:
        validate_config_dir(minimal_dir)
        assert not gc.isenabled(), "a caller that keeps it off finds it off"
    finally:
        gc.enable()


@pytest.mark.parametrize(
    ("text", "too_deep"),
    [
        ('{"a": ' + "[" * 64 + "]" * 64 + "}", True),
        ('{"a": ' + "[" * 63 + "]" * 63 + "}", False),
        ('{"a": "' + "[" * 100 + '"}', False),  # brackets in a string are text
        ('{"a": "' + "]" * 100 + '", "b": ' + "[" * 64 + "]" * 64 + "}", True),
        ('{"a": "\\"' + "[" * 100 + '", "b": [[]]}', False),  # an escaped quote: walked
        ('{"a\\"": ' + "[" * 64 + "]" * 64 + "}", True),
    ],
)
def test_nesting_limit_read_from_the_text(text: str, too_deep: bool) -> None:
    if too_deep:
        with pytest.raises(JsonFileError, match="nested more than 64 levels"):
            parse_json(text)
    else:
        parse_json(text)


def test_the_text_depth_is_the_parsed_depth() -> None:
    for text in ('{"a": "]]", "b": [[{}]]}', '{"k[": [1, {"z}": []}]}', "[]", '"x"', "{}"):
        assert _text_depth(text) == _depth(json.loads(text)), text
    assert _text_depth('{"a": "\\"]"}') is None


def test_a_command_gives_the_frozen_inventory_back(minimal_dir: Path) -> None:
    """The CLI freezes the loaded inventory for the command's life only: a process running
    many commands (these tests) must not keep their garbage forever."""
    from typer.testing import CliRunner

    from phoenix.cli.app import app

    result = CliRunner().invoke(app, ["-c", str(minimal_dir), "graph"])
    assert result.exit_code == 0, result.output
    assert gc.get_freeze_count() == 0
