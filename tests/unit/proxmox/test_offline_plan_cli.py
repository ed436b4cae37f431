"""`phoenix plan --driver proxmox --offline --commands`: the exact commands a fresh node
would run for 101 and its clone source 900, from the seed inventory."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from phoenix.cli.app import app
from tests.conftest import shared_fixture


def test_offline_plan_prints_the_commands_for_101(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    shutil.copytree(shared_fixture("phoenix-etc-seed"), etc)
    shutil.rmtree(etc / "nginx")  # derived gateway (the seed's hand-written sites are broken)
    result = CliRunner().invoke(
        app, ["-c", str(etc), "--driver", "proxmox", "plan", "101", "--offline", "--commands"]
    )
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("pct ")]
    template = "/fastData/shared-iso/template/cache/ubuntu-24.04-standard_24.04-2_amd64.tar.zst"
    expected_in_order = [
        f"pct create 900 {template} --hostname Copy-Base --rootfs quickOS-lxc-disks:16 --unprivileged 1",
        "pct set 900 --hostname Copy-Base --memory 2048 --swap 512 --cores 2 --onboot 0 --net0 name=eth0,bridge=vmbr0,hwaddr=52:54:00:AA:BB:CC,ip=10.0.0.200/24,gw=10.0.0.1,firewall=0",
        "pct start 900",
        "pct snapshot 900 final-form",
        "pct clone 900 101 --snapname final-form --full 1 --storage quickOS-lxc-disks --hostname Nginx-Phoenix",
        "pct set 101 --hostname Nginx-Phoenix --memory 4096 --swap 512 --cores 4 --onboot 1 --startup order=1,up=5 --features nesting=1 --net0 'name=eth0,bridge=vmbr0,hwaddr=<MAC of 101>,ip=10.0.0.153/24,gw=10.0.0.1,firewall=1'",
        "pct resize 101 rootfs 32G",
        "pct start 101",
    ]
    positions = [lines.index(line) for line in expected_in_order]
    assert positions == sorted(positions)
    assert "#   | IN ACCEPT -p tcp -dport 80,443" in result.output
    assert "#   | lxc.mount.auto: sys:rw" in result.output
    assert any("setup_gateway.sh" in line for line in lines)


def test_commands_need_offline_proxmox(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["-c", str(shared_fixture("phoenix-etc-seed")), "plan", "101", "--commands"]
    )
    assert result.exit_code == 1
    assert "--commands needs --offline and the proxmox driver" in result.output


def test_commands_that_cannot_be_recorded_fail_with_the_reason() -> None:
    """examples/lab builds its template with debootstrap (LXC driver only): the Proxmox
    preview must say so and exit 1, not print an empty command list with exit 0."""
    lab = Path(__file__).parents[3] / "examples" / "lab"
    result = CliRunner().invoke(
        app, ["-c", str(lab), "--driver", "proxmox", "plan", "101", "--offline", "--commands"]
    )
    assert result.exit_code == 1, result.output
    assert "debootstrap:bookworm" in result.output
    assert "pveam download" in result.output
    assert "recording stopped early" not in result.output


def test_commands_follow_the_node_version(tmp_path: Path) -> None:
    """PVE 8.1 has no `pct exec --keep-env`; 8.4 drops lxc.init.cwd (refused with why)."""
    etc = tmp_path / "etc"
    shutil.copytree(shared_fixture("phoenix-etc-seed"), etc)
    shutil.rmtree(etc / "nginx")
    args = ["-c", str(etc), "--driver", "proxmox", "plan", "900", "--offline", "--commands"]
    new = CliRunner().invoke(app, [*args, "--pve-version", "9.1"])
    old = CliRunner().invoke(app, [*args, "--pve-version", "8.1"])
    assert new.exit_code == old.exit_code == 0, new.output + old.output
    assert "pct exec 900 --keep-env 0 --" in new.output
    assert "--keep-env" not in old.output and "pct exec 900 --" in old.output
    for version in ("eight", "\u00b2.4", "8.\u0661"):  # isdigit() is true for both
        bad = CliRunner().invoke(app, [*args, "--pve-version", version])
        assert bad.exit_code == 1 and "X.Y" in bad.output, bad.output
