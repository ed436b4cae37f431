"""The loaded inventory and the names of its files: what the loader builds and every other
module of the package reads (so they import this, not the loader, and no import circles)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from phoenix.inventory.models import HypervisorConfig, LxcFile, LxcGuest, VmGuest
from phoenix.inventory.problems import Problem, json_path

HYPERVISOR_FILE = "phoenix_hypervisor_config.json"
LXC_FILE = "phoenix_lxc_configs.json"
VM_FILE = "phoenix_vm_configs.json"


@dataclass
class Inventory:
    """A loaded, validated config dir."""

    config_dir: Path
    hypervisor: HypervisorConfig
    guests: dict[int, LxcGuest]
    vms: dict[int, VmGuest] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Ids present in the files whose entries failed type checks (only while loading):
    # cross-guest checks treat them as existing, so one mistake is not reported twice.
    invalid_ids: set[int] = field(default_factory=set)
    # The top-level keys of phoenix_lxc_configs.json (nvidia_runfile_url...), when valid.
    lxc_file: LxcFile | None = None
    # Each VM's index in the VM file's `vms` list: problems name `vms[INDEX].key`.
    vm_positions: dict[int, int] = field(default_factory=dict)

    @property
    def scripts_dir(self) -> Path:
        """User scripts (application scripts and feature recipes) live here."""
        return self.config_dir / "scripts"

    @property
    def state_dir(self) -> Path:
        """Where Phoenix keeps its host state: journal, lock, CA, setup record."""
        return Path(self.hypervisor.phoenix.state_dir)

    @property
    def nginx_dir(self) -> Path:
        return self.config_dir / "nginx"

    @property
    def hand_written_sites(self) -> list[Path]:
        """The operator's nginx sites (`nginx/sites-available/*`): with them, the gateway
        runs them as they are (compatibility mode), not the config derived from the
        inventory, so it checks no API key."""
        folder = self.nginx_dir / "sites-available"
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def guest(self, ctid: int) -> LxcGuest:
        return self.guests[ctid]

    def vm_at(self, vmid: int, *rest: str | int) -> str:
        """The JSON path of a key of VM `vmid`: `vms[1].network_config.ip`."""
        where = self.vm_positions.get(vmid)
        if where is not None:
            return json_path(["vms", where, *rest])
        # A VM built by hand (tests, callers) has no position: name it by its id.
        return json_path(["vms", 0, *rest]).replace("vms[0]", f"vms[vmid={vmid}]", 1)

    def placement(self) -> dict[int, str]:
        """Guest -> the cluster node it belongs on (its `node`, else the default node);
        empty without `phoenix.nodes` (one node: no placement to keep)."""
        settings = self.hypervisor.phoenix
        if not settings.is_cluster:
            return {}
        out = {}
        for ctid, guest in self.guests.items():
            node = settings.node_of(guest.node)
            if node is not None:
                out[ctid] = node
        for vmid, vm in self.vms.items():
            node = settings.node_of(vm.node)
            if node is not None:
                out[vmid] = node
        return out

    def all_ids(self) -> set[int]:
        return set(self.guests) | set(self.vms)

    def root_disk_gb(self, ctid: int) -> int:
        """The root disk the guest gets: its `storage_size_gb`, or its clone source's disk
        when that is bigger (a clone starts as a copy of its source's disk, and a disk only
        grows; the original tool left such a clone at its source's size)."""
        size = self.guests[ctid].storage_size_gb
        seen = {ctid}
        src = self.guests[ctid].clone_from_ctid
        while src is not None and src in self.guests and src not in seen:
            seen.add(src)
            size = max(size, self.guests[src].storage_size_gb)
            src = self.guests[src].clone_from_ctid
        return size
