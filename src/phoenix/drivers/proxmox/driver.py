"""The Proxmox VE driver: `pct` and `pvesh` on a node, through a Runner (local or SSH).

Decisions (also in the README):
- Template: an absolute path (`/fastData/shared-iso/template/cache/x.tar.zst`) is passed to
  `pct create` unchanged — pct documents that form and accepts it for root, which is who
  Phoenix runs as on the node; a volume id (`storage:vztmpl/x.tar.zst`) is passed unchanged
  too. Nothing is guessed, so `plan --offline --commands` shows the command a node runs.
  `debootstrap:<suite>` (LXC driver only) and bare file names are errors.
- `pct create` carries only what is fixed at creation (template, `--rootfs STORAGE:GiB`,
  `--unprivileged`) plus the hostname; `configure` then applies the whole desired config
  with one `pct set`, the same command that converges a drifted guest.
- MACs never churn: Proxmox draws a random MAC for a NIC given without `hwaddr` and for every
  NIC of a clone, so the driver reads the MAC back (after a clone, before a `pct set`) and
  always passes it. Offline, a clone's MAC is unknown and shown as `<MAC of CTID>`.
- `destroy` is `pct destroy <vmid>` without `--purge`. A guest Proxmox guards (`protection:
  1`, or any HA resource, `ignored` included) is refused before anything stops, naming
  `phoenix delete N --force`; only that (`force_destroy`) lifts the guards, in an order that
  a re-run resumes: out of HA (waiting until the CRM let go), protection cleared last, just
  before the guest stops and goes. Replication jobs are never touched (pct refuses them).
- `stop` is `pct shutdown --timeout N --forceStop 1`: a clean shutdown, forced at the deadline.
- Raw `lxc.*` keys and AppArmor go into the main section of `/etc/pve/lxc/<vmid>.conf`
  (`conffile`); only the lines Phoenix owns are changed (`ownership`); when they (or
  `features`) change on a running guest it is restarted.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import threading
from collections.abc import Mapping, Sequence

from phoenix.drivers import idmaps
from phoenix.drivers.base import GuestSettings
from phoenix.drivers.idmaps import IdRange
from phoenix.drivers.proxmox import bindsnap, commands, ha, idshift, pvesh
from phoenix.drivers.proxmox.commands import APPLIED_AFTER_CREATE
from phoenix.drivers.proxmox.configure import GuestConfigurer
from phoenix.drivers.proxmox.configure_commands import refuse_locked
from phoenix.drivers.proxmox.errors import check, explain, is_missing_guest
from phoenix.drivers.proxmox.node import parse_facts
from phoenix.drivers.proxmox.properties import flag, parse_rootfs
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult, Stdin

_PCT_FAILURE = re.compile(
    r"(container '[0-9]+' not running|CT [0-9]+ not running|is locked \(|"
    r"Configuration file '[^']*' does not exist)"
)


class ProxmoxDriver(GuestConfigurer):
    """Observe and change containers on one Proxmox VE node with pct and pvesh: each change
    observes, calls a command builder (`commands`, `conffile`, `firewall`) and runs the
    result. What a fresh node would run is `preview`'s job, from the same builders.

    Split by job: `node.NodeSession` runs commands, reads facts and power-cycles;
    `configure.GuestConfigurer` writes settings; this class creates, clones, destroys,
    runs in-guest work and takes snapshots."""

    name = "proxmox"

    # -- creating ----------------------------------------------------------------------

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        argv = commands.create(ctid, template, settings)
        ranges = _ranges(settings)
        if idshift.needed((), ranges):
            idshift.check(ctid, ranges)
        self._mutate(ctid, argv)
        self._nics.discard(ctid)
        self._macs.pop(ctid, None)
        self.owned.forget(ctid)
        # Unpacked under the default map (pct create takes no lxc.idmap): its own map's now.
        self._reown(ctid, (), ranges)
        # `pct create` fixes only what cannot change later; the rest is one full `pct set`.
        self.configure(ctid, settings, APPLIED_AFTER_CREATE)

    def _source_lock(self, source: int) -> threading.Lock:
        with self._guard:
            return self._source_locks.setdefault(source, threading.Lock())

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        """Full clone; clones of one source run one at a time (pct locks the source).

        Refused before anything runs when the clone would come out wrong (its source's
        `unprivileged` differs, its disk would have to shrink)."""
        self.clone_to(self, source, ctid, snapshot, settings)

    def clone_to(
        self,
        target: ProxmoxDriver,
        source: int,
        ctid: int,
        snapshot: str | None,
        settings: GuestSettings,
    ) -> None:
        """Clone `source` (on this node) into `ctid` on `target`'s node: `pct clone
        --target` when that is another node of the cluster; `target` then finishes it."""
        facts = self._facts(source)
        if facts is None:
            raise DriverError(f"guest {ctid}: its clone source {source} does not exist")
        # A clone from a snapshot gets the disk the snapshot has (the source's may have
        # grown since): that size is what the clone cannot be smaller than.
        source_settings = facts.settings
        if snapshot is not None and snapshot in self.list_snapshots(source):
            held = self._json(source, pvesh.snapshot_config_cmd(self.node, source, snapshot))
            if isinstance(held, dict) and held.get("rootfs"):
                _, taken_gb = parse_rootfs(str(held["rootfs"]))
                source_settings = dataclasses.replace(source_settings, disk_gb=taken_gb)
        commands.check_clone(source, ctid, settings, source_settings)
        argv = commands.clone(source, ctid, snapshot, settings, target.cluster_name(self))
        src, dst = idmaps.from_raw(facts.raw), _ranges(settings)
        if idshift.needed(src, dst):
            idshift.check(ctid, dst)
        with self._source_lock(source):
            self._mutate(ctid, argv)
        target.owned.copy(source, ctid)
        target._adopt_clone(ctid, argv, settings, src, dst)

    def cluster_name(self, other: ProxmoxDriver) -> str | None:
        """This node's name as `--target` of a command run on `other`'s node (None: the
        same node)."""
        return None if other is self else self.node

    def _adopt_clone(
        self,
        ctid: int,
        argv: Sequence[str],
        settings: GuestSettings,
        src: tuple[IdRange, ...],
        dst: tuple[IdRange, ...],
    ) -> None:
        """A new clone on this node: its files owned through its map, its MAC learnt (a
        clone gets a random one; every later `pct set` keeps it), its own settings."""
        self._reown(ctid, src, dst)
        self._nics.discard(ctid)
        self._macs.pop(ctid, None)
        data = self._config(ctid)
        if data is None:
            raise DriverError(f"guest {ctid}: `{shlex.join(argv)}` left no container")
        self._remember_mac(ctid, parse_facts(ctid, data).mac)
        # A clone has its source's settings and disk: apply the clone's own, grow the disk.
        self.configure(ctid, settings, APPLIED_AFTER_CREATE)
        self.resize(ctid, settings.disk_gb)

    def _reown(self, ctid: int, src: tuple[IdRange, ...], dst: tuple[IdRange, ...]) -> None:
        """Re-own a new guest's root disk from map `src` to `dst` before it first starts
        (`idshift`); unmounted again whatever happens in between."""
        steps = idshift.commands(ctid, src, dst)
        if not steps:
            return
        mount, reown, unmount = steps
        self._mutate(ctid, mount)
        try:
            self._mutate(ctid, reown)
        finally:
            self._mutate(ctid, unmount)

    def destroy(self, ctid: int) -> None:
        """`pct destroy`, refused before anything stops for a guest Proxmox protects or HA
        keeps (pct would refuse it after Phoenix had shut it down)."""
        self._destroy(ctid, force=False)

    def force_destroy(self, ctid: int) -> None:
        """`destroy` of a guest Proxmox may guard: taken out of HA and unprotected first."""
        self._destroy(ctid, force=True)

    def _destroy(self, ctid: int, force: bool) -> None:
        state, _ = self._status(ctid, requested=False)
        if state == "missing":
            return
        config = self._config(ctid) or {}
        protected = flag(config.get("protection", 0))
        requested = ha.parse_requested(self._json(ctid, ha.resources_cmd()), ctid)
        if not force and (protected or requested is not None):
            raise DriverError(_guarded(ctid, protected, requested))
        # Each guard is re-read and lifted only while present, so an interrupted forced
        # destroy is finished by running it again; protection, the guard against loss,
        # stays until HA has let go of the guest.
        if requested is not None:
            self._leave_ha(ctid)
        if config.get("lock") == idshift.MOUNT_LOCK and state != "running":
            # A run stopped while re-owning a new guest's files left it mounted.
            self._mutate(ctid, idshift.unmount_cmd(ctid))
        if protected:
            self._mutate(ctid, commands.unprotect(ctid))
        if state == "running":
            self.stop(ctid)
        self._mutate(ctid, commands.destroy(ctid))
        self._macs.pop(ctid, None)
        self._nics.discard(ctid)
        self.owned.forget(ctid)

    def _leave_ha(self, ctid: int, timeout: float = 120.0) -> None:
        """Remove the guest's HA resource and wait until the CRM no longer lists it (its
        LRM may act on the guest until then: start it again, or hold its lock)."""
        self._mutate(ctid, ha.remove_cmd(ctid))
        deadline = self._clock() + timeout
        while (service := self._ha_service(ctid)) is not None:
            if self._clock() >= deadline:
                raise DriverError(ha.not_released(ctid, timeout, service))
            self._sleep(self._poll)

    # -- in-guest work -----------------------------------------------------------------

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        full = commands.exec_(ctid, argv, env, self.version())
        result = self._run("exec", full, input=stdin, timeout=timeout)
        if not result.ok and _PCT_FAILURE.search(result.stderr):
            raise explain(ctid, result)
        return result

    # -- snapshots and templates -------------------------------------------------------

    def list_snapshots(self, ctid: int) -> list[str]:
        result = self._run("observe", pvesh.snapshots_cmd(self.node, ctid))
        if is_missing_guest(result):
            return []
        check(ctid, result)
        return list(pvesh.parse_snapshots(pvesh.load_json(result.stdout, "snapshots")))

    def snapshot(self, ctid: int, name: str) -> None:
        argv = commands.snapshot(ctid, name)
        if name in self.list_snapshots(ctid):
            return
        self._mutate(ctid, argv)

    def snapshot_without_bind_mounts(self, ctid: int, name: str) -> None:
        """`snapshot` for a guest whose host-path bind mounts make Proxmox refuse one: it is
        stopped, its bind mounts recorded and detached, snapshotted, the same lines put
        back and read back, and started again if it ran (`bindsnap`). A failed snapshot
        still puts them back; a killed run leaves the record for `resume_detached`."""
        self._put_back(ctid, self.detached.of_node(self.node).get(ctid))
        if name in self.list_snapshots(ctid):
            return
        config = self._config(ctid)
        if config is None:
            raise DriverError(f"guest {ctid} does not exist on node {self.node}")
        lines = bindsnap.bind_lines(config)
        if not lines:
            self.snapshot(ctid, name)
            return
        argv = bindsnap.snapshot_cmd(ctid, name, lines)  # a reserved name: before any stop
        state, requested = self._status(ctid)
        self.stop(ctid)
        self.detached.put(self.node, ctid, lines)  # durable before the config changes
        try:
            self._mutate(ctid, bindsnap.detach_cmd(ctid, lines))
            self._mutate(ctid, argv)
        finally:
            self._put_back(ctid, lines)
            if state == "running":
                self.start(ctid)
                if requested is not None and requested not in ha.RUNNING_STATES:
                    self._mutate(ctid, ha.set_state(ctid, requested))

    def resume_detached(self) -> list[tuple[int, tuple[str, ...]]]:
        """Put back the bind mounts an interrupted snapshot left detached on this node,
        before anything else touches the guests: (ctid, the `mpN` keys) of each."""
        out = []
        for ctid, lines in sorted(self.detached.of_node(self.node).items()):
            self._put_back(ctid, lines)
            out.append((ctid, tuple(lines)))
        return out

    def _put_back(self, ctid: int, lines: bindsnap.Lines | None) -> None:
        """Attach the recorded `lines` the config lacks, check them all in the config read
        back, then forget the record (kept, with a clear error, when anything differs)."""
        if lines is None:
            return
        config = self._config(ctid)
        if config is None:  # destroyed since: nothing to put back
            self.detached.drop(self.node, ctid)
            return
        where = f"recorded in {self.detached.path}" if self.detached.path else "recorded"
        taken = bindsnap.conflicts(lines, config)
        if taken:
            raise DriverError(
                f"guest {ctid}: cannot put back the bind mounts Phoenix detached for a "
                f"snapshot ({where}): {', '.join(f'{k} now holds {config[k]!r}' for k in taken)}"
                f" instead of {', '.join(repr(lines[k]) for k in taken)}. Free those slots "
                "or remove the record once you have put the mounts back by hand"
            )
        absent = bindsnap.missing(lines, config)
        if absent:
            self._mutate(ctid, bindsnap.attach_cmd(ctid, absent))
        after = self._config(ctid) or {}
        wrong = [k for k, v in lines.items() if not bindsnap.same(v, after.get(k))]
        if wrong:
            raise DriverError(
                f"guest {ctid}: put back {', '.join(wrong)} but the config read back does not "
                f"hold them as they were ({where}); look at `pct config {ctid}`"
            )
        self.detached.drop(self.node, ctid)

    def mark_template(self, ctid: int) -> None:
        """`pct template`, refused for a guest with snapshots (pct would refuse it) and
        confirmed by reading the config back (pct exits 0 when its worker fails)."""
        facts = self._facts(ctid)
        if facts is None:
            raise DriverError(f"guest {ctid} does not exist on node {self.node}")
        if facts.is_template:
            return
        refuse_locked(ctid, facts.locked)
        argv = commands.template(ctid, self.list_snapshots(ctid))
        _, requested = self._status(ctid)
        if requested is not None:  # HA would start the template again (or refuse it)
            raise DriverError(ha.refusal(ctid, requested, "turn into a template"))
        self.stop(ctid)
        self._mutate(ctid, argv)
        after = self._facts(ctid)
        if after is None or not after.is_template:
            raise DriverError(
                f"guest {ctid}: `{shlex.join(argv)}` exited 0 but the guest is not a template: "
                "the node's task failed (see its task log)"
            )


def _guarded(ctid: int, protected: bool, requested: str | None) -> str:
    """Why a plain destroy leaves the guest alone, and the flag that lifts the guards."""
    guards, lifts = [], []
    if protected:
        guards.append("has Proxmox's protection enabled (`protection: 1`)")
        lifts.append(f"clears its protection (`pct set {ctid} --protection 0`)")
    if requested is not None:
        guards.append(f"is managed by Proxmox HA (requested state {requested!r})")
        lifts.insert(0, f"takes it out of HA (`ha-manager remove {ha.sid(ctid)}`)")
    return (
        f"guest {ctid} {' and '.join(guards)}, so `pct destroy` refuses it and Phoenix "
        f"leaves it as it is. If you mean it, run `phoenix delete {ctid} --force`: it "
        f"{' and '.join(lifts)} first, then destroys it"
    )


def _ranges(settings: GuestSettings) -> tuple[IdRange, ...]:
    """The guest's id map (() for the default map; a privileged guest has none)."""
    return idmaps.from_raw(settings.raw_lxc) if settings.unprivileged else ()
