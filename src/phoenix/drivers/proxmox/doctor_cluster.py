"""`phoenix doctor` over a Proxmox cluster: every node `phoenix.nodes` lists, checked through
its own runner (this machine, or SSH) as `run_doctor` checks one node — tools, version,
root, that the runner reaches that very node, quorum, the storages, bridges, templates,
AppArmor profiles and delegated ids of the guests placed on it — plus the GPU device nodes
its guests need (`test -c`, on that node: devices are local). Then the cluster, once: each
listed node is a member and online, every node runs the same Proxmox VE version, no
inventory id is a VM, and a clone onto another node than its source's has storage that is
shared on the source's node (`pct clone --target` refuses local storage).

Pure of the inventory: `NodeNeeds` says what each node must have; the CLI builds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from phoenix.drivers.base import Check
from phoenix.drivers.proxmox import pvesh
from phoenix.drivers.proxmox.doctor import Needs, run_doctor
from phoenix.drivers.proxmox.doctor_node import check_ctids, manager_version, run, run_json
from phoenix.errors import PhoenixError
from phoenix.runners.base import Runner


@dataclass(frozen=True)
class CrossClone:
    """A guest cloned from a source placed on another node: `pct clone --target`."""

    ctid: int
    source: int
    source_node: str
    target_node: str
    storage: str


@dataclass(frozen=True)
class NodeNeeds:
    """What one node must have for the guests placed on it."""

    needs: Needs
    devices: frozenset[str] = frozenset()  # device nodes of its guests' GPUs


@dataclass
class ClusterReport:
    """Each node's checks, in the config's order, then the cluster's."""

    nodes: dict[str, list[Check]] = field(default_factory=dict)
    cluster: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cluster) and all(
            c.ok for checks in self.nodes.values() for c in checks
        )


def check_devices(runner: Runner, paths: frozenset[str]) -> list[Check]:
    """The GPU device nodes the node's guests bind in (they must exist on that node)."""
    checks = []
    for path in sorted(paths):
        ok = run(runner, ["test", "-c", path]).ok
        checks.append(
            Check(
                f"device {path}",
                ok,
                "present" if ok else "missing on this node",
                ""
                if ok
                else "install the NVIDIA driver on this node (and load nvidia-uvm), or place "
                "the guest on the node with its GPU (its `node`)",
            )
        )
    return checks


def run_cluster_doctor(
    runners: Mapping[str, Runner],
    needs: Mapping[str, NodeNeeds],
    ctids: frozenset[int] = frozenset(),
    clones: Sequence[CrossClone] = (),
) -> ClusterReport:
    """Every node's checks through its own runner, then the cluster's (read through the
    first node that answers)."""
    report = ClusterReport()
    versions: dict[str, tuple[int, int] | None] = {}
    for node, runner in runners.items():
        wanted = needs.get(node, NodeNeeds(Needs(frozenset(), frozenset(), frozenset())))
        try:
            report.nodes[node] = _node_checks(runner, node, wanted, versions)
        except PhoenixError as exc:  # the SSH runner: the node cannot be reached at all
            report.nodes[node] = [_unreachable(str(exc).strip().splitlines()[-1])]
    report.cluster = _cluster_checks(runners, versions, ctids, clones)
    return report


def _node_checks(
    runner: Runner, node: str, wanted: NodeNeeds, versions: dict[str, tuple[int, int] | None]
) -> list[Check]:
    probe = run(runner, ["uname", "-n"])
    if not probe.ok:
        return [_unreachable((probe.stderr or probe.stdout).strip() or f"exit {probe.returncode}")]
    checks = run_doctor(runner, wanted.needs, node)
    if not wanted.needs.ctids:  # the cluster's ids are checked once, cluster-wide
        checks = [c for c in checks if c.name != "ctids"]
    if all(c.ok for c in checks if c.name in ("pct", "pvesh", "node")):
        checks += check_devices(runner, wanted.devices)
        versions[node] = manager_version(run(runner, ["pveversion", "--verbose"]).stdout)
    return checks


def _unreachable(why: str) -> Check:
    return Check(
        "reach",
        False,
        f"cannot run commands on the node: {why}",
        "check its ssh_host in phoenix.nodes (key login as root, a known host key) and that "
        "the node is up",
    )


def _cluster_checks(
    runners: Mapping[str, Runner],
    versions: Mapping[str, tuple[int, int] | None],
    ctids: frozenset[int],
    clones: Sequence[CrossClone],
) -> list[Check]:
    reader = next((runners[n] for n in runners if n in versions), None)
    if reader is None:
        return [
            Check(
                "cluster",
                False,
                "no node of phoenix.nodes answers",
                "check each node's ssh_host and that pvesh works there as root",
            )
        ]
    checks = [_membership(reader, list(runners))]
    known = {v for v in versions.values() if v is not None}
    if len(known) > 1:
        shown = ", ".join(f"{n} {'.'.join(map(str, v))}" for n, v in versions.items() if v)
        checks.append(
            Check(
                "versions",
                False,
                f"the nodes run different Proxmox VE versions ({shown})",
                "upgrade every node to the same version (a mixed cluster is only meant for "
                "the time of an upgrade)",
            )
        )
    elif known:
        checks.append(Check("versions", True, f"every node runs {'.'.join(map(str, *known))}"))
    checks += check_ctids(reader, ctids, None)
    checks += _clone_storage({n: r for n, r in runners.items() if n in versions}, clones)
    return checks


def _membership(reader: Runner, listed: Sequence[str]) -> Check:
    data, err = run_json(reader, pvesh.cluster_status_cmd())
    if not isinstance(data, list):
        return Check("members", False, f"cannot read the cluster status: {err}", "")
    nodes = {
        str(e.get("name")): str(e.get("online", 1)) == "1"
        for e in data
        if isinstance(e, dict) and e.get("type") == "node"
    }
    strangers = [n for n in listed if n not in nodes]
    offline = [n for n in listed if nodes.get(n) is False]
    if strangers:
        return Check(
            "members",
            False,
            f"{', '.join(strangers)} {'is' if len(strangers) == 1 else 'are'} not in the "
            f"cluster (its nodes: {', '.join(sorted(nodes))})",
            "fix phoenix.nodes (the names `pvecm nodes` prints), or join the node (`pvecm add`)",
        )
    if offline:
        return Check(
            "members",
            False,
            f"{', '.join(offline)} offline in the cluster (corosync does not see "
            f"{'it' if len(offline) == 1 else 'them'})",
            "bring the node back (`pvecm status`); until then its guests are held",
        )
    return Check("members", True, f"{', '.join(listed)} in the cluster and online")


def _clone_storage(runners: Mapping[str, Runner], clones: Sequence[CrossClone]) -> list[Check]:
    """Each clone onto another node: its storage is shared on the source's node (`runners`:
    the nodes that answered; another's own checks say why it did not)."""
    checks = []
    storages: dict[str, dict[str, dict[str, object]] | None] = {}
    for clone in clones:
        node = clone.source_node
        if node not in runners:
            continue
        if node not in storages:
            data, _ = run_json(runners[node], pvesh.storage_cmd(node))
            storages[node] = pvesh.parse_storages(data) if isinstance(data, list) else None
        found = storages[node]
        if found is None:
            continue  # the node's own checks say it cannot be read
        entry = found.get(clone.storage)
        ok = entry is not None and str(entry.get("shared", 0)) == "1"
        checks.append(
            Check(
                f"clone {clone.ctid}",
                ok,
                f"from {clone.source} on {node} onto {clone.target_node}: storage "
                f"{clone.storage} is {'shared' if ok else 'not shared'}",
                ""
                if ok
                else f"`pct clone --target` needs shared storage: give {clone.ctid} a shared "
                f"storage_pool, or place it on {node}",
            )
        )
    return checks
