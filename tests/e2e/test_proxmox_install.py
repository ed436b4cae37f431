"""Installing on a Proxmox VE node, on a fresh Debian 12 root (the fresh-host rootfs, run
with chroot): where `pve-manager` is installed, `scripts/install-deps.sh` refuses with the
reason and the right command and installs nothing (Debian's `lxc` would make apt remove
Proxmox); `scripts/install-proxmox.sh` installs Phoenix alone, with the node's python3 and
no `python3-venv`, and gives a working `phoenix`, whose `doctor` and `delete --force` then
run against the fake node (tests/unit/proxmox/fakeshim.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from phoenix.drivers.lxc.templates import apt_mirror
from tests.e2e.freshhost import LOCAL_CAS, PATH, project_tarball, rootfs_tarball, run
from tests.unit.proxmox.fakeshim import install, load, save

REPO = Path(__file__).resolve().parents[2]
PVE_MANAGER = """
Package: pve-manager
Status: install ok installed
Priority: optional
Section: admin
Maintainer: Proxmox Support Team <support@proxmox.com>
Architecture: amd64
Version: 8.4.1
Description: Proxmox Virtual Environment Management Tools (marked installed by the test)
"""

FAKE_NODE = "/var/lib/phoenix-fake-node"
SEED_TEMPLATE = "/fastData/shared-iso/template/cache/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"

pytestmark = pytest.mark.e2e


class Root:
    """A fresh Debian 12 root with /proc, /dev and the network's resolver and CAs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.mounts: list[Path] = []

    def mount(self) -> None:
        for fs, target in (("proc", "proc"), ("/dev", "dev")):
            where = self.path / target
            argv = ["mount", "-t", "proc", "proc", str(where)] if fs == "proc" else []
            argv = argv or ["mount", "--bind", fs, str(where)]
            res = run(argv)
            assert res.returncode == 0, res.stderr
            self.mounts.append(where)

    def unmount(self) -> None:
        for where in reversed(self.mounts):
            run(["umount", "-l", str(where)])
        self.mounts.clear()

    def sh(self, script: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive",
            "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
            "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
        }
        return subprocess.run(
            ["chroot", str(self.path), "bash", "-c", script],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )


@pytest.fixture
def node_root(tmp_path: Path) -> Iterator[Root]:
    if os.geteuid() != 0:
        pytest.fail("the Proxmox install test needs root (chroot, mounts)")
    path = tmp_path / "root"
    path.mkdir()
    res = run(["tar", "--numeric-owner", "--zstd", "-xf", str(rootfs_tarball()), "-C", str(path)])
    assert res.returncode == 0, res.stderr
    resolv = path / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    shutil.copy("/etc/resolv.conf", resolv)
    if LOCAL_CAS.is_dir():
        shutil.copytree(LOCAL_CAS, path / str(LOCAL_CAS).lstrip("/"), dirs_exist_ok=True)
    status = path / "var/lib/dpkg/status"
    status.write_text(status.read_text().rstrip("\n") + "\n" + PVE_MANAGER)
    tar = project_tarball(REPO, tmp_path / "phoenix.tar")
    (path / "root/phoenix").mkdir(parents=True)
    res = run(["tar", "-xf", str(tar), "-C", str(path / "root/phoenix")])
    assert res.returncode == 0, res.stderr
    root = Root(path)
    root.mount()
    try:
        yield root
    finally:
        root.unmount()


def test_install_deps_refuses_on_a_proxmox_node_and_phoenix_installs_alone(
    node_root: Root,
) -> None:
    status = node_root.path / "var/lib/dpkg/status"
    before = status.read_text()
    res = node_root.sh("cd /root/phoenix && bash scripts/install-deps.sh --tests")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "Proxmox VE node (pve-manager is installed)" in res.stderr
    assert "scripts/install-proxmox.sh" in res.stderr
    assert status.read_text() == before  # no package installed, none removed
    assert not (node_root.path / "root/phoenix/.venv").exists()
    assert not (node_root.path / "var/log/phoenix-install-deps.log").exists()

    # A Proxmox node has python3 (not python3-venv): give the fresh root just that.
    mirror = apt_mirror()
    prep = node_root.sh(
        f"echo 'deb {mirror} bookworm main' > /etc/apt/sources.list && "
        "(command -v update-ca-certificates >/dev/null && update-ca-certificates >/dev/null "
        "|| true) && apt-get update -qq && "
        "apt-get install -y -qq --no-install-recommends python3 ca-certificates >/dev/null"
    )
    assert prep.returncode == 0, prep.stdout[-2000:] + prep.stderr[-2000:]
    venv = node_root.sh("dpkg-query -W -f='${Status}' python3-venv 2>/dev/null")
    assert "install ok installed" not in venv.stdout
    installed = status.read_text()
    res = node_root.sh("cd /root/phoenix && bash scripts/install-proxmox.sh")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert status.read_text() == installed  # Phoenix alone: no system package
    help_ = node_root.sh("phoenix --help")
    assert help_.returncode == 0 and "doctor" in help_.stdout, help_.stdout + help_.stderr
    # Not a node for real (no pct): doctor says so in one line per check, no traceback.
    doctor = node_root.sh(
        "mkdir -p /tmp/etc && cp /root/phoenix/tests/fixtures/phoenix-etc-seed/*.json /tmp/etc/ "
        "&& phoenix -c /tmp/etc --driver proxmox doctor"
    )
    assert doctor.returncode == 1 and "pct is missing" in doctor.stdout, doctor.stdout
    assert "Traceback" not in doctor.stdout + doctor.stderr
    against_the_fake_node(node_root)


def against_the_fake_node(root: Root) -> None:
    """The installed Phoenix against the fake node (fakeshim.py): pct, pvesh and pveversion
    where a node has them, answered by the fake node the unit tests use (run by the
    installed Python). The seed inventory's storages, bridge and template are there, so
    doctor passes; a missing bridge fails with its fix. Then a protected HA guest: `phoenix
    delete` refuses it, naming --force, and `delete --force` removes it."""
    node = root.path / FAKE_NODE.lstrip("/")
    install(root.path, "/opt/phoenix/bin/python", "/root/phoenix", FAKE_NODE)
    fake = load(node)
    fake.storages = {
        "quickOS-lxc-disks": "zfspool",
        "quickOS-shared-prod-data-volumes": "zfspool",
        "fastData-shared-bulk-data": "dir",
    }
    fake.datacenter_firewall = True
    save(node, fake)
    template = root.path / SEED_TEMPLATE.lstrip("/")
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_bytes(b"")
    for name in ("subuid", "subgid"):
        (root.path / "etc" / name).write_text("root:100000:65536\n")

    doctor = root.sh("phoenix -c /tmp/etc --driver proxmox doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    for line in (
        "ok   version: pve-manager 8.4.1, pve-container 5.2.7",
        "ok   storage quickOS-lxc-disks: zfspool, content rootdir,images",
        "ok   snapshots on quickOS-lxc-disks: zfspool storage can snapshot a container",
        "ok   bridge vmbr0: exists",
        "ok   datacenter firewall: enabled",
        "node is ready for the Proxmox driver",
    ):
        assert line in doctor.stdout, doctor.stdout
    fake = load(node)
    fake.bridges = set()
    save(node, fake)
    doctor = root.sh("phoenix -c /tmp/etc --driver proxmox doctor")
    assert doctor.returncode == 1, doctor.stdout
    assert "FAIL bridge vmbr0: does not exist" in doctor.stdout
    assert "fix: create it under System > Network" in doctor.stdout

    made = root.sh(
        f"pct create 101 {SEED_TEMPLATE} --hostname gw --rootfs quickOS-lxc-disks:8 "
        "--unprivileged 1 && pct set 101 --protection 1 && pct start 101"
    )
    assert made.returncode == 0, made.stderr
    fake = load(node)
    fake.ha[101] = "started"
    save(node, fake)
    refused = root.sh("phoenix -c /tmp/etc --driver proxmox delete --yes 101")
    assert refused.returncode == 1, refused.stdout
    assert "phoenix delete 101 --force" in refused.stdout + refused.stderr
    assert (node / "fs/etc/pve/lxc/101.conf").is_file()
    forced = root.sh("phoenix -c /tmp/etc --driver proxmox delete --yes --force 101")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert not (node / "fs/etc/pve/lxc/101.conf").exists() and load(node).ha == {}
    acted = [
        line
        for line in (node / "calls.log").read_text().splitlines()
        if not line.startswith(("pvesh get", "pveversion"))
    ]
    assert acted[-4:] == [
        "pvesh delete /cluster/ha/resources/ct:101",
        "pct set 101 --protection 0",
        "pct shutdown 101 --timeout 60 --forceStop 1",
        "pct destroy 101",
    ]
