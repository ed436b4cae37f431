"""The VM converter alone (`imported_vms`), on data: what an entry says and what it names
instead — the MAC only when it is not the one derived from the vmid, SSH keys without a
cloud-init user, a VM on another cluster node than the one VMs are planned on."""

from __future__ import annotations

from phoenix.drivers.base import GuestSettings, NetSettings, ObservedGuest, VmConfig
from phoenix.plan.imported import FoundGuest
from phoenix.plan.imported_vms import convert_vms


def vm(
    vmid: int, mac: str | None = None, node: str | None = None, **vm_config: object
) -> FoundGuest:
    net = NetSettings("eth0", "vmbr0", f"10.0.0.{vmid % 200}/24", "10.0.0.1", mac)
    settings = GuestSettings(
        hostname=f"vm{vmid}",
        memory_mb=2048,
        swap_mb=0,
        cores=2,
        disk_gb=16,
        storage="local-zfs",
        unprivileged=False,
        net=net,
        onboot=True,
        vm=VmConfig(**vm_config),  # type: ignore[arg-type]
    )
    return FoundGuest(ObservedGuest(vmid, "running", settings), node=node)


def test_the_mac_is_written_only_when_it_is_not_the_derived_one() -> None:
    entries, notes = convert_vms([vm(9001, "52:54:00:00:23:29"), vm(9002, "BC:24:11:00:00:01")])
    assert "mac_address" not in entries[0]
    assert entries[1]["mac_address"] == "BC:24:11:00:00:01"
    assert [n for n in notes if n.kind == "changes"] == []


def test_keys_without_a_user_are_named_and_the_change_said() -> None:
    entries, notes = convert_vms([vm(9001, "52:54:00:00:23:29", ssh_keys=("ssh-ed25519 AAAA k",))])
    assert "user_config" not in entries[0]
    texts = {(n.kind, n.text.split(":")[0]) for n in notes}
    assert ("omitted", "SSH keys without a cloud-init user (ciuser)") in texts
    assert ("changes", "vm") in texts


def test_a_vm_on_another_node_is_written_with_its_node() -> None:
    """A VM names its node now; a clone across nodes is written without its source
    (Phoenix clones a VM on its source's node only)."""
    template = vm(9000, "52:54:00:00:23:28", node="pve2")
    clone = FoundGuest(vm(9001, "52:54:00:00:23:29", node="pve1").observed, node="pve1",
                       clone_of=(9000, None))  # fmt: skip
    entries, notes = convert_vms([template, clone], home="pve1")
    assert [(e["vmid"], e["node"]) for e in entries] == [(9000, "pve2"), (9001, "pve1")]
    assert "clone_from_vmid" not in entries[1]
    assert [n for n in notes if n.kind == "skipped"] == []
