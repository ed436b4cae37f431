"""Root filesystem templates: a rootfs tarball, or a Debian suite built once with debootstrap.

A template is named either by a tarball path (`.tar.gz`, `.tar.xz`, `.tar.zst`, as Proxmox's
`vztmpl` storage holds them) or `debootstrap:<suite>`. Debootstrap builds are slow (about a
minute), so the result is cached under the template cache as a tarball; a file lock makes
concurrent Phoenix runs (or test sessions) build it once and share it.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from filelock import FileLock

from phoenix.errors import DriverError
from phoenix.files import make_owned_dir
from phoenix.runners.base import CommandResult

TARBALL_SUFFIXES = (".tar.gz", ".tgz", ".tar.xz", ".tar.zst")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# What a system container needs beyond minbase: an init, static networking that does not
# ask for DHCP (ifupdown), `ip`, and certificates so apt over https works later.
DEBOOTSTRAP_PACKAGES = (
    "systemd-sysv",
    "dbus",
    "ifupdown",
    "iproute2",
    "netbase",
    "ca-certificates",
    "procps",
)
_SUITE = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
BUILD_LOCK_TIMEOUT = 1800.0

Run = Callable[[Sequence[str]], CommandResult]


def is_tarball(template: str) -> bool:
    return template.endswith(TARBALL_SUFFIXES)


def debootstrap_suite(template: str) -> str | None:
    """`debootstrap:bookworm` -> `bookworm`; None for anything else."""
    prefix, sep, suite = template.partition(":")
    if prefix != "debootstrap" or not sep:
        return None
    if not _SUITE.match(suite):
        raise DriverError(f"template {template!r}: {suite!r} is not a Debian suite name")
    return suite


def apt_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror the host's apt uses (so a guest build goes where the host may go)."""
    uris: list[str] = []
    for path in sorted(etc_apt.glob("sources.list.d/*.sources")):
        for line in _read(path).splitlines():
            if line.strip().lower().startswith("uris:"):
                uris.extend(line.split(":", 1)[1].split())
    for path in [etc_apt / "sources.list", *sorted(etc_apt.glob("sources.list.d/*.list"))]:
        for line in _read(path).splitlines():
            parts = line.split("#", 1)[0].split()
            if parts[:1] == ["deb"]:
                uris.extend(p for p in parts[1:] if "://" in p)
    for uri in uris:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def cached_tarball(cache: Path, suite: str, arch: str) -> Path:
    return cache / f"debootstrap-{suite}-{arch}.tar.gz"


def resolve_template(template: str, cache: Path, run: Run, arch: str = "amd64") -> Path:
    """Path of the rootfs tarball for `template`, building a debootstrap one if needed.

    Raises DriverError naming every place looked at when the template cannot be found.
    """
    suite = debootstrap_suite(template)
    if suite is not None:
        return build_debootstrap(suite, cache, run, arch)
    if not is_tarball(template):
        raise DriverError(
            f"template {template!r} is neither a rootfs tarball "
            f"({', '.join(TARBALL_SUFFIXES)}) nor 'debootstrap:<suite>'"
        )
    candidates = [Path(template)]
    if not Path(template).is_absolute():
        candidates.append(cache / template)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise DriverError(f"template {template!r} not found (looked for: {looked})")


def build_debootstrap(suite: str, cache: Path, run: Run, arch: str = "amd64") -> Path:
    """Build (once, under a lock) and cache a Debian rootfs tarball for `suite`."""
    target = cached_tarball(cache, suite, arch)
    if target.is_file():
        return target
    make_owned_dir(cache)
    with FileLock(str(target) + ".lock", timeout=BUILD_LOCK_TIMEOUT):
        if target.is_file():  # another run built it while we waited
            return target
        work = cache / f".build-{suite}-{arch}"
        shutil.rmtree(work, ignore_errors=True)
        rootfs = work / "rootfs"
        rootfs.mkdir(parents=True)
        try:
            run(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--arch={arch}",
                    f"--include={','.join(DEBOOTSTRAP_PACKAGES)}",
                    suite,
                    str(rootfs),
                    apt_mirror(),
                ]
            ).check(f"building template debootstrap:{suite}")
            _generalise(rootfs)
            partial = work / "rootfs.tar.gz"
            run(
                [
                    "tar",
                    "--numeric-owner",
                    "--xattrs",
                    "--xattrs-include=*",
                    "-czf",
                    str(partial),
                    "-C",
                    str(rootfs),
                    ".",
                ]
            ).check(f"packing template debootstrap:{suite}")
            partial.chmod(0o644)
            partial.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _generalise(rootfs: Path) -> None:
    """Make the rootfs a template: no machine identity, no downloaded packages."""
    machine_id = rootfs / "etc/machine-id"
    machine_id.write_text("")
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.is_symlink() or dbus_id.exists():
        dbus_id.unlink()
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
