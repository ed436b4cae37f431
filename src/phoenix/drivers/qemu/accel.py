"""KVM or TCG: whether a guest really runs under KVM on this host.

`/dev/kvm` opening is not enough: on a nested host it can create VMs that then crawl (a
kernel got 15 s of guest time in 109 s) or stop with an internal error in the firmware.
So a probe guest runs: a boot sector that counts down 2^27 and writes "OK" to the serial
port. Under TCG that takes about a second and a half here; under working KVM a fraction
of it; on this kind of nested host it does not finish at all. The answer is kept for the
host's boot (keyed by its boot id) in `/run`, so each run does not pay for the probe.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from phoenix.drivers.qemu.machine import QEMU, Accel

PROBE_DEADLINE = 5.0
CACHE = Path("/run/phoenix/vm-accel")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# cli; mov ecx, 2^27; dec ecx; jnz -4; then "OK\n" out to COM1 (0x3f8); hlt forever.
_CODE = bytes.fromhex("fa66b900000008664975fcbaf803b04feeb04beeb00aeef4ebfd")
PROBE_SECTOR = _CODE + bytes(510 - len(_CODE)) + b"\x55\xaa"


def probe_argv(accel: Accel, disk: Path, serial: Path) -> list[str]:
    return [
        QEMU,
        "-accel",
        accel,
        "-machine",
        "pc",
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-m",
        "16",
        "-drive",
        f"file={disk},format=raw,if=ide",
        "-serial",
        f"file:{serial}",
    ]


def probe_kvm(deadline: float = PROBE_DEADLINE) -> tuple[bool, str]:
    """(works, why): run the probe guest under KVM and wait for its "OK"."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False, "/dev/kvm is missing or not usable"
    with tempfile.TemporaryDirectory(prefix="phoenix-kvm-probe-") as tmp:
        disk, serial = Path(tmp) / "probe.img", Path(tmp) / "serial.log"
        disk.write_bytes(PROBE_SECTOR)
        serial.touch()
        proc = subprocess.Popen(
            probe_argv("kvm", disk, serial),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        started = time.monotonic()
        try:
            while time.monotonic() - started < deadline:
                if b"OK" in serial.read_bytes():
                    return True, f"a probe guest ran under KVM in {time.monotonic() - started:.1f}s"
                if proc.poll() is not None:
                    err = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                    return False, f"QEMU with KVM exited: {err.strip()[-200:]}"
                time.sleep(0.05)
        finally:
            proc.kill()
            proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
    return False, f"a probe guest did not finish under KVM in {deadline:.0f}s (nested or slow KVM)"


def choose_accel(
    warn: Callable[[str], None],
    probe: Callable[[], tuple[bool, str]] = probe_kvm,
    cache: Path = CACHE,
) -> Accel:
    """KVM when the probe guest runs, else TCG with one warning (each run says it once;
    the probe itself runs once per host boot)."""
    boot_id = BOOT_ID.read_text().strip() if BOOT_ID.exists() else "unknown"
    try:
        cached_boot, accel_text, why = cache.read_text().strip().split(" ", 2)
        known = cached_boot == boot_id and accel_text in ("kvm", "tcg")
    except (OSError, ValueError):
        known = False
    if not known:
        works, why = probe()
        accel_text = "kvm" if works else "tcg"
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(f"{boot_id} {accel_text} {why}\n")
        except OSError:
            pass  # no cache: the next run probes again
    if accel_text == "kvm":
        return "kvm"
    warn(f"VMs run without KVM (QEMU's TCG emulation, several times slower): {why}")
    return "tcg"
