"""Editing raw `lxc.*` keys in `/etc/pve/lxc/<vmid>.conf` — a pure text-in, text-out edit.

Proxmox has no API for raw LXC keys: they live as `lxc.key: value` lines in the container's
config file, which also holds snapshot sections (`[final-form]`) and pending changes
(`[pve:pending]`). Only the main section (everything before the first `[section]` line) is
the running configuration, so only it is edited; the sections after it are copied byte for
byte. Raw keys are declarative: after the edit the main section holds exactly the wanted
keys, once each, in `key: value` form, after the container's other options (where Proxmox
itself writes them). Proxmox parses `key: value` and `key = value` alike, so both spellings
(and duplicated lines) are recognised and replaced.

The key rules mirror pve-container's `PVE::LXC::Config` (`$valid_lxc_conf_keys`, the
deprecated-key table and the `lxc.cgroup*`/`lxc.prlimit.*`/`lxc.net.*` prefixes): a key
Proxmox would refuse or silently rename is rejected before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Proxmox's own parser: a raw key line is `lxc.<lowercase key>` then `:` or `=`.
_LXC_LINE = re.compile(r"^(lxc\.[a-z0-9_\-.]+)(:|\s*=)\s*(.*?)\s*$")
_SECTION = re.compile(r"^\[[^\]]+\]\s*$")

VALID_KEYS: frozenset[str] = frozenset(
    {
        "lxc.apparmor.profile", "lxc.apparmor.allow_incomplete", "lxc.apparmor.allow_nesting",
        "lxc.apparmor.raw", "lxc.selinux.context", "lxc.include", "lxc.arch", "lxc.uts.name",
        "lxc.signal.halt", "lxc.signal.reboot", "lxc.signal.stop", "lxc.init.cmd",
        "lxc.init.cwd", "lxc.init.uid", "lxc.init.gid", "lxc.init.groups", "lxc.pty.max",
        "lxc.console.logfile", "lxc.console.path",
        "lxc.tty.max", "lxc.devtty.dir", "lxc.hook.autodev", "lxc.autodev", "lxc.kmsg",
        "lxc.mount.fstab", "lxc.mount.entry", "lxc.mount.auto", "lxc.rootfs.mount",
        "lxc.cap.drop", "lxc.cap.keep", "lxc.seccomp.profile", "lxc.seccomp.notify.proxy",
        "lxc.seccomp.notify.cookie", "lxc.idmap", "lxc.hook.pre-start", "lxc.hook.pre-mount",
        "lxc.hook.mount", "lxc.hook.start", "lxc.hook.stop", "lxc.hook.post-stop",
        "lxc.hook.clone", "lxc.hook.destroy", "lxc.hook.version", "lxc.log.level",
        "lxc.log.file", "lxc.start.auto", "lxc.start.delay", "lxc.start.order", "lxc.group",
        "lxc.environment", "lxc.environment.runtime", "lxc.environment.hooks",
        "lxc.sysctl.fs.mqueue", "lxc.sysctl.kernel.msgmax", "lxc.sysctl.kernel.msgmnb",
        "lxc.sysctl.kernel.msgmni", "lxc.sysctl.kernel.sem", "lxc.sysctl.kernel.shmall",
        "lxc.sysctl.kernel.shmmax", "lxc.sysctl.kernel.shmmni",
        "lxc.sysctl.kernel.shm_rmid_forced",
    }
)  # fmt: skip
_VALID_PREFIXES = ("lxc.cgroup.", "lxc.cgroup2.", "lxc.prlimit.", "lxc.net.")

REFUSED_KEYS: dict[str, str] = {
    "lxc.rootfs.path": "Proxmox generates it from 'rootfs' (use storage_pool/storage_size_gb)",
    "lxc.rootfs.options": "not supported by Proxmox: use mount options of the 'rootfs' key",
}

DEPRECATED_KEYS: dict[str, str] = {
    "lxc.aa_profile": "lxc.apparmor.profile",
    "lxc.aa_allow_incomplete": "lxc.apparmor.allow_incomplete",
    "lxc.console": "lxc.console.path",
    "lxc.devttydir": "lxc.tty.dir",
    "lxc.haltsignal": "lxc.signal.halt",
    "lxc.rebootsignal": "lxc.signal.reboot",
    "lxc.stopsignal": "lxc.signal.stop",
    "lxc.id_map": "lxc.idmap",
    "lxc.init_cmd": "lxc.init.cmd",
    "lxc.loglevel": "lxc.log.level",
    "lxc.logfile": "lxc.log.file",
    "lxc.mount": "lxc.mount.fstab",
    "lxc.pts": "lxc.pty.max",
    "lxc.se_context": "lxc.selinux.context",
    "lxc.seccomp": "lxc.seccomp.profile",
    "lxc.tty": "lxc.tty.max",
    "lxc.utsname": "lxc.uts.name",
}


def key_problem(key: str, value: str) -> str | None:
    """Why Proxmox would refuse `key: value` in a container config, or None if it is fine."""
    if key in REFUSED_KEYS:
        return f"{key}: {REFUSED_KEYS[key]}"
    if key in DEPRECATED_KEYS:
        return f"{key} was removed with LXC 3.0: write {DEPRECATED_KEYS[key]} instead"
    if key.startswith("lxc.network."):
        return f"{key} was removed with LXC 3.0: use lxc.net.<index>.* (or the guest's net0)"
    if key.startswith("lxc.limit."):
        return f"{key} was renamed: write lxc.prlimit.{key.removeprefix('lxc.limit.')}"
    if not _LXC_LINE.match(f"{key}: {value}") or key != key.lower():
        return f"{key}: Proxmox only reads lower-case lxc.* keys"
    if "\n" in value or not value.strip():
        return f"{key}: the value must be one non-empty line"
    if key in VALID_KEYS or key.startswith(_VALID_PREFIXES):
        return None
    return f"{key}: not a raw LXC key Proxmox accepts (pve-container would refuse the config)"


def split_sections(text: str) -> tuple[list[str], list[str]]:
    """Lines of the main section, and the lines from the first `[section]` header on."""
    # "\n" only: str.splitlines() also splits on \r, \x0b, \x85, U+2028..., which would
    # turn the tail of a raw value into a real option line on the next edit.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for index, line in enumerate(lines):
        if _SECTION.match(line):
            return lines[:index], lines[index:]
    return lines, []


def main_section_raw(text: str) -> list[tuple[str, str]]:
    """Raw `lxc.*` pairs of the main section, in file order, duplicates included."""
    main, _ = split_sections(text)
    out: list[tuple[str, str]] = []
    for line in main:
        match = _LXC_LINE.match(line)
        if match:
            out.append((match.group(1), match.group(3)))
    return out


def check_wanted(wanted: Sequence[tuple[str, str]]) -> None:
    """ValueError for a key Proxmox refuses, or a one-value key given twice (LXC would keep
    only the last; keys it reads many times, like `lxc.idmap`, may repeat)."""
    from phoenix.drivers.proxmox.ownership import multi_valued

    seen: set[str] = set()
    for key, value in wanted:
        problem = key_problem(key, value)
        if problem is not None:
            raise ValueError(problem)
        if key in seen and not multi_valued(key):
            raise ValueError(f"{key} is given twice; it holds one value")
        seen.add(key)


def edit_raw_keys(
    text: str, wanted: Sequence[tuple[str, str]], owned: Sequence[tuple[str, str]]
) -> str:
    """The config text with the `owned` raw lines of the main section replaced by `wanted`.

    Every other line — raw keys Phoenix does not own (GPU mounts, device rules), `mpN`,
    `devN`, `env`, comments, the snapshot and pending sections — stays byte for byte where
    it is; the wanted lines go after them, where Proxmox writes raw keys. Raises ValueError
    like `check_wanted`.
    """
    check_wanted(wanted)
    mine = set(owned)
    main, sections = split_sections(text)
    present = [(m.group(1), m.group(3)) for m in map(_LXC_LINE.match, main) if m]
    if [line for line in present if line in mine] == list(dict.fromkeys(wanted)):
        return text  # already as wanted: no rewrite (and no restart) for a mere reordering
    kept: list[str] = []
    for line in main:
        match = _LXC_LINE.match(line)
        if match and (match.group(1), match.group(3)) in mine:
            continue
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    out = kept + [f"{key}: {value}" for key, value in dict.fromkeys(wanted)]
    if sections:
        out.append("")
        out.extend(sections)
    return "\n".join(out) + "\n" if out else ""
