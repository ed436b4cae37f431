"""Phoenix's Debian base image for VMs: built from Debian packages, cached like the
container template, since no cloud image can be assumed to be downloadable.

Built without loop devices, nbd or mounts (none of which a nested or unprivileged host
can be relied on to have): debootstrap fills a directory; `mkfs.ext4 -d` turns it into a
filesystem image; a `grub-mkstandalone` EFI binary goes onto a FAT image with mtools;
`sfdisk` writes a GPT onto a plain file and `dd` places both partitions; `qemu-img`
compresses the result into a qcow2. UEFI firmware (OVMF) boots it through the removable
media path `EFI/BOOT/BOOTX64.EFI`.

The content is named by a digest of everything that goes into it (suite, packages, the
files written, the boot config), so a changed recipe builds a new image and an unchanged
one is reused. `root_steps`, `write_root_files` and `image_steps` are the build, in order
(the first and last pure); `build_base_image` runs them once under a file lock.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from phoenix.errors import DriverError
from phoenix.files import make_owned_dir
from phoenix.runners.base import Runner

# Bump when the build changes in a way the digest below cannot see.
BUILDER_VERSION = 1
ROOT_LABEL = "phoenix-root"
MIB = 1024 * 1024
ESP_MIB = 64
ROOT_MIB = 2048
SECTOR = 512
# Measured facts behind the list: debootstrap resolves no virtual packages
# (python3-cffi-backend must be named for cloud-init), the agent's shutdown needs dbus,
# cloud-init ends in `error` without locales, growpart comes from cloud-guest-utils and
# needs sfdisk (fdisk), resize2fs comes from e2fsprogs.
PACKAGES = (
    "linux-image-cloud-amd64",
    "systemd-sysv",
    "udev",
    "dbus",
    "qemu-guest-agent",
    "cloud-init",
    "python3-cffi-backend",
    "cloud-guest-utils",
    "fdisk",
    "e2fsprogs",
    "openssh-server",
    "ifupdown",
    "isc-dhcp-client",
    "iproute2",
    "netbase",
    "ca-certificates",
    "locales",
    "sudo",
    "procps",
)
GRUB_CFG = f"""insmod part_gpt
insmod ext2
insmod search_label
set timeout=0
search --no-floppy --label {ROOT_LABEL} --set=root
linux /vmlinuz root=LABEL={ROOT_LABEL} ro console=ttyS0,115200 net.ifnames=0 quiet
initrd /initrd.img
boot
"""
# Files written into the root before it becomes a filesystem: its mount, a locale that
# exists without generation, and cloud-init looking only for the NoCloud seed (probing
# every cloud's metadata service costs minutes on a host that has none).
ROOT_FILES: dict[str, str] = {
    "etc/fstab": f"LABEL={ROOT_LABEL} / ext4 defaults,errors=remount-ro 0 1\n",
    "etc/default/locale": "LANG=C.UTF-8\n",
    "etc/hostname": "localhost\n",
    "etc/machine-id": "",
    "etc/cloud/cloud.cfg.d/90_phoenix.cfg": "datasource_list: [NoCloud, None]\n",
}
BUILD_LOCK_TIMEOUT = 1800.0
STEP_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Step:
    """One command of the build, and what it does (shown when it fails)."""

    what: str
    argv: tuple[str, ...]
    stdin: str | None = None


def image_digest(suite: str, arch: str = "amd64") -> str:
    """Names the image by what goes into it."""
    recipe = {
        "version": BUILDER_VERSION,
        "suite": suite,
        "arch": arch,
        "packages": PACKAGES,
        "files": ROOT_FILES,
        "grub": GRUB_CFG,
        "sizes": [ESP_MIB, ROOT_MIB],
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def image_path(cache: Path, suite: str, arch: str = "amd64") -> Path:
    return cache / f"debian-{suite}-{arch}-{image_digest(suite, arch)}.qcow2"


def partition_table() -> str:
    """sfdisk's script: an EFI system partition, then the root filling the rest."""
    esp_start = MIB // SECTOR
    esp_size = ESP_MIB * MIB // SECTOR
    root_start = esp_start + esp_size
    root_size = ROOT_MIB * MIB // SECTOR
    return (
        "label: gpt\n"
        f"start={esp_start}, size={esp_size}, "
        'type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI"\n'
        f"start={root_start}, size={root_size}, "
        'type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"\n'
    )


def disk_bytes() -> int:
    """1 MiB for the GPT, the partitions, 1 MiB for the backup GPT."""
    return (1 + ESP_MIB + ROOT_MIB + 1) * MIB


def root_steps(rootfs: Path, suite: str, mirror: str, arch: str = "amd64") -> list[Step]:
    """Fill `rootfs` with Debian and the packages; ROOT_FILES are written after these."""
    return [
        Step(
            "debootstrap the root",
            (
                "debootstrap",
                "--variant=minbase",
                f"--arch={arch}",
                f"--include={','.join(PACKAGES)}",
                suite,
                str(rootfs),
                mirror,
            ),
        ),
        Step("clean apt's cache", ("chroot", str(rootfs), "apt-get", "clean")),
    ]


def image_steps(work: Path, out: Path) -> list[Step]:
    """Turn `work/rootfs` (and `work/grub.cfg`, `work/disk.raw` of `disk_bytes()`) into
    the qcow2 at `out`."""
    rootfs, esp, root, disk = (work / n for n in ("rootfs", "esp.img", "root.img", "disk.raw"))
    efi = work / "BOOTX64.EFI"
    return [
        Step(
            "make the EFI boot loader",
            (
                "grub-mkstandalone",
                "-O",
                "x86_64-efi",
                "--locales=",
                "--fonts=",
                "--themes=",
                "-o",
                str(efi),
                f"boot/grub/grub.cfg={work / 'grub.cfg'}",
            ),
        ),
        Step(
            "make the EFI partition",
            ("mkfs.vfat", "-n", "EFI", "-C", str(esp), str(ESP_MIB * 1024)),
        ),
        Step("make EFI/BOOT", ("mmd", "-i", str(esp), "::/EFI", "::/EFI/BOOT")),
        Step(
            "copy the boot loader",
            ("mcopy", "-i", str(esp), str(efi), "::/EFI/BOOT/BOOTX64.EFI"),
        ),
        Step(
            "make the root filesystem",
            (
                "mkfs.ext4",
                "-q",
                "-F",
                "-L",
                ROOT_LABEL,
                "-d",
                str(rootfs),
                str(root),
                f"{ROOT_MIB}M",
            ),
        ),
        Step("write the partition table", ("sfdisk", "--quiet", str(disk)), partition_table()),
        Step("place the EFI partition", _dd(esp, disk, 1)),
        Step("place the root partition", _dd(root, disk, 1 + ESP_MIB)),
        Step(
            "compress into qcow2",
            ("qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", str(disk), str(out)),
        ),
    ]


def _dd(src: Path, disk: Path, at_mib: int) -> tuple[str, ...]:
    return (
        "dd",
        f"if={src}",
        f"of={disk}",
        "bs=1M",
        f"seek={at_mib}",
        "conv=notrunc,sparse",
        "status=none",
    )


def write_root_files(rootfs: Path) -> None:
    """ROOT_FILES into the debootstrapped root; no machine identity left behind."""
    for rel, text in ROOT_FILES.items():
        path = rootfs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    dbus_id = rootfs / "var/lib/dbus/machine-id"
    if dbus_id.is_symlink() or dbus_id.exists():
        dbus_id.unlink()
    for key in (rootfs / "etc/ssh").glob("ssh_host_*"):
        key.unlink()  # cloud-init makes each VM its own


def build_base_image(
    cache: Path,
    runner: Runner,
    suite: str,
    mirror: str,
    arch: str = "amd64",
    progress: Callable[[str], None] = lambda _: None,
) -> Path:
    """The cached base image for `suite`, built once (under a lock) when missing."""
    target = image_path(cache, suite, arch)
    if target.is_file():
        return target
    make_owned_dir(cache)
    with FileLock(str(target) + ".lock", timeout=BUILD_LOCK_TIMEOUT):
        if target.is_file():  # another run built it while we waited
            return target
        work = cache / f".build-{target.stem}"
        shutil.rmtree(work, ignore_errors=True)
        rootfs = work / "rootfs"
        rootfs.mkdir(parents=True)
        partial = work / "image.qcow2"
        try:
            for step in root_steps(rootfs, suite, mirror, arch):
                _run(runner, step, progress)
            write_root_files(rootfs)
            (work / "grub.cfg").write_text(GRUB_CFG)
            with open(work / "disk.raw", "wb") as disk:
                os.ftruncate(disk.fileno(), disk_bytes())
            for step in image_steps(work, partial):
                _run(runner, step, progress)
            partial.chmod(0o644)
            partial.rename(target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _run(runner: Runner, step: Step, progress: Callable[[str], None]) -> None:
    progress(step.what)
    result = runner.run(step.argv, input=step.stdin, timeout=STEP_TIMEOUT)
    if not result.ok:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise DriverError(
            f"building the VM base image: {step.what} failed (exit {result.returncode}): "
            + " | ".join(tail)
        )
