"""JSON Schema export of the inventory models, for editors and `phoenix schema`."""

from __future__ import annotations

from typing import Any, Literal

from phoenix.inventory.models import HypervisorConfig, LxcFile


def inventory_schema(which: Literal["lxc", "hypervisor"] | str = "lxc") -> dict[str, Any]:
    model = LxcFile if which == "lxc" else HypervisorConfig
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    if which == "lxc":
        schema["title"] = "Phoenix LXC inventory (phoenix_lxc_configs.json)"
        configs = schema["properties"]["lxc_configs"]
        configs["propertyNames"] = {"pattern": "^[1-9][0-9]{2,8}$"}
    else:
        schema["title"] = "Phoenix hypervisor config (phoenix_hypervisor_config.json)"
    return schema
