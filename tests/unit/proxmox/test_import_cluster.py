"""`phoenix import` of a three-node cluster (the fake cluster: one pmxcfs, pvesh proxying
`/nodes/X`): every node's containers are read through the node Phoenix runs on (or, when
the config already lists the nodes, through each node's own runner: the cluster driver),
each entry names its node, the hypervisor config lists the nodes, and the whole imported
lab plans to no change through the cluster driver `phoenix plan` uses. A node that is down
is named, its guests not imported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.drivers.base import Driver
from phoenix.drivers.factory import make_driver
from phoenix.drivers.proxmox.cluster import ClusterDriver
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.ownership import OwnedRaw
from phoenix.inventory import load_inventory, validate_config_dir
from phoenix.inventory.problems import errors
from phoenix.plan.planner import Planner
from phoenix.plan.run import converge
from phoenix.recipes import registry
from tests.unit.proxmox.fakecluster import FakeCluster

PLACED = {101: "pve1", 102: "pve2", 103: "pve3", 104: "pve2"}


def lab_on(cluster: FakeCluster, tmp_path: Path, node: str, state: Path) -> None:
    """Converge, on `node` alone, the guests PLACED there (the single-node driver)."""
    etc = tmp_path / f"lab-{node}"
    etc.mkdir()
    guests = {
        str(ctid): {
            "name": f"g{ctid}",
            "memory_mb": 512 + ctid,
            "cores": 1,
            "template": "local:vztmpl/debian-12.tar.zst",
            "storage_pool": "ceph" if ctid == 104 else "local-zfs",
            "storage_size_gb": 4,
            "network_config": {"name": "eth0", "bridge": "vmbr0", "ip": f"10.9.0.{ctid}/24"},
            "lxc_options": ["lxc.environment: ROLE=web"],
            "start_at_boot": True,
        }
        for ctid, where in PLACED.items()
        if where == node
    }
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": guests}))
    hv = {"phoenix": {"driver": "proxmox", "node": node, "state_dir": str(state)}}
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hv))
    driver = ProxmoxDriver(
        cluster.runner(node), node, sleep=lambda _: None, owned=OwnedRaw.in_state_dir(state)
    )
    built = converge(load_inventory(etc, registry, "proxmox"), driver, state_dir=state)
    assert built.result.ok, (built.result.failed, built.result.blocked)


@pytest.fixture
def built(tmp_path: Path) -> tuple[FakeCluster, Path]:
    cluster = FakeCluster(tmp_path / "cluster", version="9.1.3")
    state = tmp_path / "state"
    for node in ("pve1", "pve2", "pve3"):
        lab_on(cluster, tmp_path, node, state)
    return cluster, state


def run_import(
    monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster, out: Path, state: Path
) -> Any:
    """`phoenix import` on pve1 (the node Phoenix runs on), asking pvesh about `localhost`."""
    import phoenix.drivers.factory as factory

    def make(settings: Any, name: str | None = None, offline: bool = False) -> ProxmoxDriver:
        owned = OwnedRaw.in_state_dir(Path(settings.state_dir))
        return ProxmoxDriver(cluster.runner("pve1"), settings.node or "localhost", owned=owned)

    monkeypatch.setattr(factory, "make_driver", make)
    args = ["-c", str(out), "--driver", "proxmox", "import", "--state-dir", str(state)]
    return CliRunner().invoke(app, [*args, "--template", "local:vztmpl/debian-12.tar.zst"])


def reach_nodes_through(monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster) -> None:
    """`make_driver`'s runners for the hypervisor config's nodes reach the fake cluster: no
    `ssh_host` is the first node (Phoenix runs on it), `root@NAME` is node NAME."""
    import phoenix.drivers.factory as factory

    def runner(access: Any) -> Any:
        host = access.ssh_host
        return cluster.runner(cluster.names[0] if host is None else host.partition("@")[2])

    monkeypatch.setattr(factory, "node_runner", runner)


def cluster_plan(out: Path, monkeypatch: pytest.MonkeyPatch, cluster: FakeCluster) -> Any:
    """`phoenix plan` of the imported lab: the driver `make_driver` builds from the written
    config (the cluster driver over each node's runner)."""
    reach_nodes_through(monkeypatch, cluster)
    inventory = load_inventory(out, registry, "proxmox")
    settings = inventory.hypervisor.phoenix
    driver: Driver = make_driver(settings, placement=inventory.placement())
    assert isinstance(driver, ClusterDriver)
    return Planner(inventory, driver).plan(None)


def test_a_cluster_imports_with_each_guests_node(
    tmp_path: Path, built: tuple[FakeCluster, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, state = built
    out = tmp_path / "etc"
    result = run_import(monkeypatch, cluster, out, state)
    assert result.exit_code == 0, result.output
    written = json.loads((out / "phoenix_lxc_configs.json").read_text())["lxc_configs"]
    assert {int(c): e["node"] for c, e in written.items()} == PLACED
    hv = json.loads((out / "phoenix_hypervisor_config.json").read_text())["phoenix"]
    assert hv["nodes"] == {
        "pve1": {},
        "pve2": {"ssh_host": "root@pve2"},
        "pve3": {"ssh_host": "root@pve3"},
    }
    assert hv["node"] == "pve1" and "ssh_host" not in hv
    assert "nodes.pve2.ssh_host 'root@pve2': how Phoenix reaches node pve2" in result.output
    inventory, problems = validate_config_dir(out, registry, "proxmox")
    assert inventory is not None and errors(problems) == [], problems
    # Each node's guests, planned on that node, are up to date.
    for node in cluster.names:
        ids = [c for c, where in PLACED.items() if where == node]
        driver = ProxmoxDriver(cluster.runner(node), node, owned=OwnedRaw.in_state_dir(state))
        plan = Planner(inventory, driver).plan(ids)
        assert [g.steps for g in plan.guests] == [() for _ in ids], node
    # The whole lab, through the cluster driver `phoenix plan` builds from the config.
    whole = cluster_plan(out, monkeypatch, cluster)
    assert {g.ctid: (g.node, g.steps) for g in whole.guests} == {
        c: (n, ()) for c, n in PLACED.items()
    }
    assert whole.up_to_date


def test_a_config_listing_the_nodes_imports_through_the_cluster_driver(
    tmp_path: Path, built: tuple[FakeCluster, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The config already lists the cluster: the import reads each node through its own
    runner (pct exec reaches every node's guests then), keeps the config as it is, and
    the lab plans to zero steps through the cluster driver."""
    cluster, state = built
    out = tmp_path / "etc"
    out.mkdir()
    nodes = {"pve1": {}, "pve2": {"ssh_host": "root@pve2"}, "pve3": {"ssh_host": "root@pve3"}}
    hv = {"phoenix": {"driver": "proxmox", "node": "pve2", "nodes": nodes, "state_dir": str(state)}}
    (out / "phoenix_hypervisor_config.json").write_text(json.dumps(hv))
    reach_nodes_through(monkeypatch, cluster)
    args = ["-c", str(out), "import", "--template", "local:vztmpl/debian-12.tar.zst"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    written = json.loads((out / "phoenix_lxc_configs.json").read_text())["lxc_configs"]
    assert {int(c): e["node"] for c, e in written.items()} == PLACED
    assert json.loads((out / "phoenix_hypervisor_config.json").read_text()) == hv
    # The cluster-wide reads went to the default node, each guest's through its own node.
    for name in cluster.names:
        config_reads = [
            c for c in cluster.nodes[name].calls if c[:2] == ("pvesh", "get") and "/lxc/" in c[2]
        ]
        assert {int(c[2].split("/")[4]) for c in config_reads} == {
            c for c, n in PLACED.items() if n == name
        }, name
    whole = cluster_plan(out, monkeypatch, cluster)
    assert whole.up_to_date and [g.steps for g in whole.guests] == [()] * len(PLACED)


def test_with_the_default_node_down_the_cluster_is_read_through_another(
    tmp_path: Path, built: tuple[FakeCluster, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, state = built
    cluster.down.add("pve2")
    out = tmp_path / "etc"
    out.mkdir()
    nodes = {"pve1": {}, "pve2": {"ssh_host": "root@pve2"}, "pve3": {"ssh_host": "root@pve3"}}
    hv = {"phoenix": {"driver": "proxmox", "node": "pve2", "nodes": nodes, "state_dir": str(state)}}
    (out / "phoenix_hypervisor_config.json").write_text(json.dumps(hv))
    reach_nodes_through(monkeypatch, cluster)
    args = ["-c", str(out), "import", "--template", "local:vztmpl/debian-12.tar.zst"]
    result = CliRunner().invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    written = json.loads((out / "phoenix_lxc_configs.json").read_text())["lxc_configs"]
    assert sorted(written) == ["101", "103"]
    assert "guest 102: container on node pve2, which is offline" in result.output


def test_a_node_that_is_down_is_named_and_its_guests_left_out(
    tmp_path: Path, built: tuple[FakeCluster, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, state = built
    cluster.down.add("pve3")
    out = tmp_path / "etc"
    result = run_import(monkeypatch, cluster, out, state)
    assert result.exit_code == 0, result.output
    written = json.loads((out / "phoenix_lxc_configs.json").read_text())["lxc_configs"]
    assert sorted(written) == ["101", "102", "104"]
    assert "guest 103: container on node pve3, which is offline" in result.output
