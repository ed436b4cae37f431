"""`qm clone ... --target NODE` in the fake cluster (fakecluster.py), as qemu-server
`PVE/API2/Qemu.pm` clone_vm decides it:

- a target that is the local node is no target (`undef $target if $target eq $localnode`);
  one that is no member fails "no such cluster node 'X'" (`PVE::Cluster::check_node_exists`);
- `--storage` with a target must be enabled on the target ("storage 'S' is not available on
  node 'X'", pve-storage `storage_check_enabled`) and shared ("can't clone to non-shared
  storage 'S'");
- `--storage` on a linked clone fails "parameter 'storage' not allowed for linked clones"
  (the node's own `qm clone` says it, before the storage check below);
- every volume of the source (disks, CD-ROM images but `none`/`cdrom`, cloud-init's drive)
  on shared storage (`check_storage_access_clone`), else "can't clone VM to node 'X' (VM
  uses local storage)";
- the clone is made on the source's node, then its config moves to the target's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from phoenix.drivers.proxmox.vmclone import volume_storages
from phoenix.runners.base import Stdin
from tests.unit.proxmox.fakenode import Fail, FakeNode

if TYPE_CHECKING:
    from tests.unit.proxmox.fakecluster import FakeCluster


def qm_clone(cluster: FakeCluster, node: FakeNode, argv: list[str], input: Stdin) -> str | None:
    """Answer a `qm clone` with `--target` another node; None: the node clones alone."""
    if "--target" not in argv:
        return None
    at = argv.index("--target")
    target, plain = argv[at + 1], argv[:at] + argv[at + 2 :]
    if target in (node.name, "localhost"):
        return node.qemu.qm(plain, input)
    if target not in cluster.nodes:
        raise Fail(255, f"no such cluster node '{target}'")
    opts = dict(zip(plain[4::2], plain[5::2], strict=False))
    storage = opts.get("--storage")
    if storage is not None:
        if storage not in cluster.nodes[target].storages:
            raise Fail(255, f"storage '{storage}' is not available on node '{target}'")
        if storage not in node.shared_storages:
            raise Fail(255, f"can't clone to non-shared storage '{storage}'")
    source, newid = int(plain[2]), int(plain[3])
    vm = node.qemu.vms.get(source)
    if vm is None:
        return node.qemu.qm(plain, input)  # the node says the source does not exist
    template = vm.options.get("template") == "1"
    full = opts["--full"] == "1" if "--full" in opts else not template
    if storage is not None and not full:
        return node.qemu.qm(plain, input)  # "parameter 'storage' not allowed ..."
    snapshot = opts.get("--snapname")
    config = vm.snapshots.get(snapshot, vm.options) if snapshot else vm.options
    if any(s not in node.shared_storages for s in volume_storages(config).values()):
        raise Fail(255, f"can't clone VM to node '{target}' (VM uses local storage)")
    out = node.qemu.qm(plain, input)
    cluster.nodes[target].qemu.vms[newid] = node.qemu.vms.pop(newid)
    return out
