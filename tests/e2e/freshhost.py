"""A fresh Debian 12 machine for the quick-start test: a privileged system container with
nesting, built from a debootstrapped Debian 12 (the `important` priority set a fresh install
has, plus systemd and dbus), so LXC, nft and apt run inside it as on a new host.

Nothing from this machine leaks in: the rootfs comes from the Debian mirror, the project
arrives as the tracked files of this checkout (what `git archive` of a clean clone gives),
and commands run with a cleared environment. One thing of the network's is carried over:
the host's local CA certificates (`/usr/local/share/ca-certificates`, where an operator
puts e.g. a TLS-intercepting egress proxy's CA); a fresh machine on the same network would
need them to reach PyPI, and they are no part of Phoenix. The rootfs tarball is cached in the one
Phoenix cache (`/var/cache/phoenix/fresh-host/`); each test run unpacks a new copy.

Nesting needs two things on a cgroup v1 host (see ARCHITECTURE.md): the outer guest is
privileged with `nesting.conf`, `cgroup:rw` and no capability drops, and the v1
controllers that this kernel mounts separately (`cpu`, `cpuacct`, ...) are mounted one by
one inside it, where systemd expects them combined and leaves them unmounted.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from phoenix.drivers.lxc.templates import apt_mirror

FRESH_CACHE = Path(os.environ.get("PHOENIX_CACHE", "/var/cache/phoenix")) / "fresh-host"
SUITE = "bookworm"
# debootstrap's default variant is Debian's required + important set (a fresh minimal
# install); a fresh install also boots systemd with dbus.
INCLUDE = ("systemd-sysv", "dbus", "ifupdown")
LXC_CONFIG_DIR = Path("/usr/share/lxc/config")
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Inside the outer guest: mount each v1 controller the host has a hierarchy for on its own
# (systemd links them as cpu -> cpu,cpuacct and leaves that unmounted when the host mounts
# them apart). Controllers with no host hierarchy (column 2 is 0) cannot be mounted here.
CGROUP_FIX = r"""
set -eu
cd /sys/fs/cgroup
mount -o remount,rw /sys/fs/cgroup
for c in $(awk 'NR > 1 && $2 != 0 && $4 == 1 {print $1}' /proc/cgroups); do
  if [ -L "$c" ]; then rm -f "$c"; fi
  if ! mountpoint -q "$c"; then
    mkdir -p "$c"
    mount -t cgroup -o "$c" cgroup "$c"
  fi
done
for combined in cpu,cpuacct net_cls,net_prio; do
  if [ -d "$combined" ] && ! mountpoint -q "$combined"; then rmdir "$combined" 2>/dev/null || true; fi
done
"""


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


def rootfs_tarball() -> Path:
    """The cached fresh Debian 12 rootfs, built with debootstrap the first time (~2 min)."""
    target = FRESH_CACHE / f"debian-{SUITE}-fresh.tar.zst"
    if target.is_file():
        return target
    FRESH_CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=1800):
        if target.is_file():
            return target
        work = FRESH_CACHE / ".build"
        shutil.rmtree(work, ignore_errors=True)
        rootfs = work / "rootfs"
        rootfs.mkdir(parents=True)
        try:
            res = run(
                [
                    "debootstrap",
                    f"--include={','.join(INCLUDE)}",
                    SUITE,
                    str(rootfs),
                    apt_mirror(),
                ]
            )
            if res.returncode != 0:
                raise RuntimeError(f"debootstrap failed:\n{res.stdout[-3000:]}{res.stderr[-3000:]}")
            for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
                deb.unlink()
            (rootfs / "etc/machine-id").write_text("")
            partial = work / "rootfs.tar.zst"
            res = run(
                [
                    "tar",
                    "--numeric-owner",
                    "--xattrs",
                    "--zstd",
                    "-cf",
                    str(partial),
                    "-C",
                    str(rootfs),
                    ".",
                ]
            )
            if res.returncode != 0:
                raise RuntimeError(f"packing the rootfs failed: {res.stderr}")
            partial.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


@dataclass
class FreshHost:
    """A running fresh Debian 12 system container; `sh()` runs a command in it as root."""

    name: str
    lxc_path: Path

    @property
    def rootfs(self) -> Path:
        return self.lxc_path / self.name / "rootfs"

    def attach(self, argv: list[str], timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return run(
            [
                "lxc-attach",
                "-P",
                str(self.lxc_path),
                "-n",
                self.name,
                "--clear-env",
                "--set-var",
                f"PATH={PATH}",
                "--set-var",
                "HOME=/root",
                "--set-var",
                "LANG=C.UTF-8",
                "--set-var",
                "TERM=dumb",
                "--",
                *argv,
            ],
            timeout=timeout,
        )

    def sh(self, script: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return self.attach(["bash", "-c", script], timeout=timeout)

    def destroy(self) -> None:
        run(["lxc-stop", "-P", str(self.lxc_path), "-n", self.name, "-k"])
        run(["lxc-destroy", "-P", str(self.lxc_path), "-n", self.name, "-f"])
        shutil.rmtree(self.lxc_path / self.name, ignore_errors=True)


def project_tarball(repo: Path, dest: Path) -> Path:
    """The project's tracked (and new, not ignored) files as a tar: what a clean clone holds."""
    files = run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    )
    if files.returncode != 0:
        raise RuntimeError(f"the fresh-host test needs a git checkout: {files.stderr}")
    present = [f for f in files.stdout.split("\0") if f and (repo / f).exists()]
    listing = dest.with_suffix(".list")
    listing.write_text("\0".join(present))
    res = run(["tar", "-C", str(repo), "--null", "-T", str(listing), "-cf", str(dest)])
    if res.returncode != 0:
        raise RuntimeError(f"packing the project failed: {res.stderr}")
    return dest


def start_fresh_host(
    name: str, lxc_path: Path, bridge: str, address: str, gateway: str, resolv_conf: str
) -> FreshHost:
    """Unpack a new fresh Debian 12 rootfs, boot it with nesting, wait for systemd."""
    host = FreshHost(name, lxc_path)
    host.destroy()
    host.rootfs.mkdir(parents=True)
    res = run(
        [
            "tar",
            "--numeric-owner",
            "--xattrs",
            "--zstd",
            "-xf",
            str(rootfs_tarball()),
            "-C",
            str(host.rootfs),
        ]
    )
    if res.returncode != 0:
        raise RuntimeError(f"unpacking the fresh rootfs failed: {res.stderr}")
    etc = host.rootfs / "etc"
    (etc / "hostname").write_text(f"{name}\n")
    (etc / "hosts").write_text(f"127.0.0.1 localhost\n127.0.1.1 {name}\n")
    (etc / "network/interfaces").write_text(
        "auto lo\niface lo inet loopback\n\n# eth0 is configured by LXC (static)\n"
    )
    resolv = etc / "resolv.conf"
    if resolv.is_symlink() or resolv.exists():
        resolv.unlink()
    resolv.write_text(resolv_conf)
    if LOCAL_CAS.is_dir():
        shutil.copytree(LOCAL_CAS, host.rootfs / str(LOCAL_CAS).lstrip("/"), dirs_exist_ok=True)
    apparmor = Path("/sys/kernel/security/apparmor").is_dir()
    config = [
        f"lxc.include = {LXC_CONFIG_DIR / 'common.conf'}",
        f"lxc.include = {LXC_CONFIG_DIR / 'nesting.conf'}",
        "lxc.arch = linux64",
        f"lxc.uts.name = {name}",
        f"lxc.rootfs.path = dir:{host.rootfs}",
        "lxc.mount.auto = proc:rw sys:rw cgroup:rw",
        "lxc.cap.drop =",
        "lxc.cgroup.devices.allow = a",
        "lxc.net.0.type = veth",
        f"lxc.net.0.link = {bridge}",
        "lxc.net.0.flags = up",
        "lxc.net.0.name = eth0",
        f"lxc.net.0.ipv4.address = {address}",
        f"lxc.net.0.ipv4.gateway = {gateway}",
        "lxc.autodev = 1",
    ]
    if apparmor:
        config.append("lxc.apparmor.profile = unconfined")
    (lxc_path / name / "config").write_text("\n".join(config) + "\n")
    res = run(["lxc-start", "-P", str(lxc_path), "-n", name, "-d"])
    if res.returncode != 0:
        raise RuntimeError(f"lxc-start of the fresh host failed: {res.stderr}")
    deadline = time.monotonic() + 120
    while True:
        state = host.attach(["systemctl", "is-system-running", "--wait"], timeout=120)
        if state.stdout.strip() in ("running", "degraded"):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"the fresh host did not boot: {state.stdout} {state.stderr}")
        time.sleep(0.5)
    fix = host.sh(
        CGROUP_FIX
        + "\nif command -v update-ca-certificates >/dev/null; then update-ca-certificates >/dev/null; fi\n",
        timeout=60,
    )
    if fix.returncode != 0:
        raise RuntimeError(f"mounting cgroup controllers in the fresh host failed: {fix.stderr}")
    return host


def quote(argv: list[str]) -> str:
    return shlex.join(argv)
