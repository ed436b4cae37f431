"""Where guests come from and what they wait for: clone sources, what Proxmox refuses of a
clone or template, dependencies and their cycles."""

from __future__ import annotations

from phoenix.inventory.core import LXC_FILE, VM_FILE, Inventory
from phoenix.inventory.models import LxcGuest
from phoenix.inventory.ordering import build_graph
from phoenix.inventory.problems import Problem, lxc_at


def clone_source_problems(inventory: Inventory) -> list[Problem]:
    out: list[Problem] = []
    for ctid, guest in sorted(inventory.guests.items()):
        src = guest.clone_from_ctid
        if src is None:
            if guest.template is None:
                out.append(
                    Problem(
                        LXC_FILE,
                        lxc_at(ctid),
                        "needs either 'template' (to create) or 'clone_from_ctid'",
                        "warning",
                    )
                )
            continue
        if src == ctid:
            out.append(
                Problem(LXC_FILE, lxc_at(ctid, "clone_from_ctid"), "a guest cannot clone itself")
            )
        elif src in inventory.invalid_ids:
            pass  # its own entry already has errors
        elif src not in inventory.guests:
            hint = " (that id is a VM)" if src in inventory.vms else ""
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, "clone_from_ctid"),
                    f"clone source {src} is not a container in the inventory{hint}",
                )
            )
        elif not inventory.guests[src].is_clone_source:
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, "clone_from_ctid"),
                    f"clone source {src} is neither a template ('is_template': true) nor has a "
                    "'template_snapshot_name' to clone from",
                )
            )
        if guest.template is not None and src is not None:
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, "template"),
                    f"'template' is ignored: the guest is cloned from {src}",
                    "warning",
                )
            )
    return out


def proxmox_problems(ctid: int, guest: LxcGuest, inventory: Inventory) -> list[Problem]:
    """What pve-container refuses late: a clone that changes what it inherits
    (`unprivileged` is read-only after `pct clone`). What it would refuse but the original
    tool never asked of it is a warning saying what happens instead: snapshots of a
    template (`pct template` refuses a container with snapshots; none are taken), a clone
    disk smaller than its source's (`pct resize` only grows; the clone keeps the size)."""
    out: list[Problem] = []
    if guest.is_template:
        out += _template_snapshot_warnings(ctid, guest)
    source = inventory.guests.get(guest.clone_from_ctid or 0)
    if source is not None and guest.clone_from_ctid != ctid:
        src = guest.clone_from_ctid
        if guest.unprivileged != source.unprivileged:
            want = "true" if source.unprivileged else "false"
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, "unprivileged"),
                    f"a clone of {src} inherits its unprivileged={want} and Proxmox cannot "
                    f"change it afterwards: set 'unprivileged': {want}, or clone from another "
                    "source",
                )
            )
        disk = inventory.root_disk_gb(ctid)
        if guest.storage_size_gb < disk:
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, "storage_size_gb"),
                    f"{guest.storage_size_gb} GiB is smaller than the {disk} GiB disk it is "
                    f"cloned with (from {src}): the clone keeps {disk} GiB (a disk only "
                    "grows, and the original tool never shrank one)",
                    "warning",
                )
            )
    if "." in guest.name:
        out.append(
            Problem(
                LXC_FILE,
                lxc_at(ctid, "name"),
                f"{guest.name!r} is a fully qualified name for Proxmox: only "
                f"{guest.name.split('.')[0]!r} lands in the guest's /etc/hostname",
                "warning",
            )
        )
    return out


def _template_snapshot_warnings(ctid: int, guest: LxcGuest) -> list[Problem]:
    """A template takes no snapshots: the original tool skipped every snapshot of a guest
    with `is_template` (template, pre-configured, final-form) before `pct template`, which
    refuses a container that has any; its clones are made from the template itself."""
    out: list[Problem] = []
    wanted = {
        "template_snapshot_name": guest.template_snapshot_name is not None,
        "enable_lifecycle_snapshots": guest.enable_lifecycle_snapshots,
    }
    for key, asked in wanted.items():
        if asked:
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, key),
                    "ignored for a template ('is_template': true): it is turned into a "
                    "template with no snapshots, as the original tool did (Proxmox refuses "
                    "to make a template of a container with snapshots); clones are made "
                    "from the template itself",
                    "warning",
                )
            )
    return out


def dependency_problems(inventory: Inventory) -> list[Problem]:
    out: list[Problem] = []
    known = inventory.all_ids() | inventory.invalid_ids
    for ctid, guest in sorted(inventory.guests.items()):
        for index, dep in enumerate(guest.dependencies):
            if dep not in known:
                out.append(
                    Problem(
                        LXC_FILE,
                        lxc_at(ctid, "dependencies", index),
                        f"depends on {dep}, which is neither a container nor a VM in the inventory",
                    )
                )
            elif dep == ctid:
                out.append(
                    Problem(
                        LXC_FILE,
                        lxc_at(ctid, "dependencies", index),
                        "a guest cannot depend on itself",
                    )
                )
    cycle = build_graph(inventory).find_cycle()
    if cycle and len(cycle) > 2:
        first = cycle[0]
        shown = " -> ".join(str(c) for c in cycle)
        file = LXC_FILE if first in inventory.guests else VM_FILE
        out.append(
            Problem(
                file,
                lxc_at(first) if file == LXC_FILE else inventory.vm_at(first),
                f"dependency cycle: {shown}",
            )
        )
    return out
