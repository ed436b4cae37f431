"""`phoenix doctor` over the fake three-node cluster: each node checked through its own runner
for the guests placed on it (storages, bridges, templates, GPU device nodes, version), then
the cluster (members online, one version, shared storage for a clone onto another node).
What the fake node does not model (`uname -n`, `id -u`, the node's bridges) each node
answers here as a Proxmox node does."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.runners.base import CommandResult, Runner, Stdin
from tests.unit.proxmox.fakecluster import FakeCluster

TEMPLATE = "/var/lib/vz/template/cache/debian-12.tar.zst"


class NodeShell:
    """A fake node's runner that also answers what a node's shell would (`uname -n`, `id
    -u`) and its bridges (`pvesh get /nodes/N/network`): vmbr0 on every node."""

    def __init__(self, cluster: FakeCluster, name: str) -> None:
        self.cluster = cluster
        self.name = name
        self.inner: Runner = cluster.runner(name)

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        args = tuple(argv)
        if not self.cluster.online(self.name):
            return self.inner.run(argv, input=input, env=env, timeout=timeout)
        if args == ("uname", "-n"):
            return CommandResult(0, f"{self.name}.lab\n", "", args)
        if args == ("id", "-u"):
            return CommandResult(0, "0\n", "", args)
        if args[:3] == ("pvesh", "get", f"/nodes/{self.name}/network"):
            bridges = [{"iface": "vmbr0", "type": "bridge"}]
            return CommandResult(0, json.dumps(bridges), "", args)
        return self.inner.run(argv, input=input, env=env, timeout=timeout)


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    made = FakeCluster(tmp_path / "cluster", version="9.1.3")
    for node in made.nodes.values():
        for path in ("/usr/sbin/pct", "/usr/bin/pvesh", TEMPLATE):
            node.path(path).parent.mkdir(parents=True, exist_ok=True)
            node.path(path).write_text("")
        for path in ("/etc/subuid", "/etc/subgid"):
            node.path(path).write_text("root:100000:65536\n")
    return made


def config(tmp_path: Path, **changes: dict[str, Any]) -> Path:
    """Template 900 on pve1 (shared ceph), 101 cloned from it onto pve2, 102 with GPU 0 on
    pve3 (local-zfs)."""
    etc = tmp_path / "etc"
    etc.mkdir(exist_ok=True)
    nodes = {"pve1": {}, "pve2": {"ssh_host": "root@pve2"}, "pve3": {"ssh_host": "root@pve3"}}
    phoenix = {"driver": "proxmox", "nodes": nodes, "node": "pve1", "state_dir": str(tmp_path)}
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps({"phoenix": phoenix}))

    def guest(name: str, ip: int, **more: Any) -> dict[str, Any]:
        net = {"name": "eth0", "bridge": "vmbr0", "ip": f"10.9.0.{ip}/24", "gw": "10.9.0.1"}
        return {"name": name, "memory_mb": 512, "cores": 1, "network_config": net, **more}

    guests = {
        "900": guest("tpl", 90, template=TEMPLATE, storage_pool="ceph", is_template=True),
        "101": guest("web", 11, clone_from_ctid=900, storage_pool="ceph", node="pve2"),
        "102": guest("gpu", 12, template=TEMPLATE, storage_pool="local-zfs", node="pve3",
                     gpu_assignment="0"),
    }  # fmt: skip
    for ctid, change in changes.items():
        guests[ctid].update(change)
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": guests}))
    return etc


def doctor(monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster, etc: Path) -> Any:
    import phoenix.drivers.factory as factory

    def runner(access: Any) -> Runner:
        host = access.ssh_host
        return NodeShell(cluster, "pve1" if host is None else host.partition("@")[2])

    monkeypatch.setattr(factory, "node_runner", runner)
    return CliRunner().invoke(app, ["-c", str(etc), "--driver", "proxmox", "doctor"])


def sections(output: str) -> dict[str, list[str]]:
    """The report's lines under each `node X (...)` / `cluster` heading."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in output.splitlines():
        if line.startswith("node ") or line == "cluster":
            current = line.split(" (")[0]
            out[current] = []
        elif current:
            out[current].append(line)
    return out


def test_every_node_is_checked_through_its_own_runner_for_its_own_guests(
    tmp_path: Path, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster.nodes["pve3"].add_device("/dev/nvidia0")
    result = doctor(monkeypatch, cluster, config(tmp_path))
    report = sections(result.output)
    assert sorted(report) == ["cluster", "node pve1", "node pve2", "node pve3"]
    # Each node's storage read on that node, by its own runner (pvesh not proxied).
    for name in ("pve1", "pve2", "pve3"):
        calls = cluster.nodes[name].calls
        assert ("uname", "-n") not in calls  # answered by the node's shell above
        assert any(c[:3] == ("pvesh", "get", f"/nodes/{name}/storage") for c in calls), name
    assert any("storage ceph" in line for line in report["node pve1"])
    assert not any("local-zfs" in line for line in report["node pve2"])
    assert any("storage local-zfs" in line for line in report["node pve3"])
    # Only pve3's guest has a GPU: its device nodes are looked for there alone, and the
    # driver's other device nodes are missing.
    assert any("ok   device /dev/nvidia0: present" in line for line in report["node pve3"])
    assert any("FAIL device /dev/nvidiactl" in line for line in report["node pve3"])
    assert not any("device" in line for line in report["node pve1"] + report["node pve2"])
    cluster_lines = "\n".join(report["cluster"])
    assert "pve1, pve2, pve3 in the cluster and online" in cluster_lines
    assert "every node runs 9.1" in cluster_lines
    assert "clone 101: from 900 on pve1 onto pve2: storage ceph is shared" in cluster_lines
    assert result.exit_code == 1  # the missing device nodes


def test_a_clone_onto_another_node_off_shared_storage_and_a_node_down_are_named(
    tmp_path: Path, cluster: FakeCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = config(
        tmp_path, **{"101": {"storage_pool": "local-zfs"}, "102": {"gpu_assignment": "none"}}
    )
    cluster.down.add("pve3")
    result = doctor(monkeypatch, cluster, etc)
    assert result.exit_code == 1
    report = sections(result.output)
    assert any("FAIL reach" in line and "No route to host" in line for line in report["node pve3"])
    cluster_lines = "\n".join(report["cluster"])
    assert "pve3 offline in the cluster" in cluster_lines
    assert "clone 101: from 900 on pve1 onto pve2: storage local-zfs is not shared" in (
        cluster_lines
    )
    cluster.down.clear()
    healthy = doctor(monkeypatch, cluster, config(tmp_path, **{"102": {"gpu_assignment": "none"}}))
    assert healthy.exit_code == 0, healthy.output
    assert "cluster is ready for the Proxmox driver" in healthy.output
