"""`phoenix doctor` on the node itself: pct and pvesh present, the Proxmox VE version (and
the raw keys it would drop), root, the cluster's quorum, which node the commands reach,
and inventory CTIDs taken by a VM or by a container on another node.

What the inventory needs on the node (storages, bridges, templates, firewall, AppArmor
profiles, delegated ids) is checked in `doctor`, which runs both in order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from phoenix.digits import is_digits
from phoenix.drivers.base import Check
from phoenix.drivers.proxmox import commands, pvesh
from phoenix.runners.base import CommandResult, Runner

PCT = "/usr/sbin/pct"
PVESH = "/usr/bin/pvesh"


def run(runner: Runner, argv: Sequence[str]) -> CommandResult:
    """One probe of a check (a runner returns failures; a check reads them)."""
    return runner.run(argv, timeout=60)


def run_json(runner: Runner, argv: Sequence[str]) -> tuple[Any, str]:
    """(pvesh's JSON, "") or (None, why it could not be read)."""
    result = run(runner, argv)
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


def check_tools(runner: Runner) -> list[Check]:
    checks: list[Check] = []
    for tool, path, package in (("pct", PCT, "pve-container"), ("pvesh", PVESH, "pve-manager")):
        found = run(runner, ["test", "-x", path]).ok
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


def manager_version(text: str) -> tuple[int, int] | None:
    """(major, minor) of pve-manager from `pveversion --verbose`."""
    parts = parse_pveversion(text).get("pve-manager", "").split(".")
    if len(parts) >= 2 and is_digits(parts[0]) and is_digits(parts[1]):
        return int(parts[0]), int(parts[1])
    return None


def check_version(runner: Runner) -> Check:
    result = run(runner, ["pveversion", "--verbose"])
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
    ok = is_digits(major) and int(major) >= 7
    return Check(
        "version",
        ok,
        f"pve-manager {manager}, pve-container {container}",
        "" if ok else "Proxmox VE 7 or newer is needed (pvesh JSON output, --current)",
    )


def check_raw_keys(
    version: tuple[int, int] | None, keys: Iterable[str], container: str | None = None
) -> list[Check]:
    """Raw keys this node's pve-container drops or its version moves (they would drift on
    every run); `container` is pveversion's pve-container version."""
    checks = []
    have = commands.parse_container_version(container) if container else None
    for key in sorted(keys):
        problem = commands.raw_key_problem(key, version, have)
        if problem is not None:
            checks.append(Check(f"raw key {key}", False, problem, "change lxc_options"))
    return checks


def check_root(runner: Runner) -> Check:
    result = run(runner, ["id", "-u"])
    ok = result.ok and result.stdout.strip() == "0"
    return Check(
        "root",
        ok,
        "commands run as root" if ok else f"commands run as uid {result.stdout.strip() or '?'}",
        "" if ok else "pct and /etc/pve need root: run Phoenix as root (or ssh as root@node)",
    )


def check_quorum(runner: Runner) -> tuple[Check, str | None]:
    """The cluster is quorate (else /etc/pve is read-only); also the local node's name."""
    data, err = run_json(runner, pvesh.cluster_status_cmd())
    if not isinstance(data, list):
        return Check("quorum", False, f"cannot read the cluster status: {err}", ""), None
    local = next(
        (str(e.get("name")) for e in data if e.get("type") == "node" and e.get("local")), None
    )
    cluster = next((e for e in data if e.get("type") == "cluster"), None)
    if cluster is None:
        return Check("quorum", True, "single node (no cluster)"), local
    ok = str(cluster.get("quorate", 0)) == "1"
    return (
        Check(
            "quorum",
            ok,
            f"cluster {cluster.get('name', '?')} is {'quorate' if ok else 'NOT quorate'}",
            ""
            if ok
            else "/etc/pve is read-only without quorum: bring the other nodes back "
            "(`pvecm status`) before changing guests",
        ),
        local,
    )


def check_ctids(runner: Runner, ctids: Iterable[int], local: str | None) -> list[Check]:
    """Inventory CTIDs taken by a VM, or by a container on another node."""
    data, err = run_json(runner, pvesh.cluster_resources_cmd())
    if not isinstance(data, list):
        return [Check("ctids", False, f"cannot list the cluster's guests: {err}", "")]
    taken = {int(e["vmid"]): e for e in data if isinstance(e, dict) and "vmid" in e}
    checks = []
    for ctid in sorted(ctids):
        entry = taken.get(ctid)
        if entry is None:
            continue
        kind, node = entry.get("type"), entry.get("node")
        if kind == "qemu":
            checks.append(
                Check(f"ctid {ctid}", False, f"is a VM on node {node}", "renumber the guest")
            )
        elif local is not None and node != local:
            checks.append(
                Check(
                    f"ctid {ctid}",
                    False,
                    f"is a container on node {node}, not on {local}",
                    f"migrate it here or renumber the guest (pct acts on {local} only)",
                )
            )
    if not checks:
        checks.append(Check("ctids", True, "no inventory CTID is a VM or on another node"))
    return checks


def node_name(runner: Runner) -> str | None:
    result = run(runner, ["uname", "-n"])
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
