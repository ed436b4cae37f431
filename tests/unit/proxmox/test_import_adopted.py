"""`phoenix import` of guests Phoenix never managed (made by hand or by the original tool):
what the inventory cannot hold stays on the node and is named in the report, secrets are
never written, and a plan right after changes nothing. Also the command's rules: --ids,
--force, clear one-line errors, guests on other nodes named, not imported; a VM made by hand
imported with its VLAN named and its cloud-init password never written."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phoenix.cli.app import app
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.ownership import OwnedRaw
from phoenix.drivers.proxmox.vmdriver import OWNED_FILE, ProxmoxVmDriver
from phoenix.drivers.split import SplitDriver
from phoenix.inventory import validate_config_dir
from phoenix.inventory.problems import errors
from phoenix.plan.planner import Planner
from phoenix.recipes import registry
from phoenix.runners.base import CommandResult, Stdin
from tests.unit.proxmox.conftest import data
from tests.unit.proxmox.fakenode import FakeNode

SECRETS = ("hunter2", "supersecret-token", "hf_abcdef", "$5$vm-password-hash")
# A guest made by hand: a secret in its notes, in `env` and in a raw environment line.
CONF_970 = f"""arch: amd64
cores: 2
description: root password is {SECRETS[0]}
env: HF_TOKEN={SECRETS[2]}
hostname: notes
memory: 1024
net0: name=eth0,bridge=vmbr0,hwaddr=BC:24:11:00:00:70,ip=10.0.0.70/24,gw=10.0.0.1,type=veth
ostype: debian
rootfs: local-zfs:subvol-970-disk-0,size=8G
swap: 512
tags: lab;ai
unprivileged: 1
lxc.environment: API_TOKEN={SECRETS[1]}
"""


class Cluster:
    """The fake node, with a container on another node in the cluster's list."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        result = self.node.run(argv, input=input, env=env, timeout=timeout)
        if list(argv[:3]) == ["pvesh", "get", "/cluster/resources"]:
            rows = [
                *json.loads(result.stdout),
                {"id": "lxc/980", "vmid": 980, "type": "lxc", "node": "pve2", "name": "far"},
            ]
            return CommandResult(0, json.dumps(rows), "", result.argv)
        return result


@pytest.fixture
def node(tmp_path: Path) -> FakeNode:
    made = FakeNode(
        tmp_path / "node",
        version="9.1.3",
        storages={"local-zfs": "zfspool", "quickOS-lxc-disks": "zfspool",
                  "fastData-shared-bulk-data": "zfspool"},
    )  # fmt: skip
    made.put_conf(960, data("conf_960_vlan_gpu_bind.conf"))
    made.path("/etc/pve/firewall").mkdir(parents=True)
    made.path("/etc/pve/firewall/960.fw").write_text(data("fw_960_custom.fw"))
    made.put_conf(950, data("conf_950_original_tool.conf"))
    made.put_conf(970, CONF_970)
    made.running |= {950, 960, 970}
    # A VM made by hand: a cloud-init password (a secret) and a VLAN on its NIC.
    vm = ["qm", "create", "1002", "--name", "drphoenix", "--memory", "2048", "--cores", "2"]
    vm += ["--agent", "enabled=1", "--scsi0", "local-zfs:vm-1002-disk-0,size=32G"]
    vm += ["--net0", "virtio=BC:24:11:00:10:02,bridge=vmbr0,tag=30", "--ciuser", "ops"]
    vm += ["--ipconfig0", "ip=10.0.0.102/24,gw=10.0.0.1", "--cipassword", SECRETS[3]]
    assert made.run(vm).ok
    assert made.run(["qm", "start", "1002"]).ok
    return made


def cli(monkeypatch: pytest.MonkeyPatch, node: FakeNode, out: Path, *args: str, state: Path) -> Any:
    import phoenix.drivers.factory as factory

    def make(settings: Any, name: str | None = None, offline: bool = False) -> ProxmoxDriver:
        owned = OwnedRaw.in_state_dir(Path(settings.state_dir))
        return ProxmoxDriver(Cluster(node), settings.node, sleep=lambda _: None, owned=owned)

    def vms(settings: Any) -> ProxmoxVmDriver:
        owned = OwnedRaw(Path(settings.state_dir) / OWNED_FILE)
        return ProxmoxVmDriver(Cluster(node), settings.node, sleep=lambda _: None, owned=owned)

    monkeypatch.setattr(factory, "make_driver", make)
    monkeypatch.setattr(factory, "vm_backend", vms)
    base = ["-c", str(out), "--driver", "proxmox", "import", "--node", "pve"]
    return CliRunner().invoke(app, [*base, "--state-dir", str(state), *args])


def files_text(out: Path) -> str:
    return "".join(p.read_text() for p in sorted(out.iterdir()))


def test_an_adopted_node_imports_with_what_it_cannot_hold_named(
    tmp_path: Path, node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, state = tmp_path / "etc", tmp_path / "state"
    result = cli(monkeypatch, node, out, "--template", "local:vztmpl/d.tar.zst", state=state)
    assert result.exit_code == 0, result.output
    inventory, problems = validate_config_dir(out, registry, "proxmox")
    assert inventory is not None and errors(problems) == []
    assert sorted(inventory.guests) == [950, 960, 970] and sorted(inventory.vms) == [1002]
    containers = ProxmoxDriver(node, "pve", owned=OwnedRaw.in_state_dir(state))
    vms = ProxmoxVmDriver(node, "pve", owned=OwnedRaw(state / OWNED_FILE))
    plan = Planner(inventory, SplitDriver(containers, vms, frozenset(inventory.vms)))
    assert {g.ctid: g.steps for g in plan.plan().guests if g.steps} == {}
    report = result.output
    for named in (
        # 960: VLAN and the rest of net0, its devices and bind mount, the .fw file's own parts
        "guest 960: net0 settings tag=20, mtu=9000, rate=50, ip6=fd00::60/64, gw6=fd00::1, "
        "type=veth",
        "guest 960: device dev0 `/dev/nvidia0`",
        "guest 960: mount point mp0 `/srv/models,mp=/models,backup=0,replicate=0`",
        "guest 960: raw line `lxc.cgroup2.devices.allow: c 195:* rwm`",
        "guest 960: firewall section [IPSET trusted]",
        "guest 960: firewall option `ipfilter: 1`",
        "guest 960: firewall rule `GROUP webservers -i net0 # shared web rules`",
        "guest 960: firewall rule `IN ACCEPT -source 10.0.0.153 -p tcp -dport 8000`",
        # 950: the original tool's GPU lines and AppArmor, its volume and its env
        "guest 950: raw line `lxc.mount.entry: /dev/nvidia1 dev/nvidia1 none "
        "bind,optional,create=file`",
        "guest 950: AppArmor profile `unconfined`",
        "guest 950: mount point mp0 `fastData-shared-bulk-data:subvol-950-disk-1,"
        "mp=/vllm_models,size=50G`",
        "guest 950: option `env` (value not shown: it may hold a secret)",
        # 970: secrets named, never shown; harmless options shown
        "guest 970: option `description` (value not shown: it may hold a secret)",
        "guest 970: raw line `lxc.environment` setting API_TOKEN (value not shown: a secret)",
        "guest 970: option `tags: lab;ai`",
        # 1002, a VM: its VLAN kept on the node, its cloud-init password named
        "guest 1002: net0 settings tag=30",
        "guest 1002: option `cipassword` (the cloud-init password or custom files; value not "
        "written)",
        # not imported: the container on another node
        "guest 980: container on node pve2, not on the node Phoenix drives (pve)",
    ):
        assert named in report, named
    # 970's secret line is the one thing a plan changes (Phoenix wrote none of it: no).
    assert "`phoenix plan` will change" not in report
    for secret in SECRETS:
        assert secret not in files_text(out) and secret not in report
    written = json.loads((out / "phoenix_lxc_configs.json").read_text())["lxc_configs"]
    assert written["960"]["network_config"] == {
        "name": "eth0", "bridge": "vmbr0", "ip": "10.0.0.60/24", "gw": "10.0.0.1"
    }  # fmt: skip
    assert written["950"]["gpu_assignment"] == "1"  # read from the original tool's GPU lines
    assert "lxc_options" not in written["970"]


def test_ids_pick_guests_and_force_guards_every_file(
    tmp_path: Path, node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, state = tmp_path / "etc", tmp_path / "state"
    first = cli(monkeypatch, node, out, "--ids", "960", "--ids", "950", state=state)
    assert first.exit_code == 0, first.output
    lxc = out / "phoenix_lxc_configs.json"
    assert list(json.loads(lxc.read_text())["lxc_configs"]) == ["950", "960"]
    before = files_text(out)
    again = cli(monkeypatch, node, out, "--ids", "970", state=state)
    assert again.exit_code == 1
    assert again.output.strip().splitlines() == [
        f"error: {lxc} already exists: pass --force to write (other keys of an existing file stay)"
    ]
    assert files_text(out) == before
    forced = cli(monkeypatch, node, out, "--ids", "970", "--force", state=state)
    assert forced.exit_code == 0, forced.output
    assert list(json.loads(lxc.read_text())["lxc_configs"]) == ["970"]
    # The hypervisor config: the original tool's keys stay; a changed phoenix block needs
    # --force too, and says what would change.
    hv = out / "phoenix_hypervisor_config.json"
    hv.write_text(json.dumps({"timezone": "Europe/Paris", "phoenix": {"node": "pve1"}}))
    lxc.unlink()
    refused = cli(monkeypatch, node, out, state=state)
    assert refused.exit_code == 1 and "phoenix block: node: 'pve1' -> 'pve'" in refused.output
    assert not lxc.exists()
    assert cli(monkeypatch, node, out, "--force", state=state).exit_code == 0
    kept = json.loads(hv.read_text())
    assert kept["timezone"] == "Europe/Paris" and kept["phoenix"]["node"] == "pve"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ids", "abc"], "error: --ids: 'abc' is not a guest id (expected numbers such as "),
        (["--ids", "0101"], "error: --ids: '0101' is not a guest id"),
        (["--ids", "950,4242"], "error: no guest 4242 on the Proxmox cluster of node pve"),
    ],
)
def test_bad_ids_are_one_line_errors_and_write_nothing(
    tmp_path: Path,
    node: FakeNode,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    out = tmp_path / "etc"
    result = cli(monkeypatch, node, out, *args, state=tmp_path / "state")
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert not (out / "phoenix_lxc_configs.json").exists()


def test_the_report_as_json(
    tmp_path: Path, node: FakeNode, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "etc"
    result = cli(monkeypatch, node, out, "--json", "--ids", "960,970", state=tmp_path / "state")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["guests"] == [960, 970]
    assert report["written"] == [
        str(out / "phoenix_lxc_configs.json"),
        str(out / "phoenix_hypervisor_config.json"),
    ]
    kinds = {(n["guest"], n["kind"]) for n in report["notes"]}
    assert {(960, "kept"), (970, "kept"), (None, "omitted")} <= kinds
    assert all(secret not in result.stdout for secret in SECRETS)
