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

from phoenix.drivers import idmaps
from phoenix.drivers.base import Check
from phoenix.drivers.proxmox import commands, pvesh
from phoenix.runners.base import CommandResult, Runner

PCT = "/usr/sbin/pct"
PVESH = "/usr/bin/pvesh"


# Storage types on which pve-storage can snapshot a container volume.
SNAPSHOT_STORAGE_TYPES = frozenset({"zfspool", "lvmthin", "rbd", "btrfs"})
# AppArmor profiles every Proxmox node has (or that are not profiles at all).
STOCK_PROFILES = ("unconfined", "generated", "lxc-container-default")


@dataclass(frozen=True)
class Needs:
    """What the inventory expects of the node (`phoenix.cli.proxmox_cmds.needs_of` reads it
    from the inventory: a driver knows nothing of it)."""

    storages: frozenset[str]
    bridges: frozenset[str]
    templates: frozenset[str]
    snapshot_storages: frozenset[str] = frozenset()  # storages of guests Phoenix snapshots
    firewall: bool = False  # some guest enables its firewall
    ctids: frozenset[int] = frozenset()
    apparmor_profiles: frozenset[str] = frozenset()  # custom profiles the guests name
    raw_keys: frozenset[str] = frozenset()
    # (kind u|g, first host id, count) of every guest's `id_maps`: root must own them.
    id_ranges: frozenset[tuple[str, int, int]] = frozenset()


def _run(runner: Runner, argv: Sequence[str]) -> CommandResult:
    return runner.run(argv, timeout=60)


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


def manager_version(text: str) -> tuple[int, int] | None:
    """(major, minor) of pve-manager from `pveversion --verbose`."""
    parts = parse_pveversion(text).get("pve-manager", "").split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        return int(parts[0]), int(parts[1])
    return None


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


def check_raw_keys(version: tuple[int, int] | None, keys: Iterable[str]) -> list[Check]:
    """Raw keys this node's version drops or moves (they would drift on every run)."""
    checks = []
    for key in sorted(keys):
        problem = commands.raw_key_problem(key, version)
        if problem is not None:
            checks.append(Check(f"raw key {key}", False, problem, "change lxc_options"))
    return checks


def check_root(runner: Runner) -> Check:
    result = _run(runner, ["id", "-u"])
    ok = result.ok and result.stdout.strip() == "0"
    return Check(
        "root",
        ok,
        "commands run as root" if ok else f"commands run as uid {result.stdout.strip() or '?'}",
        "" if ok else "pct and /etc/pve need root: run Phoenix as root (or ssh as root@node)",
    )


def check_quorum(runner: Runner) -> tuple[Check, str | None]:
    """The cluster is quorate (else /etc/pve is read-only); also the local node's name."""
    data, err = _json(runner, pvesh.cluster_status_cmd())
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
    data, err = _json(runner, pvesh.cluster_resources_cmd())
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


def check_datacenter_firewall(runner: Runner) -> Check:
    """Guest firewalls filter nothing while the datacenter firewall is off (the default)."""
    data, err = _json(runner, pvesh.cluster_firewall_cmd())
    if not isinstance(data, dict):
        return Check("datacenter firewall", False, f"cannot read its options: {err}", "")
    ok = str(data.get("enable", 0)) == "1"
    return Check(
        "datacenter firewall",
        ok,
        "enabled" if ok else "disabled: the guests' firewall rules filter nothing",
        ""
        if ok
        else "enable it under Datacenter > Firewall > Options after allowing your admin "
        "access (enabling it drops host traffic other than SSH and port 8006 unless "
        "allowed); Phoenix does not enable it for you",
    )


def check_apparmor(runner: Runner, profiles: Iterable[str]) -> list[Check]:
    wanted = sorted(profiles)
    if not wanted:
        return []
    result = _run(runner, ["cat", "/sys/kernel/security/apparmor/profiles"])
    loaded = {line.split(" (", 1)[0].strip() for line in result.stdout.splitlines()}
    return [
        Check(
            f"apparmor {name}",
            name in loaded,
            "loaded" if name in loaded else "not loaded on the node",
            ""
            if name in loaded
            else f"load it (apparmor_parser -r /etc/apparmor.d/{name}) or fix apparmor_profile",
        )
        for name in wanted
    ]


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
            if name in needs.snapshot_storages:
                kind = str(entry.get("type", "?"))
                can = kind in SNAPSHOT_STORAGE_TYPES
                checks.append(
                    Check(
                        f"snapshots on {name}",
                        can,
                        f"{kind} storage {'can' if can else 'cannot'} snapshot a container",
                        ""
                        if can
                        else "guests with template_snapshot_name need ZFS, LVM-thin, Ceph RBD "
                        "or BTRFS storage: move them (storage_pool) or drop the snapshot",
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
            # `pvesm path` only maps the id to a path; the file itself must be there.
            path = _run(runner, ["pvesm", "path", template])
            ok = path.ok and _run(runner, ["test", "-f", path.stdout.strip()]).ok
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


def check_subids(
    runner: Runner, id_ranges: frozenset[tuple[str, int, int]] = frozenset()
) -> list[Check]:
    """Root's delegated ids: the default map's 65536, and every range of a guest's id_maps
    (Proxmox refuses to start a guest whose `lxc.idmap` lines use ids root was not given)."""
    checks: list[Check] = []
    pairs: tuple[tuple[str, idmaps.Kind], ...] = (("/etc/subuid", "u"), ("/etc/subgid", "g"))
    for path, kind in pairs:
        result = _run(runner, ["cat", path])
        problem = parse_subid(result.stdout) if result.ok else f"cannot read {path}"
        wanted = tuple(
            idmaps.IdRange(kind, 0, host, count)
            for k, host, count in sorted(id_ranges)
            if k == kind
        )
        missing = idmaps.uncovered(wanted, kind, result.stdout) if wanted and result.ok else []
        if missing:
            lines = " and ".join(f"'root:{r.host}:{r.count}'" for r in missing)
            ids = ", ".join(f"{r.host}:{r.count}" for r in missing)
            checks.append(
                Check(
                    f"{path} (id_maps)",
                    False,
                    f"root is not given host ids {ids} that guests' id_maps use",
                    f"add {lines} to {path}",
                )
            )
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
    checks.append(check_root(runner))
    checks.append(check_version(runner))
    version = manager_version(_run(runner, ["pveversion", "--verbose"]).stdout)
    checks += check_raw_keys(version, needs.raw_keys)
    named = check_node_name(runner, node)
    checks.append(named)
    quorum, local = check_quorum(runner)
    checks.append(quorum)
    if named.ok:
        checks += check_node(runner, node or "localhost", needs)
    checks += check_ctids(runner, needs.ctids, local or node_name(runner))
    if needs.firewall:
        checks.append(check_datacenter_firewall(runner))
    checks += check_templates(runner, needs.templates)
    checks += check_apparmor(runner, needs.apparmor_profiles)
    checks += check_subids(runner, needs.id_ranges)
    return checks
