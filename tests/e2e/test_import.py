"""`phoenix import` on real LXC: a small lab converged by Phoenix (a template parked after
its snapshot, a clone of it running an application script) is imported by the `phoenix`
command, and `phoenix plan` on the imported inventory shows no changes; existing files are
replaced only with --force.

Runs as root on the isolated lab of `conftest.lxc_host`, with the cached Debian template.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from phoenix.inventory import load_inventory
from phoenix.plan.desired import desired_settings
from phoenix.plan.events import CollectingReporter
from phoenix.plan.run import converge
from tests.e2e.conftest import LxcHost, destroy_guests

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

BASE, APP = 7770, 7771
APP_SH = "#!/bin/sh\nset -eu\nmkdir -p /var/lib/phxt && echo ok > /var/lib/phxt/imported\n"


@dataclass
class ImportLab:
    host: LxcHost
    etc: Path
    out: Path
    state: Path

    def phoenix(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real command, as a user runs it."""
        return subprocess.run(
            [sys.executable, "-m", "phoenix", "-c", str(self.out), *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def import_(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.phoenix(
            "import",
            "--lxc-path",
            str(self.host.lxc_path),
            "--state-dir",
            str(self.state),
            "--template",
            self.host.template,
            *args,
        )


def original(host: LxcHost) -> dict[str, Any]:
    def net(n: int) -> dict[str, str]:
        return {"name": "eth0", "bridge": host.bridge, "ip": host.address(n), "gw": host.gateway}

    return {
        str(BASE): {
            "name": "phxt-imp-base",
            "memory_mb": 384,
            "swap_mb": 128,
            "cores": 1,
            "storage_size_gb": 4,
            "template": host.template,
            "network_config": net(170),
            "template_snapshot_name": "golden",
        },
        str(APP): {
            "name": "phxt-imp-app",
            "memory_mb": 512,
            "swap_mb": 256,
            "cores": 2,
            "storage_size_gb": 5,
            "clone_from_ctid": str(BASE),
            "network_config": net(171),
            "pct_options": ["nesting=1"],
            "lxc_options": ["lxc.environment: PHXT_MODE=imported"],
            "application_script": "app.sh",
            "start_at_boot": True,
            "boot_order": 3,
        },
    }


@pytest.fixture(scope="module")
def lab(lxc_host: LxcHost, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImportLab]:
    root = tmp_path_factory.mktemp("import")
    etc, state = root / "etc", root / "state"
    (etc / "scripts").mkdir(parents=True)
    (etc / "scripts" / "app.sh").write_text(APP_SH)
    hyp = {
        "phoenix": {
            "driver": "lxc",
            "lxc_path": str(lxc_host.lxc_path),
            "template_cache": str(lxc_host.template_cache),
            "state_dir": str(state),
        }
    }
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hyp))
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": original(lxc_host)}))
    the_lab = ImportLab(lxc_host, etc, root / "imported", state)
    try:
        built = converge(
            load_inventory(etc), lxc_host.driver(), reporter=CollectingReporter(), state_dir=state
        )
        assert built.result.ok, (built.result.failed, built.result.blocked)
        yield the_lab
    finally:
        destroy_guests(lxc_host.driver(), [APP, BASE])


def test_an_imported_lab_plans_no_change(lab: ImportLab) -> None:
    result = lab.import_()
    assert result.returncode == 0, result.stderr
    imported = json.loads((lab.out / "phoenix_lxc_configs.json").read_text())["lxc_configs"]
    assert sorted(imported) == [str(BASE), str(APP)]
    # The lineage and the parked template are read back from the host.
    assert imported[str(APP)]["clone_from_ctid"] == str(BASE)
    assert imported[str(BASE)]["template_snapshot_name"] == "golden"
    assert imported[str(APP)]["lxc_options"] == ["lxc.environment: PHXT_MODE=imported"]
    # The application's marker is inside the clone: the report names it.
    assert f"guest {APP}: recipes applied inside (application)" in result.stderr
    assert lab.phoenix("validate").returncode == 0
    plan = lab.phoenix("plan", "--json")
    assert plan.returncode == 0, plan.stderr
    data = json.loads(plan.stdout)
    assert data["up_to_date"], [(g["ctid"], g["steps"]) for g in data["guests"]]
    # And it says what the original said, but for the recipes and the MAC it was given.
    first = load_inventory(lab.etc)
    again = load_inventory(lab.out)
    for ctid in (BASE, APP):
        want, got = desired_settings(first, ctid), desired_settings(again, ctid)
        assert got.net is not None and got.net.mac is not None  # the MAC LXC was given
        assert replace(got, net=replace(got.net, mac=None)) == want, ctid


def test_existing_files_are_replaced_only_with_force(lab: ImportLab) -> None:
    lxc = lab.out / "phoenix_lxc_configs.json"
    if not lxc.exists():
        assert lab.import_().returncode == 0
    before = lxc.read_bytes()
    refused = lab.import_("--ids", str(APP))
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"error: {lxc} already exists: pass --force to write (other keys of an existing file stay)"
    )
    assert lxc.read_bytes() == before
    forced = lab.import_("--ids", str(APP), "--force")
    assert forced.returncode == 0, forced.stderr
    assert list(json.loads(lxc.read_text())["lxc_configs"]) == [str(APP)]
