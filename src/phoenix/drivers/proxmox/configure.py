"""Configuring a guest on a Proxmox node: one `pct set` with the whole desired config,
the raw `lxc.*` and AppArmor lines Phoenix owns in `/etc/pve/lxc/<vmid>.conf`, the
firewall file, bind mounts and volumes, GPU devices, the root disk's size; a running
guest is restarted when a change needs it. Each write observes first and changes only
what differs (file writes are checked against the content read).
"""

from __future__ import annotations

import shlex

from phoenix.drivers import gpu, idmaps
from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox import commands, conffile, devices, files, firewall, mounts, pvesh
from phoenix.drivers.proxmox.commands import (
    CONF_FIELDS,
    FIREWALL_FIELDS,
    PCT_SET_FIELDS,
    RESTART_FIELDS,
)
from phoenix.drivers.proxmox.node import NodeSession, parse_facts
from phoenix.drivers.proxmox.ownership import owned_lines
from phoenix.errors import DriverError, PlanError


class GuestConfigurer(NodeSession):
    """The configure half of the driver (see the module docstring)."""

    def pct_set_argv(
        self, ctid: int, settings: GuestSettings, current: pvesh.ConfigFacts | None
    ) -> list[str]:
        """`pct set` with the whole desired config and the MAC the guest has."""
        return commands.set_options(ctid, settings, self._macs.get(ctid), current)

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
            self._remember_mac(ctid, parse_facts(ctid, data).mac if data else None)
        if changed & CONF_FIELDS and self._write_raw_keys(ctid, settings):
            applied |= changed & CONF_FIELDS
        if changed & FIREWALL_FIELDS:
            self._write_firewall(ctid, settings)
        if "mounts" in changed and self._write_mounts(ctid, settings, current):
            applied.add("mounts")
        if "gpus" in changed and self._write_devices(ctid, settings, current):
            applied.add("gpus")
        running = bool(applied) and self._state(ctid) == "running"
        if running and applied & RESTART_FIELDS:
            self.restart(ctid)
        elif running and "hostname" in applied:
            # Proxmox writes /etc/hostname when the guest next starts; the running guest
            # takes the name now, as on the LXC driver (argv, no shell).
            probe = commands.exec_(ctid, ["hostname", settings.hostname], None, self.version())
            self._run("mutate", probe)

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
        container = self.container_version() if wanted else None
        for key, _ in wanted:
            problem = commands.raw_key_problem(key, version, container)
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
            self._mutate(ctid, argv, input=new)
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
        mine = set(self.owned.dev_paths(ctid))
        argv = devices.set_argv(
            ctid, settings.gpus, current.devices, foreign, settings.unprivileged, version, mine
        )
        if argv is not None:
            self._mutate(ctid, argv)
        # What the inventory names is Phoenix's from now on (to delete when it stops naming it).
        self.owned.set_dev_paths(ctid, gpu.device_paths(settings.gpus))
        return argv is not None

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
        if change.resizes:
            self._confirm_resizes(ctid, change.resizes)
        self.owned.set_mount_targets(ctid, [m.target for m in settings.mounts])
        return change.set_argv is not None or bool(change.resizes)

    def _confirm_resizes(self, ctid: int, resizes: list[list[str]]) -> None:
        """Read the volumes back: `pct resize` exits 0 when its worker fails."""
        after = self._facts(ctid)
        sizes = {p.key: p.mount.size_gb or 0 for p in (after.mounts if after else [])}
        for argv in resizes:
            key, wanted = argv[3], int(argv[4].rstrip("G"))
            if sizes.get(key, 0) < wanted:
                raise DriverError(
                    f"guest {ctid}: `{shlex.join(argv)}` exited 0 but {key} is "
                    f"{sizes.get(key, 0)} GiB, not {wanted} GiB: the node's resize task failed "
                    "(see its task log; is the storage full?)"
                )

    def _write_firewall(self, ctid: int, settings: GuestSettings) -> None:
        """Phoenix's options and rules in the `.fw` file; every other byte kept (`firewall`)."""
        path = pvesh.fw_path(ctid)
        old = self._read_file(ctid, path)
        if old is None and not settings.firewall_enabled:
            return  # no file and no firewall wanted: nothing to switch off
        owned = firewall.rules_of(self.owned.fw_rules(ctid))
        try:
            if old is None:
                new = firewall.render(settings.firewall_enabled, settings.firewall_rules)
            else:
                new = firewall.edit(old, settings.firewall_enabled, settings.firewall_rules, owned)
        except ValueError as exc:
            raise DriverError(f"guest {ctid}: firewall rule refused: {exc}") from None
        if new != old:
            # Checked against what was read (a GUI edit in between is not overwritten); the
            # writer creates /etc/pve/firewall, which pmxcfs does not have until first used.
            expect = files.digest(old or "")
            self._mutate(ctid, files.write_cmd(path, expect), input=new)
        self.owned.set_fw_rules(ctid, [firewall.render_rule(r) for r in settings.firewall_rules])

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
