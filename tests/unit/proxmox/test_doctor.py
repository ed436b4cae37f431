"""`phoenix doctor` on a recorded node, and on this host (no Proxmox: a clear message)."""

from __future__ import annotations

from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.drivers.proxmox.doctor import Needs, needs_of, run_doctor
from phoenix.inventory import Inventory
from phoenix.runners.recorded import RecordedRunner
from tests.conftest import shared_fixture
from tests.unit.proxmox.conftest import data, pvesh

TEMPLATE = "/fastData/shared-iso/template/cache/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"


def healthy_node() -> RecordedRunner:
    runner = RecordedRunner()
    runner.respond(["pveversion", "--verbose"], data("pveversion_verbose.txt"))
    runner.respond(["uname", "-n"], "pve.lab.example\n")
    runner.respond(pvesh("/nodes/pve/storage"), data("storage_pve.json"))
    runner.respond(pvesh("/nodes/pve/network", "--type", "any_bridge"), data("network_pve.json"))
    runner.respond(["cat", "/etc/subuid"], "root:100000:65536\n")
    runner.respond(["cat", "/etc/subgid"], "root:100000:65536\n")
    return runner


def test_needs_of_seed(seed: Inventory) -> None:
    assert needs_of(seed) == Needs(
        frozenset({"quickOS-lxc-disks"}), frozenset({"vmbr0"}), frozenset({TEMPLATE})
    )


def test_healthy_node(seed: Inventory) -> None:
    runner = healthy_node()
    checks = run_doctor(runner, needs_of(seed), node="pve")
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    names = [c.name for c in checks]
    assert names == [
        "pct",
        "pvesh",
        "version",
        "node",
        "storage quickOS-lxc-disks",
        "bridge vmbr0",
        f"template {TEMPLATE}",
        "/etc/subuid",
        "/etc/subgid",
    ]
    assert "pve-manager 8.2.2, pve-container 5.0.11" in checks[2].detail
    assert ("test", "-f", TEMPLATE) in runner.calls


def test_broken_node_says_what_to_fix(seed: Inventory) -> None:
    runner = healthy_node()
    runner.respond(pvesh("/nodes/pve/network", "--type", "any_bridge"), "[]")
    runner.respond(["test", "-f", TEMPLATE], returncode=1)
    runner.respond(["cat", "/etc/subgid"], "")
    needs = Needs(
        frozenset({"quickOS-lxc-disks", "local-zfs"}), frozenset({"vmbr0"}), frozenset({TEMPLATE})
    )
    failed = {c.name: c for c in run_doctor(runner, needs, node="pve") if not c.ok}
    assert set(failed) == {
        "storage local-zfs",
        "bridge vmbr0",
        f"template {TEMPLATE}",
        "/etc/subgid",
    }
    assert "pvesm add" in failed["storage local-zfs"].fix
    assert "pveam download" in failed[f"template {TEMPLATE}"].fix
    assert "root:100000:65536" in failed["/etc/subgid"].fix


def test_storage_without_rootdir_content() -> None:
    runner = healthy_node()
    failed = [
        c
        for c in run_doctor(runner, Needs(frozenset({"local"}), frozenset(), frozenset()), "pve")
        if not c.ok
    ]
    assert [c.name for c in failed] == ["storage local"]
    assert "--content" in failed[0].fix and "rootdir" in failed[0].fix


def test_missing_pct_stops_early_with_one_clear_reason() -> None:
    runner = RecordedRunner()
    runner.respond(["test", "-x"], returncode=1)
    checks = run_doctor(runner, Needs(frozenset(), frozenset(), frozenset()))
    assert [(c.name, c.ok) for c in checks] == [("pct", False), ("pvesh", False)]
    assert "not a Proxmox VE node" in checks[0].fix
    assert not any(call[0] == "pvesh" for call in runner.calls)


def test_cli_doctor_on_this_host_reports_missing_pct() -> None:
    seed = str(shared_fixture("phoenix-etc-seed"))
    result = CliRunner().invoke(app, ["-c", seed, "--driver", "proxmox", "doctor"])
    assert result.exit_code == 1
    assert "pct is missing" in result.output
    assert "Traceback" not in result.output


def test_node_named_otherwise_than_the_node_reached_fails() -> None:
    """Finding 1: doctor asked `uname -n` and passed while converge asked pvesh about the
    configured name (proxied elsewhere, or to no node at all)."""
    runner = healthy_node()
    checks = {
        c.name: c for c in run_doctor(runner, Needs(frozenset(), frozenset(), frozenset()), "pve2")
    }
    assert not checks["node"].ok
    assert "'pve2'" in checks["node"].detail and "'pve'" in checks["node"].detail


def test_no_node_name_asks_localhost() -> None:
    runner = healthy_node()
    runner.respond(pvesh("/nodes/localhost/storage"), data("storage_pve.json"))
    runner.respond(
        pvesh("/nodes/localhost/network", "--type", "any_bridge"), data("network_pve.json")
    )
    needs = Needs(frozenset({"quickOS-lxc-disks"}), frozenset({"vmbr0"}), frozenset())
    checks = run_doctor(runner, needs)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert tuple(pvesh("/nodes/localhost/storage")) in runner.calls
