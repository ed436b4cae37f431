"""The VM example (examples/vm-lab) converged for real under QEMU (TCG on this host): a
template VM from Phoenix's Debian base image with `base_setup`, a docker VM cloned from it
that runs the `docker` feature through its guest agent (health check `docker info`), and
a container that needs the docker VM.

The inventory is examples/vm-lab's, moved onto the test slot's bridge, subnet and paths with
test ids (99xx: their taps never collide with a VM lab of the same ids on this host). One
converge, then every check reads it: Docker runs a container inside the VM (from an image
made with `docker import` of Debian's busybox-static: no registry is reachable), the health
check passed, the container started after the VM, a re-run changes nothing, and `phoenix
delete` leaves nothing behind. Two TCG boots (the template's, the clone's), a few minutes
each on a busy host. Run it under the VM lock:
    flock /tmp/phoenix-e2e-vm.lock .venv/bin/python -m pytest -p no:cacheprovider -m e2e \\
        tests/e2e/test_vm_example.py -x -q
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from phoenix.drivers.lxc.templates import apt_mirror
from phoenix.drivers.qemu.baseimage import build_base_image
from phoenix.drivers.qemu.driver import FW_TABLE, SUITE, QemuDriver
from phoenix.drivers.qemu.machine import tap_name
from phoenix.runners.local import LocalRunner
from tests.e2e.conftest import TEST_ROOT, LxcHost
from tests.e2e.test_docker_feature import IMPORT
from tests.e2e.test_qemu_vms import IMAGE_CACHE

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "vm-lab"
IDS = {9000: 9911, 9001: 9912, 120: 9913}
TEMPLATE, DOCKER, CONTAINER = IDS[9000], IDS[9001], IDS[120]
EXAMPLE_NET = "10.213.70."


@dataclass
class Run:
    rc: int
    events: list[dict[str, Any]]
    stderr: str
    seconds: float

    @property
    def result(self) -> dict[str, Any]:
        last = self.events[-1] if self.events else {}
        assert last.get("event") == "result", self.stderr[-3000:]
        return last

    def steps(self, event: str) -> list[tuple[int, str]]:
        return [(e["ctid"], e["step_kind"]) for e in self.events if e["event"] == event]

    def took(self, ctid: int, kind: str, named: str = "") -> float:
        """Seconds a step of guest `ctid` took (its started to done events): of kind
        `kind`, whose description names `named`."""
        at = {
            e["event"]: e["time"]
            for e in self.events
            if e.get("ctid") == ctid and e.get("step_kind") == kind and named in e.get("step", "")
        }
        return float(at["step_done"] - at["step_started"])


@dataclass
class Example:
    host: LxcHost
    etc: Path
    vm_path: Path
    timings: dict[str, float] = field(default_factory=dict)

    def cli(self, *args: str) -> Run:
        argv = [sys.executable, "-m", "phoenix", "--config-dir", str(self.etc), *args, "--json"]
        started = time.monotonic()
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=3000)
        events = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
        return Run(proc.returncode, events, proc.stderr, time.monotonic() - started)

    def driver(self) -> QemuDriver:
        return QemuDriver(self.vm_path, IMAGE_CACHE, LocalRunner(), self.host.state_dir)


def _moved(text: str, host: LxcHost) -> str:
    """The example's addresses and subnet moved onto the test slot's."""
    prefix = host.ip(0).rpartition(".")[0] + "."
    return text.replace(EXAMPLE_NET, prefix).replace("phxvmlab0", host.bridge)


def write_example(host: LxcHost, etc: Path, vm_path: Path) -> None:
    """examples/vm-lab with the slot's bridge, subnet, paths and test ids."""
    hyp = json.loads((EXAMPLE / "phoenix_hypervisor_config.json").read_text())
    hyp["phoenix"].update(
        lxc_path=str(host.lxc_path),
        state_dir=str(host.state_dir),
        template_cache=str(host.template_cache),
        vm_path=str(vm_path),
        vm_image_cache=str(IMAGE_CACHE),
    )
    lxc = json.loads(_moved((EXAMPLE / "phoenix_lxc_configs.json").read_text(), host))
    containers = {}
    for old, entry in lxc["lxc_configs"].items():
        entry["name"] = f"phxt-{entry['name']}"
        entry["template"] = host.template
        entry["dependencies"] = [IDS[d] for d in entry.get("dependencies", [])]
        containers[str(IDS[int(old)])] = entry
    vms = json.loads(_moved((EXAMPLE / "phoenix_vm_configs.json").read_text(), host))
    for vm in vms["vms"]:
        vm["vmid"] = IDS[vm["vmid"]]
        vm["name"] = f"phxt-{vm['name']}"
        if "clone_from_vmid" in vm:
            vm["clone_from_vmid"] = IDS[vm["clone_from_vmid"]]
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hyp))
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": containers}))
    (etc / "phoenix_vm_configs.json").write_text(json.dumps(vms))


def _remove_vms(example: Example) -> None:
    driver = example.driver()
    for vmid in (DOCKER, TEMPLATE):
        driver.destroy(vmid)
    shutil.rmtree(example.vm_path, ignore_errors=True)


@pytest.fixture(scope="module")
def example(lxc_host: LxcHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Example]:
    for tool in ("qemu-system-x86_64", "qemu-img", "mkfs.vfat", "mcopy", "debootstrap"):
        assert shutil.which(tool), f"{tool} missing: run scripts/install-deps.sh --tests"
    etc = tmp_path_factory.mktemp("vm-example") / "etc"
    etc.mkdir()
    the_example = Example(lxc_host, etc, TEST_ROOT / f"vm-example-{lxc_host.bridge}")
    _remove_vms(the_example)  # what a crashed session of this slot left
    write_example(lxc_host, etc, the_example.vm_path)
    try:
        yield the_example
    finally:
        the_example.cli("delete", "--all", "--yes")
        _remove_vms(the_example)
        print("\nVM example: " + ", ".join(f"{k} {v:.0f}s" for k, v in the_example.timings.items()))


@pytest.fixture(scope="module")
def converged(example: Example) -> Run:
    started = time.monotonic()
    build_base_image(IMAGE_CACHE, LocalRunner(), SUITE, apt_mirror())
    example.timings["base image (cached or built)"] = time.monotonic() - started
    run = example.cli("converge")
    failed = [e for e in run.events if e["event"] in ("step_failed", "guest_failed")]
    assert run.rc == 0 and run.result["ok"], json.dumps(failed)[-3000:] + run.stderr[-2000:]
    example.timings["converge"] = run.seconds
    example.timings["docker VM boot to cloud-init done"] = run.took(DOCKER, "start")
    example.timings["docker feature"] = run.took(DOCKER, "feature", "docker")
    return run


def test_docker_runs_a_container_inside_the_vm(example: Example, converged: Run) -> None:
    ran = example.driver().exec(DOCKER, ["sh", "-c", IMPORT], timeout=900)
    assert ran.ok, ran.stdout + ran.stderr
    assert ran.stdout.strip().endswith("hello from a container")


def test_the_health_check_passed_and_the_snapshots_were_taken(
    example: Example, converged: Run
) -> None:
    assert (DOCKER, "health_check") in converged.steps("step_done")
    assert {"pre-docker", "with-docker"} <= set(example.driver().list_snapshots(DOCKER))
    proc = subprocess.run(
        [sys.executable, "-m", "phoenix", "--config-dir", str(example.etc), "status", "--json"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    guests = {g["ctid"]: g for g in json.loads(proc.stdout)["guests"]}
    assert guests[DOCKER]["state"] == "running" and guests[DOCKER]["health"] == "ok"
    assert guests[TEMPLATE]["is_template"] and guests[CONTAINER]["state"] == "running"


def test_the_container_started_after_the_docker_vm(converged: Run) -> None:
    order = [(e["event"], e.get("ctid"), e.get("step_kind")) for e in converged.events]
    vm_healthy = order.index(("step_done", DOCKER, "health_check"))
    assert order.index(("step_started", CONTAINER, "start")) > vm_healthy


def test_rerun_changes_nothing(example: Example, converged: Run) -> None:
    again = example.cli("converge")
    example.timings["no-op converge"] = again.seconds
    assert again.rc == 0 and again.result["done"] == [], again.result
    assert again.steps("step_started") == []


def test_delete_leaves_nothing_behind(example: Example, converged: Run) -> None:
    deleted = example.cli("delete", "--all", "--yes")
    assert deleted.rc == 0 and deleted.result["ok"], deleted.stderr[-2000:]
    assert [c for c, k in deleted.steps("step_done") if k == "destroy"] == [
        CONTAINER,
        DOCKER,
        TEMPLATE,
    ]
    assert not [p for p in example.vm_path.iterdir() if p.name[:1].isdigit() or p.name[0] == "."]
    for vmid in (TEMPLATE, DOCKER):
        assert not Path(f"/sys/class/net/{tap_name(vmid)}").exists()
        qemu = subprocess.run(["pgrep", "-f", f"process=phoenix-vm-{vmid}"], capture_output=True)
        assert qemu.returncode != 0, f"QEMU of VM {vmid} outlived its delete"
    listing = subprocess.run(["nft", "list", "table", "bridge", FW_TABLE], capture_output=True)
    assert listing.returncode != 0, "the VM firewall table outlived its last VM"
    lxc = subprocess.run(
        ["lxc-ls", "-P", str(example.host.lxc_path), "-1"], capture_output=True, text=True
    )
    assert str(CONTAINER) not in lxc.stdout.split()
