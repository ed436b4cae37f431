"""The Proxmox driver's re-owning program on a real rootfs, started by real LXC.

There is no Proxmox node here, but what the program works on is the same: pve-container
unpacks a template with `lxc-usernsexec` under the default map (`src/PVE/LXC/Create.pm`,
`restore_archive`), which is exactly how the LXC driver unpacks a guest with no id_maps.
So a guest is made that way, the program the Proxmox driver sends (`idshift.reown_cmd`,
its path moved to this rootfs) re-owns it for another map, and a real container started
with that map shows the owners, setuid bits and file capabilities its files should have.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import subprocess

import pytest

from phoenix.drivers import idmaps
from phoenix.drivers.lxc import LxcDriver
from phoenix.drivers.proxmox import idshift
from tests.e2e.conftest import LxcHost
from tests.e2e.test_passthrough import CUSTOM_MAP, ok

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

CAP = "security.capability"


def test_a_rootfs_unpacked_under_the_default_map_is_reowned_for_the_guests_own(
    lxc_host: LxcHost, lxc_driver: LxcDriver
) -> None:
    ctid = 7747
    plain = lxc_host.settings("phxt-reown", 47)
    lxc_driver.create(ctid, lxc_host.template, plain)  # as pct create unpacks it
    rootfs = lxc_host.lxc_path / str(ctid) / "rootfs"
    home = rootfs / "home" / "alice"
    home.mkdir(parents=True)
    tool = home / "tool"
    tool.write_bytes((rootfs / "bin" / "true").read_bytes())
    for path in (home, tool):  # guest uid 1000 under the default map
        os.chown(path, 101_000, 101_000)
    tool.chmod(0o4755)
    cap = struct.pack("<IIIIII", 0x03000001, 1 << 13, 0, 0, 0, 100_000)  # net_raw, root 100000
    os.setxattr(tool, CAP, cap)

    wanted = dataclasses.replace(plain, raw_lxc=CUSTOM_MAP)
    argv = idshift.reown_cmd(ctid, (), idmaps.from_raw(CUSTOM_MAP))
    argv[argv.index(idshift.rootfs_path(ctid))] = str(rootfs)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    assert os.getxattr(tool, CAP) == cap  # chown cleared it; the program put it back
    lxc_driver.configure(ctid, wanted, frozenset({"raw_lxc"}))
    lxc_driver.start(ctid)
    assert ok(lxc_driver, ctid, "cat /proc/self/uid_map").split()[:3] == ["0", "100000", "1000"]
    shown = ok(lxc_driver, ctid, "stat -c '%n %u:%g %a' /home/alice /home/alice/tool /etc/passwd")
    assert shown.splitlines() == [
        "/home/alice 1000:1000 755",
        "/home/alice/tool 1000:1000 4755",
        "/etc/passwd 0:0 644",
    ]
    assert os.lstat(tool).st_uid == 101_001  # guest 1000 through this map, not 101000
