"""Digits that are not ASCII digits: `str.isdigit()` is true for superscript two (then
`int()` raises), Arabic-Indic one (`int()` reads 1) and full-width one. Every parser of host,
node or user text reads ASCII digits only, through one helper, and no parser in src uses
`isdigit()`/`isnumeric()`/`isdecimal()` again."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from phoenix.digits import is_digits, sint
from phoenix.drivers import gpu, idmaps
from phoenix.drivers.lxc import cgroups, config, idmap, linked
from phoenix.drivers.lxc.firewall import TableState
from phoenix.drivers.proxmox import doctor, doctor_node, mounts, pvesh
from phoenix.drivers.proxmox.properties import size_to_gib
from phoenix.errors import ParseError
from phoenix.inventory.models.fields import GpuAssignment, PortMapping, PortSpec

SRC = Path(__file__).resolve().parents[2] / "src" / "phoenix"
# superscript two, Arabic-Indic one, full-width one, NKo one.
NOT_ASCII = ["\u00b2", "\u0661", "\uff11", "\u07c1"]


@pytest.mark.parametrize("text", [*NOT_ASCII, "", "-1", "+1", " 1", "1\n", "1_000", "1.0"])
def test_only_ascii_digits_are_digits(text: str) -> None:
    assert text.isdigit() or not is_digits(text)  # the helper never accepts more
    assert not is_digits(text)


def test_ascii_digits_and_signs() -> None:
    assert is_digits("0") and is_digits("0123456789")
    assert sint("-12") == -12 and sint("7") == 7
    assert sint("-") is None and sint("--1") is None and sint("-\u00b2") is None


@pytest.mark.parametrize("digit", NOT_ASCII)
def test_proxmox_version_parsers_refuse_other_digits(digit: str) -> None:
    with pytest.raises(ParseError):
        pvesh.parse_version({"version": f"{digit}.4.1"})
    assert doctor_node.manager_version(f"pve-manager: {digit}.4-1 (running version)") is None


@pytest.mark.parametrize("digit", NOT_ASCII)
def test_subid_parsers_refuse_other_digits(digit: str) -> None:
    text = f"root:100000:6553{digit}\nroot:{digit}00000:65536\n"
    assert idmaps.delegated(text) == []
    assert not idmap.has_subids(text)
    assert doctor.parse_subid(text) is not None


@pytest.mark.parametrize("digit", NOT_ASCII)
def test_host_text_parsers_refuse_other_digits(digit: str) -> None:
    assert gpu.char_majors(f"Character devices:\n{digit}95 nvidia\n") == {}
    assert gpu.gpu_index(f"/dev/nvidia{digit}") is None
    limits = cgroups.parse_limits(
        {"lxc.cgroup2.memory.max": f"{digit}048576", "lxc.cgroup2.cpu.max": f"{digit}00000"}
    )
    assert limits.memory_mb is None and limits.cores is None
    assert config._int(digit) == 0
    assert TableState(chains={f"in_{digit}", "in_101"}).guests() == {101}


@pytest.mark.parametrize("digit", NOT_ASCII)
def test_linked_clone_scan_skips_other_digits(tmp_path: Path, digit: str) -> None:
    (tmp_path / digit).mkdir()
    (tmp_path / digit / "config").write_text("lxc.rootfs.path = overlay:/x\n")
    assert linked.dependents(tmp_path, 100) == []


def test_no_parser_in_src_uses_str_isdigit() -> None:
    pattern = re.compile(r"\.is(digit|numeric|decimal)\(\)")
    found = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line) and not line.lstrip().startswith("#") and path.name != "digits.py"
    ]
    assert not found, f"use phoenix.digits.is_digits instead: {found}"


@pytest.mark.parametrize("digit", NOT_ASCII)
def test_inventory_numbers_are_ascii_digits(digit: str) -> None:
    """A Python regex's `\\d` matches every decimal digit (Arabic-Indic, full-width...):
    a firewall port, a port mapping or a GPU index written so must not validate."""
    for kind, value in (
        (PortSpec, f"80{digit}"),
        (PortMapping, f"8000:80{digit}"),
        (GpuAssignment, f"0,{digit}"),
    ):
        with pytest.raises(ValidationError):
            TypeAdapter(kind).validate_python(value)


@pytest.mark.parametrize("digit", NOT_ASCII)
def test_node_config_keys_and_sizes_are_ascii_digits(digit: str) -> None:
    assert mounts.parse_entries({f"mp{digit}": "/srv/a,mp=/a"}) == []
    with pytest.raises(ValueError):
        size_to_gib(f"{digit}G")


def test_no_regex_in_src_uses_backslash_d() -> None:
    """`\\d` is any Unicode decimal digit in a `str` pattern: write `[0-9]`."""
    found = [
        f"{path.relative_to(SRC)}:{n}"
        for path in sorted(SRC.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "\\d" in line and not line.lstrip().startswith("#")
    ]
    assert not found, f"write [0-9] instead of \\d: {found}"
