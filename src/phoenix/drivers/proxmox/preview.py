"""The commands a fresh Proxmox node would run for a plan, from the command builders alone.

`phoenix plan --driver proxmox --offline --commands` walks the plan's steps and calls the
same pure builders the driver calls (`commands`, `configure_commands`, the recipe argv),
with the facts a fresh node would have after each step: nothing exists, a created guest has
the disk it was created with, a clone its source's disk and a MAC Proxmox has not drawn yet
(shown as `<MAC of CTID>`). No driver runs and nothing is recorded from a driver.
`phoenix.plan.preview` walks a plan's steps through it (a driver knows nothing of plans).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

from phoenix.drivers import idmaps
from phoenix.drivers.base import Driver, GuestSettings
from phoenix.drivers.proxmox import (
    bindsnap,
    commands,
    conffile,
    configure_commands,
    firewall,
    idshift,
    preview_node,
    pvesh,
)
from phoenix.drivers.proxmox.commands import APPLIED_AFTER_CREATE, PCT_SET_FIELDS
from phoenix.drivers.proxmox.configure_commands import Command, NodeView
from phoenix.drivers.proxmox.ownership import OwnedRaw
from phoenix.drivers.proxmox.preview_node import mac_placeholder
from phoenix.drivers.proxmox.preview_vms import PreviewVms
from phoenix.runners.base import CommandResult, Stdin

# What a preview assumes of a node it cannot ask.
DEFAULT_VERSION: commands.Version = (9, 1)


@dataclass
class Preview:
    """A fresh node, step by step: each method appends the commands the driver would run."""

    version: commands.Version = DEFAULT_VERSION
    commands: list[Command] = field(default_factory=list)
    disks: dict[int, int] = field(default_factory=dict)
    macs: dict[int, str] = field(default_factory=dict)
    snapshots: dict[int, list[str]] = field(default_factory=dict)
    maps: dict[int, tuple[idmaps.IdRange, ...]] = field(default_factory=dict)
    fw: dict[int, str] = field(default_factory=dict)  # the `.fw` files written
    dirs: set[str] = field(default_factory=set)  # the bind sources made
    owned: OwnedRaw = field(default_factory=OwnedRaw)  # what the driver would record
    configs: dict[int, preview_node.Config] = field(default_factory=dict)  # as pvesh shows
    # In a cluster: each guest's node (a clone onto another node than its source's is
    # `pct clone --target`).
    placement: dict[int, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vms = PreviewVms(self.commands.append, self.version, self.owned, self.fw)

    def _add(self, argv: Sequence[str]) -> None:
        self.commands.append(Command(tuple(argv)))

    def lines(self) -> list[str]:
        out: list[str] = []
        for command in self.commands:
            command.render(out)
        return out

    # -- guests ----------------------------------------------------------------------

    def _reown(self, ctid: int, src: tuple[idmaps.IdRange, ...], settings: GuestSettings) -> None:
        """The new guest's files re-owned to its own map (`idshift`), as the driver does."""
        dst = idmaps.from_raw(settings.raw_lxc) if settings.unprivileged else ()
        if idshift.needed(src, dst):
            idshift.check(ctid, dst)
        for argv in idshift.commands(ctid, src, dst):
            self._add(argv)
        self.maps[ctid] = dst

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        if settings.is_vm:
            return self.vms.create(ctid, template, settings)
        self._add(commands.create(ctid, template, settings))
        self.configs[ctid] = preview_node.created(ctid, settings)
        self.disks[ctid] = settings.disk_gb
        self.macs.pop(ctid, None)
        self.fw.pop(ctid, None)
        self.owned.forget(ctid)
        self._reown(ctid, (), settings)
        self.configure(ctid, settings, APPLIED_AFTER_CREATE)

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        if settings.is_vm:
            return self.vms.clone(source, ctid, snapshot, settings)
        config = self.configs.get(source)
        if config is not None:  # a source this plan made: its settings are known
            commands.check_clone(source, ctid, settings, self._facts(source).settings)
        there = self.placement.get(ctid)
        onto = there if there is not None and there != self.placement.get(source) else None
        self._add(commands.clone(source, ctid, snapshot, settings, onto))
        self.macs[ctid] = mac_placeholder(ctid)
        # Proxmox copies the source's config and `.fw` file; the driver its ownership record.
        if config is not None:
            self.configs[ctid] = preview_node.cloned(
                config, ctid, settings.storage, settings.hostname
            )
            self.disks[ctid] = self.disks[source]
        if source in self.fw:
            self.fw[ctid] = self.fw[source]
        self.owned.copy(source, ctid)
        self._reown(ctid, self.maps.get(source, ()), settings)
        self.configure(ctid, settings, APPLIED_AFTER_CREATE)
        self.resize(ctid, settings.disk_gb)

    def _facts(self, ctid: int) -> pvesh.ConfigFacts:
        fw = self.fw.get(ctid)
        return pvesh.parse_config(self.configs[ctid], firewall.parse(fw) if fw else None)

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        if settings.is_vm:
            return self.vms.configure(ctid, settings)
        """The driver's builder on what this node holds (`preview_node`): the config its
        commands made, the `.fw` files written (a clone's is its source's), the bind
        sources made. Of a conf only its raw keys are known."""
        config = self.configs.get(ctid)
        raw = config.get("lxc", []) if config is not None else []
        view = NodeView(
            current=self._facts(ctid) if config is not None else None,
            mac=self.macs.get(ctid),
            version=self.version,
            owned=self.owned,
            conf="".join(f"{k}: {v}\n" for k, v in raw),
            conf_partial=True,
            fw=self.fw.get(ctid),
            dirs=frozenset(self.dirs),
        )
        for part in configure_commands.configure(ctid, settings, changed, view):
            self.commands += part.commands
            part.owns.record(self.owned, ctid)
            for command in part.commands:
                self._applied(ctid, command)
        if changed & PCT_SET_FIELDS and settings.net is not None and settings.net.mac is None:
            self.macs.setdefault(ctid, mac_placeholder(ctid))

    def _applied(self, ctid: int, command: Command) -> None:
        """What the node holds after one of configure's commands."""
        config = self.configs.get(ctid)
        if command.path == pvesh.fw_path(ctid):
            self.fw[ctid] = command.content or ""
        elif command.path == pvesh.conf_path(ctid) and config is not None:
            preview_node.set_raw(config, conffile.main_section_raw(command.content or ""))
        elif command.argv[:2] == ("mkdir", "-p"):
            self.dirs.add(command.argv[-1])
        elif config is not None:
            preview_node.apply(config, command.argv)

    def resize(self, ctid: int, disk_gb: int) -> None:
        if ctid in self.vms.ids:
            return self.vms.resize(ctid, disk_gb)
        argv = commands.resize(ctid, disk_gb, self.disks.get(ctid))
        if argv is not None:
            self._add(argv)
            self.disks[ctid] = disk_gb
            if ctid in self.configs:
                preview_node.apply(self.configs[ctid], argv)

    def start(self, ctid: int) -> None:
        if ctid in self.vms.ids:
            return self.vms.start(ctid)
        self._add(commands.start(ctid))

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        if ctid in self.vms.ids:
            return self.vms.stop(ctid, timeout)
        self._add(commands.shutdown(ctid, timeout))

    def destroy(self, ctid: int) -> None:
        if ctid in self.vms.ids:
            return self.vms.destroy(ctid)
        self._add(commands.destroy(ctid))
        self.configs.pop(ctid, None)
        self.owned.forget(ctid)
        self.fw.pop(ctid, None)
        self.disks.pop(ctid, None)
        self.snapshots.pop(ctid, None)

    def snapshot(self, ctid: int, name: str) -> None:
        if ctid in self.vms.ids:
            self.vms.snapshot(ctid, name)
        else:
            self._add(commands.snapshot(ctid, name))
        self.snapshots.setdefault(ctid, []).append(name)

    def snapshot_without_bind_mounts(self, ctid: int, name: str) -> None:
        """As the driver takes it (`bindsnap`): the plan has started the guest before its
        lifecycle snapshots, so it is stopped and started again around them."""
        config = self.configs.get(ctid)
        lines = bindsnap.bind_lines(config) if config is not None else {}
        if not lines:
            return self.snapshot(ctid, name)
        self.stop(ctid)
        self._add(bindsnap.detach_cmd(ctid, lines))
        self._add(bindsnap.snapshot_cmd(ctid, name, lines))
        self._add(bindsnap.attach_cmd(ctid, lines))
        self.start(ctid)
        self.snapshots.setdefault(ctid, []).append(name)

    def resume_detached(self) -> list[tuple[int, tuple[str, ...]]]:
        return []  # a fresh node has nothing detached

    def mark_template(self, ctid: int) -> None:
        if ctid in self.vms.ids:
            return self.vms.mark_template(ctid, self.snapshots.get(ctid, []))
        argv = commands.template(ctid, self.snapshots.get(ctid, []))
        self._add(argv)
        if ctid in self.configs:
            preview_node.apply(self.configs[ctid], argv)

    def exec(self, ctid: int, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        if ctid in self.vms.ids:
            return self.vms.exec(ctid, argv, env)
        self._add(commands.exec_(ctid, argv, env, self.version))

    def guest(self) -> Driver:
        """A driver whose `exec` lists `pct exec` commands (for the recipe layer)."""
        return cast(Driver, _GuestExec(self))


class _GuestExec:
    """`exec` for the recipe layer: lists `pct exec` commands instead of running them."""

    def __init__(self, preview: Preview) -> None:
        self.preview = preview

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        self.preview.exec(ctid, argv, env)
        return CommandResult(0, "", "")
