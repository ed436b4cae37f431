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
- `destroy` is `pct destroy <vmid>` without `--purge`: Proxmox then refuses to destroy a guest
  that is HA-managed or replicated (it does not keep it in those jobs); the refusal is
  explained. Phoenix never removes a guest from an administrator's HA or replication setup.
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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from phoenix.drivers import gpu, idmaps
from phoenix.drivers.base import (
    CommandLog,
    GuestSettings,
    ObservedGuest,
)
from phoenix.drivers.proxmox import commands, conffile, devices, files, firewall, mounts, pvesh
from phoenix.drivers.proxmox.errors import check, explain, is_missing_guest
from phoenix.drivers.proxmox.ownership import OwnedRaw, owned_lines
from phoenix.errors import DriverError, PlanError
from phoenix.runners.base import CommandResult, Runner

# Commands run with the C locale: Phoenix reads their messages ("No such file", pct's).
NODE_ENV = {"LC_ALL": "C"}
_PCT_FAILURE = re.compile(
    r"(container '\d+' not running|CT \d+ not running|is locked \(|"
    r"Configuration file '[^']*' does not exist)"
)

# Run in the guest while waiting for it: init answers, and shows its global IPv4 address.
IP_PROBE = ("ip", "-4", "-o", "addr", "show", "scope", "global")

# GuestSettings fields applied by `pct set`; the rest have their own commands.
PCT_SET_FIELDS = frozenset(
    {
        "hostname",
        "memory_mb",
        "swap_mb",
        "cores",
        "net",
        "features",
        "onboot",
        "boot_order",
        "boot_delay",
        "firewall_enabled",
    }
)
CONF_FIELDS = frozenset({"raw_lxc", "apparmor_profile"})
FIREWALL_FIELDS = frozenset({"firewall_enabled", "firewall_rules"})
# What create/clone apply right after `pct create`/`pct clone` (the Driver contract: a new
# guest has its settings), i.e. everything but what those commands fix themselves.
APPLIED_AFTER_CREATE = PCT_SET_FIELDS | CONF_FIELDS | FIREWALL_FIELDS | {"mounts", "gpus"}
# Changes that only take effect when the container starts again.
RESTART_FIELDS = frozenset({"raw_lxc", "apparmor_profile", "features", "mounts", "gpus"})


def _parse(
    ctid: int, data: Mapping[str, Any], fw: firewall.FirewallFile | None = None
) -> pvesh.ConfigFacts:
    """parse_config, with a config Phoenix cannot read (a non-numeric `memory`, a `net0`
    without `name=`) as a DriverError naming the guest instead of a bare ValueError."""
    try:
        return pvesh.parse_config(data, fw)
    except (ValueError, KeyError) as exc:
        raise DriverError(f"guest {ctid}: cannot read its config from pvesh: {exc}") from None


@dataclass(frozen=True)
class FileWrite:
    """A file the driver wrote: for reports and tests."""

    log_index: int
    path: str
    content: str


class ProxmoxDriver:
    """Observe and change containers on one Proxmox VE node with pct and pvesh: each change
    observes, calls a command builder (`commands`, `conffile`, `firewall`) and runs the
    result. What a fresh node would run is `preview`'s job, from the same builders."""

    name = "proxmox"

    def __init__(
        self,
        runner: Runner,
        node: str,
        *,
        stage_files: bool | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 1.0,
        owned: OwnedRaw | None = None,
        version: pvesh.Version | None = None,
    ) -> None:
        self.runner = runner
        self.node = node
        self.owned = owned or OwnedRaw()
        self._version = version  # the node's PVE version: asked once (`pvesh get /version`)
        self.log = CommandLog()
        self.file_writes: list[FileWrite] = []
        # Over SSH, `pct push` reads files on the node: stage them there first.
        self.stage_files = (
            bool(getattr(runner, "remote", False)) if stage_files is None else (stage_files)
        )
        self._sleep = sleep
        self._clock = clock
        self._poll = poll_interval
        self._macs: dict[int, str] = {}
        self._nics: set[int] = set()  # guests known to have a NIC
        self._guard = threading.Lock()
        self._source_locks: dict[int, threading.Lock] = {}

    # -- running commands -------------------------------------------------------------

    def _run(
        self,
        kind: str,
        argv: Sequence[str],
        *,
        input: bytes | str | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Log and run one argv (in the C locale: Phoenix reads the messages)."""
        self.log.add(kind, argv)
        return self.runner.run(argv, input=input, env=NODE_ENV, timeout=timeout)

    def _mutate(self, ctid: int, argv: Sequence[str], **kw: Any) -> CommandResult:
        return check(ctid, self._run("mutate", argv, **kw))

    def _json(self, ctid: int, argv: Sequence[str]) -> Any:
        result = check(ctid, self._run("observe", argv))
        try:
            return pvesh.load_json(result.stdout, shlex.join(argv))
        except ValueError as exc:
            raise DriverError(f"guest {ctid}: {exc}") from None

    # -- observing ---------------------------------------------------------------------

    def _config(self, ctid: int) -> dict[str, Any] | None:
        result = self._run("observe", pvesh.config_cmd(self.node, ctid))
        if is_missing_guest(result):
            return None
        check(ctid, result)
        try:
            data = pvesh.load_json(result.stdout, "lxc config")
        except ValueError as exc:
            raise DriverError(f"guest {ctid}: {exc}") from None
        if not isinstance(data, dict):
            raise DriverError(f"guest {ctid}: unexpected config from pvesh: {data!r}")
        return data

    def version(self) -> pvesh.Version:
        """The node's Proxmox VE version (major, minor), asked once."""
        if self._version is None:
            data = self._json(0, pvesh.version_cmd())
            try:
                self._version = pvesh.parse_version(data)
            except ValueError as exc:
                raise DriverError(f"node {self.node}: {exc}") from None
        return self._version

    def _read_file(self, ctid: int, path: str) -> str | None:
        result = self._run("observe", files.read_cmd(path))
        if result.ok:
            return result.stdout
        if "No such file" in result.stderr:
            return None
        raise explain(ctid, result)

    def _facts(self, ctid: int) -> pvesh.ConfigFacts | None:
        data = self._config(ctid)
        if data is None:
            return None
        fw_text = self._read_file(ctid, pvesh.fw_path(ctid))
        fw = firewall.parse(fw_text) if fw_text is not None else None
        facts = _parse(ctid, data, fw)
        self._remember_mac(ctid, facts.mac)
        return facts

    def _owned_settings(self, ctid: int, facts: pvesh.ConfigFacts) -> GuestSettings:
        """The settings with only the raw lines Phoenix owns (the others are not its to
        compare or change)."""
        mine = owned_lines(facts.raw, (), self.owned.get(ctid))
        apparmor = next((v for k, v in mine if k == pvesh.APPARMOR_KEY), None)
        gpu_lines = set(self.owned.gpu_lines(ctid))  # reported as `gpus`, not as raw keys
        raw = tuple(
            line for line in mine if line[0] != pvesh.APPARMOR_KEY and line not in gpu_lines
        )
        mine_mounts = mounts.owned(facts.mounts, self._mount_targets(ctid))
        return dataclasses.replace(
            facts.settings,
            raw_lxc=raw,
            apparmor_profile=apparmor,
            mounts=tuple(sorted((p.mount for p in mine_mounts), key=lambda m: m.target)),
        )

    def _mount_targets(self, ctid: int) -> list[str]:
        return self.owned.mount_targets(ctid)

    def _remember_mac(self, ctid: int, mac: str | None) -> None:
        if mac is not None:
            self._macs[ctid] = mac
            self._nics.add(ctid)

    def _state(self, ctid: int) -> str:
        result = self._run("observe", pvesh.status_cmd(self.node, ctid))
        if is_missing_guest(result):
            return "missing"
        check(ctid, result)
        state, _ = pvesh.parse_status(pvesh.load_json(result.stdout, "lxc status"))
        return state

    def observe(self, ctid: int) -> ObservedGuest:
        facts = self._facts(ctid)
        if facts is None:
            return ObservedGuest(ctid, "missing")
        state, status_lock = pvesh.parse_status(self._json(ctid, pvesh.status_cmd(self.node, ctid)))
        snapshots = pvesh.parse_snapshots(self._json(ctid, pvesh.snapshots_cmd(self.node, ctid)))
        addresses: tuple[str, ...] = ()
        if state == "running":
            result = self._run("observe", pvesh.interfaces_cmd(self.node, ctid))
            if result.ok:  # older nodes have no interfaces endpoint: addresses stay unknown
                addresses = pvesh.parse_interfaces(pvesh.load_json(result.stdout, "interfaces"))
        return ObservedGuest(
            ctid=ctid,
            state=state,
            settings=self._owned_settings(ctid, facts),
            snapshots=snapshots,
            is_template=facts.is_template,
            locked=facts.locked or status_lock,
            ip_addresses=addresses,
        )

    # -- creating ----------------------------------------------------------------------

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        self._mutate(ctid, commands.create(ctid, template, settings))
        self._nics.discard(ctid)
        self._macs.pop(ctid, None)
        self.owned.forget(ctid)
        # `pct create` fixes only what cannot change later; the rest is one full `pct set`.
        self.configure(ctid, settings, APPLIED_AFTER_CREATE)

    def _source_lock(self, source: int) -> threading.Lock:
        with self._guard:
            return self._source_locks.setdefault(source, threading.Lock())

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        """Full clone; clones of one source run one at a time (pct locks the source).

        Refused before anything runs when the clone would come out wrong (its source's
        `unprivileged` differs, its disk would have to shrink)."""
        facts = self._facts(source)
        if facts is None:
            raise DriverError(f"guest {ctid}: its clone source {source} does not exist")
        commands.check_clone(source, ctid, settings, facts.settings)
        argv = commands.clone(source, ctid, snapshot, settings)
        with self._source_lock(source):
            self._mutate(ctid, argv)
        self.owned.copy(source, ctid)
        # The clone got a random MAC: learn it now so every later `pct set` keeps it.
        self._nics.discard(ctid)
        self._macs.pop(ctid, None)
        data = self._config(ctid)
        if data is None:
            raise DriverError(f"guest {ctid}: `{shlex.join(argv)}` left no container")
        self._remember_mac(ctid, _parse(ctid, data).mac)
        # A clone has its source's settings and disk: apply the clone's own, grow the disk.
        self.configure(ctid, settings, APPLIED_AFTER_CREATE)
        self.resize(ctid, settings.disk_gb)

    # -- configuring -------------------------------------------------------------------

    def pct_set_argv(
        self, ctid: int, settings: GuestSettings, current: pvesh.ConfigFacts | None
    ) -> list[str]:
        """`pct set` with the whole desired config and the MAC the guest has."""
        return commands.set_options(
            ctid, settings, self._macs.get(ctid), current.settings if current else None
        )

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        """Apply the changed settings: one `pct set`, the conf's raw keys, the .fw file."""
        current = self._facts(ctid)
        if current is None:
            raise DriverError(f"guest {ctid} does not exist on node {self.node}; create it first")
        self._refuse_locked(ctid, current.locked)
        self._refuse_unchangeable(ctid, settings, current.settings)
        applied: set[str] = set()
        if changed & PCT_SET_FIELDS:
            self._mutate(ctid, self.pct_set_argv(ctid, settings, current))
            applied |= changed & PCT_SET_FIELDS
            # A new NIC got its MAC from Proxmox on this `pct set`: learn it, keep it.
            data = self._config(ctid)
            self._remember_mac(ctid, _parse(ctid, data).mac if data else None)
        if changed & CONF_FIELDS and self._write_raw_keys(ctid, settings):
            applied |= changed & CONF_FIELDS
        if changed & FIREWALL_FIELDS:
            self._write_firewall(ctid, settings)
        if "mounts" in changed and self._write_mounts(ctid, settings, current):
            applied.add("mounts")
        if "gpus" in changed and self._write_devices(ctid, settings, current):
            applied.add("gpus")
        if applied & RESTART_FIELDS and self._state(ctid) == "running":
            self.stop(ctid)
            self.start(ctid)

    def _refuse_locked(self, ctid: int, lock: str | None) -> None:
        """pct refuses a locked guest, but a config file write would not: refuse first."""
        if lock:
            raise DriverError(
                f"guest {ctid} is locked ({lock}) by a task on the node (backup, migration, "
                "snapshot...): Phoenix changes nothing while it runs. Wait for the task; if it "
                f"crashed, check `pct config {ctid}` and run `pct unlock {ctid}`"
            )

    def _refuse_unchangeable(
        self, ctid: int, desired: GuestSettings, observed: GuestSettings
    ) -> None:
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

    def wanted_raw_keys(self, settings: GuestSettings) -> list[tuple[str, str]]:
        """Raw keys for the conf's main section: AppArmor first, then raw keys in order."""
        wanted: list[tuple[str, str]] = []
        if settings.apparmor_profile is not None:
            wanted.append((pvesh.APPARMOR_KEY, settings.apparmor_profile))
        wanted += list(settings.raw_lxc)
        return wanted

    def _write_raw_keys(self, ctid: int, settings: GuestSettings) -> bool:
        """Make the raw lines Phoenix owns be the wanted ones; leave every other line."""
        gpu_lines = self._gpu_raw_lines(ctid, settings)
        wanted = self.wanted_raw_keys(settings) + gpu_lines
        version = self.version()
        for key, _ in wanted:
            problem = commands.raw_key_problem(key, version)
            if problem is not None:
                raise DriverError(f"guest {ctid}: raw LXC option refused: {problem}")
        path = pvesh.conf_path(ctid)
        old = self._read_file(ctid, path)
        if old is None:
            raise DriverError(f"guest {ctid}: {path} does not exist; create the guest first")
        present = conffile.main_section_raw(old)
        mine = owned_lines(present, wanted, self.owned.get(ctid))
        try:
            new = conffile.edit_raw_keys(old, wanted, mine)
        except ValueError as exc:
            raise DriverError(f"guest {ctid}: raw LXC option refused: {exc}") from None
        if new != old:
            expect = files.digest(old)
            argv = files.write_cmd(path, expect, lock=pvesh.config_lock_path(ctid))
            self._write(ctid, argv, path, new)
        self.owned.set(ctid, list(dict.fromkeys(wanted)))
        self.owned.set_gpu_lines(ctid, gpu_lines)
        return new != old

    def _write_devices(
        self, ctid: int, settings: GuestSettings, current: pvesh.ConfigFacts
    ) -> bool:
        """The guest's NVIDIA `devN` entries become exactly its GPUs' (Proxmox refuses to
        start a guest whose device is missing, so each node is checked first)."""
        for path in gpu.device_paths(settings.gpus):
            if not self._run("observe", devices.probe(path)).ok:
                fix = (
                    gpu.UVM_FIX
                    if path.startswith(gpu.UVM)
                    else ("check `nvidia-smi -L` on the node and gpu_assignment in the inventory")
                )
                raise DriverError(
                    f"guest {ctid}: node {self.node} has no {path}, so the guest could not "
                    f"start with it: {fix}"
                )
        foreign = [line for line in current.raw if line not in set(self.owned.get(ctid))]
        version = self.version()
        if version is not None and version < devices.DEV_SINCE:
            devices.check_stale_raw(ctid, settings.gpus, foreign)
            return self._write_raw_keys(ctid, settings)
        argv = devices.set_argv(
            ctid, settings.gpus, current.devices, foreign, settings.unprivileged, version
        )
        if argv is None:
            return False
        self._mutate(ctid, argv)
        return True

    def _gpu_raw_lines(self, ctid: int, settings: GuestSettings) -> list[tuple[str, str]]:
        """The raw GPU lines of a node without `devN` (majors from its /proc/devices)."""
        version = self.version()
        if not settings.gpus or version is None or version >= devices.DEV_SINCE:
            return []
        proc = self._read_file(ctid, "/proc/devices")
        return devices.raw_lines(settings.gpus, gpu.char_majors(proc or ""))

    def _write_mounts(self, ctid: int, settings: GuestSettings, current: pvesh.ConfigFacts) -> bool:
        """Bind sources made (owned as the guest sees them), `mpN` entries matched by target,
        volumes grown; entries Phoenix no longer wants dropped (their data kept)."""
        for mount in settings.mounts:
            if mount.host_path is None:
                continue
            uid, gid = mounts.host_ids(
                mount, settings.unprivileged, idmaps.from_raw(settings.raw_lxc)
            )
            if not self._run("observe", mounts.probe_dir(mount.host_path)).ok:
                self._mutate(ctid, mounts.make_dir(mount.host_path))
                self._mutate(ctid, mounts.chown(mount.host_path, uid, gid))
            elif mount.owner_uid is not None or mount.owner_gid is not None:
                self._mutate(ctid, mounts.chown(mount.host_path, uid, gid))
        change = mounts.changes(ctid, settings.mounts, current.mounts, self._mount_targets(ctid))
        if change.set_argv is not None:
            self._mutate(ctid, change.set_argv)
        for argv in change.resizes:
            self._mutate(ctid, argv)
        self.owned.set_mount_targets(ctid, [m.target for m in settings.mounts])
        return change.set_argv is not None or bool(change.resizes)

    def _write_firewall(self, ctid: int, settings: GuestSettings) -> None:
        path = pvesh.fw_path(ctid)
        old = self._read_file(ctid, path)
        if old is None and not settings.firewall_enabled:
            return  # no file and no firewall wanted: nothing to switch off
        try:
            new = firewall.render(settings.firewall_enabled, settings.firewall_rules)
        except ValueError as exc:
            raise DriverError(f"guest {ctid}: firewall rule refused: {exc}") from None
        if new == old:
            return
        # Checked against what was read (a GUI edit in between is not overwritten); the
        # writer creates /etc/pve/firewall, which pmxcfs does not have until first used.
        expect = files.digest(old or "")
        self._write(ctid, files.write_cmd(path, expect), path, new)

    def _write(self, ctid: int, argv: list[str], path: str, content: str) -> None:
        self.file_writes.append(FileWrite(len(self.log.entries), path, content))
        self._mutate(ctid, argv, input=content)

    def resize(self, ctid: int, disk_gb: int) -> None:
        """Grow the root disk; confirmed by reading the config back (pct exits 0 even when
        its resize worker fails)."""
        facts = self._facts(ctid)
        if facts is None:
            raise DriverError(f"guest {ctid} does not exist on node {self.node}")
        self._refuse_locked(ctid, facts.locked)
        argv = commands.resize(ctid, disk_gb, facts.settings.disk_gb)
        if argv is None:
            return
        self._mutate(ctid, argv)
        after = self._facts(ctid)
        if after is None or after.settings.disk_gb < disk_gb:
            size = f"{after.settings.disk_gb} GiB" if after else "gone"
            raise DriverError(
                f"guest {ctid}: `{shlex.join(argv)}` exited 0 but the disk is {size}, not "
                f"{disk_gb} GiB: the node's resize task failed (see its task log; is the "
                "storage full?)"
            )

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        state = self._state(ctid)
        if state == "running":
            return
        if state == "missing":
            raise DriverError(f"guest {ctid} does not exist on node {self.node}; cannot start it")
        self._mutate(ctid, commands.start(ctid))
        self._wait_up(ctid, timeout)

    def _wait_up(self, ctid: int, timeout: float) -> None:
        """Poll until the guest runs and its init answers with a global IPv4 address
        (or, without a NIC, answers at all)."""
        deadline = self._clock() + timeout
        has_nic = ctid in self._nics
        probe = ["pct", "exec", str(ctid), "--", *IP_PROBE]
        last = ""
        while True:
            if self._state(ctid) == "running":
                result = self._run("observe", probe)
                last = (result.stderr or result.stdout).strip()
                if result.ok and (not has_nic or " inet " in f" {result.stdout}"):
                    return
            if self._clock() >= deadline:
                raise DriverError(
                    f"guest {ctid} did not come up within {timeout:.0f}s (running, init "
                    f"answering{' and an IPv4 address' if has_nic else ''}); last probe: "
                    f"{last or 'no answer'}. Look at `pct status {ctid}` and the guest's journal"
                )
            self._sleep(self._poll)

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        if self._state(ctid) != "running":
            return
        self._mutate(ctid, commands.shutdown(ctid, timeout), timeout=timeout + 30)

    def destroy(self, ctid: int) -> None:
        state = self._state(ctid)
        if state == "missing":
            return
        if state == "running":
            self.stop(ctid)
        self._mutate(ctid, commands.destroy(ctid))
        self._macs.pop(ctid, None)
        self._nics.discard(ctid)
        self.owned.forget(ctid)

    # -- in-guest work -----------------------------------------------------------------

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        full = commands.exec_(ctid, argv, env, self.version())
        result = self._run("exec", full, input=stdin, timeout=timeout)
        if not result.ok and _PCT_FAILURE.search(result.stderr):
            raise explain(ctid, result)
        return result

    def push(self, ctid: int, local: Path, guest_path: str, mode: int = 0o644) -> None:
        """`pct push`; parents created first; over SSH the file is staged on the node."""
        parent = str(PurePosixPath(guest_path).parent)
        made = self.exec(ctid, ["mkdir", "-p", parent])
        if not made.ok:
            raise DriverError(
                f"guest {ctid}: cannot create {parent} for {guest_path}: {made.stderr.strip()}"
            )
        source = str(local)
        staged: str | None = None
        if self.stage_files:
            # An unpredictable name made (0600) by mktemp on the node, then filled.
            tmp = self._mutate(ctid, ["mktemp", "/tmp/phoenix-push.XXXXXXXXXX"])
            staged = tmp.stdout.strip() or f"/tmp/phoenix-push.<random>.{ctid}"
            write = files.write_cmd(staged, files.digest(b""), mode=0o600)
            self._mutate(ctid, write, input=local.read_bytes())
            source = staged
        try:
            self._mutate(ctid, commands.push(ctid, source, guest_path, mode))
        finally:
            if staged is not None:
                self._run("mutate", ["rm", "-f", staged])

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

    def delete_snapshot(self, ctid: int, name: str) -> None:
        if name not in self.list_snapshots(ctid):
            return
        self._mutate(ctid, commands.delete_snapshot(ctid, name))

    def mark_template(self, ctid: int) -> None:
        """`pct template`, refused for a guest with snapshots (pct would refuse it) and
        confirmed by reading the config back (pct exits 0 when its worker fails)."""
        facts = self._facts(ctid)
        if facts is None:
            raise DriverError(f"guest {ctid} does not exist on node {self.node}")
        if facts.is_template:
            return
        self._refuse_locked(ctid, facts.locked)
        argv = commands.template(ctid, self.list_snapshots(ctid))
        self.stop(ctid)
        self._mutate(ctid, argv)
        after = self._facts(ctid)
        if after is None or not after.is_template:
            raise DriverError(
                f"guest {ctid}: `{shlex.join(argv)}` exited 0 but the guest is not a template: "
                "the node's task failed (see its task log)"
            )
