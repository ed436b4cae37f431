"""Golden edits of /etc/pve/lxc/<vmid>.conf: main section only, both syntaxes, duplicates."""

from __future__ import annotations

import pytest

from phoenix.drivers.proxmox import conffile
from tests.unit.proxmox.conftest import data

WANTED_101 = [("lxc.apparmor.profile", "unconfined"), ("lxc.mount.auto", "sys:rw")]


def replace_raw(text: str, wanted: list[tuple[str, str]]) -> str:
    """Phoenix owning every raw line of the main section: they all become `wanted`."""
    return conffile.edit_raw_keys(text, wanted, conffile.main_section_raw(text))


def test_messy_file_edited_in_main_section_only() -> None:
    old = data("conf_101_messy.conf")
    new = replace_raw(old, WANTED_101)
    main_old, rest_old = old.split("\n\n[pre-gateway]\n", 1)
    main_new, rest_new = new.split("\n\n[pre-gateway]\n", 1)
    # Snapshot and pending sections are byte-identical.
    assert rest_new == rest_old
    # Every raw line of the main section (either syntax, duplicates) is replaced by exactly
    # the wanted keys, after the other options.
    assert main_new == "\n".join(
        [line for line in main_old.splitlines() if not line.startswith("lxc.")]
        + ["lxc.apparmor.profile: unconfined", "lxc.mount.auto: sys:rw"]
    )
    assert "lxc.cgroup2.devices.allow" not in main_new
    assert conffile.main_section_raw(new) == WANTED_101


def test_exact_golden_output() -> None:
    old = (
        "#gateway\n"
        "hostname: Nginx-Phoenix\n"
        "lxc.apparmor.profile=unconfined\n"
        "memory: 4096\n"
        "lxc.mount.auto = sys:rw\n"
        "lxc.mount.auto: sys:rw\n"
        "\n"
        "[final-form]\n"
        "hostname: Nginx-Phoenix\n"
        "lxc.apparmor.profile: generated\n"
        "\n"
        "[pve:pending]\n"
        "lxc.mount.auto: proc:rw\n"
    )
    assert replace_raw(old, WANTED_101) == (
        "#gateway\n"
        "hostname: Nginx-Phoenix\n"
        "memory: 4096\n"
        "lxc.apparmor.profile: unconfined\n"
        "lxc.mount.auto: sys:rw\n"
        "\n"
        "[final-form]\n"
        "hostname: Nginx-Phoenix\n"
        "lxc.apparmor.profile: generated\n"
        "\n"
        "[pve:pending]\n"
        "lxc.mount.auto: proc:rw\n"
    )


def test_converged_file_is_unchanged_and_edit_is_idempotent() -> None:
    once = replace_raw(data("conf_101_messy.conf"), WANTED_101)
    assert replace_raw(once, WANTED_101) == once


def test_removing_all_raw_keys() -> None:
    old = "hostname: a\nlxc.mount.auto: sys:rw\n\n[snap]\nlxc.mount.auto: sys:rw\n"
    assert replace_raw(old, []) == "hostname: a\n\n[snap]\nlxc.mount.auto: sys:rw\n"


def test_file_without_trailing_newline_or_sections() -> None:
    assert replace_raw("hostname: a", [("lxc.mount.auto", "sys:rw")]) == (
        "hostname: a\nlxc.mount.auto: sys:rw\n"
    )


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("lxc.rootfs.path", "/x", "auto generated|generates it"),
        ("lxc.rootfs.options", "ro", "not supported"),
        ("lxc.aa_profile", "unconfined", "lxc.apparmor.profile"),
        ("lxc.network.type", "veth", "lxc.net"),
        ("lxc.utsname", "x", "lxc.uts.name"),
        ("lxc.limit.nofile", "1024", "lxc.prlimit.nofile"),
        ("lxc.bogus.key", "1", "not a raw LXC key"),
        ("lxc.Mount.auto", "sys:rw", "lower-case"),
    ],
)
def test_keys_proxmox_refuses(key: str, value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        replace_raw("hostname: a\n", [(key, value)])


@pytest.mark.parametrize(
    "key",
    [
        "lxc.cgroup2.devices.allow",
        "lxc.cgroup.memory.limit_in_bytes",
        "lxc.prlimit.nofile",
        "lxc.net.0.mtu",
        "lxc.idmap",
        "lxc.mount.entry",
        "lxc.apparmor.profile",
    ],
)
def test_keys_proxmox_accepts(key: str) -> None:
    assert conffile.key_problem(key, "x") is None


def test_a_one_value_key_given_twice_is_refused_a_many_value_key_repeats() -> None:
    with pytest.raises(ValueError, match="twice"):
        replace_raw("", [("lxc.apparmor.profile", "unconfined"), ("lxc.apparmor.profile", "x")])
    idmaps = [("lxc.idmap", "u 0 100000 65536"), ("lxc.idmap", "g 0 100000 65536")]
    assert replace_raw("", idmaps) == "lxc.idmap: u 0 100000 65536\nlxc.idmap: g 0 100000 65536\n"
