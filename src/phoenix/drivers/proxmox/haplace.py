"""Proxmox HA placing a guest (`placement: ha`): its HA resource and its node affinity.

Phoenix writes what HA needs and then accepts the node HA chose. Per version:

- PVE 9: the resource (`pvesh create /cluster/ha/resources --sid ct:N --state started`;
  a VM's is `vm:N`),
  then a node-affinity rule naming it (`/cluster/ha/rules`, pve-ha-manager
  `src/PVE/HA/Rules/NodeAffinity.pm`: `nodes` as `<node>[:<pri>]`, `strict`). HA groups are
  migrated to rules there and refused (`ha groups have been migrated to rules`), so is a
  resource's `group`. A resource sits in at most one node-affinity rule ("resource 'ct:N'
  is already used in another node affinity rule"), and a rule should name configured
  resources only: the resource is made first.
- PVE 8: an HA group (`/cluster/ha/groups`, `nodes`, `restricted`; pve-ha-manager
  `src/PVE/HA/Groups.pm`) made first, then the resource with `--group`.

What an administrator set is kept: a resource that exists is adopted as it is (its
requested state, limits, comment); a node affinity that is not Phoenix's (another rule
naming the resource, or another group) is left to decide, and Phoenix writes none of its
own. Phoenix's own rule or group (`phoenix-ct-N`, a VM's `phoenix-vm-N`) follows the
inventory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from phoenix.digits import is_digits
from phoenix.drivers.base import HaPlacement
from phoenix.drivers.proxmox import ha
from phoenix.drivers.proxmox.pvesh import pvesh_get

# pve-ha-manager: node-affinity rules replace HA groups from Proxmox VE 9.0.
RULES_SINCE = (9, 0)
COMMENT = "written by Phoenix (placement: ha)"

Props = dict[str, str]


def service_id(ctid: int, kind: str = "ct") -> str:
    """The guest's HA resource id: `ct:N` for a container, `vm:N` for a VM (pve-ha-manager
    `src/PVE/HA/Resources/PVECT.pm`, `PVEVM.pm` `type`)."""
    return f"{kind}:{ctid}"


def affinity_id(ctid: int, kind: str = "ct") -> str:
    """The id of Phoenix's rule (PVE 9) or group (PVE 8) for the guest (`pve-configid`)."""
    return f"phoenix-{kind}-{ctid}"


@dataclass(frozen=True)
class HaConfig:
    """The cluster's HA configuration as one run read it: resources by sid, and either
    node-affinity rules (PVE 9, `rules` not None) or groups (PVE 8), by id."""

    resources: dict[str, Props]
    rules: dict[str, Props] | None
    groups: dict[str, Props]


@dataclass(frozen=True)
class HaAction:
    detail: str
    argv: list[str]


def _rows(data: Any, key: str) -> dict[str, Props]:
    out: dict[str, Props] = {}
    for row in data if isinstance(data, list) else []:
        if isinstance(row, Mapping) and key in row:
            out[str(row[key])] = {str(k): str(v) for k, v in row.items()}
    return out


def parse_resources(data: Any) -> dict[str, Props]:
    return _rows(data, "sid")


def parse_rules(data: Any) -> dict[str, Props]:
    return _rows(data, "rule")


def parse_groups(data: Any) -> dict[str, Props]:
    return _rows(data, "group")


def resources_cmd() -> list[str]:
    return ha.resources_cmd()


def rules_cmd() -> list[str]:
    return pvesh_get("/cluster/ha/rules")


def groups_cmd() -> list[str]:
    return pvesh_get("/cluster/ha/groups")


def node_priorities(text: str) -> dict[str, int]:
    """`pve1:2,pve2` -> {pve1: 2, pve2: 0} (pve-ha-manager `parse_node_priority`)."""
    out: dict[str, int] = {}
    for item in filter(None, (i.strip() for i in text.split(","))):
        node, _, priority = item.partition(":")
        out[node] = int(priority) if is_digits(priority) else 0
    return out


def _flag(props: Props, key: str) -> bool:
    return props.get(key, "0") in ("1", "true", "True")


def _bit(value: bool) -> str:
    return "1" if value else "0"


def _same(props: Props, wanted: HaPlacement, strict_key: str) -> bool:
    nodes = node_priorities(props.get("nodes", ""))
    return nodes == dict(wanted.nodes) and _flag(props, strict_key) == wanted.strict


def _create_resource(sid: str, group: str | None) -> HaAction:
    argv = ["pvesh", "create", "/cluster/ha/resources", "--sid", sid, "--state", "started"]
    if group is not None:
        argv += ["--group", group]
    return HaAction(f"add {sid} to Proxmox HA (requested state started)", argv)


def _rule_actions(config: HaConfig, sid: str, name: str, wanted: HaPlacement) -> list[HaAction]:
    assert config.rules is not None
    out = [] if sid in config.resources else [_create_resource(sid, None)]
    theirs = [
        rule
        for rule, props in config.rules.items()
        if rule != name
        and props.get("type") == "node-affinity"
        and sid in props.get("resources", "").split(",")
    ]
    if theirs or not wanted.nodes:  # the administrator's rule decides, or nothing to say
        return out
    nodes, strict = wanted.node_list(), _bit(wanted.strict)
    ours = config.rules.get(name)
    if ours is None:
        argv = ["pvesh", "create", "/cluster/ha/rules", "--rule", name]
        argv += ["--type", "node-affinity", "--resources", sid, "--nodes", nodes]
        argv += ["--strict", strict, "--comment", COMMENT]
        out.append(HaAction(f"HA node-affinity rule {name}: {nodes} (strict {strict})", argv))
    elif not _same(ours, wanted, "strict"):
        argv = ["pvesh", "set", f"/cluster/ha/rules/{name}", "--type", "node-affinity"]
        argv += ["--nodes", nodes, "--strict", strict]
        was = f"{ours.get('nodes', '')} (strict {_bit(_flag(ours, 'strict'))})"
        out.append(HaAction(f"HA rule {name}: {was} -> {nodes} (strict {strict})", argv))
    return out


def _group_actions(config: HaConfig, sid: str, name: str, wanted: HaPlacement) -> list[HaAction]:
    resource = config.resources.get(sid)
    group = (resource or {}).get("group") or None
    if group not in (None, name):  # the administrator's group decides
        return []
    if not wanted.nodes:
        return [] if resource is not None else [_create_resource(sid, None)]
    out: list[HaAction] = []
    nodes, restricted = wanted.node_list(), _bit(wanted.strict)
    ours = config.groups.get(name)
    if ours is None:
        argv = ["pvesh", "create", "/cluster/ha/groups", "--group", name, "--nodes", nodes]
        argv += ["--restricted", restricted, "--comment", COMMENT]
        out.append(HaAction(f"HA group {name}: {nodes} (restricted {restricted})", argv))
    elif not _same(ours, wanted, "restricted"):
        argv = ["pvesh", "set", f"/cluster/ha/groups/{name}", "--nodes", nodes]
        argv += ["--restricted", restricted]
        was = f"{ours.get('nodes', '')} (restricted {_bit(_flag(ours, 'restricted'))})"
        out.append(HaAction(f"HA group {name}: {was} -> {nodes} (restricted {restricted})", argv))
    if resource is None:
        out.append(_create_resource(sid, name))
    elif group is None:
        argv = ["pvesh", "set", f"/cluster/ha/resources/{sid}", "--group", name]
        out.append(HaAction(f"put {sid} in HA group {name}", argv))
    return out


def actions(config: HaConfig, ctid: int, wanted: HaPlacement, kind: str = "ct") -> list[HaAction]:
    """What HA's configuration lacks for guest `ctid` (a container, or with `kind` "vm" a
    VM) placed by HA as `wanted`, in the order Proxmox accepts it; empty when nothing is
    missing."""
    sid, name = service_id(ctid, kind), affinity_id(ctid, kind)
    if config.rules is not None:
        return _rule_actions(config, sid, name, wanted)
    return _group_actions(config, sid, name, wanted)
