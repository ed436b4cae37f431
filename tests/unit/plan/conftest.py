"""Helpers for planner/executor tests: a config dir written to tmp_path, a fake driver."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from phoenix.cli.gateway_app import GATEWAY
from phoenix.drivers.fake import FakeDriver
from phoenix.inventory import Inventory, load_inventory
from phoenix.plan.events import CollectingReporter
from phoenix.plan.planner import PlanOptions
from phoenix.plan.run import Outcome, converge
from phoenix.recipes import runner

APP_SCRIPT = "#!/bin/sh\necho app for $PHOENIX_CTID\n"


def guest(name: str, last_octet: int, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "memory_mb": 512,
        "cores": 1,
        "storage_size_gb": 4,
        "network_config": {
            "name": "eth0",
            "bridge": "phxtbr0",
            "ip": f"10.250.0.{last_octet}/24",
            "gw": "10.250.0.1",
        },
    }
    entry.update(extra)
    if "clone_from_ctid" not in entry and "template" not in entry:
        entry["template"] = "debootstrap:bookworm"
    return entry


def lab() -> dict[str, dict[str, Any]]:
    """A template with base_setup, a clone with an application, an independent guest."""
    return {
        "900": guest(
            "phxt-base",
            90,
            features=["base_setup"],
            template_snapshot_name="golden",
            enable_lifecycle_snapshots=True,
        ),
        "101": guest(
            "phxt-app",
            11,
            clone_from_ctid="900",
            features=["base_setup"],
            application_script="app.sh",
            boot_order=1,
        ),
        "102": guest("phxt-solo", 12, boot_order=2),
    }


class Lab:
    """A config dir on disk plus a fake driver; `converge()` runs the real executor."""

    def __init__(self, root: Path, guests: dict[str, dict[str, Any]]) -> None:
        self.root = root
        self.etc = root / "etc"
        self.state = root / "state"
        (self.etc / "scripts").mkdir(parents=True)
        (self.etc / "scripts" / "app.sh").write_text(APP_SCRIPT)
        self.driver = FakeDriver(runner)
        self.write(guests)

    def write(self, guests: dict[str, dict[str, Any]]) -> None:
        hyp = {"timezone": "Europe/Berlin", "phoenix": {"state_dir": str(self.state)}}
        (self.etc / "phoenix_hypervisor_config.json").write_text(json.dumps(hyp))
        (self.etc / "phoenix_lxc_configs.json").write_text(json.dumps({"lxc_configs": guests}))

    @property
    def inventory(self) -> Inventory:
        return load_inventory(self.etc)

    def converge(
        self,
        ids: list[int] | None = None,
        options: PlanOptions | None = None,
        parallel: int = 4,
        reporter: CollectingReporter | None = None,
    ) -> Outcome:
        # The gateway application handed in, as the CLI does.
        options = dataclasses.replace(options or PlanOptions(), gateway=GATEWAY)
        return converge(
            self.inventory,
            self.driver,
            ids,
            options,
            reporter or CollectingReporter(),
            parallel=parallel,
        )

    def mutations_during(self, action: Callable[[], object]) -> list[tuple[str, ...]]:
        before = len(self.driver.log.mutations())
        action()
        return self.driver.log.mutations()[before:]


@pytest.fixture
def make_lab(tmp_path: Path) -> Callable[..., Lab]:
    def make(guests: dict[str, dict[str, Any]] | None = None) -> Lab:
        return Lab(tmp_path, guests if guests is not None else lab())

    return make
