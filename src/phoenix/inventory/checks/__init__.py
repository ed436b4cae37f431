"""Cross-guest checks: the mistakes no single field can show. All are reported at once.

One module per concern (addresses, lineage, files, gateway, options; mounts live in
`mountchecks`); this one runs them all in the order the problems are shown.
"""

from __future__ import annotations

from phoenix.inventory.checks.addresses import (
    bridge_problems,
    duplicate_problems,
    network_problems,
)
from phoenix.inventory.checks.cluster import cluster_problems
from phoenix.inventory.checks.files import Lookups, links_out_problems, script_problems
from phoenix.inventory.checks.gateway import (
    gateway_key_problems,
    gateway_route_problems,
    lookalike_model_problems,
    model_address_problems,
    model_name_problems,
)
from phoenix.inventory.checks.gateway_names import gateway_block_problems
from phoenix.inventory.checks.lineage import (
    clone_source_problems,
    dependency_problems,
    proxmox_problems,
)
from phoenix.inventory.checks.options import (
    apparmor_problems,
    not_applied_problems,
    raw_option_problems,
    unapplied_keys,
)
from phoenix.inventory.checks.proxmox_binds import bind_mount_problems, detach_switch_problems
from phoenix.inventory.checks.vms import vm_problems
from phoenix.inventory.core import LXC_FILE, Inventory
from phoenix.inventory.idmapchecks import idmap_problems, proxmox_idmap_problems
from phoenix.inventory.mountchecks import mount_problems
from phoenix.inventory.problems import Problem
from phoenix.inventory.scripts import RecipeCatalog

__all__ = ["semantic_problems", "unapplied_keys"]


def semantic_problems(
    inventory: Inventory, recipes: RecipeCatalog | None = None, driver: str | None = None
) -> list[Problem]:
    """Every cross-field problem of a type-checked inventory; with `recipes`, also the
    features and application scripts no recipe provides (warnings). `driver` is the one the
    command line chose (None: the hypervisor config's); the Proxmox driver adds its rules."""
    lookups = None if recipes is None else Lookups(recipes, inventory.scripts_dir)
    out = (
        duplicate_problems(inventory)
        + clone_source_problems(inventory)
        + dependency_problems(inventory)
        + vm_problems(inventory)
    )
    gateways = [c for c, g in inventory.guests.items() if g.runs_gateway]
    if len(gateways) > 1:
        out.append(
            Problem(
                LXC_FILE,
                "lxc_configs",
                f"more than one gateway guest: {', '.join(map(str, sorted(gateways)))}",
            )
        )
    out += links_out_problems(inventory) + model_address_problems(inventory)
    out += lookalike_model_problems(inventory)
    for ctid, guest in sorted(inventory.guests.items()):
        out += network_problems(ctid, guest)
        out += script_problems(ctid, guest, lookups)
        out += apparmor_problems(ctid, guest)
        out += raw_option_problems(ctid, guest)
        out += gateway_route_problems(ctid, guest, inventory)
        out += gateway_block_problems(ctid, guest)
        out += gateway_key_problems(ctid, guest, inventory)
        out += not_applied_problems(ctid, guest)
        out += mount_problems(ctid, guest)
        out += idmap_problems(ctid, guest)
        out += proxmox_problems(ctid, guest, inventory)
        out += model_name_problems(ctid, guest)
    out += cluster_problems(inventory, driver)
    chosen = driver or inventory.hypervisor.phoenix.driver
    out += bridge_problems(inventory, chosen)
    out += detach_switch_problems(inventory)
    if chosen == "proxmox":
        out += bind_mount_problems(inventory)
        for ctid, guest in sorted(inventory.guests.items()):
            out += proxmox_idmap_problems(ctid, guest)
    return out
