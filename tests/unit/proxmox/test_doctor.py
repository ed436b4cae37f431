"""`phoenix doctor` on a recorded node, and on this host (no Proxmox: a clear message)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.cli.proxmox_cmds import needs_of
from phoenix.drivers.base import Check
from phoenix.drivers.proxmox.doctor import Needs, run_doctor
from phoenix.inventory import Inventory, load_inventory
from phoenix.runners.recorded import RecordedRunner
from tests.conftest import shared_fixture
from tests.unit.proxmox.conftest import data, pvesh

TEMPLATE = "/fastData/shared-iso/template/cache/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"


CLUSTER_STATUS = json.dumps(
    [
        {"type": "cluster", "name": "lab", "quorate": 1, "nodes": 2},
        {"type": "node", "name": "pve", "local": 1, "online": 1},
        {"type": "node", "name": "pve2", "local": 0, "online": 1},
    ]
)
RESOURCES = json.dumps(
    [
        {"vmid": 101, "type": "lxc", "node": "pve"},
        {"vmid": 120, "type": "qemu", "node": "pve"},
        {"vmid": 130, "type": "lxc", "node": "pve2"},
    ]
)


def healthy_node() -> RecordedRunner:
    runner = RecordedRunner()
    runner.respond(["pveversion", "--verbose"], data("pveversion_verbose.txt"))
    runner.respond(["uname", "-n"], "pve.lab.example\n")
    runner.respond(["id", "-u"], "0\n")
    runner.respond(pvesh("/cluster/status"), CLUSTER_STATUS)
    runner.respond(pvesh("/cluster/resources", "--type", "vm"), RESOURCES)
    runner.respond(pvesh("/cluster/firewall/options"), '{"enable": 1, "policy_in": "DROP"}')
    runner.respond(["pvesm", "path"], "/var/lib/vz/template/cache/x.tar.zst\n")
    # The recorded node plus the seed's volume storages (a node that has every one).
    volumes = [
        {"storage": n, "type": "zfspool", "content": "rootdir,images", "active": 1}
        for n in ("fastData-shared-bulk-data", "quickOS-shared-prod-data-volumes")
    ]
    storages = json.loads(data("storage_pve.json")) + volumes
    runner.respond(pvesh("/nodes/pve/storage"), json.dumps(storages))
    runner.respond(pvesh("/nodes/pve/network", "--type", "any_bridge"), data("network_pve.json"))
    runner.respond(["cat", "/etc/subuid"], "root:100000:65536\n")
    runner.respond(["cat", "/etc/subgid"], "root:100000:65536\n")
    runner.respond(["test", "-x", "/usr/sbin/pct"])  # the tools exist
    runner.respond(["test", "-x", "/usr/bin/pvesh"])
    return runner


def test_needs_of_seed(seed: Inventory) -> None:
    needs = needs_of(seed)
    assert (needs.storages, needs.bridges, needs.templates) == (
        frozenset(
            {"quickOS-lxc-disks", "fastData-shared-bulk-data", "quickOS-shared-prod-data-volumes"}
        ),
        frozenset({"vmbr0"}),
        frozenset({TEMPLATE}),
    )
    assert needs.snapshot_storages == {"quickOS-lxc-disks"} and needs.firewall
    assert needs.ctids == set(seed.guests) and needs.apparmor_profiles == set()


def test_healthy_node(seed: Inventory) -> None:
    runner = healthy_node()
    runner.respond(["test", "-f", TEMPLATE])  # the seed's template is on the node
    checks = run_doctor(runner, needs_of(seed), node="pve")
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    names = [c.name for c in checks]
    assert names == [
        "pct",
        "pvesh",
        "root",
        "version",
        "node",
        "quorum",
        "storage fastData-shared-bulk-data",
        "storage quickOS-lxc-disks",
        "snapshots on quickOS-lxc-disks",
        "storage quickOS-shared-prod-data-volumes",
        "bridge vmbr0",
        "ctids",
        "datacenter firewall",
        f"template {TEMPLATE}",
        "/etc/subuid",
        "/etc/subgid",
    ]
    assert "pve-manager 8.2.2, pve-container 5.0.11" in checks[3].detail
    assert ("test", "-f", TEMPLATE) in runner.calls


def test_broken_node_says_what_to_fix(seed: Inventory) -> None:
    runner = healthy_node()
    runner.respond(pvesh("/nodes/pve/network", "--type", "any_bridge"), "[]")
    runner.respond(["test", "-f", TEMPLATE], returncode=1)
    runner.respond(["cat", "/etc/subgid"], "")
    needs = Needs(
        frozenset({"quickOS-lxc-disks", "local-zfs"}), frozenset({"vmbr0"}), frozenset({TEMPLATE})
    )
    failed = {c.name: c for c in run_doctor(runner, needs, node="pve") if not c.ok}
    assert set(failed) == {
        "storage local-zfs",
        "bridge vmbr0",
        f"template {TEMPLATE}",
        "/etc/subgid",
    }
    assert "pvesm add" in failed["storage local-zfs"].fix
    assert "pveam download" in failed[f"template {TEMPLATE}"].fix
    assert "root:100000:65536" in failed["/etc/subgid"].fix


def test_storage_without_rootdir_content() -> None:
    runner = healthy_node()
    failed = [
        c
        for c in run_doctor(runner, Needs(frozenset({"local"}), frozenset(), frozenset()), "pve")
        if not c.ok
    ]
    assert [c.name for c in failed] == ["storage local"]
    assert "--content" in failed[0].fix and "rootdir" in failed[0].fix


def test_missing_pct_stops_early_with_one_clear_reason() -> None:
    runner = RecordedRunner()
    runner.respond(["test", "-x"], returncode=1)
    checks = run_doctor(runner, Needs(frozenset(), frozenset(), frozenset()))
    assert [(c.name, c.ok) for c in checks] == [("pct", False), ("pvesh", False)]
    assert "not a Proxmox VE node" in checks[0].fix
    assert not any(call[0] == "pvesh" for call in runner.calls)


def test_cli_doctor_on_this_host_reports_missing_pct() -> None:
    seed = str(shared_fixture("phoenix-etc-seed"))
    result = CliRunner().invoke(app, ["-c", seed, "--driver", "proxmox", "doctor"])
    assert result.exit_code == 1
    assert "pct is missing" in result.output
    assert "Traceback" not in result.output


def test_node_named_otherwise_than_the_node_reached_fails() -> None:
    """Finding 1: doctor asked `uname -n` and passed while converge asked pvesh about the
    configured name (proxied elsewhere, or to no node at all)."""
    runner = healthy_node()
    checks = {
        c.name: c for c in run_doctor(runner, Needs(frozenset(), frozenset(), frozenset()), "pve2")
    }
    assert not checks["node"].ok
    assert "'pve2'" in checks["node"].detail and "'pve'" in checks["node"].detail


def test_no_node_name_asks_localhost() -> None:
    runner = healthy_node()
    runner.respond(pvesh("/nodes/localhost/storage"), data("storage_pve.json"))
    runner.respond(
        pvesh("/nodes/localhost/network", "--type", "any_bridge"), data("network_pve.json")
    )
    needs = Needs(frozenset({"quickOS-lxc-disks"}), frozenset({"vmbr0"}), frozenset())
    checks = run_doctor(runner, needs)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert tuple(pvesh("/nodes/localhost/storage")) in runner.calls


def needs(**kw: object) -> Needs:
    return dataclasses.replace(Needs(frozenset(), frozenset(), frozenset()), **kw)  # type: ignore[arg-type]


def failed(runner: RecordedRunner, need: Needs) -> dict[str, Check]:
    return {c.name: c for c in run_doctor(runner, need, "pve") if not c.ok}


def test_snapshots_on_storage_that_cannot_snapshot() -> None:
    """Finding 4: dir/NFS/CIFS/LVM-thick storage cannot snapshot a container."""
    runner = healthy_node()
    bad = failed(
        runner, needs(storages=frozenset({"local"}), snapshot_storages=frozenset({"local"}))
    )
    assert "dir storage cannot snapshot" in bad["snapshots on local"].detail


def test_datacenter_firewall_off_is_reported_when_guests_use_firewalls() -> None:
    """Finding 9: guest firewalls filter nothing while the datacenter firewall is off."""
    runner = healthy_node()
    runner.respond(pvesh("/cluster/firewall/options"), "{}")
    bad = failed(runner, needs(firewall=True))
    assert "filter nothing" in bad["datacenter firewall"].detail
    assert "does not enable it for you" in bad["datacenter firewall"].fix
    assert "datacenter firewall" not in failed(runner, needs(firewall=False))


def test_template_volume_whose_file_is_missing() -> None:
    """Finding 15: `pvesm path` maps an id to a path without checking the file exists."""
    runner = healthy_node()
    runner.respond(["test", "-f", "/var/lib/vz/template/cache/x.tar.zst"], returncode=1)
    volid = "local:vztmpl/x.tar.zst"
    assert f"template {volid}" in failed(runner, needs(templates=frozenset({volid})))


def test_not_root_no_quorum_and_ctids_taken() -> None:
    runner = healthy_node()
    runner.respond(["id", "-u"], "1000\n")
    runner.respond(pvesh("/cluster/status"), CLUSTER_STATUS.replace('"quorate": 1', '"quorate": 0'))
    bad = failed(runner, needs(ctids=frozenset({101, 120, 130})))
    assert set(bad) == {"root", "quorum", "ctid 120", "ctid 130"}
    assert "is a VM" in bad["ctid 120"].detail and "node pve2" in bad["ctid 130"].detail
    assert "read-only" in bad["quorum"].fix


def test_custom_apparmor_profile_must_be_loaded() -> None:
    runner = healthy_node()
    runner.respond(
        ["cat", "/sys/kernel/security/apparmor/profiles"],
        "lxc-container-default-cgns (enforce)\nphoenix-gpu (enforce)\n",
    )
    bad = failed(runner, needs(apparmor_profiles=frozenset({"phoenix-gpu", "phoenix-docker"})))
    assert set(bad) == {"apparmor phoenix-docker"}


def test_raw_keys_the_node_version_drops() -> None:
    runner = healthy_node()  # pve-manager 8.2.2
    bad = failed(runner, needs(raw_keys=frozenset({"lxc.init.cwd", "lxc.mount.auto"})))
    assert set(bad) == {"raw key lxc.init.cwd"}


def test_needs_cover_every_storage_each_guest_uses(tmp_path: Path) -> None:
    """Volumes' pools are storages the node must have; a snapshotted guest needs the
    snapshot feature on every disk (pve-container src/PVE/LXC/Config.pm, has_feature)."""
    real = load_inventory(shared_fixture("phoenix-etc-2025-10-03"))
    needs = needs_of(real)
    assert {"fastData-shared-bulk-data", "quickOS-shared-prod-data-volumes"} <= needs.storages
    assert needs.snapshot_storages == {"quickOS-lxc-disks"}  # 801/950 snapshot nothing
    etc = tmp_path / "etc"
    shutil.copytree(shared_fixture("phoenix-etc-2025-10-03"), etc)
    path = etc / "phoenix_lxc_configs.json"
    data = json.loads(path.read_text())
    data["lxc_configs"]["950"]["enable_lifecycle_snapshots"] = True
    path.write_text(json.dumps(data))
    needs = needs_of(load_inventory(etc))
    assert needs.snapshot_storages == {"quickOS-lxc-disks", "fastData-shared-bulk-data"}
