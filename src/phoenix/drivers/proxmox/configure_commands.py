"""The commands that configure a guest, from the desired settings and what the node holds:
one pure builder that both the driver (`configure.GuestConfigurer`, on facts it has just
read) and the offline preview (`preview.Preview`, on a fresh node's facts) call, so a run
and its preview cannot drift apart.

The node's facts come in as a `NodeView`; the answer is a list of `Part`s in the order they
run (`pct set`, the conf's raw keys, the `.fw` file, mounts, devices). Each part carries
what it makes effective (for the restart decision) and what Phoenix owns once its commands
ran (`Owns`, recorded part by part, so a crash between parts loses no record).
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from phoenix.drivers import gpu, idmaps
from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox import (
    commands,
    conffile,
    devices,
    files,
    firewall,
    idshift,
    mounts,
    pvesh,
)
from phoenix.drivers.proxmox.commands import CONF_FIELDS, FIREWALL_FIELDS, PCT_SET_FIELDS
from phoenix.drivers.proxmox.ownership import Line, OwnedRaw, owned_lines
from phoenix.errors import DriverError, PlanError

# shlex.quote, once per distinct word: a preview of 10,000 guests quotes about a million
# words, most of them the same few (pct, exec, the in-guest scripts).
_quote = functools.lru_cache(maxsize=4096)(shlex.quote)


class Command(NamedTuple):
    """One command; `content` is what a file write sends on stdin. (A named tuple: a
    preview of 10,000 guests holds about 100,000 of them.)"""

    argv: tuple[str, ...]
    path: str | None = None
    content: str | None = None
    partial: bool = False  # a conf edit: only the raw keys of the main section are known

    def lines(self) -> list[str]:
        out: list[str] = []
        self.render(out)
        return out

    def render(self, out: list[str]) -> None:
        """Append this command's lines to `out`."""
        argv = self.argv
        shown = files.display(argv) if files.WRITER in argv else idshift.display(argv)
        out.append(" ".join(map(_quote, shown)))  # shlex.join
        if self.content is not None:
            what = "raw keys of its main section become" if self.partial else "will contain"
            out.append(f"#   {self.path} {what}:")
            out += [f"#   | {line}" for line in self.content.splitlines()]


@dataclass(frozen=True)
class NodeView:
    """What configuring reads on the node before it changes anything.

    `conf` is the text of `/etc/pve/lxc/<vmid>.conf`; an offline preview knows only its
    raw keys (`conf_partial`: the write shows them, unchecked against a digest). `fw` is
    the `.fw` file, None when there is none. `proc_devices` is the node's /proc/devices
    (needed for GPUs before PVE 8.1), None when unknown."""

    current: pvesh.ConfigFacts | None
    mac: str | None
    version: commands.Version | None
    owned: OwnedRaw
    conf: str | None = None
    conf_partial: bool = False  # `conf` holds only the main section's raw keys (offline)
    fw: str | None = None
    container: commands.ContainerVersion | None = None
    dirs: frozenset[str] = frozenset()  # bind sources that exist on the node
    missing_devices: frozenset[str] = frozenset()  # device nodes the node lacks
    proc_devices: str | None = None
    node: str = "the node"  # its name, for messages


@dataclass(frozen=True)
class Owns:
    """What Phoenix owns once a part ran (None: that record is not touched)."""

    raw: tuple[Line, ...] | None = None
    gpu_lines: tuple[Line, ...] | None = None
    fw_rules: tuple[str, ...] | None = None
    mount_targets: tuple[str, ...] | None = None
    dev_paths: tuple[str, ...] | None = None

    def record(self, owned: OwnedRaw, ctid: int) -> None:
        if self.raw is not None:
            owned.set(ctid, list(self.raw))
        if self.gpu_lines is not None:
            owned.set_gpu_lines(ctid, self.gpu_lines)
        if self.fw_rules is not None:
            owned.set_fw_rules(ctid, self.fw_rules)
        if self.mount_targets is not None:
            owned.set_mount_targets(ctid, self.mount_targets)
        if self.dev_paths is not None:
            owned.set_dev_paths(ctid, self.dev_paths)


@dataclass(frozen=True)
class Part:
    """One part of configuring: its commands, the fields they make effective, what Phoenix
    owns after them. `kind` names the part ("options" is the `pct set` of the settings)."""

    kind: str
    commands: tuple[Command, ...] = ()
    applied: frozenset[str] = frozenset()
    owns: Owns = field(default_factory=Owns)


def wanted_raw_keys(settings: GuestSettings) -> list[Line]:
    """Raw keys for the conf's main section: AppArmor first, then raw keys in order."""
    wanted: list[Line] = []
    if settings.apparmor_profile is not None:
        wanted.append((pvesh.APPARMOR_KEY, settings.apparmor_profile))
    wanted += list(settings.raw_lxc)
    return wanted


def configure(
    ctid: int, settings: GuestSettings, changed: frozenset[str], view: NodeView
) -> list[Part]:
    """The parts that make the guest's `changed` settings the desired ones on this node.
    Refuses (DriverError/PlanError) before any part what the node would refuse or get
    wrong: a locked guest, a setting fixed at creation, a raw key the node drops, a GPU
    device the node lacks."""
    if view.current is not None:
        refuse_locked(ctid, view.current.locked)
        refuse_unchangeable(ctid, settings, view.current.settings)
    # A node without `devN` (before PVE 8.1) gets GPUs as raw lines in the conf.
    old_node = view.version is not None and view.version < devices.DEV_SINCE
    if "gpus" in changed:
        _refuse_missing_devices(ctid, settings, view)
        if old_node and view.current is not None:
            devices.check_stale_raw(ctid, settings.gpus, _foreign_raw(ctid, view))
    parts: list[Part] = []
    if changed & PCT_SET_FIELDS:
        argv = commands.set_options(ctid, settings, view.mac, view.current)
        parts.append(Part("options", (Command(tuple(argv)),), changed & PCT_SET_FIELDS))
    if changed & CONF_FIELDS or ("gpus" in changed and old_node):
        parts.append(raw_keys_part(ctid, settings, changed, view))
    if changed & FIREWALL_FIELDS:
        parts.append(firewall_part(ctid, settings, view.fw, view.owned.fw_rules(ctid)))
    if "mounts" in changed:
        parts.append(_mounts(ctid, settings, view))
    if "gpus" in changed and not old_node:
        parts.append(_devices(ctid, settings, view))
    return parts


def refuse_locked(ctid: int, lock: str | None) -> None:
    """pct refuses a locked guest, but a config file write would not: refuse first."""
    if lock:
        raise DriverError(
            f"guest {ctid} is locked ({lock}) by a task on the node (backup, migration, "
            "snapshot...): Phoenix changes nothing while it runs. Wait for the task; if it "
            f"crashed, check `pct config {ctid}` and run `pct unlock {ctid}`"
        )


def refuse_unchangeable(ctid: int, desired: GuestSettings, observed: GuestSettings) -> None:
    if desired.unprivileged != observed.unprivileged:
        kind = "unprivileged" if desired.unprivileged else "privileged"
        raise PlanError(
            f"guest {ctid} must be {kind} but was created otherwise; Proxmox cannot change "
            "this after creation: the guest must be recreated (run again with --recreate)"
        )
    if desired.storage != observed.storage and observed.storage:
        raise PlanError(
            f"guest {ctid}'s root disk is on storage {observed.storage!r}, the inventory "
            f"says {desired.storage!r}: move it with `pct move-volume {ctid} rootfs "
            f"{desired.storage}` or recreate the guest (--recreate)"
        )


def _foreign_raw(ctid: int, view: NodeView) -> list[Line]:
    """The conf's raw lines Phoenix did not write."""
    present = view.current.raw if view.current is not None else []
    return [line for line in present if line not in set(view.owned.get(ctid))]


def _refuse_missing_devices(ctid: int, settings: GuestSettings, view: NodeView) -> None:
    """Proxmox refuses to start a guest whose device node is missing: refuse it first."""
    for path in gpu.device_paths(settings.gpus):
        if path in view.missing_devices:
            fix = (
                gpu.UVM_FIX
                if path.startswith(gpu.UVM)
                else "check `nvidia-smi -L` on the node and gpu_assignment in the inventory"
            )
            raise DriverError(
                f"guest {ctid}: node {view.node} has no {path}, so the guest could not start "
                f"with it: {fix}"
            )


def _gpu_raw_lines(ctid: int, settings: GuestSettings, view: NodeView) -> list[Line]:
    """The GPU lines of a node without `devN` (majors from its /proc/devices)."""
    if not settings.gpus:
        return []
    if view.proc_devices is None:
        version = view.version or (0, 0)
        raise DriverError(
            f"guest {ctid}: Proxmox VE {version[0]}.{version[1]} has no `devN` (8.1 and "
            "later): the GPUs are passed as raw lines with the majors of the node's "
            "/proc/devices, which an offline plan cannot know; plan against the node"
        )
    return devices.raw_lines(settings.gpus, gpu.char_majors(view.proc_devices))


def raw_keys_part(
    ctid: int, settings: GuestSettings, changed: frozenset[str], view: NodeView
) -> Part:
    """The raw lines Phoenix owns become the wanted ones; every other line stays. (The
    driver builds it again on the conf as a `pct set` before it left it.)"""
    old_node = view.version is not None and view.version < devices.DEV_SINCE
    gpu_lines = _gpu_raw_lines(ctid, settings, view) if old_node else []
    wanted = wanted_raw_keys(settings) + gpu_lines
    container = view.container if wanted else None
    for key, _ in wanted:
        problem = commands.raw_key_problem(key, view.version, container)
        if problem is not None:
            raise DriverError(f"guest {ctid}: raw LXC option refused: {problem}")
    owns = Owns(raw=tuple(dict.fromkeys(wanted)), gpu_lines=tuple(gpu_lines))
    path = pvesh.conf_path(ctid)
    lock = pvesh.config_lock_path(ctid)
    old = view.conf or ""
    mine = owned_lines(conffile.main_section_raw(old), wanted, view.owned.get(ctid))
    try:
        new = conffile.edit_raw_keys(old, wanted, mine)
    except ValueError as exc:
        raise DriverError(f"guest {ctid}: raw LXC option refused: {exc}") from None
    if new == old:
        return Part("raw", (), frozenset(), owns)
    if view.conf is None or view.conf_partial:  # offline: its other lines are not known
        write = Command(tuple(files.write_cmd(path, lock=lock)), path, new, partial=True)
    else:
        write = Command(tuple(files.write_cmd(path, files.digest(old), lock=lock)), path, new)
    applied = changed & (CONF_FIELDS | {"gpus"})
    return Part("raw", (write,), applied, owns)


def firewall_part(
    ctid: int, settings: GuestSettings, old: str | None, owned_rules: Sequence[str]
) -> Part:
    """Phoenix's options and rules in `/etc/pve/firewall/<vmid>.fw` (the same file for a
    container and a VM); every other byte kept (`firewall.edit`). The write is checked
    against what was read (a missing file reads as empty), so a GUI edit in between is
    not overwritten."""
    if old is None and not settings.firewall_enabled:
        return Part("firewall")  # no file and no firewall wanted: nothing to switch off
    owned = firewall.rules_of(owned_rules)
    try:
        if old is None:
            new = firewall.render(settings.firewall_enabled, settings.firewall_rules)
        else:
            new = firewall.edit(old, settings.firewall_enabled, settings.firewall_rules, owned)
    except ValueError as exc:
        raise DriverError(f"guest {ctid}: firewall rule refused: {exc}") from None
    owns = Owns(fw_rules=tuple(firewall.render_rule(r) for r in settings.firewall_rules))
    if new == old:
        return Part("firewall", (), frozenset(), owns)
    path = pvesh.fw_path(ctid)
    write = Command(tuple(files.write_cmd(path, files.digest(old or ""))), path, new)
    return Part("firewall", (write,), frozenset(), owns)


def _mounts(ctid: int, settings: GuestSettings, view: NodeView) -> Part:
    """Bind sources made (owned as the guest sees them), `mpN` entries matched by target,
    volumes grown; entries Phoenix no longer wants dropped (their data kept)."""
    out: list[Command] = []
    made: set[str] = set()
    for mount in settings.mounts:
        if mount.host_path is None:
            continue
        uid, gid = mounts.host_ids(mount, settings.unprivileged, idmaps.from_raw(settings.raw_lxc))
        exists = mount.host_path in view.dirs or mount.host_path in made
        if not exists:
            out.append(Command(tuple(mounts.make_dir(mount.host_path))))
            made.add(mount.host_path)
        if not exists or mount.owner_uid is not None or mount.owner_gid is not None:
            out.append(Command(tuple(mounts.chown(mount.host_path, uid, gid))))
    present = view.current.mounts if view.current is not None else []
    change = mounts.changes(ctid, settings.mounts, present, view.owned.mount_targets(ctid))
    if change.set_argv is not None:
        out.append(Command(tuple(change.set_argv)))
    out += [Command(tuple(argv)) for argv in change.resizes]
    effective = change.set_argv is not None or bool(change.resizes)
    owns = Owns(mount_targets=tuple(m.target for m in settings.mounts))
    return Part("mounts", tuple(out), frozenset({"mounts"}) if effective else frozenset(), owns)


def _devices(ctid: int, settings: GuestSettings, view: NodeView) -> Part:
    """The guest's NVIDIA `devN` entries become exactly its GPUs'."""
    present = view.current.devices if view.current is not None else []
    mine = set(view.owned.dev_paths(ctid))
    argv = devices.set_argv(
        ctid, settings.gpus, present, _foreign_raw(ctid, view), settings.unprivileged,
        view.version, mine,
    )  # fmt: skip
    # What the inventory names is Phoenix's from now on (to delete when it stops naming it).
    owns = Owns(dev_paths=tuple(gpu.device_paths(settings.gpus)))
    if argv is None:
        return Part("devices", (), frozenset(), owns)
    return Part("devices", (Command(tuple(argv)),), frozenset({"gpus"}), owns)
