"""The commands a fresh Proxmox node would run for a plan, from the command builders alone.

`phoenix plan --driver proxmox --offline --commands` walks the plan's steps and calls the
same pure builders the driver calls (`commands`, `conffile`, `firewall`, the recipe argv),
with the facts a fresh node would have after each step: nothing exists, a created guest has
the disk it was created with, a clone its source's disk and a MAC Proxmox has not drawn yet
(shown as `<MAC of CTID>`). No driver runs and nothing is recorded from a driver.
`phoenix.plan.preview` walks a plan's steps through it (a driver knows nothing of plans).
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple, cast

from phoenix.drivers import idmaps
from phoenix.drivers.base import Driver, GuestSettings
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
from phoenix.drivers.proxmox.commands import (
    APPLIED_AFTER_CREATE,
    CONF_FIELDS,
    FIREWALL_FIELDS,
    PCT_SET_FIELDS,
)
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult, Stdin

# What a preview assumes of a node it cannot ask.
DEFAULT_VERSION: commands.Version = (9, 1)


# shlex.quote, once per distinct word: a preview of 10,000 guests quotes about a million
# words, most of them the same few (pct, exec, the in-guest scripts).
_quote = functools.lru_cache(maxsize=4096)(shlex.quote)


def mac_placeholder(ctid: int) -> str:
    return f"<MAC of {ctid}>"


class Command(NamedTuple):
    """One command of the preview; `content` is what a file write sends on stdin. (A named
    tuple: a preview of 10,000 guests holds about 100,000 of them.)"""

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


@dataclass
class Preview:
    """A fresh node, step by step: each method appends the commands the driver would run."""

    version: commands.Version = DEFAULT_VERSION
    commands: list[Command] = field(default_factory=list)
    disks: dict[int, int] = field(default_factory=dict)
    macs: dict[int, str] = field(default_factory=dict)
    snapshots: dict[int, list[str]] = field(default_factory=dict)
    maps: dict[int, tuple[idmaps.IdRange, ...]] = field(default_factory=dict)

    def _add(self, argv: Sequence[str]) -> None:
        self.commands.append(Command(tuple(argv)))

    def _write(self, argv: Sequence[str], path: str, content: str, partial: bool = False) -> None:
        self.commands.append(Command(tuple(argv), path, content, partial))

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
        self._add(commands.create(ctid, template, settings))
        self.disks[ctid] = settings.disk_gb
        self.macs.pop(ctid, None)
        self._reown(ctid, (), settings)
        self.configure(ctid, settings, APPLIED_AFTER_CREATE)

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        source_gb = self.disks.get(source)
        if source_gb is not None:
            # Offline only the source's disk is known (its `unprivileged` is validate's).
            # The source's settings as far as a clone check reads them (no copy when equal).
            same = source_gb == settings.disk_gb
            source_settings = settings if same else replace(settings, disk_gb=source_gb)
            commands.check_clone(source, ctid, settings, source_settings)
        self._add(commands.clone(source, ctid, snapshot, settings))
        self.macs[ctid] = mac_placeholder(ctid)
        self._reown(ctid, self.maps.get(source, ()), settings)
        if source_gb is not None:
            self.disks[ctid] = source_gb
        self.configure(ctid, settings, APPLIED_AFTER_CREATE)
        self.resize(ctid, settings.disk_gb)

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        if changed & PCT_SET_FIELDS:
            self._add(commands.set_options(ctid, settings, self.macs.get(ctid), None))
            if settings.net is not None and settings.net.mac is None:
                self.macs.setdefault(ctid, mac_placeholder(ctid))
        if changed & CONF_FIELDS:
            self._raw_keys(ctid, settings)
        if changed & FIREWALL_FIELDS and settings.firewall_enabled:
            try:
                text = firewall.render(True, settings.firewall_rules)
            except ValueError as exc:
                raise DriverError(f"guest {ctid}: firewall rule refused: {exc}") from None
            path = pvesh.fw_path(ctid)
            self._write(files.write_cmd(path), path, text)
        if "mounts" in changed:
            self._mounts(ctid, settings)
        if "gpus" in changed:
            argv = devices.set_argv(
                ctid, settings.gpus, [], [], settings.unprivileged, self.version
            )
            if argv is not None:
                self._add(argv)

    def _mounts(self, ctid: int, settings: GuestSettings) -> None:
        """A fresh node: every bind source is made (the driver first tests for it) and
        every mount is a new `mpN` entry."""
        for mount in settings.mounts:
            if mount.host_path is not None:
                uid, gid = mounts.host_ids(
                    mount, settings.unprivileged, idmaps.from_raw(settings.raw_lxc)
                )
                self._add(mounts.make_dir(mount.host_path))
                self._add(mounts.chown(mount.host_path, uid, gid))
        change = mounts.changes(ctid, settings.mounts, [], [])
        if change.set_argv is not None:
            self._add(change.set_argv)

    def _raw_keys(self, ctid: int, settings: GuestSettings) -> None:
        wanted: list[tuple[str, str]] = []
        if settings.apparmor_profile is not None:
            wanted.append((pvesh.APPARMOR_KEY, settings.apparmor_profile))
        wanted += list(settings.raw_lxc)
        if not wanted:
            return  # nothing to write (an empty edit of an empty file is empty)
        for key, _ in wanted:
            problem = commands.raw_key_problem(key, self.version)
            if problem is not None:
                raise DriverError(f"guest {ctid}: raw LXC option refused: {problem}")
        try:
            text = conffile.edit_raw_keys("", wanted, [])
        except ValueError as exc:
            raise DriverError(f"guest {ctid}: raw LXC option refused: {exc}") from None
        if text:
            path = pvesh.conf_path(ctid)
            argv = files.write_cmd(path, lock=pvesh.config_lock_path(ctid))
            self._write(argv, path, text, partial=True)

    def resize(self, ctid: int, disk_gb: int) -> None:
        argv = commands.resize(ctid, disk_gb, self.disks.get(ctid))
        if argv is not None:
            self._add(argv)
            self.disks[ctid] = disk_gb

    def start(self, ctid: int) -> None:
        self._add(commands.start(ctid))

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        self._add(commands.shutdown(ctid, timeout))

    def destroy(self, ctid: int) -> None:
        self._add(commands.destroy(ctid))
        self.disks.pop(ctid, None)
        self.snapshots.pop(ctid, None)

    def snapshot(self, ctid: int, name: str) -> None:
        self._add(commands.snapshot(ctid, name))
        self.snapshots.setdefault(ctid, []).append(name)

    def mark_template(self, ctid: int) -> None:
        self._add(commands.template(ctid, self.snapshots.get(ctid, [])))

    def exec(self, ctid: int, argv: Sequence[str], env: Mapping[str, str] | None = None) -> None:
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
