"""VM benchmarks on real QEMU (root), measured side by side in one run.

1. Base image: the cache lookup, and with `--build` a fresh build into a scratch cache
   (debootstrap and the disk assembly: minutes).
2. A new VM's disk and definition (`QemuDriver.clone`: disk, cloud-init seed, vm.json):
   linked clone vs full copy of the same template (median of 5).
3. Boot: a bare QEMU started by hand on a ready overlay and seed, timed to cloud-init done,
   vs Phoenix converging a new VM from the template to health-checked (clone, seed, start,
   agent, cloud-init, health check), alternated `--runs` times. Target: Phoenix <= 1.2x.
4. No-op converge of the converged lab (the template and the running VM): observe, read
   the recipe markers and probe the health check through the agent. Target: < 2 s.

KVM where a probe guest runs under it, else TCG (said in the output). Uses its own bridge
(phxvmbench0: no address, no NAT), folders under /var/lib/phoenix-bench and the shared base
image cache; removes its VMs, bridge and folders at the end.

    sudo .venv/bin/python bench/vm_bench.py [--runs 1] [--build]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from phoenix.drivers.base import Driver
from phoenix.drivers.factory import make_driver
from phoenix.drivers.lxc.templates import apt_mirror
from phoenix.drivers.qemu.accel import choose_accel
from phoenix.drivers.qemu.baseimage import build_base_image, image_path
from phoenix.drivers.qemu.cloudinit import SeedSpec
from phoenix.drivers.qemu.driver import SUITE, QemuDriver
from phoenix.drivers.qemu.machine import Machine, qemu_argv, tap_name
from phoenix.inventory import load_inventory
from phoenix.plan.desired import vm_settings
from phoenix.plan.planner import PlanOptions
from phoenix.plan.run import converge
from phoenix.runners.local import LocalRunner

CACHE = Path("/var/cache/phoenix/vm-images")
ROOT = Path("/var/lib/phoenix-bench")
BRIDGE = "phxvmbench0"
TEMPLATE, PHOENIX, BARE, SCRATCH = 9950, 9951, 9952, 9953
SUBNET = "10.213.96"


def write_lab(etc: Path) -> None:
    def vm(vmid: int, **extra: object) -> dict[str, object]:
        net = {"ip": f"{SUBNET}.{vmid % 100}/24", "gw": f"{SUBNET}.1"}
        return {"vmid": vmid, "name": f"bench-{vmid}", "network_config": net, **extra}

    vms = [
        vm(TEMPLATE, is_template=True),
        vm(
            PHOENIX,
            clone_from_vmid=TEMPLATE,
            disk_size_gb=4,
            health_check={"command": "systemctl is-active qemu-guest-agent", "retries": 3},
        ),
    ]
    defaults = {"cores": 2, "memory_mb": 1024, "network_bridge": BRIDGE}
    hyp = {
        "phoenix": {
            "lxc_path": str(ROOT / "lxc"),
            "state_dir": str(ROOT / "state"),
            "vm_path": str(ROOT / "vms"),
            "vm_image_cache": str(CACHE),
        }
    }
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hyp))
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": {}}))
    (etc / "phoenix_vm_configs.json").write_text(json.dumps({"vm_defaults": defaults, "vms": vms}))


def converge_lab(etc: Path) -> float:
    inventory = load_inventory(etc)
    driver = make_driver(inventory.hypervisor.phoenix, vm_ids=frozenset(inventory.vms))
    started = time.monotonic()
    outcome = converge(inventory, driver, None, PlanOptions())
    took = time.monotonic() - started
    outcome.result.raise_for_failures()
    return took


def bare_boot(vms: QemuDriver, etc: Path) -> float:
    """QEMU by hand on a linked overlay and seed made beforehand; timed to cloud-init done."""
    inventory = load_inventory(etc)
    settings = vm_settings(inventory.vms[PHOENIX])
    local = vms.vms
    local.delete(BARE)
    local.clone(TEMPLATE, BARE, linked=True, disk_gb=4)
    mac = "52:54:00:00:25:40"
    local.write_seed(BARE, SeedSpec(f"bench-{BARE}", mac, address=f"{SUBNET}.52/24"))
    tap = tap_name(BARE)
    subprocess.run(["ip", "tuntap", "add", "dev", tap, "mode", "tap"], check=True)
    subprocess.run(["ip", "link", "set", tap, "master", BRIDGE, "up"], check=True)
    paths = local.paths(BARE)
    argv = qemu_argv(
        Machine(BARE, settings.cores, settings.memory_mb, mac, paths, tap, local.accel)
    )
    started = time.monotonic()
    subprocess.run(argv, check=True)
    local.wait_agent(BARE, 1800)
    done = local.exec(BARE, ["cloud-init", "status", "--wait"], timeout=1800)
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout
    local.delete(BARE)
    return took


def clone_costs(driver: QemuDriver, etc: Path) -> tuple[float, float]:
    linked = vm_settings(load_inventory(etc).vms[PHOENIX])
    assert linked.vm is not None
    full = replace(linked, vm=replace(linked.vm, full_clone=True))
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(5):
        for settings in (linked, full):
            started = time.monotonic()
            driver.clone(TEMPLATE, SCRATCH, None, settings)
            times[settings is full].append(time.monotonic() - started)
            driver.destroy(SCRATCH)
    return statistics.median(times[False]), statistics.median(times[True])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="boots of each kind (alternated)")
    parser.add_argument("--build", action="store_true", help="also time a fresh image build")
    args = parser.parse_args()
    warnings: list[str] = []
    accel = choose_accel(warnings.append)
    print(f"accelerator: {accel}" + (f" ({warnings[0]})" if warnings else ""))
    cached = image_path(CACHE, SUITE).is_file()
    started = time.monotonic()
    image = build_base_image(CACHE, LocalRunner(), SUITE, apt_mirror())
    took = time.monotonic() - started
    size = image.stat().st_size >> 20
    print(f"base image: {'cache hit' if cached else 'built'} in {took:.2f}s ({size} MiB)")
    if args.build:
        with tempfile.TemporaryDirectory(prefix="phoenix-image-bench-") as scratch:
            started = time.monotonic()
            build_base_image(Path(scratch), LocalRunner(), SUITE, apt_mirror())
            print(f"base image build from scratch: {time.monotonic() - started:.0f}s")
    subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=False)
    subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
    etc = Path(tempfile.mkdtemp(prefix="phoenix-vm-bench-"))
    write_lab(etc)
    driver = QemuDriver(ROOT / "vms", CACHE, state_dir=ROOT / "state", accel=accel)
    try:
        for vmid in (PHOENIX, BARE, SCRATCH, TEMPLATE):
            driver.destroy(vmid)
        inventory = load_inventory(etc)
        lab: Driver = make_driver(inventory.hypervisor.phoenix, vm_ids=frozenset(inventory.vms))
        converge(inventory, lab, [TEMPLATE], PlanOptions()).result.raise_for_failures()
        linked, full = clone_costs(driver, etc)
        print(f"new VM (disk, seed, definition): linked clone {linked:.3f}s, full copy "
              f"{full:.3f}s (median of 5)")  # fmt: skip
        bare, ours = [], []
        for _ in range(args.runs):
            bare.append(bare_boot(driver, etc))
            ours.append(converge_lab(etc))
            noop = [converge_lab(etc) for _ in range(3)]
            driver.destroy(PHOENIX)
        b, p = statistics.median(bare), statistics.median(ours)
        print(f"boot: bare QEMU to cloud-init done {b:.1f}s; Phoenix converge to health-checked "
              f"{p:.1f}s: {p / b:.2f}x (target <= 1.2x)")  # fmt: skip
        print(f"no-op converge of the lab (template + running VM): "
              f"{statistics.median(noop):.2f}s (median of 3; target < 2 s)")  # fmt: skip
    finally:
        for vmid in (PHOENIX, BARE, SCRATCH, TEMPLATE):
            driver.destroy(vmid)
        shutil.rmtree(ROOT, ignore_errors=True)
        shutil.rmtree(etc, ignore_errors=True)
        subprocess.run(["ip", "link", "del", BRIDGE], check=False)


if __name__ == "__main__":
    main()
