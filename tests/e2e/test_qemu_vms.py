"""VMs for real, through the `phoenix` CLI: a template VM made from Phoenix's Debian base
image (built from Debian packages and cached), set up with `base_setup` through its guest
agent, cloud-init cleaned and made read-only; a linked clone of it on the lab bridge with
cloud-init's hostname, static IP, user and key, its guest firewall on its tap, a health
check and a snapshot of the running VM; a container that needs the VM, started after it.

The first converges are killed (SIGKILL) inside the template's recipe and at the clone's
create, and the next run resumes unaided; the run after that changes nothing. Then the
clone is stopped, its disk grown and the lab converged again (the root filesystem grows at
boot), `phoenix status` lists the VMs beside the container, and `phoenix delete` removes
everything.

QEMU runs with KVM where a probe guest really runs under it, else TCG (this CI host: a
nested guest whose KVM cannot run one), about a minute per boot on a quiet host: the
module shares one template and one clone, three boots in all. Run it under its own lock:
    flock /tmp/phoenix-e2e-vm.lock .venv/bin/python -m pytest -p no:cacheprovider -m e2e \\
        tests/e2e/test_qemu_vms.py -x -q
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from phoenix.drivers.lxc.templates import apt_mirror
from phoenix.drivers.qemu.baseimage import build_base_image, image_path
from phoenix.drivers.qemu.driver import FW_TABLE, SUITE, QemuDriver
from phoenix.drivers.qemu.machine import tap_name
from phoenix.plan.journal import Journal
from phoenix.recipes.runner import read_markers
from phoenix.runners.local import LocalRunner
from tests.e2e.conftest import TEST_ROOT, LxcHost

pytestmark = pytest.mark.e2e

IMAGE_CACHE = Path(os.environ.get("PHOENIX_TEST_VM_IMAGES", "/var/cache/phoenix/vm-images"))
TEMPLATE, CLONE, CONTAINER = 9901, 9902, 9903
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPhoenixTestKeyOnlyForTheE2eTestOfVms0000 e2e@phoenix"
USER = "phoenix_user"
SNAPSHOT = "configured"


@dataclass
class Run:
    rc: int
    events: list[dict[str, Any]]
    stderr: str
    hit: str = ""  # the step running when the signal went out

    def why(self) -> str:
        failed = [e for e in self.events if e["event"] in ("step_failed", "guest_failed")]
        return json.dumps(failed, indent=1)[-3000:] + "\n" + self.stderr[-2000:]

    @property
    def result(self) -> dict[str, Any]:
        last = self.events[-1] if self.events else {}
        assert last.get("event") == "result", self.stderr[-3000:]
        return last

    def steps(self, event: str) -> list[tuple[int, str]]:
        return [(e["ctid"], e["step_kind"]) for e in self.events if e["event"] == event]


@dataclass
class VmLab:
    host: LxcHost
    etc: Path
    vm_path: Path
    clone_disk_gb: int = 4
    timings: dict[str, float] = field(default_factory=dict)

    def write(self) -> None:
        host = self.host

        def vm_net(n: int) -> dict[str, str]:
            return {"ip": host.address(n), "gw": host.gateway}

        vms = [
            {
                "vmid": TEMPLATE,
                "name": "phxt-vm-template",
                "is_template": True,
                "features": ["base_setup"],
                "network_config": vm_net(140),
            },
            {
                "vmid": CLONE,
                "name": "phxt-vm-clone",
                "clone_from_vmid": TEMPLATE,
                "disk_size_gb": self.clone_disk_gb,
                "features": ["base_setup"],
                "network_config": vm_net(141),
                "boot_order": 1,
                "snapshots": {"post_features": SNAPSHOT},
                "health_check": {"command": "systemctl is-active ssh", "retries": 5},
                "firewall": {
                    "enabled": True,
                    "rules": [{"type": "in", "action": "ACCEPT", "proto": "icmp"}],
                },
            },
        ]
        vm_file = {
            "vm_defaults": {
                "cores": 2,
                "memory_mb": 1024,
                "network_bridge": host.bridge,
                "user_config": {"username": USER, "ssh_authorized_keys": [KEY]},
            },
            "vms": vms,
        }
        container = {
            "name": "phxt-vm-user",
            "memory_mb": 256,
            "swap_mb": 0,
            "cores": 1,
            "storage_size_gb": 2,
            "unprivileged": True,
            "template": host.template,
            "network_config": {
                "name": "eth0",
                "bridge": host.bridge,
                "ip": host.address(142),
                "gw": host.gateway,
            },
            "dependencies": [CLONE],
            "boot_order": 2,
        }
        hyp = {
            "timezone": "Etc/UTC",
            "phoenix": {
                "driver": "lxc",
                "lxc_path": str(host.lxc_path),
                "template_cache": str(host.template_cache),
                "state_dir": str(host.state_dir),  # where the slot's `setup` record is
                "vm_path": str(self.vm_path),
                "vm_image_cache": str(IMAGE_CACHE),
                "parallel": 2,
            },
        }
        (self.etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hyp))
        lxc = {"lxc_configs": {str(CONTAINER): container}}
        (self.etc / "phoenix_lxc_configs.json").write_text(json.dumps(lxc))
        (self.etc / "phoenix_vm_configs.json").write_text(json.dumps(vm_file))

    def cli(self, *args: str, kill_at: tuple[int, str] | None = None, delay: float = 0) -> Run:
        """`phoenix ARGS --json`; with `kill_at`, SIGKILL `delay` s after that step starts."""
        argv = [sys.executable, "-m", "phoenix", "--config-dir", str(self.etc), *args, "--json"]
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        assert proc.stdout is not None and proc.stderr is not None
        events: list[dict[str, Any]] = []
        running: dict[int, str] = {}
        hit: list[str] = []
        err: list[str] = []
        reader = threading.Thread(target=lambda: err.extend(proc.stderr or []))
        reader.start()

        def fire(ctid: int) -> None:
            if proc.poll() is None and not hit:
                hit.append(f"{ctid} {running.get(ctid, 'between steps')}")
                os.kill(proc.pid, signal.SIGKILL)

        for line in proc.stdout:
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            events.append(event)
            ctid, kind = event.get("ctid"), event.get("step_kind")
            if event["event"] == "step_started":
                running[ctid] = kind
                if kill_at == (ctid, kind):
                    threading.Timer(delay, fire, args=(ctid,)).start()
            elif event["event"] in ("step_done", "step_skipped", "step_failed"):
                running.pop(ctid, None)
        rc = proc.wait(timeout=1800)
        reader.join(timeout=30)
        return Run(rc, events, "".join(err), hit[0] if hit else "")


def _driver(lab: VmLab) -> QemuDriver:
    return QemuDriver(lab.vm_path, IMAGE_CACHE, LocalRunner(), lab.host.state_dir)


def _ok(driver: QemuDriver, vmid: int, *argv: str) -> str:
    result = driver.exec(vmid, list(argv), timeout=300)
    assert result.returncode == 0, (argv, result.stdout, result.stderr)
    return result.stdout


def _phoenix(lab: VmLab, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "phoenix", "--config-dir", str(lab.etc), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600)


def _remove_vms(lab: VmLab) -> None:
    driver = _driver(lab)
    for vmid in (CLONE, TEMPLATE):
        driver.destroy(vmid)
    shutil.rmtree(lab.vm_path, ignore_errors=True)


@pytest.fixture(scope="module")
def vm_lab(lxc_host: LxcHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VmLab]:
    for tool in ("qemu-system-x86_64", "qemu-img", "mkfs.vfat", "mcopy", "debootstrap"):
        assert shutil.which(tool), f"{tool} missing: run scripts/install-deps.sh --tests"
    etc = tmp_path_factory.mktemp("vms") / "etc"
    etc.mkdir()
    lab = VmLab(lxc_host, etc, TEST_ROOT / f"vms-{lxc_host.bridge}")
    _remove_vms(lab)  # what a crashed session of this slot left
    lab.write()
    try:
        yield lab
    finally:
        lab.cli("delete", "--all", "--yes")
        _remove_vms(lab)
        print("\nVM timings: " + ", ".join(f"{k} {v:.0f}s" for k, v in lab.timings.items()))


@pytest.fixture(scope="module")
def converged(vm_lab: VmLab) -> Run:
    """The lab converged from nothing: killed inside the template's recipe, killed at the
    clone's create, then finished by a run that resumes both."""
    started = time.monotonic()
    image = build_base_image(IMAGE_CACHE, LocalRunner(), SUITE, apt_mirror())
    vm_lab.timings["base image (cached or built)"] = time.monotonic() - started
    assert image == image_path(IMAGE_CACHE, SUITE)

    started = time.monotonic()
    first = vm_lab.cli("converge", kill_at=(TEMPLATE, "feature"), delay=8)
    assert first.rc == -signal.SIGKILL, first.why()
    assert first.hit.startswith(f"{TEMPLATE} "), first.hit
    time.sleep(2)
    alive = subprocess.run(["pgrep", "-f", f"process=phoenix-vm-{TEMPLATE}"], capture_output=True)
    print(f"\nafter the kill in {first.hit}: template QEMU alive: {alive.returncode == 0}")
    second = vm_lab.cli("converge", kill_at=(CLONE, "clone"))
    assert second.rc == -signal.SIGKILL, second.why()
    assert second.hit.startswith(f"{CLONE} "), second.hit
    last = vm_lab.cli("converge")
    vm_lab.timings["converge from nothing (3 runs)"] = time.monotonic() - started
    assert last.rc == 0 and last.result["ok"], last.why()
    # nothing the kills interrupted is left in flight (the runs that follow change nothing:
    # test_rerun_changes_nothing)
    assert Journal.read_inflight(vm_lab.host.state_dir) == {}
    return last


def test_rerun_changes_nothing(vm_lab: VmLab, converged: Run) -> None:
    started = time.monotonic()
    again = vm_lab.cli("converge")
    vm_lab.timings["no-op converge"] = time.monotonic() - started
    assert again.rc == 0 and again.result["done"] == [], again.result
    assert again.steps("step_started") == []


def test_the_clone_is_a_linked_overlay_with_its_cloud_init_identity(
    vm_lab: VmLab, converged: Run
) -> None:
    driver, host = _driver(vm_lab), vm_lab.host
    assert driver.observe(TEMPLATE).is_template and not driver.vms.running(TEMPLATE)
    assert driver.vms.backing_file(CLONE) == driver.vms.paths(TEMPLATE).disk
    assert driver.vms.paths(TEMPLATE).disk.stat().st_mode & 0o222 == 0
    assert _ok(driver, CLONE, "hostname").strip() == "phxt-vm-clone"
    assert host.address(141) in _ok(driver, CLONE, "ip", "-4", "-o", "addr", "show", "eth0")
    assert f"default via {host.gateway}" in _ok(driver, CLONE, "ip", "route")
    assert KEY in _ok(driver, CLONE, "cat", f"/home/{USER}/.ssh/authorized_keys")
    assert "NOPASSWD" in _ok(driver, CLONE, "sudo", "-l", "-U", USER)
    assert "status: done" in _ok(driver, CLONE, "cloud-init", "status")
    # growpart: the root filled the clone's 4 GiB disk at first boot (the image's is 2 GiB)
    size_kib = int(_ok(driver, CLONE, "df", "--output=size", "-k", "/").split()[-1])
    assert size_kib > 3 * 1024 * 1024
    # base_setup ran in the template; the clone inherited its marker and skipped it
    assert "feature-base_setup" in read_markers(driver, CLONE)
    assert (CLONE, "feature") in converged.steps("step_skipped")
    # DNS and the NAT work from the VM: apt reaches the mirror (base_setup did too)
    _ok(driver, CLONE, "getent", "hosts", "deb.debian.org")
    master = Path(f"/sys/class/net/{tap_name(CLONE)}/master").resolve().name
    assert master == host.bridge


def _icmp_echo(ip: str, timeout: float) -> bool:
    """One ICMP echo request and its reply, over a raw socket (root; no `ping` binary needed:
    a fresh Debian host has none)."""
    ident = os.getpid() & 0xFFFF
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    payload = b"phoenix-vm-fw."  # an even length: the checksum sums 16-bit words
    total = sum(struct.unpack(f"!{len(header + payload) // 2}H", header + payload))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    packet = struct.pack("!BBHHH", 8, 0, ~total & 0xFFFF, ident, 1) + payload
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (ip, 0))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data, (source, _) = sock.recvfrom(1024)
            except TimeoutError:
                return False
            icmp = data[(data[0] & 0x0F) * 4 :]  # after the IP header
            kind, _, _, reply_ident, _ = struct.unpack("!BBHHH", icmp[:8])
            if source == ip and kind == 0 and reply_ident == ident:
                return True
    return False


def test_the_guest_firewall_guards_the_vms_tap(vm_lab: VmLab, converged: Run) -> None:
    ip = vm_lab.host.ip(141)
    listing = subprocess.run(
        ["nft", "list", "table", "bridge", FW_TABLE], capture_output=True, text=True
    )
    assert f"chain in_{CLONE}" in listing.stdout and tap_name(CLONE) in listing.stdout
    assert _icmp_echo(ip, timeout=5.0), "no echo reply though the firewall accepts icmp"
    ssh = subprocess.run(
        ["timeout", "5", "bash", "-c", f"exec 3<>/dev/tcp/{ip}/22"], capture_output=True
    )
    assert ssh.returncode != 0, "sshd answers though the firewall has no rule for it"


def test_the_container_that_needs_the_vm_started_after_it(converged: Run) -> None:
    order = [(e["event"], e.get("ctid"), e.get("step_kind")) for e in converged.events]
    vm_healthy = order.index(("step_done", CLONE, "health_check"))
    assert order.index(("step_started", CONTAINER, "create")) > vm_healthy
    assert order.index(("step_started", CONTAINER, "start")) > vm_healthy


def test_a_running_vm_was_snapshotted_and_status_lists_the_vms(
    vm_lab: VmLab, converged: Run
) -> None:
    assert SNAPSHOT in _driver(vm_lab).list_snapshots(CLONE)
    proc = _phoenix(vm_lab, "status", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    guests = {g["ctid"]: g for g in json.loads(proc.stdout)["guests"]}
    assert guests[CLONE]["kind"] == "vm" and guests[CLONE]["state"] == "running"
    assert guests[CLONE]["health"] == "ok" and guests[CLONE]["ip"] == vm_lab.host.ip(141)
    assert guests[TEMPLATE]["is_template"] and guests[CONTAINER]["kind"] == "container"


def test_import_reads_the_running_lab_back_to_an_inventory_that_plans_no_change(
    vm_lab: VmLab, converged: Run, tmp_path: Path
) -> None:
    """`phoenix import` of the converged lab into a fresh config dir: the template and its
    running linked clone (its source read from its overlay, its applied recipe through its
    guest agent) and the container; `phoenix plan` there changes nothing."""
    out = tmp_path / "imported"
    out.mkdir()
    shutil.copy(vm_lab.etc / "phoenix_hypervisor_config.json", out)
    ids = f"{TEMPLATE},{CLONE},{CONTAINER}"
    base = [sys.executable, "-m", "phoenix", "--config-dir", str(out)]
    args = ["import", "--ids", ids, "--template", vm_lab.host.template, "--json"]
    done = subprocess.run([*base, *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert (report["guests"], report["vms"]) == ([CONTAINER], [TEMPLATE, CLONE])
    vms = {v["vmid"]: v for v in json.loads((out / "phoenix_vm_configs.json").read_text())["vms"]}
    assert vms[TEMPLATE]["is_template"] and vms[CLONE]["clone_from_vmid"] == TEMPLATE
    assert vms[CLONE]["user_config"] == {"username": USER, "ssh_authorized_keys": [KEY]}
    assert vms[CLONE]["firewall"]["enabled"] and vms[CLONE]["disk_size_gb"] == 4
    applied = [n["text"] for n in report["notes"] if n["guest"] == CLONE]
    assert any("recipes applied inside (" in t and "base_setup" in t for t in applied), applied
    assert any(f"snapshots {SNAPSHOT}" in text for text in applied), applied
    plan = subprocess.run([*base, "plan", "--json"], capture_output=True, text=True, timeout=600)
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    assert data["up_to_date"], [(g["ctid"], g["steps"]) for g in data["guests"]]


def test_stop_resize_and_start_again(vm_lab: VmLab, converged: Run) -> None:
    driver = _driver(vm_lab)
    stop = vm_lab.cli("stop", str(CLONE))
    assert stop.rc == 0 and stop.result["ok"], stop.stderr[-2000:]
    assert not driver.vms.running(CLONE)
    assert not Path(f"/sys/class/net/{tap_name(CLONE)}").exists()
    vm_lab.clone_disk_gb = 6
    vm_lab.write()
    started = time.monotonic()
    grown = vm_lab.cli("converge", str(CLONE))
    vm_lab.timings["resize + start + health"] = time.monotonic() - started
    assert grown.rc == 0 and grown.result["ok"], grown.stderr[-3000:]
    assert [k for c, k in grown.steps("step_done") if c == CLONE] == [
        "resize",
        "start",
        "health_check",
    ]
    size_kib = int(_ok(driver, CLONE, "df", "--output=size", "-k", "/").split()[-1])
    assert size_kib > 5 * 1024 * 1024  # grown at boot to the new disk
    assert _ok(driver, CLONE, "hostname").strip() == "phxt-vm-clone"
    shrink = vm_lab.clone_disk_gb = 5
    vm_lab.write()
    refused = _phoenix(vm_lab, "plan")
    assert refused.returncode == 1, refused.stdout
    assert f"disk_size_gb 6 -> {shrink} would shrink" in refused.stderr
    vm_lab.clone_disk_gb = 6
    vm_lab.write()


def test_delete_removes_the_vms_and_everything_made_for_them(vm_lab: VmLab, converged: Run) -> None:
    deleted = vm_lab.cli("delete", "--all", "--yes")
    assert deleted.rc == 0 and deleted.result["ok"], deleted.stderr[-2000:]
    destroyed = [c for c, k in deleted.steps("step_done") if k == "destroy"]
    assert destroyed == [CONTAINER, CLONE, TEMPLATE]  # dependents first
    assert not [p for p in vm_lab.vm_path.iterdir() if p.name[:1].isdigit() or p.name[:1] == "."]
    assert not Path(f"/sys/class/net/{tap_name(CLONE)}").exists()
    listing = subprocess.run(["nft", "list", "table", "bridge", FW_TABLE], capture_output=True)
    assert listing.returncode != 0, "the VM firewall table outlived its last VM"
