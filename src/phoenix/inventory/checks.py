"""Cross-guest checks: the mistakes no single field can show. All are reported at once."""

from __future__ import annotations

import contextlib
import ipaddress
from collections import defaultdict
from pathlib import Path

from phoenix.inventory.core import LXC_FILE, VM_FILE, Inventory
from phoenix.inventory.models import MAX_MODEL_NAME, LxcGuest, RouteTarget, ipv4_address
from phoenix.inventory.mountchecks import mount_problems
from phoenix.inventory.ordering import build_graph
from phoenix.inventory.problems import Problem, json_path, shown_text
from phoenix.inventory.scripts import (
    USER_FEATURE_PATTERN,
    RecipeCatalog,
    application_script_problem,
)


def _at(ctid: int, *rest: str | int) -> str:
    return json_path(["lxc_configs", str(ctid), *rest])


def _duplicates(inventory: Inventory) -> list[Problem]:
    out: list[Problem] = []
    by_ip: dict[str, list[int]] = defaultdict(list)
    by_mac: dict[str, list[int]] = defaultdict(list)
    for ctid, guest in sorted(inventory.guests.items()):
        address = guest.network_config.address if guest.network_config else None
        if address is not None:
            by_ip[address].append(ctid)
        if guest.mac_address:
            by_mac[guest.mac_address.upper()].append(ctid)
    for vmid, vm in sorted(inventory.vms.items()):
        ip = vm.network_config.get("ip")
        if isinstance(ip, str) and "/" in ip:
            with contextlib.suppress(ValueError):
                by_ip[str(ipaddress.IPv4Interface(ip).ip)].append(vmid)
    for ip, owners in by_ip.items():
        for ctid in owners[1:]:
            field = ("network_config", "ip") if ctid in inventory.guests else ()
            where = _at(ctid, *field) if field else f"vms[vmid={ctid}].network_config.ip"
            out.append(
                Problem(
                    LXC_FILE if field else VM_FILE,
                    where,
                    f"IP address {ip} is also used by guest {owners[0]}",
                )
            )
    for mac, owners in by_mac.items():
        for ctid in owners[1:]:
            out.append(
                Problem(
                    LXC_FILE,
                    _at(ctid, "mac_address"),
                    f"MAC address {mac} is also used by container {owners[0]}",
                )
            )
    for ctid in sorted(set(inventory.guests) & set(inventory.vms)):
        out.append(Problem(LXC_FILE, _at(ctid), f"id {ctid} is used by a container and a VM"))
    return out


def _network(ctid: int, guest: LxcGuest) -> list[Problem]:
    net = guest.network_config
    if net is None or net.gw is None:
        return []
    iface = net.interface
    if iface is None:
        return [
            Problem(
                LXC_FILE,
                _at(ctid, "network_config", "gw"),
                "ignored: with 'ip': 'dhcp' the gateway comes from the DHCP server",
                "warning",
            )
        ]
    gw = ipv4_address(net.gw)
    if gw not in iface.network:
        return [
            Problem(
                LXC_FILE,
                _at(ctid, "network_config", "gw"),
                f"gateway {gw} is outside the guest's subnet {iface.network}",
            )
        ]
    if gw == iface.ip:
        return [
            Problem(
                LXC_FILE,
                _at(ctid, "network_config", "gw"),
                f"gateway {gw} is the guest's own address",
            )
        ]
    return []


def _clone_sources(inventory: Inventory) -> list[Problem]:
    out: list[Problem] = []
    for ctid, guest in sorted(inventory.guests.items()):
        src = guest.clone_from_ctid
        if src is None:
            if guest.template is None:
                out.append(
                    Problem(
                        LXC_FILE,
                        _at(ctid),
                        "needs either 'template' (to create) or 'clone_from_ctid'",
                        "warning",
                    )
                )
            continue
        if src == ctid:
            out.append(
                Problem(LXC_FILE, _at(ctid, "clone_from_ctid"), "a guest cannot clone itself")
            )
        elif src in inventory.invalid_ids:
            pass  # its own entry already has errors
        elif src not in inventory.guests:
            hint = " (that id is a VM)" if src in inventory.vms else ""
            out.append(
                Problem(
                    LXC_FILE,
                    _at(ctid, "clone_from_ctid"),
                    f"clone source {src} is not a container in the inventory{hint}",
                )
            )
        elif not inventory.guests[src].is_clone_source:
            out.append(
                Problem(
                    LXC_FILE,
                    _at(ctid, "clone_from_ctid"),
                    f"clone source {src} is neither a template ('is_template': true) nor has a "
                    "'template_snapshot_name' to clone from",
                )
            )
        if guest.template is not None and src is not None:
            out.append(
                Problem(
                    LXC_FILE,
                    _at(ctid, "template"),
                    f"'template' is ignored: the guest is cloned from {src}",
                    "warning",
                )
            )
    for vmid, vm in sorted(inventory.vms.items()):
        if vm.clone_from_vmid is not None and vm.clone_from_vmid not in inventory.vms:
            out.append(
                Problem(
                    VM_FILE,
                    f"vms[vmid={vmid}].clone_from_vmid",
                    f"clone source {vm.clone_from_vmid} is not a VM in the inventory",
                )
            )
    return out


def _proxmox_rules(ctid: int, guest: LxcGuest, inventory: Inventory) -> list[Problem]:
    """What pve-container refuses late: a template with snapshots, a clone that changes
    what it inherits (`unprivileged` is read-only after `pct clone`), a disk that would
    have to shrink (`pct resize` only grows)."""
    out: list[Problem] = []
    if guest.is_template:
        for key in ("template_snapshot_name", "enable_lifecycle_snapshots"):
            if getattr(guest, key):
                out.append(
                    Problem(
                        LXC_FILE,
                        _at(ctid, "is_template"),
                        f"a template cannot have snapshots ('pct template' refuses a container "
                        f"with snapshots): remove {key!r} (clones of a template need none)",
                    )
                )
    source = inventory.guests.get(guest.clone_from_ctid or 0)
    if source is not None and guest.clone_from_ctid != ctid:
        src = guest.clone_from_ctid
        if guest.unprivileged != source.unprivileged:
            want = "true" if source.unprivileged else "false"
            out.append(
                Problem(
                    LXC_FILE,
                    _at(ctid, "unprivileged"),
                    f"a clone of {src} inherits its unprivileged={want} and Proxmox cannot "
                    f"change it afterwards: set 'unprivileged': {want}, or clone from another "
                    "source",
                )
            )
        if guest.storage_size_gb < source.storage_size_gb:
            out.append(
                Problem(
                    LXC_FILE,
                    _at(ctid, "storage_size_gb"),
                    f"{guest.storage_size_gb} GiB is smaller than the {source.storage_size_gb} "
                    f"GiB disk of its clone source {src}; a disk can only grow",
                )
            )
    if "." in guest.name:
        out.append(
            Problem(
                LXC_FILE,
                _at(ctid, "name"),
                f"{guest.name!r} is a fully qualified name for Proxmox: only "
                f"{guest.name.split('.')[0]!r} lands in the guest's /etc/hostname",
                "warning",
            )
        )
    return out


def _inside(path: Path, root: Path) -> bool:
    try:
        return path.resolve().is_relative_to(root.resolve())
    except (OSError, RuntimeError):  # a loop of links
        return False


_LINK_OUT = (
    "is a symlink to a file outside the config dir ({target}); Phoenix ships only files of "
    "the config dir: copy the file in instead"
)


def _feature_link_out(inventory: Inventory, name: str) -> str | None:
    """Why the user's script of feature `name` may not be shipped, or None."""
    user = inventory.scripts_dir / USER_FEATURE_PATTERN.format(name=name)
    if (user.is_symlink() or user.exists()) and not _inside(user, inventory.config_dir):
        return f"{name!r} {_LINK_OUT.format(target=shown_text(str(user.resolve())))}"
    return None


def _links_out(inventory: Inventory) -> list[Problem]:
    """Feature scripts and nginx files are shipped into guests with their own modes: a link
    out of the config dir would ship whatever it points to (a 0600 root file, say)."""
    root = inventory.config_dir
    out: list[Problem] = []
    # Looked at once per feature name: thousands of guests share a handful of features.
    why: dict[str, str | None] = {}
    for ctid, guest in sorted(inventory.guests.items()):
        for index, name in enumerate(guest.features):
            if name not in why:
                why[name] = _feature_link_out(inventory, name)
            message = why[name]
            if message is not None:
                out.append(Problem(LXC_FILE, _at(ctid, "features", index), message))
    for folder in ("sites-available", "scripts"):
        directory = inventory.nginx_dir / folder
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if not _inside(path, root):
                target = shown_text(str(path.resolve()))
                out.append(
                    Problem(
                        f"nginx/{folder}/{shown_text(path.name)}",
                        "$",
                        _LINK_OUT.format(target=target),
                    )
                )
    return out


def _model_addresses(inventory: Inventory) -> list[Problem]:
    """The gateway routes every model a (non-template) guest serves to that guest's static
    address: without one, rendering and converging the gateway would fail late."""
    if not any(g.runs_gateway for g in inventory.guests.values()):
        return []
    out: list[Problem] = []
    for ctid, guest in sorted(inventory.guests.items()):
        served = guest.served_model
        net = guest.network_config
        if served is None or guest.is_clone_source or (net is not None and not net.dhcp):
            continue
        why = "its address comes from DHCP" if net is not None else "it has no network_config"
        out.append(
            Problem(
                LXC_FILE,
                _at(ctid, "network_config"),
                f"serves model {served[0]!r}, which the gateway routes to this guest, but {why}: "
                "give it a static 'ip' (or drop the model)",
            )
        )
    return out


def _model_name(ctid: int, guest: LxcGuest) -> list[Problem]:
    """A name from `ModelConfig.model` (free-form there) must fit the gateway too."""
    engine = guest.vllm_engine_config
    if engine is None or engine.ServerConfig.served_model_name:
        return []
    name = engine.ModelConfig.get("model")
    if isinstance(name, str) and len(name) > MAX_MODEL_NAME:
        return [
            Problem(
                LXC_FILE,
                _at(ctid, "vllm_engine_config", "ModelConfig", "model"),
                f"model name of {len(name)} characters; the gateway takes at most {MAX_MODEL_NAME}",
            )
        ]
    return []


def _dependencies(inventory: Inventory) -> list[Problem]:
    out: list[Problem] = []
    known = inventory.all_ids() | inventory.invalid_ids
    for ctid, guest in sorted(inventory.guests.items()):
        for index, dep in enumerate(guest.dependencies):
            if dep not in known:
                out.append(
                    Problem(
                        LXC_FILE,
                        _at(ctid, "dependencies", index),
                        f"depends on {dep}, which is neither a container nor a VM in the inventory",
                    )
                )
            elif dep == ctid:
                out.append(
                    Problem(
                        LXC_FILE,
                        _at(ctid, "dependencies", index),
                        "a guest cannot depend on itself",
                    )
                )
    cycle = build_graph(inventory).find_cycle()
    if cycle and len(cycle) > 2:
        first = cycle[0]
        shown = " -> ".join(str(c) for c in cycle)
        file = LXC_FILE if first in inventory.guests else VM_FILE
        out.append(
            Problem(
                file,
                _at(first) if file == LXC_FILE else f"vms[vmid={first}]",
                f"dependency cycle: {shown}",
            )
        )
    return out


class _Lookups:
    """The catalog's answers for one inventory, asked once per feature or script name:
    thousands of guests share a handful of each, and every answer is a few `stat` calls."""

    def __init__(self, recipes: RecipeCatalog, scripts_dir: Path) -> None:
        self.recipes = recipes
        self.scripts_dir = scripts_dir
        self._features: dict[str, str | None] = {}
        self._applications: dict[str, bool] = {}

    def missing_feature(self, name: str) -> str | None:
        """Where feature `name` was looked for in vain, or None when it has a recipe."""
        if name not in self._features:
            looked: str | None = None
            if self.recipes.find_feature(name, self.scripts_dir) is None:
                paths = self.recipes.feature_search_paths(name, self.scripts_dir)
                looked = " and ".join(str(p) for p in paths)
            self._features[name] = looked
        return self._features[name]

    def has_application(self, script: str) -> bool:
        if script not in self._applications:
            found = self.recipes.find_application(script, self.scripts_dir)
            self._applications[script] = found is not None
        return self._applications[script]


def _scripts(ctid: int, guest: LxcGuest, lookups: _Lookups | None) -> list[Problem]:
    out: list[Problem] = []
    script = guest.application_script
    if script is not None:
        why = application_script_problem(script)
        if why:
            out.append(Problem(LXC_FILE, _at(ctid, "application_script"), why))
        elif guest.runs_gateway or lookups is None:
            pass  # the built-in gateway application, or no catalog to ask
        elif not lookups.has_application(script):
            out.append(
                Problem(
                    LXC_FILE,
                    _at(ctid, "application_script"),
                    f"{script!r} is not in {lookups.scripts_dir} yet "
                    "(converging this guest will fail until it is)",
                    "warning",
                )
            )
    if lookups is None:
        return out
    for index, name in enumerate(guest.features):
        looked = lookups.missing_feature(name)
        if looked is not None:
            out.append(
                Problem(
                    LXC_FILE,
                    _at(ctid, "features", index),
                    f"feature {name!r} has no recipe (looked for {looked}); "
                    "converging this guest will fail",
                    "warning",
                )
            )
    return out


def _apparmor(ctid: int, guest: LxcGuest) -> list[Problem]:
    raw = [v for k, v in guest.lxc_option_pairs if k == "lxc.apparmor.profile"]
    out: list[Problem] = []
    if len(set(raw)) > 1:
        out.append(
            Problem(
                LXC_FILE,
                _at(ctid, "lxc_options"),
                f"lxc.apparmor.profile is set more than once ({', '.join(raw)}); "
                f"the last, {raw[-1]!r}, wins",
                "warning",
            )
        )
    if raw and guest.apparmor_profile is not None and raw[-1] != guest.apparmor_profile:
        out.append(
            Problem(
                LXC_FILE,
                _at(ctid, "apparmor_profile"),
                f"apparmor_profile {guest.apparmor_profile!r} conflicts with raw "
                f"'lxc.apparmor.profile: {raw[-1]}'; {guest.apparmor_profile!r} wins",
                "warning",
            )
        )
    return out


def _gateway_routes(ctid: int, guest: LxcGuest, inventory: Inventory) -> list[Problem]:
    if guest.gateway is None:
        return []
    out: list[Problem] = []
    routes: list[tuple[str, int, RouteTarget]] = [
        ("path_routes", i, r) for i, r in enumerate(guest.gateway.path_routes)
    ]
    routes += [("host_routes", i, r) for i, r in enumerate(guest.gateway.host_routes)]
    for kind, index, route in routes:
        target = route.ctid
        if target is None:
            continue
        where = _at(ctid, "gateway", kind, index, "ctid")
        if target in inventory.invalid_ids:
            continue
        if target not in inventory.guests:
            out.append(
                Problem(
                    LXC_FILE, where, f"route target {target} is not a container in the inventory"
                )
            )
        elif inventory.guests[target].network_config is None:
            out.append(
                Problem(
                    LXC_FILE,
                    where,
                    f"route target {target} has no network_config (no IP to route to)",
                )
            )
        elif inventory.guests[target].network_config.dhcp:  # type: ignore[union-attr]
            out.append(
                Problem(
                    LXC_FILE,
                    where,
                    f"route target {target} gets its address by DHCP: the gateway needs a "
                    "static IP to route to",
                )
            )
    seen_paths: dict[str, int] = {}
    for index, route in enumerate(guest.gateway.path_routes):
        if route.path in seen_paths:
            out.append(
                Problem(
                    LXC_FILE,
                    _at(ctid, "gateway", "path_routes", index, "path"),
                    f"path {route.path!r} is already routed by path_routes"
                    f"[{seen_paths[route.path]}]",
                )
            )
        seen_paths.setdefault(route.path, index)
    seen_hosts: dict[str, int] = {}
    for index, host in enumerate(guest.gateway.host_routes):
        name = host.hostname.lower()
        if name in seen_hosts:
            out.append(
                Problem(
                    LXC_FILE,
                    _at(ctid, "gateway", "host_routes", index, "hostname"),
                    f"hostname {host.hostname!r} is already routed by host_routes"
                    f"[{seen_hosts[name]}]",
                )
            )
        seen_hosts.setdefault(name, index)
    return out


def unapplied_keys(guest: LxcGuest) -> list[tuple[str, str]]:
    """(key, what the guest lacks) for the keys Phoenix reads but does not act on yet."""
    # GPUs, mount points and volumes are applied by both drivers now; the machinery stays
    # for the next key Phoenix reads before it acts on it.
    del guest
    return []


def _not_applied(ctid: int, guest: LxcGuest) -> list[Problem]:
    """Say so rather than converge silently to a guest without its GPU or storage."""
    return [
        Problem(
            LXC_FILE,
            _at(ctid, key),
            f"not applied by Phoenix yet: {effect} (see the README, 'Not done yet')",
            "warning",
        )
        for key, effect in unapplied_keys(guest)
    ]


def _gateway_keys(ctid: int, guest: LxcGuest, inventory: Inventory) -> list[Problem]:
    """Say when the gateway's API is open, and when a key names a model nobody serves."""
    if not guest.runs_gateway:
        return []
    keys = guest.gateway.api_keys if guest.gateway is not None else []
    if not keys:
        return [
            Problem(
                LXC_FILE,
                _at(ctid, "gateway"),
                "the gateway's API is open: no api_keys, so anyone who reaches it may use "
                "every model (add one with 'phoenix gateway key add NAME')",
                "warning",
            )
        ]
    served = {g.served_model[0] for g in inventory.guests.values() if g.served_model}
    out: list[Problem] = []
    for index, key in enumerate(keys):
        for model in key.models:
            if model != "*" and model not in served:
                out.append(
                    Problem(
                        LXC_FILE,
                        _at(ctid, "gateway", "api_keys", index, "models"),
                        f"key {key.name!r} names model {model!r}, which no guest serves",
                        "warning",
                    )
                )
    return out


def semantic_problems(inventory: Inventory, recipes: RecipeCatalog | None = None) -> list[Problem]:
    """Every cross-field problem of a type-checked inventory; with `recipes`, also the
    features and application scripts no recipe provides (warnings)."""
    lookups = None if recipes is None else _Lookups(recipes, inventory.scripts_dir)
    out = _duplicates(inventory) + _clone_sources(inventory) + _dependencies(inventory)
    gateways = [c for c, g in inventory.guests.items() if g.runs_gateway]
    if len(gateways) > 1:
        out.append(
            Problem(
                LXC_FILE,
                "lxc_configs",
                f"more than one gateway guest: {', '.join(map(str, sorted(gateways)))}",
            )
        )
    out += _links_out(inventory) + _model_addresses(inventory)
    for ctid, guest in sorted(inventory.guests.items()):
        out += _network(ctid, guest)
        out += _scripts(ctid, guest, lookups)
        out += _apparmor(ctid, guest)
        out += _gateway_routes(ctid, guest, inventory)
        out += _gateway_keys(ctid, guest, inventory)
        out += _not_applied(ctid, guest)
        out += mount_problems(ctid, guest)
        out += _proxmox_rules(ctid, guest, inventory)
        out += _model_name(ctid, guest)
    return out
