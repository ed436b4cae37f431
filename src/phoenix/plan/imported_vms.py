"""`phoenix import`'s VM converter: VMs as a driver observed them -> `phoenix_vm_configs.json`
in the original tool's format (`vms[]`), plus notes for the report.

It is `desired.vm_settings` run backwards, as `imported.convert` is for containers: each
entry holds exactly the settings the VM backend reports, so `phoenix plan` right after the
import changes nothing; what an entry cannot say becomes a note, never dropped silently.
What the node keeps that Phoenix does not manage comes from the driver's survey
(`unmanaged`); the cloud-init password and other secrets are named there, never written.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from phoenix.drivers.base import GuestSettings
from phoenix.inventory.models import VmGuest
from phoenix.plan.desired import vm_settings
from phoenix.plan.imported import FoundGuest, Note, firewall_rule, unique_mac, valid_entry

VM_FILE = "phoenix_vm_configs.json"


def convert_vms(
    vms: Sequence[FoundGuest], macs: dict[str, int] | None = None, home: str | None = None
) -> tuple[list[dict[str, Any]], list[Note]]:
    """The `vms[]` entries for `vms` (sorted by id) and the notes that go with them.
    `macs`: the MACs already written (the containers'), so no MAC is written twice.
    `home`: a cluster's node read through (`phoenix.node`), where VMs are planned."""
    entries: list[dict[str, Any]] = []
    notes: list[Note] = []
    found: dict[int, FoundGuest] = {}
    for guest in vms:
        if guest.node not in (None, home) and "node" not in VmGuest.model_fields:
            notes.append(
                Note(guest.observed.ctid, "skipped", f"VM on node {guest.node}: an inventory "
                     f"VM has no `node` yet, so Phoenix would plan it on {home}")
            )  # fmt: skip
        else:
            found[guest.observed.ctid] = guest
    seen = macs if macs is not None else {}
    for vmid in sorted(found):
        guest = found[vmid]
        built, own = _entry(guest, found)
        entry = valid_entry(vmid, built, own, VmGuest)
        if entry is not None:
            own += _unsaid(vmid, entry, guest)
            unique_mac(vmid, entry, seen, own)
            entries.append(entry)
        notes += own
        notes += [Note(vmid, "kept", line) for line in guest.unmanaged]
        notes += [Note(vmid, "secret", line) for line in guest.secrets]
        if guest.applied:
            notes.append(
                Note(
                    vmid,
                    "omitted",
                    f"recipes applied inside ({', '.join(guest.applied)}): features, docker "
                    "stacks and volumes cannot be read back from a VM; add them by hand "
                    "(Phoenix then runs each once more)",
                )
            )
    if entries:
        ids = ", ".join(str(e["vmid"]) for e in entries if "clone_from_vmid" not in e)
        if ids:
            notes.append(
                Note(
                    None,
                    "omitted",
                    f"what VM {ids} {'was' if ',' not in ids else 'were'} created from (a "
                    "host does not record the image): set 'template_image' before Phoenix "
                    "can create it again (on the local QEMU driver, none means Phoenix's "
                    "Debian base image)",
                )
            )
    return entries, notes


def _entry(guest: FoundGuest, found: Mapping[int, FoundGuest]) -> tuple[dict[str, Any], list[Note]]:
    observed = guest.observed
    vmid = observed.ctid
    s = observed.settings
    assert s is not None and s.vm is not None, "only existing VMs are imported"
    notes: list[Note] = []
    entry: dict[str, Any] = {"vmid": vmid, "name": s.hostname}
    if guest.node is not None and "node" in VmGuest.model_fields:
        entry["node"] = guest.node
    if observed.is_template:
        entry["is_template"] = True
    source = _clone_source(guest, found, notes)
    if source is not None:
        entry["clone_from_vmid"] = source
    entry.update({"cores": s.cores, "memory_mb": s.memory_mb})
    if s.disk_gb:
        entry["disk_size_gb"] = s.disk_gb
    entry["storage_pool"] = s.storage
    entry.update(_network(vmid, s))
    if s.vm.username is not None:
        user: dict[str, Any] = {"username": s.vm.username}
        if s.vm.ssh_keys:
            user["ssh_authorized_keys"] = list(s.vm.ssh_keys)
        entry["user_config"] = user
    elif s.vm.ssh_keys:
        notes.append(
            Note(vmid, "omitted", "SSH keys without a cloud-init user (ciuser): the "
                 "inventory gives keys to its user_config.username only")
        )  # fmt: skip
    entry["start_at_boot"] = s.onboot
    if s.boot_order:
        entry["boot_order"] = s.boot_order
    if s.boot_delay:
        entry["boot_delay"] = s.boot_delay
    entry["firewall"] = {
        "enabled": s.firewall_enabled,
        "rules": [firewall_rule(r) for r in s.firewall_rules],
    }
    if observed.snapshots:
        names = ", ".join(observed.snapshots)
        notes.append(
            Note(vmid, "kept", f"snapshots {names} (Phoenix never deletes a snapshot; name "
                 "one in 'snapshots' or 'template_snapshot_name' and Phoenix takes it again "
                 "when it rebuilds the VM)")
        )  # fmt: skip
    if not observed.is_template and not observed.running:
        notes.append(Note(vmid, "changes", "start: it is stopped, and Phoenix runs its VMs"))
    return entry, notes


def _network(vmid: int, s: GuestSettings) -> dict[str, Any]:
    """network_config (ip, gw, bridge, nameserver) and the MAC when it is not the one the
    inventory derives from the vmid."""
    assert s.vm is not None
    out: dict[str, Any] = {}
    nameservers = list(s.vm.nameservers)
    if s.net is None:
        return out
    net: dict[str, Any] = {"ip": s.net.ip}
    if s.net.gw is not None:
        net["gw"] = s.net.gw
    net["bridge"] = s.net.bridge
    if nameservers:
        net["nameserver"] = nameservers[0] if len(nameservers) == 1 else nameservers
    out["network_config"] = net
    derived = VmGuest(vmid=vmid, name="x").mac
    if s.net.mac is not None and s.net.mac.upper() != derived:
        out["mac_address"] = s.net.mac
    return out


def _clone_source(
    guest: FoundGuest, found: Mapping[int, FoundGuest], notes: list[Note]
) -> int | None:
    """The template an imported linked clone builds on (its disk says so); a source that
    is not imported, or not a template, is named instead."""
    if guest.clone_of is None:
        return None
    source, _ = guest.clone_of
    src = found.get(source)
    if src is not None and src.observed.is_template:
        return source
    notes.append(
        Note(guest.observed.ctid, "omitted", f"a linked clone of {source}, which is not "
             "imported as a template: written without clone_from_vmid")
    )  # fmt: skip
    return None


def _unsaid(vmid: int, entry: dict[str, Any], guest: FoundGuest) -> list[Note]:
    """The settings the entry does not reproduce (a plan would change them), by name."""
    observed = guest.observed.settings
    assert observed is not None
    desired = vm_settings(VmGuest.model_validate(entry))
    diff = desired.diff(observed)
    if guest.observed.is_template:
        diff.pop("disk_gb", None)  # a template keeps its image's size
    return [
        Note(vmid, "changes", f"{name}: the VM's value could not be written (see above)")
        for name in diff
    ]
