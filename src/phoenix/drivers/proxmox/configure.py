"""Configuring a guest on a Proxmox node: one `pct set` with the whole desired config,
the raw `lxc.*` and AppArmor lines Phoenix owns in `/etc/pve/lxc/<vmid>.conf`, the
firewall file, bind mounts and volumes, GPU devices, the root disk's size; a running
guest is restarted when a change needs it. It reads what the node holds, and the pure
builder `configure_commands` (the one the offline preview calls) says what to run: only
what differs (file writes are checked against the content read).
"""

from __future__ import annotations

import dataclasses
import shlex

from phoenix.drivers import gpu
from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox import commands, configure_commands, devices, mounts, pvesh
from phoenix.drivers.proxmox.commands import CONF_FIELDS, FIREWALL_FIELDS, RESTART_FIELDS
from phoenix.drivers.proxmox.configure_commands import NodeView, refuse_locked
from phoenix.drivers.proxmox.node import NodeSession, parse_facts
from phoenix.errors import DriverError


class GuestConfigurer(NodeSession):
    """The configure half of the driver (see the module docstring)."""

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        """Apply the changed settings: read what the node holds, then run the parts the
        builder (`configure_commands`, shared with the offline preview) gives, recording
        what Phoenix owns after each part."""
        current = self._facts(ctid)
        if current is None:
            raise DriverError(f"guest {ctid} does not exist on node {self.node}; create it first")
        view = self._view(ctid, settings, changed, current)
        applied: set[str] = set()
        # Built (and so checked) whole before anything runs.
        parts = configure_commands.configure(ctid, settings, changed, view)
        for part in parts:
            if part.kind == "raw" and parts[0].kind == "options" and parts[0].commands:
                # The `pct set` rewrote the conf: the raw keys go into the conf as it is now.
                conf = self._read_file(ctid, pvesh.conf_path(ctid))
                view = dataclasses.replace(view, conf=conf)
                part = configure_commands.raw_keys_part(ctid, settings, changed, view)
            for command in part.commands:
                self._mutate(ctid, command.argv, input=command.content)
            part.owns.record(self.owned, ctid)
            applied |= part.applied
            if part.kind == "options":
                # A new NIC got its MAC from Proxmox on this `pct set`: learn it, keep it.
                data = self._config(ctid)
                self._remember_mac(ctid, parse_facts(ctid, data).mac if data else None)
            resizes = [list(c.argv) for c in part.commands if c.argv[:2] == ("pct", "resize")]
            if resizes:
                self._confirm_resizes(ctid, resizes)
        running = bool(applied) and self._state(ctid) == "running"
        if running and applied & RESTART_FIELDS:
            self.restart(ctid)
        elif running and "hostname" in applied:
            # Proxmox writes /etc/hostname when the guest next starts; the running guest
            # takes the name now, as on the LXC driver (argv, no shell).
            probe = commands.exec_(ctid, ["hostname", settings.hostname], None, self.version())
            self._run("mutate", probe)

    def _confirm_resizes(self, ctid: int, resizes: list[list[str]]) -> None:
        """Read the volumes back: `pct resize` exits 0 when its worker fails."""
        after = self._facts(ctid)
        sizes = {p.key: p.mount.size_gb or 0 for p in (after.mounts if after else [])}
        for argv in resizes:
            key, wanted = argv[3], int(argv[4].rstrip("G"))
            have = sizes.get(key)
            if have is None or have < wanted:
                now = "gone" if have is None else f"{have} GiB"
                raise DriverError(
                    f"guest {ctid}: `{shlex.join(argv)}` exited 0 but {key} is {now}, not "
                    f"{wanted} GiB: the node's resize task failed (see its task log; is the "
                    "storage full?)"
                )

    def _view(
        self,
        ctid: int,
        settings: GuestSettings,
        changed: frozenset[str],
        current: pvesh.ConfigFacts,
    ) -> NodeView:
        """What the builder needs for `changed`, read from the node (and nothing more)."""
        version = self.version() if changed & (CONF_FIELDS | {"gpus"}) else None
        old_node = version is not None and version < devices.DEV_SINCE
        # The version is read only for a conf field or gpus: on an old node GPUs are raw keys.
        raw_part = bool(changed & CONF_FIELDS) or old_node
        gpu_raw = raw_part and old_node and bool(settings.gpus)
        conf = container = proc_devices = fw = None
        if raw_part:
            if gpu_raw:
                proc_devices = self._read_file(ctid, "/proc/devices") or ""
            if configure_commands.wanted_raw_keys(settings) or gpu_raw:
                container = self.container_version()
            path = pvesh.conf_path(ctid)
            conf = self._read_file(ctid, path)
            if conf is None:
                raise DriverError(f"guest {ctid}: {path} does not exist; create the guest first")
        if changed & FIREWALL_FIELDS:
            fw = self._read_file(ctid, pvesh.fw_path(ctid))
        dirs: set[str] = set()
        if "mounts" in changed:
            for source in dict.fromkeys(m.host_path for m in settings.mounts if m.host_path):
                if self._run("observe", mounts.probe_dir(source)).ok:
                    dirs.add(source)
        missing: set[str] = set()
        if "gpus" in changed:
            for path in gpu.device_paths(settings.gpus):
                if not self._run("observe", devices.probe(path)).ok:
                    missing.add(path)
        return NodeView(
            current=current,
            mac=self._macs.get(ctid),
            version=version,
            owned=self.owned,
            conf=conf,
            fw=fw,
            container=container,
            dirs=frozenset(dirs),
            missing_devices=frozenset(missing),
            proc_devices=proc_devices,
            node=self.node,
        )

    def resize(self, ctid: int, disk_gb: int) -> None:
        """Grow the root disk; confirmed by reading the config back (pct exits 0 even when
        its resize worker fails)."""
        facts = self._facts(ctid)
        if facts is None:
            raise DriverError(f"guest {ctid} does not exist on node {self.node}")
        refuse_locked(ctid, facts.locked)
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
