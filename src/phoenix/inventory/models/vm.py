"""`phoenix_vm_configs.json`: just enough of a VM to place it in the dependency graph."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, StrictBool, StrictStr

from phoenix.inventory.models.fields import Ctid, HostName, Model


class VmGuest(Model):
    """Just enough of a VM entry to place it in the dependency graph."""

    vmid: Ctid
    name: HostName
    is_template: StrictBool = False
    template_snapshot_name: StrictStr | None = None
    clone_from_vmid: Ctid | None = None
    dependencies: list[Ctid] = Field(default_factory=list)
    network_config: dict[str, Any] = Field(default_factory=dict)

    # VM entries are not provisioned by Phoenix yet: their other keys are not our business.
    model_config = ConfigDict(extra="ignore")


class VmFile(Model):
    """`phoenix_vm_configs.json`."""

    vm_defaults: dict[str, Any] = Field(default_factory=dict)
    vms: list[VmGuest] = Field(default_factory=list)
