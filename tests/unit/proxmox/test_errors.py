"""pct failures become messages naming the guest, the command and the fix."""

from __future__ import annotations

import pytest

from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.errors import CommandFailed, DriverError
from phoenix.runners.local import LocalRunner
from phoenix.runners.recorded import RecordedRunner
from tests.unit.proxmox.conftest import config_argv, data, status_argv

STOPPED = '{"status": "stopped", "vmid": 101}'


@pytest.mark.parametrize(
    ("stderr", "says"),
    [
        ("CT 101 is locked (backup)\n", r"guest 101 is locked \(backup\).*pct unlock 101"),
        (
            "storage 'quickOS-lxc-disks' does not exist\n",
            r"storage 'quickOS-lxc-disks' does not exist.*storage_pool of guest 101",
        ),
        (
            "unable to create CT 101 - CT 101 already exists on node 'pve'\n",
            r"guest 101 already exists.*`phoenix delete 101` or rebuild it with `phoenix "
            r"converge --recreate`",
        ),
        (  # a protection set after Phoenix looked: the way out is the one CLI flag
            "can't remove CT 101 - protection mode enabled\n",
            r"protection enabled.*`phoenix delete 101 --force` clears it first",
        ),
        (
            "can't lock file '/run/lock/lxc/pve-config-101.lock' - got timeout\n",
            r"config lock is held",
        ),
    ],
)
def test_start_failures(stderr: str, says: str) -> None:
    runner = RecordedRunner()
    runner.respond(status_argv(101), STOPPED)
    runner.respond(["pct", "start", "101"], returncode=255, stderr=stderr)
    with pytest.raises(CommandFailed, match=says) as info:
        ProxmoxDriver(runner, "pve").start(101)
    # One error type for a failed command, whichever driver: argv, exit code, output, and
    # Proxmox's explanation as its context.
    assert info.value.argv == ["pct", "start", "101"] and info.value.returncode == 255
    assert "command failed (exit 255): pct start 101" in str(info.value)
    assert stderr.strip() in str(info.value)


def test_exec_on_stopped_guest() -> None:
    runner = RecordedRunner()
    runner.respond(["pct", "exec", "101"], returncode=255, stderr="container '101' not running!\n")
    with pytest.raises(
        CommandFailed,
        match=r"guest 101 is not running.*: pct exec 101 -- env HOME=/root LANG=C.UTF-8 true",
    ):
        ProxmoxDriver(runner, "pve", version=(8, 1)).exec(101, ["true"])


def test_exec_keeps_the_guest_commands_own_failure() -> None:
    runner = RecordedRunner()
    runner.respond(
        ["pct", "exec", "101"], returncode=3, stderr="nginx: configuration test failed\n"
    )
    result = ProxmoxDriver(runner, "pve", version=(8, 4)).exec(101, ["nginx", "-t"])
    assert (result.returncode, result.ok) == (3, False)


def test_create_with_missing_template() -> None:
    runner = RecordedRunner()
    runner.respond(
        ["pct", "create"],
        returncode=255,
        stderr="unable to create CT 900 - volume 'local:vztmpl/x.tar.zst' does not exist\n",
    )
    settings = GuestSettings("a", 512, 512, 1, 8, "local", True, None)
    with pytest.raises(CommandFailed, match=r"missing \(local:vztmpl/x.tar.zst\).*pveam download"):
        ProxmoxDriver(runner, "pve").create(900, "local:vztmpl/x.tar.zst", settings)


def test_missing_pvesh_binary_is_explained() -> None:
    # This host has no Proxmox: LocalRunner reports exit 127 "command not found".
    with pytest.raises(CommandFailed, match=r"not a Proxmox VE node.*: pvesh get"):
        ProxmoxDriver(LocalRunner(), "pve").mark_template(101)


def test_stop_and_destroy_are_no_ops_when_already_done() -> None:
    runner = RecordedRunner()
    runner.respond(status_argv(101), STOPPED)
    driver = ProxmoxDriver(runner, "pve")
    driver.stop(101)
    runner.respond(
        status_argv(101),
        returncode=2,
        stderr="Configuration file 'nodes/pve/lxc/101.conf' does not exist\n",
    )
    driver.destroy(101)
    assert driver.log.mutations() == []


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [("memory", "lots", "memory|lots"), ("net0", "bridge=vmbr0,ip=dhcp", "has no name=")],
)
def test_a_config_phoenix_cannot_read_is_a_driver_error(key: str, value: str, says: str) -> None:
    """A non-numeric memory or a net0 without name= escaped as a bare ValueError."""
    runner = RecordedRunner()
    config = '{"hostname": "a", "rootfs": "local:subvol-101-disk-0,size=8G", "%s": "%s"}'
    runner.respond(config_argv(101), config % (key, value))
    runner.respond(["cat"], "")
    with pytest.raises(DriverError, match=rf"guest 101: cannot read its config.*({says})"):
        ProxmoxDriver(runner, "pve").observe(101)


def test_destroy_of_an_ha_managed_guest_is_refused_by_proxmox() -> None:
    """Finding 16: without --purge pct destroy *refuses* HA-managed and replicated guests
    (here HA did not list it when Phoenix looked: a resource added since, or a replication
    job, which Phoenix cannot see)."""
    runner = RecordedRunner()
    runner.respond(status_argv(101), STOPPED)
    runner.respond(config_argv(101), data("config_101_running.json"))  # in a replication job
    runner.respond(["pvesh", "get", "/cluster/ha/resources", "--output-format", "json"], "[]")
    runner.respond(
        ["pct", "destroy", "101"],
        returncode=255,
        stderr="unable to remove CT 101 - used in HA resources and purge parameter not set.\n",
    )
    with pytest.raises(
        CommandFailed, match=r"HA-managed or replicated.*phoenix delete 101 --force.*pvesr list"
    ):
        ProxmoxDriver(runner, "pve").destroy(101)
