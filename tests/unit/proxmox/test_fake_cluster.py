"""The fake cluster enforces what Proxmox enforces across nodes (fakecluster.py cites the
source of each rule): these tests drive it with the commands a node runs, through the same
runners Phoenix uses (the local node directly, the others over the real SshRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phoenix.errors import CommandFailed
from phoenix.runners.base import Runner
from tests.unit.proxmox.fakecluster import NO_QUORUM, FakeCluster


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    return FakeCluster(tmp_path)


def _run(runner: Runner, *argv: str) -> tuple[int, str]:
    result = runner.run(list(argv))
    return result.returncode, (result.stdout if result.ok else result.stderr)


def _ok(runner: Runner, *argv: str) -> str:
    code, out = _run(runner, *argv)
    assert code == 0, out
    return out


def _create(cluster: FakeCluster, node: str, ctid: int, storage: str = "local-zfs") -> None:
    _ok(cluster.runner(node), "pct", "create", str(ctid), "/t.tar.zst", "--rootfs", f"{storage}:8")


def _get(runner: Runner, path: str, *options: str) -> object:
    return json.loads(_ok(runner, "pvesh", "get", path, *options, "--output-format", "json"))


def test_one_cluster_filesystem_with_ids_unique_across_it(cluster: FakeCluster) -> None:
    _create(cluster, "pve2", 101)
    assert (cluster.root / "pmxcfs/nodes/pve2/lxc/101.conf").is_file()
    # Each node's /etc/pve/lxc is its own folder: pve1 does not hold 101...
    assert not (cluster.root / "pve1/etc/pve/lxc/101.conf").exists()
    assert (cluster.root / "pve1/etc/pve/nodes/pve2/lxc/101.conf").is_file()
    # ...but no node may create or clone onto it again.
    code, err = _run(cluster.runner("pve3"), "pct", "create", "101", "/t", "--rootfs", "ceph:8")
    assert code != 0 and "CT 101 already exists on node 'pve2'" in err
    _create(cluster, "pve3", 900, "ceph")
    code, err = _run(cluster.runner("pve3"), "pct", "clone", "900", "101", "--full", "1")
    assert code != 0 and "already exists on node 'pve2'" in err


def test_pvesh_proxies_nodes_and_answers_cluster_reads_anywhere(cluster: FakeCluster) -> None:
    _create(cluster, "pve2", 101)
    _ok(cluster.runner("pve2"), "pct", "start", "101")
    here = cluster.runner("pve1")
    config = _get(here, "/nodes/pve2/lxc/101/config", "--current", "1")
    assert isinstance(config, dict) and config["rootfs"].startswith("local-zfs:")
    code, err = _run(here, "pvesh", "get", "/nodes/pve1/lxc/101/config", "--output-format", "json")
    assert code != 0 and "nodes/pve1/lxc/101.conf' does not exist" in err
    rows = _get(cluster.runner("pve3"), "/cluster/resources", "--type", "vm")
    assert rows == [
        {
            "id": "lxc/101",
            "vmid": 101,
            "type": "lxc",
            "node": "pve2",
            "name": "CT101",
            "status": "running",
            "template": 0,
        }
    ]
    storage = _get(here, "/nodes/pve3/storage")
    assert isinstance(storage, list)
    assert {s["storage"]: s["shared"] for s in storage} == {"local-zfs": 0, "ceph": 1}


def test_a_node_that_went_away(cluster: FakeCluster) -> None:
    _create(cluster, "pve3", 103)
    cluster.down.add("pve3")
    with pytest.raises(CommandFailed, match="cannot run commands on pve3 over ssh"):
        cluster.runner("pve3").run(["pvesh", "get", "/version", "--output-format", "json"])
    here = cluster.runner("pve1")
    code, err = _run(here, "pvesh", "get", "/nodes/pve3/lxc/103/config", "--output-format", "json")
    assert code == 255 and "No route to host" in err
    status = _get(here, "/cluster/status")
    assert isinstance(status, list)
    assert {r["name"]: r["online"] for r in status if r["type"] == "node"}["pve3"] == 0
    assert status[0]["quorate"] == 1  # two of three votes
    rows = _get(here, "/cluster/resources", "--type", "vm")
    assert isinstance(rows, list)
    assert [(r["node"], r["status"]) for r in rows] == [("pve3", "unknown")]


def test_without_quorum_etc_pve_is_read_only(cluster: FakeCluster) -> None:
    _create(cluster, "pve1", 101)
    cluster.down |= {"pve2", "pve3"}
    here = cluster.runner("pve1")
    status = _get(here, "/cluster/status")
    assert isinstance(status, list) and status[0]["quorate"] == 0
    assert _get(here, "/nodes/pve1/lxc/101/config")  # reading still works
    for argv in (["pct", "set", "101", "--memory", "512"], ["pct", "start", "101"]):
        code, err = _run(here, *argv)
        assert code == 255 and NO_QUORUM in err
    code, err = _run(here, "pct", "create", "102", "/t", "--rootfs", "local-zfs:8")
    assert code == 255 and NO_QUORUM in err
    assert not (cluster.root / "pmxcfs/nodes/pve1/lxc/102.conf").exists()


def test_migration_moves_the_config_in_restart_mode_only(cluster: FakeCluster) -> None:
    _create(cluster, "pve1", 101)
    here = cluster.runner("pve1")
    _ok(here, "pct", "start", "101")
    code, err = _run(here, "pct", "migrate", "101", "pve2")
    assert code != 0 and "without --online or --restart" in err
    code, err = _run(here, "pct", "migrate", "101", "pve2", "--online", "1")
    assert code != 0 and "live migration is currently not implemented" in err
    code, err = _run(here, "pct", "migrate", "101", "pve1", "--restart", "1")
    assert code != 0 and "target is local node" in err
    code, err = _run(here, "pct", "migrate", "101", "pve9", "--restart", "1")
    assert code != 0 and "no such cluster node 'pve9'" in err
    _ok(here, "pct", "migrate", "101", "pve2", "--restart", "1")
    assert cluster.owner(101) == "pve2"
    assert 101 in cluster.nodes["pve2"].running and 101 not in cluster.nodes["pve1"].running


def test_bind_mounts_block_migration_unless_shared(cluster: FakeCluster) -> None:
    _create(cluster, "pve1", 101)
    here = cluster.runner("pve1")
    _ok(here, "pct", "set", "101", "--mp0", "/srv/data,mp=/data")
    code, err = _run(here, "pct", "migrate", "101", "pve2")
    assert code != 0 and "cannot migrate local bind mount point 'mp0'" in err
    _ok(here, "pct", "set", "101", "--mp0", "/srv/data,mp=/data,shared=1")
    _ok(here, "pct", "migrate", "101", "pve2")
    assert cluster.owner(101) == "pve2"


def test_storage_rules_of_migration(tmp_path: Path) -> None:
    cluster = FakeCluster(tmp_path, local={"local-zfs": "zfspool", "local": "dir"})
    del cluster.nodes["pve3"].storages["local"]
    _create(cluster, "pve1", 101, "local")
    here = cluster.runner("pve1")
    code, err = _run(here, "pct", "migrate", "101", "pve3")
    assert code != 0 and "storage 'local' is not available on node 'pve3'" in err
    cluster.nodes["pve1"].storages["local"] = "zfspool"  # snapshots need zfspool/btrfs...
    _ok(here, "pct", "snapshot", "101", "before")
    cluster.nodes["pve1"].storages["local"] = "dir"
    code, err = _run(here, "pct", "migrate", "101", "pve2")
    assert code != 0 and "non-migratable snapshot exists" in err
    _create(cluster, "pve1", 102, "local-zfs")
    _ok(here, "pct", "snapshot", "102", "before")
    cluster.down.add("pve2")
    code, err = _run(here, "pct", "migrate", "102", "pve2")
    assert code != 0 and "Can't connect to destination" in err
    cluster.down.clear()
    _ok(here, "pct", "migrate", "102", "pve2")  # zfs snapshots travel


def test_a_clone_to_another_node_needs_shared_storage(cluster: FakeCluster) -> None:
    _create(cluster, "pve1", 900, "ceph")
    here = cluster.runner("pve1")
    code, err = _run(
        here,
        "pct",
        "clone",
        "900",
        "101",
        "--full",
        "1",
        "--storage",
        "local-zfs",
        "--target",
        "pve2",
    )
    assert code != 0 and "can't clone CT to node 'pve2' (CT uses local storage)" in err
    assert cluster.owner(101) is None
    _ok(here, "pct", "clone", "900", "101", "--full", "1", "--storage", "ceph", "--target", "pve2")
    assert cluster.owner(101) == "pve2"
