"""JSON Schema export of the inventory models, for editors and `phoenix schema`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from phoenix.inventory.models import HypervisorConfig, LxcFile, VmFile

SCHEMA_FILES = ("lxc", "vm", "hypervisor")

_MODELS: dict[str, tuple[type[BaseModel], str]] = {
    "lxc": (LxcFile, "Phoenix LXC inventory (phoenix_lxc_configs.json)"),
    "vm": (VmFile, "Phoenix VM inventory (phoenix_vm_configs.json)"),
    "hypervisor": (HypervisorConfig, "Phoenix hypervisor config (phoenix_hypervisor_config.json)"),
}


def inventory_schema(which: Literal["lxc", "vm", "hypervisor"] | str = "lxc") -> dict[str, Any]:
    model, title = _MODELS[which]
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = title
    if which == "lxc":
        configs = schema["properties"]["lxc_configs"]
        configs["propertyNames"] = {"pattern": "^[1-9][0-9]{2,8}$"}
    return schema
