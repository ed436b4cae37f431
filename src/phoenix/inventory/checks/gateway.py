"""The gateway's view of the inventory: one gateway, routes to guests with a static address,
model names it can serve, keys that name served models."""

from __future__ import annotations

import unicodedata

from phoenix.inventory.core import LXC_FILE, Inventory
from phoenix.inventory.models import MAX_MODEL_NAME, LxcGuest, RouteTarget
from phoenix.inventory.problems import Problem, lxc_at
from phoenix.inventory.served import inventory_models, served_models


def model_address_problems(inventory: Inventory) -> list[Problem]:
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
                lxc_at(ctid, "network_config"),
                f"serves model {served[0]!r}, which the gateway routes to this guest, but {why}: "
                "give it a static 'ip' (or drop the model)",
            )
        )
    return out


def lookalike_model_problems(inventory: Inventory) -> list[Problem]:
    """Two served model names that differ as written but read the same once Unicode's
    compatibility forms are folded (NFKC: a full-width letter, a ligature, a
    superscript): a client cannot tell which one it asks for. Invisible characters are
    refused on every string already; these are the visible lookalikes."""
    seen: dict[str, tuple[str, int]] = {}
    out: list[Problem] = []
    for ctid, guest in sorted(inventory.guests.items()):
        if guest.is_clone_source:
            continue
        for model, _ in served_models(guest):
            folded = model if model.isascii() else unicodedata.normalize("NFKC", model)
            first = seen.setdefault(folded, (model, ctid))
            if first[0] != model:
                out.append(
                    Problem(
                        LXC_FILE,
                        lxc_at(ctid),
                        f"serves model {model!r}, which reads as {first[0]!r} served by guest "
                        f"{first[1]}: clients cannot tell them apart; write both names the "
                        "same (to serve one model from both) or make them differ visibly",
                    )
                )
    return out


def model_name_problems(ctid: int, guest: LxcGuest) -> list[Problem]:
    """A name from `ModelConfig.model` (free-form there) must fit the gateway too."""
    engine = guest.vllm_engine_config
    if engine is None or engine.ServerConfig.served_model_name:
        return []
    name = engine.ModelConfig.get("model")
    if isinstance(name, str) and len(name) > MAX_MODEL_NAME:
        return [
            Problem(
                LXC_FILE,
                lxc_at(ctid, "vllm_engine_config", "ModelConfig", "model"),
                f"model name of {len(name)} characters; the gateway takes at most {MAX_MODEL_NAME}",
            )
        ]
    return []


def gateway_route_problems(ctid: int, guest: LxcGuest, inventory: Inventory) -> list[Problem]:
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
        where = lxc_at(ctid, "gateway", kind, index, "ctid")
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
    seen_hosts: dict[str, int] = {}
    for index, host in enumerate(guest.gateway.host_routes):
        name = host.hostname.lower()
        if name in seen_hosts:
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, "gateway", "host_routes", index, "hostname"),
                    f"hostname {host.hostname!r} is already routed by host_routes"
                    f"[{seen_hosts[name]}]",
                )
            )
        seen_hosts.setdefault(name, index)
    return out


def gateway_key_problems(ctid: int, guest: LxcGuest, inventory: Inventory) -> list[Problem]:
    """Say when the gateway's API is open, and when a key names a model nobody serves."""
    if not guest.runs_gateway:
        return []
    keys = guest.gateway.api_keys if guest.gateway is not None else []
    if not keys:
        return [
            Problem(
                LXC_FILE,
                lxc_at(ctid, "gateway"),
                "the gateway's API is open: no api_keys, so anyone who reaches it may use "
                "every model (add one with 'phoenix gateway key add NAME')",
                "warning",
            )
        ]
    if inventory.hand_written_sites:
        return [
            Problem(
                LXC_FILE,
                lxc_at(ctid, "gateway", "api_keys"),
                "the gateway's API is open: it runs the hand-written sites in "
                f"{inventory.nginx_dir / 'sites-available'} (compatibility mode), which check "
                "no key; remove those sites to use the derived gateway, which enforces api_keys",
                "warning",
            )
        ]
    served = inventory_models(inventory)
    out: list[Problem] = []
    for index, key in enumerate(keys):
        for model in key.models:
            if model != "*" and model not in served:
                out.append(
                    Problem(
                        LXC_FILE,
                        lxc_at(ctid, "gateway", "api_keys", index, "models"),
                        f"key {key.name!r} names model {model!r}, which no guest serves",
                        "warning",
                    )
                )
    return out
