"""The driver contract check catches what `isinstance` on the Protocol lets through, and
every driver Phoenix ships passes it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from phoenix.drivers.factory import OfflineDriver
from phoenix.drivers.lxc import LxcDriver
from phoenix.drivers.proxmox.cluster import ClusterDriver
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.qemu.driver import QemuDriver
from phoenix.drivers.split import SplitDriver
from phoenix.runners.base import CommandResult
from tests.driver_contract import contract_breaches


@pytest.mark.parametrize(
    "driver", [LxcDriver, ProxmoxDriver, ClusterDriver, OfflineDriver, QemuDriver, SplitDriver]
)
def test_every_shipped_driver_keeps_the_contract(driver: type) -> None:
    assert contract_breaches(driver) == []


class Drifted(LxcDriver):
    """Has every name the protocol has, so isinstance() says yes; the signatures drifted."""

    def start(self, ctid: int) -> None:  # type: ignore[override]
        del ctid

    def stop(self, ctid: int, timeout: float = 5.0, force: bool = False) -> None:
        del ctid, timeout, force

    def resize(self, ctid: int, disk_gb: str, extra: int) -> None:  # type: ignore[override]
        del ctid, disk_gb, extra

    def exec(  # type: ignore[override]
        self, ctid: int, argv: Sequence[str], env: dict[str, str] | None = None
    ) -> CommandResult:
        del ctid, argv, env
        return CommandResult(0, "", "")


def test_a_drifted_signature_is_a_breach() -> None:
    breaches = contract_breaches(Drifted)
    assert "start(): parameter 'timeout' is missing" in breaches
    assert "stop(): 'timeout' defaults to 5.0" in breaches
    assert "resize(): 'disk_gb' is <class 'str'>, not <class 'int'>" in breaches
    assert "resize(): extra parameter 'extra' is required" in breaches
    assert "exec(): 'env' is positional or keyword" in breaches
    assert "exec(): parameter 'stdin' is missing" in breaches
    assert not any("stop()" in b and "extra" in b for b in breaches), "optional extras are fine"
