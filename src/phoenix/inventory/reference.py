"""The inventory reference in Markdown, generated from the models.

The README embeds this output between markers; a test keeps the two in sync, so the
documentation cannot drift from what `phoenix validate` accepts.
"""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from phoenix.inventory import models

BEGIN = "<!-- BEGIN INVENTORY REFERENCE (generated: python -m phoenix.inventory.reference) -->"
END = "<!-- END INVENTORY REFERENCE -->"

SECTIONS: list[tuple[str, type[BaseModel], str]] = [
    (
        "Container (`lxc_configs.<CTID>`)",
        models.LxcGuest,
        "One entry per container, keyed by CTID.",
    ),
    ("`network_config`", models.NetworkConfig, "The guest's NIC."),
    ("`firewall`", models.FirewallConfig, "Firewall for the guest's traffic."),
    ("`firewall.rules[]`", models.FirewallRuleModel, "One rule, Proxmox semantics."),
    ("`health_check`", models.HealthCheck, "Checked after setup, with retries."),
    ("`gateway`", models.GatewayConfig, "Additive block that makes a guest the API gateway."),
    ("`gateway.path_routes[]`", models.PathRoute, "A path on the gateway's main server."),
    ("`gateway.host_routes[]`", models.HostRoute, "A whole virtual host."),
    ("`gateway.api_keys[]`", models.ApiKey, "A client key (`phoenix gateway key add`)."),
    (
        "`gateway.operator_keys[]`",
        models.OperatorKey,
        "A key for the status endpoints (`phoenix gateway key add --operator`).",
    ),
    (
        "VM (`phoenix_vm_configs.json`, `vms[]`)",
        models.VmGuest,
        "One entry per VM; `vm_defaults` gives template, cores, memory_mb, disk_size_gb, "
        "storage_pool, network_bridge, start_at_boot and user_config to every VM that does "
        "not set its own.",
    ),
    ("VM `network_config`", models.VmNetworkConfig, "The VM's NIC, set by cloud-init."),
    ("VM `user_config`", models.UserConfig, "The login cloud-init creates."),
    ("VM `volumes[]`", models.VmVolume, "An NFS export mounted inside the VM."),
    (
        "VM `docker_stacks[]`",
        models.DockerStack,
        "A compose stack deployed in the VM (docs/vms.md).",
    ),
    (
        "Hypervisor config `phoenix` block",
        models.DriverSettings,
        "Additive block of `phoenix_hypervisor_config.json`: driver and paths.",
    ),
]


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        members = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(members))
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "object"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    scalars: dict[Any, str] = {int: "integer", str: "string", bool: "boolean", float: "number"}
    if annotation in scalars:
        return scalars[annotation]
    return str(getattr(annotation, "__name__", annotation))


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "`[]`" if value == [] else "`{}`" if value == {} else "defaults"
    if field.default is PydanticUndefined:
        return "required"
    if field.default is None:
        return "—"
    if isinstance(field.default, bool):
        return f"`{str(field.default).lower()}`"
    return f"`{field.default}`"


def render_reference() -> str:
    lines: list[str] = []
    for title, model, intro in SECTIONS:
        lines += [
            f"#### {title}",
            "",
            intro,
            "",
            "| key | type | default | meaning |",
            "|---|---|---|---|",
        ]
        for name, field in model.model_fields.items():
            key = field.alias or name
            meaning = (field.description or "").replace("|", "\\|")
            lines.append(
                f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {meaning} |"
            )
        lines.append("")
    return "\n".join(lines)


def update_file(path: Path) -> bool:
    """Replace the block between the markers in `path`; True when it changed."""
    text = path.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = f"{head}{BEGIN}\n{render_reference()}\n{END}{tail}"
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        print("updated" if update_file(Path(sys.argv[2])) else "unchanged")
    else:
        print(f"{BEGIN}\n{render_reference()}\n{END}")
