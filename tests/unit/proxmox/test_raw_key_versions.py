"""Which raw `lxc.*` keys a node keeps, by its release: pve-container's
`src/PVE/LXC/Config.pm` (`valid_lxc_conf_keys`) added the `lxc.init.*` and
`lxc.environment` keys in 6.0.0 and the other `lxc.environment.*` keys in 6.0.15; a key the
node does not know is dropped with a warning, so it never reads back and every run would
restart the guest. When the node's pve-container release is unknown, it is derived from
pve-manager's (PVE 9.1 ships 6.0.15, 9.0 an earlier 6.0.x, 8.x a 5.x)."""

from __future__ import annotations

import pytest

from phoenix.drivers.proxmox.commands import (
    parse_container_version,
    raw_key_problem,
    resize,
    template,
)
from phoenix.errors import DriverError


@pytest.mark.parametrize(
    ("version", "key", "kept"),
    [
        ((9, 1), "lxc.environment.hooks", True),
        ((9, 0), "lxc.environment.hooks", False),
        ((9, 0), "lxc.init.cwd", True),
        ((8, 4), "lxc.init.cwd", False),
        ((8, 4), "lxc.cgroup2.devices.allow", True),
    ],
)
def test_a_raw_key_is_kept_from_the_release_that_knows_it(
    version: tuple[int, int], key: str, kept: bool
) -> None:
    assert (raw_key_problem(key, version) is None) == kept


def test_a_dropped_key_names_the_release_found_and_the_one_needed() -> None:
    assert raw_key_problem("lxc.environment.runtime", (9, 0)) == (
        "lxc.environment.runtime: Proxmox VE 9.0, pve-container 6.0.0 does not know this key "
        "and drops it (it is kept from pve-container 6.0.15 on); remove it from lxc_options "
        "or upgrade the node"
    )
    problem = raw_key_problem("lxc.init.uid", (8, 4)) or ""
    assert problem.startswith("lxc.init.uid: Proxmox VE 8.4, pve-container 5.0.0 does not")


def test_pveversion_container_lines_parse_with_a_missing_patch_as_zero() -> None:
    assert parse_container_version("6.0.15") == (6, 0, 15)
    assert parse_container_version(" 6.0 ") == (6, 0, 0)
    assert parse_container_version("unknown") is None
    assert (
        raw_key_problem("lxc.environment.hooks", None, parse_container_version("6.0")) is not None
    )


def test_a_container_with_snapshots_cannot_become_a_template() -> None:
    assert template(102, []) == ["pct", "template", "102"]
    with pytest.raises(DriverError) as refused:
        template(102, ["pre", "post"])
    assert str(refused.value) == (
        "guest 102 cannot become a template: it has snapshots (pre, post) and `pct template` "
        "refuses a container with snapshots. Use either template_snapshot_name (clones from "
        "a snapshot) or is_template, not both, or delete the snapshots "
        "(`pct delsnapshot 102 <name>`)"
    )


def test_pve_9_1_moves_the_runtime_environment_into_env() -> None:
    assert raw_key_problem("lxc.environment.runtime", (9, 1)) == (
        "lxc.environment.runtime: Proxmox VE 9.1 moves it into the container's `env` option, "
        "so it never reads back as written; set the variables with `pct set <vmid> --env` "
        "instead and remove it from lxc_options"
    )


def test_a_disk_is_only_grown_and_the_refusal_says_how_to_shrink_it() -> None:
    assert resize(102, 10, 10) is None
    assert resize(102, 12, 10) == ["pct", "resize", "102", "rootfs", "12G"]
    with pytest.raises(DriverError) as refused:
        resize(102, 8, 10)
    assert str(refused.value) == (
        "guest 102's disk is 10 GiB and the inventory asks for 8 GiB: Proxmox only grows "
        "disks. Raise storage_size_gb, or recreate the guest (--recreate) to get a smaller disk"
    )
