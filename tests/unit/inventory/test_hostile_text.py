"""Text that would split a config line, reach a command or rewrite the terminal is refused,
and what is refused is refused the same way everywhere (full matches, strict CTIDs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.drivers.lxc import config as lxc_config
from phoenix.drivers.proxmox import conffile
from phoenix.inventory import load_inventory
from phoenix.inventory.models import FirewallRuleModel, HostRoute, LxcGuest, NetworkConfig
from tests.unit.inventory.helpers import edit_guest as _edit
from tests.unit.inventory.helpers import validate_json as _validate

LXC = "phoenix_lxc_configs.json"

# Everything str.splitlines() splits on, plus the rest of the controls that matter.
LINE_BREAKS = ["\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]


@pytest.mark.parametrize("brk", LINE_BREAKS, ids=[f"U+{ord(c):04X}" for c in LINE_BREAKS])
def test_a_line_break_in_a_raw_lxc_option_is_an_error(minimal_dir: Path, brk: str) -> None:
    _edit(minimal_dir, "102", lxc_options=[f"lxc.apparmor.profile: unconfined{brk}mp0: /,mp=/mnt"])
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    assert any(
        p["path"] == "lxc_configs.102.lxc_options[0]" and "control character" in p["message"]
        for p in problems
    )


@pytest.mark.parametrize(
    "field,value",
    [
        ("template", "debootstrap:bookworm\x1b[2J"),
        ("storage_pool", "local\tx"),
        ("application_script", "run\u202e.sh"),
        ("apparmor_profile", "unconfined\x7f"),
    ],
)
def test_control_characters_anywhere_in_a_guest_are_errors(
    minimal_dir: Path, field: str, value: str
) -> None:
    _edit(minimal_dir, "102", **{field: value})
    code, problems, output = _validate(minimal_dir)
    assert code == 1
    assert any(p["path"] == f"lxc_configs.102.{field}" for p in problems), output


def test_escape_sequences_never_reach_the_terminal(minimal_dir: Path) -> None:
    _edit(minimal_dir, "102", name="evil\x1b]0;pwned\x07", **{"colour\x1b[2J": "blue"})
    result = CliRunner().invoke(app, ["-c", str(minimal_dir), "validate"])
    assert result.exit_code == 1
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "lxc_configs.102.name" in result.output
    assert 'lxc_configs.102."colour\\u001b[2J"' in result.output


def test_hypervisor_and_vm_files_are_checked_too(minimal_dir: Path) -> None:
    hyp = minimal_dir / "phoenix_hypervisor_config.json"
    data = json.loads(hyp.read_text())
    data["timezone"] = "UTC\rX"
    hyp.write_text(json.dumps(data))
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    assert any(p["path"] == "timezone" and "U+000D" in p["message"] for p in problems)


def replace_raw(text: str, wanted: list[tuple[str, str]]) -> str:
    """Phoenix owning every raw line of the main section: they all become `wanted`."""
    return conffile.edit_raw_keys(text, wanted, conffile.main_section_raw(text))


def test_proxmox_config_is_split_on_newline_only() -> None:
    """A raw line Proxmox stored with a \\r in it stays one line: its tail never becomes a
    real option (`mp0`, the host's root in the guest) on the next edit."""
    old = "arch: amd64\nlxc.apparmor.profile: unconfined\rmp0: /,mp=/mnt/hostroot\nmemory: 512\n"
    new = replace_raw(old, [("lxc.apparmor.profile", "unconfined")])
    assert "mp0" not in new
    assert new == "arch: amd64\nmemory: 512\nlxc.apparmor.profile: unconfined\n"


def test_lxc_config_is_split_on_newline_only() -> None:
    parsed = lxc_config.parse("lxc.uts.name = a\x85lxc.mount.entry = / mnt none bind 0 0\n")
    assert parsed.managed == [("lxc.uts.name", "a\x85lxc.mount.entry = / mnt none bind 0 0")]


# -- full matches: a trailing newline is not accepted by a `$` --------------------------------


def _guest(**changes: Any) -> dict[str, Any]:
    return {"name": "a", "template": "t.tar.gz", **changes}


@pytest.mark.parametrize(
    "model,data",
    [
        (LxcGuest, _guest(name="gw\n")),
        (LxcGuest, _guest(mac_address="52:54:00:00:00:01\n")),
        (LxcGuest, _guest(template_snapshot_name="final-form\n")),
        (LxcGuest, _guest(features=["base_setup\n"])),
        (NetworkConfig, {"name": "eth0\n", "bridge": "vmbr0", "ip": "10.0.0.5/24"}),
        (NetworkConfig, {"name": "eth0", "bridge": "vmbr0\n", "ip": "10.0.0.5/24"}),
        (FirewallRuleModel, {"type": "in", "action": "ACCEPT", "proto": "tcp", "port": "80\n"}),
        (HostRoute, {"hostname": "chat.lab\n", "url": "http://x"}),
    ],
)
def test_trailing_newline_is_not_a_match(model: Any, data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(data)


def test_lxc_option_with_trailing_newline_is_refused() -> None:
    with pytest.raises(ValidationError):
        LxcGuest.model_validate(_guest(lxc_options=["lxc.mount.auto: sys:rw\n"]))


# -- CTIDs: ASCII digits, no leading zero ---------------------------------------------------

ODD_IDS = ["0101", "\uff11\uff10\uff11", "\u0661\u0660\u0661", "\u00b2", " 101", "101 "]


# Test ids without spaces or backslashes, so each can be run alone (mutation testing does).
ODD_ID_NAMES = [
    "leading-zero",
    "fullwidth",
    "arabic-indic",
    "superscript",
    "space-before",
    "space-after",
]


@pytest.mark.parametrize("key", ODD_IDS, ids=ODD_ID_NAMES)
def test_odd_ctid_keys_are_errors_and_replace_nothing(minimal_dir: Path, key: str) -> None:
    path = minimal_dir / LXC
    data = json.loads(path.read_text())
    data["lxc_configs"][key] = dict(data["lxc_configs"]["102"], name="intruder")
    path.write_text(json.dumps(data))
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    assert any("is not a container id" in p["message"] for p in problems)


@pytest.mark.parametrize("value", ["0900", "\uff19\uff10\uff10", "\u00b2"])
def test_odd_ctid_values_are_errors(minimal_dir: Path, value: str) -> None:
    _edit(minimal_dir, "102", clone_from_ctid=value)
    code, problems, _ = _validate(minimal_dir)
    assert code == 1
    assert any(p["path"] == "lxc_configs.102.clone_from_ctid" for p in problems)


@pytest.mark.parametrize("arg", ["\u00b2", "0101", "\uff11\uff10\uff11", "\u0661\u0660\u0661"])
def test_cli_ids_parse_the_same_way(minimal_dir: Path, arg: str) -> None:
    result = CliRunner().invoke(app, ["-c", str(minimal_dir), "graph", arg])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    assert "is not a guest id" in result.output
    assert load_inventory(minimal_dir).guests[101].name == "gw"
