"""`phoenix doctor`: is this node ready for the Proxmox driver, and if not, what to fix.
Here: what the inventory needs on the node (storages, bridges, templates, the datacenter
firewall, AppArmor profiles, root's delegated ids) and `run_doctor`, which runs these
after the checks of the node itself (`doctor_node`).

Every check runs through a Runner (locally on the node, or over SSH), never raises for a
missing tool, and says what to do when it fails. The checks that need pvesh are skipped
(and say so) when pvesh itself is missing, so on a host without Proxmox the report is one
clear line about pct/pvesh instead of a cascade.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from phoenix.digits import is_digits
from phoenix.drivers import idmaps
from phoenix.drivers.base import Check
from phoenix.drivers.proxmox import pvesh
from phoenix.drivers.proxmox.doctor_node import (
    check_ctids,
    check_node_name,
    check_quorum,
    check_raw_keys,
    check_root,
    check_tools,
    check_version,
    manager_version,
    node_name,
    parse_pveversion,
    run,
    run_json,
)
from phoenix.runners.base import Runner

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


def parse_subid(text: str, user: str = "root", need: int = 65536) -> str | None:
    """None if `user` has a range of at least `need` ids in /etc/subuid-style text, else why."""
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) != 3 or parts[0] != user:
            continue
        if is_digits(parts[1]) and is_digits(parts[2]) and int(parts[2]) >= need:
            return None
    return f"no range of {need} ids for {user}"


def check_datacenter_firewall(runner: Runner) -> Check:
    """Guest firewalls filter nothing while the datacenter firewall is off (the default)."""
    data, err = run_json(runner, pvesh.cluster_firewall_cmd())
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
    result = run(runner, ["cat", "/sys/kernel/security/apparmor/profiles"])
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
    data, err = run_json(runner, pvesh.storage_cmd(node))
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
                        else "guests with template_snapshot_name or enable_lifecycle_snapshots "
                        "need every disk (root and volumes) on ZFS, LVM-thin, Ceph RBD or "
                        "BTRFS storage: move them (storage_pool, the volume's pool) or drop "
                        "the snapshots",
                    )
                )
    data, err = run_json(runner, pvesh.network_cmd(node))
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
            ok = run(runner, ["test", "-f", template]).ok
        elif ":vztmpl/" in template:
            # `pvesm path` only maps the id to a path; the file itself must be there.
            path = run(runner, ["pvesm", "path", template])
            ok = path.ok and run(runner, ["test", "-f", path.stdout.strip()]).ok
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
        result = run(runner, ["cat", path])
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


def run_doctor(runner: Runner, needs: Needs, node: str | None = None) -> list[Check]:
    """All checks, in order; pvesh-based ones are skipped when pvesh is missing."""
    checks = check_tools(runner)
    if not all(c.ok for c in checks):
        return checks
    checks.append(check_root(runner))
    checks.append(check_version(runner))
    text = run(runner, ["pveversion", "--verbose"]).stdout
    container = parse_pveversion(text).get("pve-container")
    checks += check_raw_keys(manager_version(text), needs.raw_keys, container)
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
