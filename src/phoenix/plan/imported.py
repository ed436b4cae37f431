"""`phoenix import`'s converter: guests as a driver observed them -> an inventory in the
original tool's format (`phoenix_lxc_configs.json`), plus notes for a report.

It is `desired.guest_settings` run backwards: each entry holds exactly the settings the
driver reports for its guest, so `desired.diff(observed)` is empty and `phoenix plan` right
after the import shows nothing to change. What an entry cannot say is never dropped
silently: what the host keeps that Phoenix does not manage (a VLAN tag, the administrator's
firewall rules, devices) comes in as notes from the driver's survey; what cannot be written
(a secret in a raw line, a value the inventory refuses) and what was inferred (a template
snapshot, a clone source) become notes here. Pure: no I/O, so it is tested on data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from phoenix.drivers.base import FirewallRule, GuestSettings, MountSettings, ObservedGuest
from phoenix.drivers.secrets import secret_variable
from phoenix.inventory.models import LxcGuest
from phoenix.plan.desired import guest_settings
from phoenix.plan.planner import FINAL_FORM, PRE_CONFIGURED

NoteKind = Literal["kept", "omitted", "secret", "inferred", "changes", "skipped"]
# How a report titles each kind, in the order it prints them.
NOTE_TITLES: dict[NoteKind, str] = {
    "skipped": "not imported",
    "changes": "`phoenix plan` will change",
    "secret": "secrets not written (add them by hand)",
    "omitted": "not written to the inventory",
    "kept": "kept on the host, not in the inventory (Phoenix leaves it alone)",
    "inferred": "inferred",
}
_APPARMOR_NAME = re.compile(r"^[A-Za-z0-9_./-]+$")


@dataclass(frozen=True)
class FoundGuest:
    """One guest as the survey found it: what `observe` reports, where it lives, what the
    host holds beyond its settings (`unmanaged`, one line each) and the recipes whose
    applied-markers are inside it."""

    observed: ObservedGuest
    node: str | None = None
    clone_of: tuple[int, str | None] | None = None
    unmanaged: tuple[str, ...] = ()
    applied: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()  # what holds a secret, named (never its value)


@dataclass(frozen=True)
class FoundHost:
    """What the survey read: the guests to import and what it saw but will not import."""

    driver: str
    guests: tuple[FoundGuest, ...]
    skipped: tuple[tuple[int, str], ...] = ()  # (id, why): VMs, guests on other nodes
    nodes: tuple[str, ...] = ()  # a Proxmox cluster's nodes (empty: one host)
    reached: str | None = None  # the node Phoenix read the cluster through
    vms: tuple[FoundGuest, ...] = ()


@dataclass(frozen=True)
class Note:
    ctid: int | None
    kind: NoteKind
    text: str

    def as_dict(self) -> dict[str, Any]:
        return {"guest": self.ctid, "kind": self.kind, "text": self.text}


@dataclass
class Imported:
    """The inventory documents (containers, and VMs when there are any) and the notes
    that go with them."""

    document: dict[str, Any]
    notes: list[Note] = field(default_factory=list)
    vm_document: dict[str, Any] | None = None

    @property
    def ids(self) -> list[int]:
        return [int(c) for c in self.document["lxc_configs"]]

    @property
    def vm_ids(self) -> list[int]:
        return [int(v["vmid"]) for v in (self.vm_document or {}).get("vms", [])]


def convert(host: FoundHost, template: str | None = None) -> Imported:
    """The inventory for `host`'s guests (sorted by id), containers and VMs. `template` is
    written to every container that was not cloned from another imported guest: a node
    does not record what a guest was created from, and Phoenix needs it only to create the
    guest again."""
    from phoenix.plan.imported_vms import convert_vms

    notes: list[Note] = [Note(ctid, "skipped", why) for ctid, why in host.skipped]
    found = {g.observed.ctid: g for g in host.guests}
    sources = _clone_sources(found, notes)
    configs: dict[str, dict[str, Any]] = {}
    macs: dict[str, int] = {}
    for ctid in sorted(found):
        guest = found[ctid]
        source = _cloned_from(guest, found)
        built, guest_notes = _entry(
            guest, host.driver, template, sources.get(ctid), source, bool(host.nodes)
        )
        entry = valid_entry(ctid, built, guest_notes, LxcGuest)
        if entry is not None:
            guest_notes += _unsaid(ctid, entry, guest.observed)
        notes += guest_notes
        notes += [Note(ctid, "kept", line) for line in guest.unmanaged]
        notes += [Note(ctid, "secret", line) for line in guest.secrets]
        if guest.applied:
            notes.append(
                Note(
                    ctid,
                    "omitted",
                    f"recipes applied inside ({', '.join(guest.applied)}): features, "
                    "application scripts and their settings cannot be read back from a guest; "
                    "add them by hand (Phoenix then runs each once more)",
                )
            )
        if entry is not None:
            unique_mac(ctid, entry, macs, notes)
            configs[str(ctid)] = entry
    unmade = [c for c, e in configs.items() if "template" not in e and "clone_from_ctid" not in e]
    if unmade:
        notes.append(
            Note(
                None,
                "omitted",
                f"what guest{'s' if len(unmade) > 1 else ''} {', '.join(unmade)} "
                f"{'were' if len(unmade) > 1 else 'was'} created from (a host does not record "
                "it): set 'template' (or import with --template) before Phoenix can create "
                f"{'them' if len(unmade) > 1 else 'it'} again",
            )
        )
    vms, vm_notes = convert_vms(host.vms, macs, host.reached)
    return Imported({"lxc_configs": configs}, notes + vm_notes, {"vms": vms} if vms else None)


def unique_mac(ctid: int, entry: dict[str, Any], seen: dict[str, int], notes: list[Note]) -> None:
    """A MAC another imported guest has is not written (validate refuses a MAC twice); the
    guest keeps its own either way: an inventory without one keeps what the host assigned."""
    mac = entry.get("mac_address")
    if not isinstance(mac, str):
        return
    other = seen.setdefault(mac.upper(), ctid)
    if other != ctid:
        del entry["mac_address"]
        notes.append(
            Note(ctid, "omitted", f"mac_address {mac}: guest {other} has it too (the guest "
                 "keeps it; fix the clash on the host)")
        )  # fmt: skip


def _cloned_from(guest: FoundGuest, found: Mapping[int, FoundGuest]) -> int | None:
    """The clone source to write: an imported guest that keeps the snapshot it was cloned at
    (or is a template)."""
    if guest.clone_of is None:
        return None
    source, snapshot = guest.clone_of
    src = found.get(source)
    if src is None:
        return None
    if src.observed.is_template or (snapshot is not None and snapshot in src.observed.snapshots):
        return source
    return None


def _clone_sources(found: Mapping[int, FoundGuest], notes: list[Note]) -> dict[int, str]:
    """Snapshot each clone source must keep (its `template_snapshot_name`)."""
    out: dict[int, str] = {}
    for ctid, guest in sorted(found.items()):
        source = _cloned_from(guest, found)
        if source is None or guest.clone_of is None:
            if guest.clone_of is not None:
                src, snap = guest.clone_of
                notes.append(
                    Note(
                        ctid,
                        "omitted",
                        f"cloned from {src}"
                        + (f" at snapshot {snap}" if snap else "")
                        + ", which is not imported or no longer has that snapshot: written "
                        "without clone_from_ctid",
                    )
                )
            continue
        snapshot = guest.clone_of[1]
        if snapshot is not None and not found[source].observed.is_template:
            out[source] = snapshot
    return out


def _entry(
    guest: FoundGuest,
    driver: str,
    template: str | None,
    source_snapshot: str | None,
    cloned_from: int | None,
    cluster: bool = False,
) -> tuple[dict[str, Any], list[Note]]:
    observed = guest.observed
    ctid = observed.ctid
    s = observed.settings
    assert s is not None, "only existing guests are imported"
    notes: list[Note] = []
    entry: dict[str, Any] = {
        "name": s.hostname,
        "memory_mb": s.memory_mb,
        "swap_mb": s.swap_mb,
        "cores": s.cores,
        "storage_pool": s.storage,
        "storage_size_gb": s.disk_gb,
    }
    if cluster and guest.node is not None:
        entry["node"] = guest.node
    if cloned_from is not None:
        entry["clone_from_ctid"] = str(cloned_from)
    elif template is not None:
        entry["template"] = template
    if s.net is not None:
        net: dict[str, Any] = {"name": s.net.name, "bridge": s.net.bridge, "ip": s.net.ip}
        if s.net.gw is not None:
            net["gw"] = s.net.gw
        entry["network_config"] = net
        if s.net.mac:
            entry["mac_address"] = s.net.mac
    entry["gpu_assignment"] = ",".join(str(g) for g in s.gpus) or "none"
    entry["unprivileged"] = s.unprivileged
    unsnappable = driver == "proxmox" and any(not m.is_volume for m in s.mounts)
    entry.update(_snapshots(guest, s, source_snapshot, notes, unsnappable))
    if s.features:
        entry["pct_options"] = [f"{k}={v}" for k, v in s.features]
    raw = _raw_options(ctid, s, notes)
    if raw:
        entry["lxc_options"] = raw
    entry["start_at_boot"] = s.onboot
    if s.boot_order:
        entry["boot_order"] = s.boot_order
    if s.boot_delay:
        entry["boot_delay"] = s.boot_delay
    if s.apparmor_profile is not None and _APPARMOR_NAME.match(s.apparmor_profile):
        entry["apparmor_profile"] = s.apparmor_profile
    entry["firewall"] = {
        "enabled": s.firewall_enabled,
        "rules": [firewall_rule(r) for r in s.firewall_rules],
    }
    binds = [m for m in s.mounts if not m.is_volume]
    volumes = [m for m in s.mounts if m.is_volume]
    if binds:
        entry["mount_points"] = [_bind(m) for m in binds]
    if volumes:
        entry["volumes"] = [_volume(ctid, m) for m in volumes]
    return entry, notes


def _snapshots(
    guest: FoundGuest,
    s: GuestSettings,
    source_snapshot: str | None,
    notes: list[Note],
    binds: bool = False,
) -> dict[str, Any]:
    """is_template, template_snapshot_name and lifecycle snapshots, chosen so the planner
    asks for no start, stop or snapshot: a stopped guest that is not started at boot and
    keeps a snapshot is a clone source parked after its snapshot (what Phoenix leaves)."""
    observed = guest.observed
    ctid = observed.ctid
    out: dict[str, Any] = {}
    if observed.is_template:
        out["is_template"] = True
        return out
    snaps = observed.snapshots
    if FINAL_FORM in snaps:
        out["enable_lifecycle_snapshots"] = True
    # The guest's own newest snapshot, else its lifecycle one (a template snapshot may be
    # `final-form` itself).
    own = [n for n in snaps if n not in (PRE_CONFIGURED, FINAL_FORM)] or [
        n for n in (PRE_CONFIGURED, FINAL_FORM) if n in snaps
    ]
    chosen = source_snapshot
    if chosen is None and not observed.running and not s.onboot and own:
        chosen = own[-1]
        notes.append(
            Note(
                ctid,
                "inferred",
                f"template_snapshot_name {chosen!r}: the guest is stopped, not started at boot "
                "and keeps this snapshot (how Phoenix leaves a clone source)",
            )
        )
    elif chosen is None and not observed.running and not s.onboot and not snaps and binds:
        # Proxmox cannot snapshot a guest with bind mounts: Phoenix parks such a clone
        # source without its snapshot, and only the name says "keep it stopped".
        chosen = FINAL_FORM
        notes.append(
            Note(
                ctid,
                "inferred",
                f"template_snapshot_name {chosen!r}: the guest is stopped and not started at "
                "boot, and the node cannot snapshot it (bind mounts): a clone source Phoenix "
                "keeps stopped",
            )
        )
    if chosen is not None:
        out["template_snapshot_name"] = chosen
    parked = chosen is not None and not s.onboot
    if observed.running and parked:
        notes.append(
            Note(ctid, "changes", f"stop: it runs, but a clone source ({chosen}) not started "
                 "at boot is kept stopped")
        )  # fmt: skip
    elif not observed.running and not parked:
        notes.append(Note(ctid, "changes", "start: it is stopped, and Phoenix runs its guests"))
    return out


def _raw_options(ctid: int, s: GuestSettings, notes: list[Note]) -> list[str]:
    """Raw lxc lines in the driver's order; a secret in an environment line is left out,
    and a profile the inventory's `apparmor_profile` cannot hold stays a raw line."""
    out: list[str] = []
    for key, value in s.raw_lxc:
        name = secret_variable(key, value)
        if name is not None:
            notes.append(
                Note(ctid, "secret", f"raw line `{key}` setting {name} (value not written)")
            )
            continue
        out.append(f"{key}: {value}")
    if s.apparmor_profile is not None and not _APPARMOR_NAME.match(s.apparmor_profile):
        out.append(f"lxc.apparmor.profile: {s.apparmor_profile}")
    return out


def firewall_rule(rule: FirewallRule) -> dict[str, Any]:
    out: dict[str, Any] = {"type": rule.direction, "action": rule.action}
    for key in ("source", "dest", "proto", "port", "comment"):
        value = getattr(rule, key)
        if value is not None:
            out[key] = value
    return out


def _bind(mount: MountSettings) -> dict[str, Any]:
    out: dict[str, Any] = {"host_path": mount.host_path, "container_path": mount.target}
    if mount.read_only:
        out["read_only"] = True
    return out


def _volume(ctid: int, mount: MountSettings) -> dict[str, Any]:
    name = mount.name or f"{ctid}{mount.target.replace('/', '-')}".strip("-")
    return {"name": name, "pool": mount.pool, "size_gb": mount.size_gb, "mount_point": mount.target}


def valid_entry(
    ctid: int, entry: dict[str, Any], notes: list[Note], model: type[BaseModel]
) -> dict[str, Any] | None:
    """The entry with every value `model` (a container's or a VM's) refuses taken out and
    named (the guest is skipped when what is refused is required, such as its name)."""
    for _ in range(32):
        try:
            model.model_validate(entry)
            return entry
        except ValidationError as exc:
            removed = False
            for error in exc.errors():
                loc = [p for p in error["loc"] if isinstance(p, (str, int))]
                if _remove(entry, loc):
                    where = ".".join(str(p) for p in loc)
                    notes.append(Note(ctid, "omitted", f"{where}: {error['msg']}"))
                    removed = True
                    break
            if not removed:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                notes.append(Note(ctid, "skipped", f"{where}: {first['msg']}"))
                return None
    notes.append(Note(ctid, "skipped", "too many values the inventory refuses"))
    return None


def _unsaid(ctid: int, entry: dict[str, Any], observed: ObservedGuest) -> list[Note]:
    """The settings the entry does not reproduce (a plan would change them), by name only:
    a value may be a secret left out."""
    assert observed.settings is not None
    desired = guest_settings(LxcGuest.model_validate(entry))
    return [
        Note(ctid, "changes", f"{name}: the guest's value could not be written (see above)")
        for name in desired.diff(observed.settings)
    ]


def _remove(entry: dict[str, Any], loc: Sequence[str | int]) -> bool:
    """Delete the value at `loc` (its top-level item for a nested one); False for a key
    that must stay (`name`)."""
    if not loc or loc[0] in ("name", "vmid"):
        return False
    top = str(loc[0])
    if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(entry.get(top), list):
        del entry[top][loc[1]]
        if not entry[top]:
            del entry[top]
        return True
    if top in entry:
        del entry[top]
        return True
    return False


def notes_by_kind(notes: Iterable[Note]) -> list[tuple[NoteKind, list[Note]]]:
    """Notes grouped for a report, in NOTE_TITLES order."""
    grouped: dict[NoteKind, list[Note]] = {k: [] for k in NOTE_TITLES}
    for note in notes:
        grouped[note.kind].append(note)
    return [(k, v) for k, v in grouped.items() if v]
