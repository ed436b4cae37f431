"""`phoenix doctor`: is this node ready for the Proxmox driver, and if not, what to fix.

Every check runs through a Runner (locally on the node, or over SSH), never raises for a
missing tool, and says what to do when it fails. The checks that need pvesh are skipped
(and say so) when pvesh itself is missing, so on a host without Proxmox the report is one
clear line about pct/pvesh instead of a cascade.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from phoenix.drivers.proxmox import pvesh
from phoenix.errors import CommandFailed
from phoenix.inventory import Inventory
from phoenix.runners.base import CommandResult, Runner

PCT = "/usr/sbin/pct"
PVESH = "/usr/bin/pvesh"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class Needs:
    """What the inventory expects of the node."""

    storages: frozenset[str]
    bridges: frozenset[str]
    templates: frozenset[str]


def needs_of(inventory: Inventory) -> Needs:
    guests = inventory.guests.values()
    return Needs(
        storages=frozenset(g.storage_pool for g in guests),
        bridges=frozenset(g.network_config.bridge for g in guests if g.network_config),
        templates=frozenset(g.template for g in guests if g.template),
    )


def _run(runner: Runner, argv: Sequence[str]) -> CommandResult:
    try:
        return runner.run(argv, timeout=60)
    except CommandFailed as exc:
        return CommandResult(tuple(argv), exc.returncode, exc.stdout, exc.stderr)


def _json(runner: Runner, argv: Sequence[str]) -> tuple[Any, str]:
    result = _run(runner, argv)
    if not result.ok:
        return None, (result.stderr or result.stdout).strip() or f"exit {result.returncode}"
    try:
        return json.loads(result.stdout), ""
    except json.JSONDecodeError:
        return None, "pvesh did not return JSON"


def parse_pveversion(text: str) -> dict[str, str]:
    """`pveversion --verbose` -> {package: version} (`pve-manager: 8.2.2 (running ...)`)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, rest = line.partition(":")
        if sep and rest.strip():
            out[name.strip()] = rest.strip().split()[0]
    return out


def parse_subid(text: str, user: str = "root", need: int = 65536) -> str | None:
    """None if `user` has a range of at least `need` ids in /etc/subuid-style text, else why."""
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] == user and parts[2].isdigit() and int(parts[2]) >= need:
            return None
    return f"no range of {need} ids for {user}"


def check_tools(runner: Runner) -> list[Check]:
    checks: list[Check] = []
    for tool, path, package in (("pct", PCT, "pve-container"), ("pvesh", PVESH, "pve-manager")):
        found = _run(runner, ["test", "-x", path]).ok
        checks.append(
            Check(
                tool,
                found,
                f"{path} present" if found else f"{tool} is missing ({path} not found)",
                ""
                if found
                else (
                    f"this host is not a Proxmox VE node: run Phoenix on the node, set "
                    f"phoenix.ssh_host to reach it, or use --driver lxc here ({package})"
                ),
            )
        )
    return checks


def check_version(runner: Runner) -> Check:
    result = _run(runner, ["pveversion", "--verbose"])
    if not result.ok:
        return Check(
            "pveversion",
            False,
            "pveversion failed or is missing",
            "install Proxmox VE (pve-manager) or point Phoenix at a node",
        )
    versions = parse_pveversion(result.stdout)
    manager, container = versions.get("pve-manager", "?"), versions.get("pve-container", "?")
    major = manager.split(".", 1)[0]
    ok = major.isdigit() and int(major) >= 7
    return Check(
        "version",
        ok,
        f"pve-manager {manager}, pve-container {container}",
        "" if ok else "Proxmox VE 7 or newer is needed (pvesh JSON output, --current)",
    )


def check_node(runner: Runner, node: str, needs: Needs) -> list[Check]:
    checks: list[Check] = []
    data, err = _json(runner, pvesh.storage_cmd(node))
    if data is None:
        checks.append(
            Check(
                "storages",
                False,
                f"cannot list storages of node {node!r}: {err}",
                "check the node name (phoenix.node) and that pvesh works as root",
            )
        )
    else:
        storages = pvesh.parse_storages(data)
        for name in sorted(needs.storages):
            entry = storages.get(name)
            if entry is None:
                checks.append(
                    Check(
                        f"storage {name}",
                        False,
                        "does not exist on the node",
                        f"add it (pvesm add ...) or fix storage_pool; have: "
                        f"{', '.join(sorted(storages)) or 'none'}",
                    )
                )
                continue
            content = str(entry.get("content", "")).split(",")
            active = str(entry.get("active", 1)) == "1"
            ok = "rootdir" in content and active
            checks.append(
                Check(
                    f"storage {name}",
                    ok,
                    f"{entry.get('type', '?')}, content {','.join(content)}"
                    + ("" if active else ", inactive"),
                    ""
                    if ok
                    else f"enable container disks on it: pvesm set {name} --content "
                    f"{','.join(sorted({*content, 'rootdir'} - {''}))} (and make it active)",
                )
            )
    data, err = _json(runner, pvesh.network_cmd(node))
    if data is None:
        checks.append(
            Check(
                "bridges",
                False,
                f"cannot list the node's network: {err}",
                "check the node name (phoenix.node)",
            )
        )
    else:
        bridges = pvesh.parse_bridges(data)
        for name in sorted(needs.bridges):
            ok = name in bridges
            checks.append(
                Check(
                    f"bridge {name}",
                    ok,
                    "exists" if ok else "does not exist",
                    ""
                    if ok
                    else "create it under System > Network (or "
                    "/etc/network/interfaces) and apply, or fix network_config.bridge",
                )
            )
    return checks


def check_templates(runner: Runner, templates: Iterable[str]) -> list[Check]:
    checks: list[Check] = []
    for template in sorted(templates):
        if template.startswith("/"):
            ok = _run(runner, ["test", "-f", template]).ok
        elif ":vztmpl/" in template:
            ok = _run(runner, ["pvesm", "path", template]).ok
        else:
            checks.append(
                Check(
                    f"template {template}",
                    False,
                    "not a path or volume id",
                    "use an absolute path or <storage>:vztmpl/<file>",
                )
            )
            continue
        checks.append(
            Check(
                f"template {template}",
                ok,
                "present" if ok else "missing",
                ""
                if ok
                else "download it: pveam update && pveam available; "
                "pveam download <storage> <file>",
            )
        )
    return checks


def check_subids(runner: Runner) -> list[Check]:
    checks: list[Check] = []
    for path in ("/etc/subuid", "/etc/subgid"):
        result = _run(runner, ["cat", path])
        problem = parse_subid(result.stdout) if result.ok else f"cannot read {path}"
        checks.append(
            Check(
                path,
                problem is None,
                "root:100000:65536 or larger" if problem is None else problem,
                ""
                if problem is None
                else f"add 'root:100000:65536' to {path} "
                "(unprivileged containers map their ids there)",
            )
        )
    return checks


def node_name(runner: Runner) -> str | None:
    result = _run(runner, ["uname", "-n"])
    name = result.stdout.strip().split(".", 1)[0]
    return name if result.ok and name else None


def check_node_name(runner: Runner, node: str | None) -> Check:
    """The node pvesh is asked about must be the one the runner reaches: pvesh proxies
    `/nodes/<other>/...` to another cluster node while pct acts on this one."""
    real = node_name(runner)
    if node is None or node == "localhost":
        return Check("node", True, f"{real or '?'} (pvesh is asked about /nodes/localhost)")
    if real is not None and real != node:
        return Check(
            "node",
            False,
            f"phoenix.node is {node!r} but the commands run on node {real!r}",
            f"set phoenix.node to {real!r} or leave it out (Phoenix then asks /nodes/localhost)",
        )
    return Check("node", True, node)


def run_doctor(runner: Runner, needs: Needs, node: str | None = None) -> list[Check]:
    """All checks, in order; pvesh-based ones are skipped when pvesh is missing."""
    checks = check_tools(runner)
    if not all(c.ok for c in checks):
        return checks
    checks.append(check_version(runner))
    named = check_node_name(runner, node)
    checks.append(named)
    if named.ok:
        checks += check_node(runner, node or "localhost", needs)
    checks += check_templates(runner, needs.templates)
    checks += check_subids(runner)
    return checks
