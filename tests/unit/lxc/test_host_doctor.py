"""`phoenix doctor` on an LXC-driver config checks this host for the LXC driver (not
Proxmox) and names the fix for each failure."""

from __future__ import annotations

import ipaddress
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.drivers.lxc.hostprep import nat_script
from phoenix.drivers.lxc.hostprep.subids import SubIds
from phoenix.host.doctor import HostFacts, run_lxc_doctor
from phoenix.inventory.loader import load_inventory
from phoenix.runners.recorded import RecordedRunner
from tests.unit.inventory.helpers import edit_guest

LAB = Path(__file__).resolve().parents[3] / "examples" / "lab"


def facts(tmp_path: Path, *, includes: bool, subids: bool, forward: str) -> HostFacts:
    conf = tmp_path / "lxc-config"
    conf.mkdir()
    if includes:
        for name in ("debian.common.conf", "debian.userns.conf", "nesting.conf"):
            (conf / name).write_text("")
    fs = tmp_path / "filesystems"
    fs.write_text("nodev\tproc\nnodev\toverlay\n")
    (tmp_path / "ip_forward").write_text(forward + "\n")
    line = "root:100000:65536\n" if subids else ""
    (tmp_path / "subuid").write_text(line)
    (tmp_path / "subgid").write_text(line)
    return HostFacts(
        lxc_config_dir=conf,
        filesystems=fs,
        ip_forward=tmp_path / "ip_forward",
        cgroup_root=tmp_path,
        subids=SubIds((tmp_path / "subuid", tmp_path / "subgid"), tmp_path / "ledger.json"),
    )


def test_a_fresh_host_fails_with_the_fix_for_each_problem(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["dpkg-query"], "ii ")
    runner.respond(["dpkg-query", "-W", "-f=${db:Status-Abbrev}", "lxc-templates"], "", 1)
    runner.respond(["ip", "-j", "addr"], "", 1)
    runner.respond(["nft"], "", 1)
    checks = run_lxc_doctor(
        runner, load_inventory(LAB), facts(tmp_path, includes=False, subids=False, forward="0")
    )
    failed = {c.name: c.fix for c in checks if not c.ok}
    assert failed == {
        "packages": "apt-get install --no-install-recommends lxc-templates "
        "(or run scripts/install-deps.sh)",
        "lxc config includes": "apt-get install --no-install-recommends lxc-templates",
        "subuid/subgid": "phoenix setup",
        "bridge phxlab0": "phoenix setup",
        "ip forwarding": "phoenix setup",
        "NAT": "phoenix setup",
    }


def test_a_prepared_host_passes(tmp_path: Path) -> None:
    runner = RecordedRunner()
    runner.respond(["dpkg-query"], "ii ")
    addr = [{"addr_info": [{"family": "inet", "local": "10.213.50.1", "prefixlen": 24}]}]
    runner.respond(["ip", "-j", "addr"], json.dumps(addr))
    rules = nat_script("phoenix_nat", [ipaddress.IPv4Network("10.213.50.0/24")])
    comment = rules.split('comment "')[1].split('"')[0]
    runner.respond(["nft"], json.dumps({"nftables": [{"rule": {"comment": comment}}]}))
    checks = run_lxc_doctor(
        runner, load_inventory(LAB), facts(tmp_path, includes=True, subids=True, forward="1")
    )
    assert [c for c in checks if not c.ok] == []
    assert any(c.name == "template debootstrap:bookworm" for c in checks)


def test_the_cli_checks_the_lxc_host_for_an_lxc_config() -> None:
    result = CliRunner().invoke(app, ["-c", str(LAB), "doctor"])
    assert "Checking this host for the LXC driver" in result.output
    assert "pct" not in result.output and "--driver lxc" not in result.output


def test_a_guests_pass_through_needs_its_host_ids_given_to_root(tmp_path: Path) -> None:
    lab = tmp_path / "lab"
    shutil.copytree(LAB, lab)
    edit_guest(lab, "803", id_maps=[{"type": "gid", "container_id": 33, "host_id": 33, "size": 1}])
    runner = RecordedRunner()
    runner.respond(["dpkg-query"], "ii ")
    runner.respond(["ip", "-j", "addr"], "", 1)
    runner.respond(["nft"], "", 1)
    host = facts(tmp_path, includes=True, subids=True, forward="1")
    (check,) = [c for c in run_lxc_doctor(runner, load_inventory(lab), host) if "subuid" in c.name]
    assert not check.ok and check.fix == "phoenix setup"
    assert check.detail == f"root is not given root:33:1 in {tmp_path / 'subgid'}"


def test_a_low_open_file_limit_fails_with_the_fix(tmp_path: Path) -> None:
    """Guests inherit Phoenix's hard open-file limit (a user namespace cannot raise it, and
    systemd in the guest clamps the gateway's LimitNOFILE to it): below nginx's
    worker_rlimit_nofile, idle connections exhaust a worker's files."""
    from dataclasses import replace

    from phoenix.gateway.limits import FILES_PER_WORKER
    from phoenix.host.doctor import OPEN_FILES_NEEDED

    assert OPEN_FILES_NEEDED == FILES_PER_WORKER
    runner = RecordedRunner()
    runner.respond(["dpkg-query"], "ii ")
    runner.respond(["ip", "-j", "addr"], "", 1)
    runner.respond(["nft"], "", 1)
    base = facts(tmp_path, includes=True, subids=True, forward="1")
    for hard, ok in ((4096, False), (OPEN_FILES_NEEDED, True), (1 << 20, True)):
        checks = run_lxc_doctor(runner, load_inventory(LAB), replace(base, open_files_hard=hard))
        (check,) = [c for c in checks if c.name == "open files"]
        assert check.ok is ok, check
        assert ok or ("4096" in check.detail and "ulimit -Hn" in check.fix), check
