"""Files the driver writes into a stopped guest's rootfs: identity, static network, DNS.

A rootfs is data that may later be controlled by the guest, so writes never follow
symlinks: every parent is checked to be a real directory and the file is replaced, not
opened through a link.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from phoenix.errors import DriverError

INTERFACES = """\
# Written by Phoenix. The guest's address is set by LXC (lxc.net.0.ipv4.*) before init
# runs, so ifupdown must neither ask for DHCP nor reconfigure it.
auto lo
iface lo inet loopback

iface {nic} inet manual
"""


def hosts(hostname: str) -> str:
    short = hostname.split(".")[0]
    names = hostname if short == hostname else f"{hostname} {short}"
    return (
        "127.0.0.1\tlocalhost\n"
        f"127.0.1.1\t{names}\n"
        "::1\t\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n"
    )


def resolv_conf(host_resolv: str, fallback: str | None = None) -> str:
    """The host's nameservers, minus loopback stubs (127.0.0.53 means nothing in a guest)."""
    kept: list[str] = []
    for line in host_resolv.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "nameserver" and len(parts) > 1:
            if parts[1].startswith("127.") or parts[1] == "::1":
                continue
            kept.append(f"nameserver {parts[1]}")
        elif parts[0] in ("search", "domain", "options"):
            kept.append(" ".join(parts))
    if not any(k.startswith("nameserver") for k in kept) and fallback:
        kept.append(f"nameserver {fallback}")
    return "# Written by Phoenix from the host's resolv.conf.\n" + "\n".join(kept) + "\n"


def host_resolv_text(path: Path = Path("/etc/resolv.conf")) -> str:
    """The host's resolver config; behind systemd-resolved's stub, the upstream one."""
    text = path.read_text() if path.exists() else ""
    upstream = Path("/run/systemd/resolve/resolv.conf")
    if "127.0.0.53" in text and upstream.exists():
        return upstream.read_text()
    return text


def write(
    rootfs: Path,
    relative: str,
    text: str,
    owner: int,
    mode: int = 0o644,
    lower: Path | None = None,
) -> Path:
    """Replace `rootfs/relative` with `text`, owned by `owner` (the guest's mapped root).

    With `lower` (a linked clone), `rootfs` is the overlay's upper dir: parent dirs missing
    there are made as copies of the lower's (mode and owner), as overlayfs' copy-up would,
    so the file lands in the clone's own layer and the shared lower is never written."""
    target = rootfs / relative.lstrip("/")
    if lower is not None:
        _copy_up_parents(rootfs, lower, relative)
    parent = rootfs
    for part in Path(relative.lstrip("/")).parent.parts:
        parent = parent / part
        st = os.lstat(parent)
        if not stat.S_ISDIR(st.st_mode):
            raise DriverError(f"{parent} is not a directory (refusing to write through it)")
    if target.is_symlink() or target.exists():
        target.unlink()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chown(target, owner, owner)
    os.chmod(target, mode)
    return target


def _copy_up_parents(upper: Path, lower: Path, relative: str) -> None:
    """Make `relative`'s parent dirs in `upper` like the lower's ones (never via links)."""
    up, low = upper, lower
    for part in Path(relative.lstrip("/")).parent.parts:
        up, low = up / part, low / part
        if os.path.lexists(up):
            continue
        st = os.lstat(low)
        if not stat.S_ISDIR(st.st_mode):
            raise DriverError(f"{low} is not a directory (refusing to write through it)")
        os.mkdir(up, 0o700)
        os.chown(up, st.st_uid, st.st_gid)
        os.chmod(up, stat.S_IMODE(st.st_mode))


# Units and generators that only touch hardware, kernel modules or block devices, none of
# which a container has: each costs a fork (and often a failing exec) on every boot, which
# adds up to a third of a Debian guest's boot CPU. Masked once, when a guest is created from
# a template (clones inherit it); a guest that unmasks one keeps its choice.
CONTAINER_MASKED_UNITS = (
    "modprobe@configfs.service",
    "modprobe@dm_mod.service",
    "modprobe@drm.service",
    "modprobe@efi_pstore.service",
    "modprobe@fuse.service",
    "modprobe@loop.service",
    "systemd-modules-load.service",
    "systemd-remount-fs.service",
    "e2scrub_reap.service",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
)
CONTAINER_MASKED_GENERATORS = (
    "systemd-bless-boot-generator",
    "systemd-cryptsetup-generator",
    "systemd-gpt-auto-generator",
    "systemd-hibernate-resume-generator",
    "systemd-integritysetup-generator",
    "systemd-veritysetup-generator",
)
# Started at boot by a static `wants` link although D-Bus starts them on first use: logind
# has no sessions to track in a guest without libpam-systemd, yet costs a fifth of the boot.
# A /dev/null link in /etc's .wants dir drops the boot-time start only (still activatable).
CONTAINER_ON_DEMAND = (
    ("multi-user.target.wants", "systemd-logind.service", "org.freedesktop.login1.service"),
)
_SYSTEMD_LIBS = ("usr/lib/systemd", "lib/systemd")
_DBUS_SERVICES = ("usr/share/dbus-1/system-services",)


def _ships(rootfs: Path, kind: str, name: str) -> bool:
    """Whether the template has the unit (or its `@` template) or generator at all."""
    base, at, _ = name.partition("@")
    candidates = {name, f"{base}@.service"} if at else {name}
    return any(
        os.path.lexists(rootfs / lib / kind / c) for lib in _SYSTEMD_LIBS for c in candidates
    )


def mask_for_container(rootfs: Path, owner: int) -> list[str]:
    """Mask (link to /dev/null in /etc) the shipped units and generators a container never
    needs, and drop the boot-time start of the on-demand ones; what /etc already has an
    entry for is the template's choice and stays. Returns what was masked. Never writes
    through a link (see `write`)."""
    masked: list[str] = []
    for kind, names in (
        ("system", CONTAINER_MASKED_UNITS),
        ("system-generators", CONTAINER_MASKED_GENERATORS),
    ):
        wanted = [n for n in names if _ships(rootfs, kind, n)]
        if not wanted:
            continue
        etc_dir = _real_dir(rootfs, f"etc/systemd/{kind}", owner)
        masked += [n for n in wanted if _link_to_null(etc_dir / n, owner)]
    for wants, unit, bus_name in CONTAINER_ON_DEMAND:
        activatable = any(os.path.lexists(rootfs / d / bus_name) for d in _DBUS_SERVICES)
        if activatable and _ships(rootfs, f"system/{wants}", unit):
            etc_dir = _real_dir(rootfs, f"etc/systemd/system/{wants}", owner)
            if _link_to_null(etc_dir / unit, owner):
                masked.append(f"{wants}/{unit}")
    return masked


def _link_to_null(link: Path, owner: int) -> bool:
    """Make `link` point at /dev/null unless something is there already."""
    if os.path.lexists(link):
        return False
    os.symlink("/dev/null", link)
    os.lchown(link, owner, owner)
    return True


def _real_dir(rootfs: Path, relative: str, owner: int) -> Path:
    """`rootfs/relative` as a real directory (made 0755 if missing), no link on the way."""
    path = rootfs
    for part in Path(relative).parts:
        path = path / part
        if not os.path.lexists(path):
            os.mkdir(path, 0o755)
            os.chown(path, owner, owner)
        elif not stat.S_ISDIR(os.lstat(path).st_mode):
            raise DriverError(f"{path} is not a directory (refusing to write through it)")
    return path
