"""The import converter on data: observed settings -> inventory entries that say exactly
those settings (it is `desired.guest_settings` run backwards), and notes for what cannot
be said."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from phoenix.drivers.base import GuestSettings, MountSettings, NetSettings, ObservedGuest
from phoenix.inventory import load_inventory
from phoenix.inventory.models import LxcGuest
from phoenix.plan.desired import guest_settings
from phoenix.plan.imported import FoundGuest, FoundHost, Note, convert
from phoenix.plan.imported_hv import cluster_block, merged_hypervisor
from tests.conftest import shared_fixture

BASE = GuestSettings(
    hostname="web",
    memory_mb=1024,
    swap_mb=256,
    cores=2,
    disk_gb=8,
    storage="local-zfs",
    unprivileged=True,
    net=NetSettings("eth0", "vmbr0", "10.0.0.5/24", "10.0.0.1", "BC:24:11:00:00:01"),
)


def found(ctid: int, settings: GuestSettings = BASE, **kw: object) -> FoundGuest:
    state = kw.pop("state", "running")
    observed = ObservedGuest(ctid, state, settings, **kw)  # type: ignore[arg-type]
    return FoundGuest(observed)


def one(guest: FoundGuest, driver: str = "proxmox") -> tuple[dict[str, Any] | None, list[Note]]:
    result = convert(FoundHost(driver, (guest,)), template="local:vztmpl/d.tar.zst")
    return result.document["lxc_configs"].get(str(guest.observed.ctid)), result.notes


@pytest.mark.parametrize(
    "fixture",
    ["phoenix-etc-2025-10-03", "phoenix-etc-seed", "phoenix-etc-newest", "phoenix-etc-gpu-lab"],
)
def test_every_guest_of_the_real_inventories_converts_back_to_its_own_settings(
    fixture: str,
) -> None:
    inventory = load_inventory(shared_fixture(fixture))
    for ctid, guest in inventory.guests.items():
        settings = guest_settings(guest)
        if settings.net is not None and settings.net.mac is None:  # a node assigns one
            settings = replace(settings, net=replace(settings.net, mac="BC:24:11:00:00:09"))
        entry, notes = one(found(ctid, settings))
        assert entry is not None, notes
        back = guest_settings(LxcGuest.model_validate(entry))
        assert back == settings, ctid
        assert [n for n in notes if n.kind in ("changes", "skipped")] == [], ctid


def test_the_entry_is_in_the_original_tools_shape() -> None:
    mounts = (
        MountSettings("/data", pool="tank", size_gb=10, name="data"),
        MountSettings("/models", host_path="/srv/models", read_only=True),
    )
    settings = replace(BASE, mounts=mounts, gpus=(0, 1), features=(("nesting", "1"),))
    entry, _ = one(found(101, replace(settings, onboot=True, boot_order=2, boot_delay=5)))
    assert entry == {
        "name": "web",
        "memory_mb": 1024,
        "swap_mb": 256,
        "cores": 2,
        "storage_pool": "local-zfs",
        "storage_size_gb": 8,
        "template": "local:vztmpl/d.tar.zst",
        "network_config": {
            "name": "eth0",
            "bridge": "vmbr0",
            "ip": "10.0.0.5/24",
            "gw": "10.0.0.1",
        },
        "mac_address": "BC:24:11:00:00:01",
        "gpu_assignment": "0,1",
        "unprivileged": True,
        "pct_options": ["nesting=1"],
        "start_at_boot": True,
        "boot_order": 2,
        "boot_delay": 5,
        "firewall": {"enabled": False, "rules": []},
        "mount_points": [
            {"host_path": "/srv/models", "container_path": "/models", "read_only": True}
        ],
        "volumes": [{"name": "data", "pool": "tank", "size_gb": 10, "mount_point": "/data"}],
    }


def test_a_secret_raw_line_is_not_written_and_the_plan_change_is_said() -> None:
    raw = (("lxc.environment", "DB_PASSWORD=hunter2"), ("lxc.environment", "LANG=C.UTF-8"))
    entry, notes = one(found(101, replace(BASE, raw_lxc=raw)))
    assert entry is not None and entry["lxc_options"] == ["lxc.environment: LANG=C.UTF-8"]
    assert Note(101, "secret", "raw line `lxc.environment` setting DB_PASSWORD (value not "
                "written)") in notes  # fmt: skip
    assert [n.text for n in notes if n.kind == "changes"] == [
        "raw_lxc: the guest's value could not be written (see above)"
    ]
    assert "hunter2" not in repr(notes) + repr(entry)


def test_a_value_the_inventory_refuses_is_left_out_and_named() -> None:
    bad = replace(BASE, net=replace(BASE.net, ip="10.0.0.0/24"))  # type: ignore[type-var]
    entry, notes = one(found(101, bad))
    assert entry is not None and "network_config" not in entry
    assert any(n.kind == "omitted" and n.text.startswith("network_config") for n in notes)
    assert Note(101, "changes", "net: the guest's value could not be written (see above)") in notes


def test_a_guest_whose_name_the_inventory_refuses_is_skipped_with_the_reason() -> None:
    entry, notes = one(found(101, replace(BASE, hostname="bad_name")))
    assert entry is None
    assert [n.kind for n in notes if n.ctid == 101] == ["skipped"]


def test_lxc_clones_keep_their_lineage_and_their_source_its_snapshot() -> None:
    source = found(900, state="stopped", snapshots=("tpl",))
    clone = FoundGuest(
        ObservedGuest(901, "running", replace(BASE, hostname="c")), clone_of=(900, "tpl")
    )
    orphan = FoundGuest(ObservedGuest(902, "running", BASE), clone_of=(899, "x"))
    result = convert(FoundHost("lxc", (source, clone, orphan)))
    configs = result.document["lxc_configs"]
    assert configs["900"]["template_snapshot_name"] == "tpl"
    assert configs["901"]["clone_from_ctid"] == "900" and "template" not in configs["901"]
    assert "clone_from_ctid" not in configs["902"]
    assert any(n.ctid == 902 and "cloned from 899 at snapshot x" in n.text for n in result.notes)
    # 900 and 902 lack a template: one note names both.
    assert [n.text[:30] for n in result.notes if n.ctid is None] == [
        "what guests 900, 902 were crea"
    ]


def test_run_state_the_planner_would_change_is_said() -> None:
    _, stopped = one(found(101, state="stopped"))
    assert Note(101, "changes", "start: it is stopped, and Phoenix runs its guests") in stopped
    entry, parked = one(found(102, state="stopped", snapshots=("final-form",)))
    assert entry is not None and entry["template_snapshot_name"] == "final-form"
    assert entry["enable_lifecycle_snapshots"] is True
    assert [n.kind for n in parked] == ["inferred"]
    entry, notes = one(found(103, state="stopped", is_template=True, snapshots=()))
    assert entry is not None and entry["is_template"] is True and notes == []


def test_the_hypervisor_config_keeps_every_key_of_the_original() -> None:
    existing = {"timezone": "UTC", "zfs": {"pools": []}, "phoenix": {"parallel": 8}}
    merged = merged_hypervisor(existing, {"driver": "proxmox", "node": "pve"})
    assert merged == {
        "timezone": "UTC",
        "zfs": {"pools": []},
        "phoenix": {"parallel": 8, "driver": "proxmox", "node": "pve"},
    }
    assert existing["phoenix"] == {"parallel": 8}


def test_a_mac_two_guests_have_is_written_once_and_named() -> None:
    result = convert(FoundHost("proxmox", (found(101), found(102))))
    configs = result.document["lxc_configs"]
    assert configs["101"]["mac_address"] == "BC:24:11:00:00:01"
    assert "mac_address" not in configs["102"]
    assert any(n.ctid == 102 and "guest 101 has it too" in n.text for n in result.notes)
    assert [n for n in result.notes if n.kind == "changes"] == []


def test_a_cluster_names_each_guests_node_and_how_to_reach_each_node() -> None:
    guests = (
        FoundGuest(ObservedGuest(101, "running", BASE), node="pve1"),
        FoundGuest(ObservedGuest(102, "running", replace(BASE, net=None)), node="pve2"),
    )
    host = FoundHost("proxmox", guests, nodes=("pve1", "pve2", "pve3"), reached="pve1")
    configs = convert(host).document["lxc_configs"]
    assert (configs["101"]["node"], configs["102"]["node"]) == ("pve1", "pve2")
    block, notes = cluster_block(host, {"pve3": {"ssh_host": "admin@10.0.0.3"}}, None)
    assert block == {
        "nodes": {
            "pve3": {"ssh_host": "admin@10.0.0.3"},
            "pve1": {},
            "pve2": {"ssh_host": "root@pve2"},
        },
        "node": "pve1",
        "ssh_host": None,
    }
    assert [n.text.split(":")[0] for n in notes] == ["nodes.pve2.ssh_host 'root@pve2'"]
    # One node reached over SSH keeps its way in.
    block, _ = cluster_block(host, {}, "root@10.0.0.1")
    assert block["nodes"]["pve1"] == {"ssh_host": "root@10.0.0.1"}
    # A single host names no node.
    assert "node" not in convert(FoundHost("proxmox", guests[:1])).document["lxc_configs"]["101"]
