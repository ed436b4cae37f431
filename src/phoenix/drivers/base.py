"""The driver contract: how Phoenix observes and changes one guest.

A driver knows *how* to do things to a container on one host (LXC tools, or pct/pvesh on a
Proxmox node). It knows nothing about JSON files, planning or recipes: the planner hands it
a `GuestSettings` (the desired state, already typed and normalised) and compares it with the
`ObservedGuest` the driver reports. Both sides use the same `GuestSettings` shape so that a
diff is a field-by-field comparison (`GuestSettings.diff`).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from phoenix.runners.base import CommandResult, Stdin

FirewallAction = Literal["ACCEPT", "DROP", "REJECT"]
Direction = Literal["in", "out"]


@dataclass(frozen=True)
class NetSettings:
    """One NIC: static IPv4 in CIDR form on a bridge. `mac=None` means "assign, then keep"."""

    name: str
    bridge: str
    ip: str
    gw: str | None
    mac: str | None = None


@dataclass(frozen=True)
class FirewallRule:
    """One firewall rule for a guest's traffic (Proxmox .fw semantics)."""

    direction: Direction
    action: FirewallAction
    source: str | None = None
    dest: str | None = None
    proto: str | None = None
    port: str | None = None
    # Kept in Proxmox's .fw file after the rule (`# ...`); the LXC driver's nft rules
    # carry no comment (it is kept in the guest's phoenix.json).
    comment: str | None = None


@dataclass(frozen=True)
class MountSettings:
    """One mount point of a guest, matched by its `target` (the path inside the guest).

    A bind mount has `host_path`; a volume (Proxmox `POOL:SIZE`, a directory Phoenix makes
    on the LXC driver) has `pool` and `size_gb` instead. `name` and the owner ids do not
    take part in comparisons: a node does not report them (the owner is applied to the
    host path when Phoenix creates or adopts it, shifted through the guest's id map).
    """

    target: str
    host_path: str | None = None
    read_only: bool = False
    pool: str | None = None
    size_gb: int | None = None
    name: str = field(default="", compare=False)
    owner_uid: int | None = field(default=None, compare=False)
    owner_gid: int | None = field(default=None, compare=False)

    @property
    def is_volume(self) -> bool:
        return self.host_path is None


@dataclass(frozen=True)
class VmConfig:
    """What only a VM has: the cloud-init login and resolvers its seed carries, and how a
    clone is made. A guest whose `GuestSettings.vm` is set is a VM.

    Every VM backend (the local QEMU driver, Proxmox `qm`) implements the same `Driver`
    contract for VM ids, with these meanings:

    - `create(vmid, image, settings)`: `image` is "" for Phoenix's Debian base image, else
      a path or URL (`template_image`); the disk is grown to `settings.disk_gb` when that
      is larger (0: keep the image's size, as a template does), the cloud-init seed made
      from `settings` (hostname, NIC, this login, nameservers);
    - `clone(source, vmid, snapshot, settings)`: linked unless `full_clone` (a linked clone
      needs a template source; `snapshot` given: a copy of the source at that snapshot);
    - `start`: returns once the guest agent answers and cloud-init is done;
    - `configure`: cores, memory, the NIC and the seed take effect at the next boot, so a
      running VM is shut down and started again; the firewall changes in place;
    - `exec`: through qemu-guest-agent (so recipes and health checks run as in containers);
    - `mark_template`: cleans cloud-init's state inside a running VM, shuts it down and
      makes its disk the read-only base of linked clones;
    - `snapshot`: a running VM is running afterwards (its memory may be kept with it).
    """

    username: str | None = None
    ssh_keys: tuple[str, ...] = ()
    nameservers: tuple[str, ...] = ()
    # How a clone was made is not a setting to converge: it is never compared.
    full_clone: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class GuestSettings:
    """Everything a driver applies to a guest, normalised so equal means converged.

    `features` are Proxmox container features (`nesting`, `keyctl`, `mknod`, `fuse`…) as
    sorted `(name, value)` pairs; `raw_lxc` are raw `lxc.*` keys as `(key, value)` pairs in
    inventory order (keys such as `lxc.idmap` may repeat; AppArmor excluded: it is
    `apparmor_profile`). `mounts` are sorted by target, `gpus` are sorted GPU
    indices. `vm` is set for a VM (its container-only fields are then empty).
    `qm_options` are a Proxmox VM's extra `qm set` options as `(option, value)` pairs;
    only the options desired are compared (the node's config has many others).
    """

    hostname: str
    memory_mb: int
    swap_mb: int
    cores: int
    disk_gb: int
    storage: str
    unprivileged: bool
    net: NetSettings | None
    features: tuple[tuple[str, str], ...] = ()
    raw_lxc: tuple[tuple[str, str], ...] = ()
    apparmor_profile: str | None = None
    onboot: bool = False
    boot_order: int = 0
    boot_delay: int = 0
    firewall_enabled: bool = False
    firewall_rules: tuple[FirewallRule, ...] = ()
    mounts: tuple[MountSettings, ...] = ()
    gpus: tuple[int, ...] = ()
    vm: VmConfig | None = None
    qm_options: tuple[tuple[str, str], ...] = ()

    @property
    def is_vm(self) -> bool:
        return self.vm is not None

    def diff(self, other: GuestSettings) -> dict[str, tuple[object, object]]:
        """Fields whose values differ, as {name: (other_value, self_value)} = (old, new).

        Call as `desired.diff(observed)`. A desired NIC with `mac=None` matches any
        observed MAC (the driver assigned one and keeps it).
        """
        changes: dict[str, tuple[object, object]] = {}
        for f in fields(self):
            new = getattr(self, f.name)
            old = getattr(other, f.name)
            if f.name == "net" and isinstance(new, NetSettings) and isinstance(old, NetSettings):
                if new.mac is None:
                    old = NetSettings(old.name, old.bridge, old.ip, old.gw, None)
                elif old.mac is not None:
                    old = NetSettings(old.name, old.bridge, old.ip, old.gw, old.mac.upper())
                    new = NetSettings(new.name, new.bridge, new.ip, new.gw, new.mac.upper())
            if f.name == "qm_options":  # only the options desired, as the change shows them
                wanted = {k for k, _ in new}
                old = tuple(sorted((k, v) for k, v in old if k in wanted))
                new = tuple(sorted(new))
                if new != old:
                    changes[f.name] = (old, new)
                continue
            if new != old:
                changes[f.name] = (getattr(other, f.name), getattr(self, f.name))
        return changes


GuestState = Literal["missing", "stopped", "running"]


@dataclass(frozen=True)
class ObservedGuest:
    """What a driver saw of one guest. `settings` is None when the guest does not exist.
    `leftover` describes what an interrupted create or delete left of a missing guest; the
    driver's next create or destroy of that guest removes it."""

    ctid: int
    state: GuestState
    settings: GuestSettings | None = None
    snapshots: tuple[str, ...] = ()
    is_template: bool = False
    locked: str | None = None
    ip_addresses: tuple[str, ...] = ()
    leftover: str | None = None
    # The cluster node it lives on (a Proxmox cluster); None: the one host there is.
    node: str | None = None

    @property
    def exists(self) -> bool:
        return self.state != "missing"

    @property
    def running(self) -> bool:
        return self.state == "running"


# What a command a driver runs does (see CommandLog): a typo here is a type error.
CommandKind = Literal["observe", "mutate", "exec"]

# Log entry kinds that change something: a converged re-run logs neither.
CHANGE_KINDS = frozenset({"mutate", "file"})


@dataclass
class CommandLog:
    """What a driver did, for idempotency tests and `--json` reports.

    Every command a driver runs is appended as (kind, argv) where kind is "observe" (a
    read), "mutate" (a change) or "exec" (work inside a running guest). A change Phoenix
    makes to the host's files itself, in-process, is a "file" entry instead: (action,
    path, *detail), e.g. ("write", "/var/lib/lxc/101/config"); no command ran for it, so
    `lines` never shows it as one. A converged re-run must append no "mutate" or "file"
    entries (`mutations` lists both).
    """

    entries: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def add(self, kind: CommandKind, argv: Sequence[str]) -> None:
        self.entries.append((kind, tuple(argv)))

    def file(self, action: str, path: Path | str, *detail: str) -> None:
        """Record a file change made in-process (write, mkdir, rename, ...)."""
        self.entries.append(("file", (action, str(path), *detail)))

    def mutations(self) -> list[tuple[str, ...]]:
        return [argv for kind, argv in self.entries if kind in CHANGE_KINDS]

    def files(self) -> list[tuple[str, ...]]:
        """The file changes alone, as (action, path, *detail)."""
        return [entry for kind, entry in self.entries if kind == "file"]

    def lines(self) -> list[str]:
        """The log for a person: a command as `kind: argv` (shell-quoted, as one would
        type it), a file change as `file: action path [detail]`."""
        out = []
        for kind, argv in self.entries:
            if kind == "file":
                action, path, *detail = argv
                extra = f" ({', '.join(detail)})" if detail else ""
                out.append(f"file: {action} {path}{extra}")
            else:
                out.append(f"{kind}: {shlex.join(argv)}")
        return out


class Driver(Protocol):
    """Observe and change guests on one host. All methods are synchronous and idempotent
    where the operation allows it (e.g. stop on a stopped guest is a no-op).

    Not runtime-checkable on purpose: `isinstance` would compare names only. mypy checks
    implementations where they are used as a Driver; tests/driver_contract.py compares
    every signature."""

    name: str
    log: CommandLog

    def observe(self, ctid: int) -> ObservedGuest:
        """Current state of one guest (never raises for a missing guest)."""
        ...

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        """Create a stopped guest from a template (tarball path or driver-specific name),
        with `settings` applied: afterwards observe() reports exactly these settings."""
        ...

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        """Clone `source` (at `snapshot` if given) into a new stopped guest with `settings`
        applied (its own hostname, MAC, address, limits, disk size)."""
        ...

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        """Apply settings; `changed` names the GuestSettings fields that differ."""
        ...

    def resize(self, ctid: int, disk_gb: int) -> None:
        """Grow the root disk to `disk_gb` (shrinking is a DriverError)."""
        ...

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        """Start and wait (polling with a deadline) until init and network are up."""
        ...

    def stop(self, ctid: int, timeout: float = 60.0) -> None: ...

    def destroy(self, ctid: int) -> None:
        """Stop if needed and remove the guest and everything the driver made for it."""
        ...

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Run argv inside the running guest (no shell unless argv asks for one). How the
        command ended is the result, as for a Runner (runners/base.py): 124 when it ran
        past `timeout`, 127 when the program is missing."""
        ...

    def snapshot(self, ctid: int, name: str) -> None:
        """Snapshot the guest as `name` (nothing when it exists). A running guest is
        running afterwards: a backend that can only copy a stopped one (LXC's directory
        rootfs) stops and restarts it here, so no caller has to know."""
        ...

    def list_snapshots(self, ctid: int) -> list[str]: ...

    def mark_template(self, ctid: int) -> None:
        """Make the guest a template (Proxmox `pct template`); clones then need no snapshot."""
        ...


@dataclass(frozen=True)
class MigrationCheck:
    """What moving a guest to another node would cost: `blockers` (each a reason and the
    way out; any one refuses the move) and the guest's `downtime`."""

    blockers: tuple[str, ...]
    downtime: str


@runtime_checkable
class ClusterPlacement(Protocol):
    """A driver spanning the nodes of a cluster (the Proxmox cluster driver): where a guest
    lives, whether its node may be changed now, and moving it. The planner asks these only
    of a driver that has them; a one-host driver has no placement to compare."""

    def held(self, ctid: int, node: str | None) -> str | None:
        """Why no command may change guest `ctid` (living on its node, or to be made on
        `node`) now: no quorum, its node offline or unreachable. None: it may."""
        ...

    def migration(self, ctid: int, target: str, observed: ObservedGuest) -> MigrationCheck:
        """What would block moving the guest to `target`, and its downtime."""
        ...

    def migrate(self, ctid: int, target: str) -> None:
        """Move the guest to `target` (a container: in restart mode)."""
        ...


@runtime_checkable
class DetachingSnapshots(Protocol):
    """A driver that can snapshot a guest with host-path bind mounts by detaching them for
    the snapshot (Proxmox, which refuses such a snapshot otherwise: `proxmox.bindsnap`)."""

    def snapshot_without_bind_mounts(self, ctid: int, name: str) -> None:
        """Stop the guest, detach its bind mounts, snapshot, put them back, start it again
        if it ran; a record kept across a crash says what to put back."""
        ...

    def resume_detached(self) -> list[tuple[int, tuple[str, ...]]]:
        """Put back what an interrupted snapshot left detached: (ctid, `mpN` keys) each."""
        ...


@runtime_checkable
class ForcedDestroy(Protocol):
    """A driver whose host can guard a guest against destruction (Proxmox: `protection`,
    HA). Its `destroy` refuses such a guest, naming `phoenix delete --force`; only
    `force_destroy`, which that flag asks for, lifts the guards. Other drivers have no
    guards: a forced delete is their plain `destroy`."""

    def force_destroy(self, ctid: int) -> None:
        """Lift the host's guards on the guest, then `destroy` it; run again after an
        interruption, it goes on from what is left."""
        ...


@dataclass(frozen=True)
class HaPlacement:
    """A guest Proxmox HA places (`placement: ha`): the nodes it may run on, each with its
    priority (HA prefers the highest), and whether only those (`strict`)."""

    nodes: tuple[tuple[str, int], ...]
    strict: bool = False

    def node_list(self) -> str:
        """`pve1:1,pve2:2`: the `<node>[:<pri>]` list both HA groups and rules take,
        sorted by name as pve-ha-manager writes it back."""
        return ",".join(f"{node}:{priority}" for node, priority in sorted(self.nodes))


@runtime_checkable
class HaPlacer(Protocol):
    """A driver that can hand a guest's placement to Proxmox HA (the cluster driver)."""

    def ha_changes(self, ctid: int, wanted: HaPlacement) -> tuple[str, ...]:
        """What HA's configuration lacks for the guest, in words; empty: nothing."""
        ...

    def ha_place(self, ctid: int, wanted: HaPlacement) -> None:
        """Write what `ha_changes` names (the HA resource, its node affinity)."""
        ...


@dataclass(frozen=True)
class Check:
    """One line of a `phoenix doctor` report on a driver's host; `fix` says what to do
    when it fails."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
