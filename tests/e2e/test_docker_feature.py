"""The docker feature in a real unprivileged LXC guest (nesting=1, keyctl=1): the Docker
daemon runs and starts a container from an image made locally with `docker import` of a
tarball holding Debian's busybox-static (no registry is reachable or used)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from phoenix.inventory import load_inventory
from phoenix.plan.events import CollectingReporter
from phoenix.plan.run import converge
from tests.e2e.conftest import LxcHost, destroy_guests

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

CTID = 7753
ROOT = Path(__file__).resolve().parents[2]
IMPORT = """set -eu
command -v busybox >/dev/null || { apt-get install -y -q busybox-static >/dev/null; }
rm -rf /tmp/img && mkdir -p /tmp/img/bin
cp "$(command -v busybox)" /tmp/img/bin/busybox
ln -s busybox /tmp/img/bin/sh && ln -s busybox /tmp/img/bin/echo
tar -C /tmp/img -cf /tmp/img.tar .
docker import /tmp/img.tar phoenix/busybox:local >/dev/null
docker run --rm phoenix/busybox:local /bin/busybox echo hello from a container
"""


def test_docker_runs_a_container_in_an_unprivileged_guest(
    lxc_host: LxcHost, tmp_path: Path
) -> None:
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    hypervisor = json.loads((ROOT / "examples/lab/phoenix_hypervisor_config.json").read_text())
    hypervisor["phoenix"].update(
        lxc_path=str(lxc_host.lxc_path), state_dir=str(state),
        template_cache=str(lxc_host.template_cache),
    )  # fmt: skip
    guest: dict[str, Any] = {
        "name": "phxt-docker", "template": lxc_host.template, "memory_mb": 1024,
        "swap_mb": 256, "cores": 1, "storage_size_gb": 4, "unprivileged": True,
        "pct_options": ["nesting=1", "keyctl=1"],
        "network_config": {
            "name": "eth0", "bridge": lxc_host.bridge, "ip": lxc_host.address(53),
            "gw": lxc_host.gateway,
        },
        "features": ["docker"],
    }  # fmt: skip
    (etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hypervisor))
    (etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": {str(CTID): guest}}))
    driver = lxc_host.driver()
    try:
        outcome = converge(
            load_inventory(etc), driver, None, reporter=CollectingReporter(), state_dir=state
        )
        assert outcome.result.ok, outcome.result
        ran = driver.exec(CTID, ["sh", "-c", IMPORT], timeout=300)
        assert ran.ok, ran.stdout + ran.stderr
        assert ran.stdout.strip().endswith("hello from a container")
        again = lxc_host.driver()
        outcome = converge(
            load_inventory(etc), again, None, reporter=CollectingReporter(), state_dir=state
        )
        assert outcome.result.ok and again.log.mutations() == []
    finally:
        destroy_guests(lxc_host.driver(), [CTID])
