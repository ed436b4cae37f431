"""The application bundle of a guest: its `application_script`, or the built-in gateway.

The application bundle carries the guest's inventory entry plus its CTID, so a clone never
inherits its source's application marker: it runs its own application. Settings the driver
applies on the host (sizes, boot order, firewall, raw LXC options, snapshots, health check)
are left out: changing `memory_mb` resizes the guest, it does not re-run its application.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from phoenix.errors import PhoenixError
from phoenix.inventory.loader import Inventory
from phoenix.inventory.models import LxcGuest
from phoenix.inventory.models.scope import Scope, keys_in
from phoenix.recipes import llamacpp, ollama, vllm
from phoenix.recipes.bundle import Bundle, HostFile
from phoenix.recipes.features import RecipeFinder
from phoenix.recipes.gateway_app import NOT_HANDED, GatewayApp
from phoenix.recipes.registry import (
    application_script_problem,
    builtin_application_files,
)

APPLICATION = "application"


def application_entry(
    ctid: int, entry: dict[str, Any], model: type[LxcGuest] = LxcGuest
) -> dict[str, Any]:
    """The entry and the CTID, without what the driver applies on the host (invisible to
    an in-guest script): fields tagged Host (`phoenix.inventory.models.scope`)."""
    hidden = keys_in(model, Scope.HOST)
    return {"ctid": ctid, **{k: v for k, v in entry.items() if k not in hidden}}


def gateway_application(
    inventory: Inventory,
    ctid: int,
    state_dir: Path | None,
    gateway: GatewayApp | None,
    persist: bool = True,
) -> tuple[Bundle | None, str | None]:
    """The gateway's bundle from the gateway application handed in (by the CLI)."""
    if gateway is None:
        return None, NOT_HANDED
    try:
        return gateway.bundle(inventory, ctid, state_dir, persist=persist), None
    except PhoenixError as exc:  # shown in the plan; fails this guest when converging
        return None, str(exc)


def user_application(
    inventory: Inventory,
    ctid: int,
    entry: dict[str, Any],
    finder: RecipeFinder | None = None,
) -> tuple[Bundle | None, str | None]:
    script = inventory.guests[ctid].application_script
    assert script is not None
    why = application_script_problem(script)
    if why:
        return None, why
    finder = finder or RecipeFinder(inventory.scripts_dir)
    recipe = finder.application(script)
    if recipe is None:
        return None, f"application script {script!r} not found in {inventory.scripts_dir}"
    if recipe.builtin and script == llamacpp.LLAMACPP_APP_SCRIPT:
        why = llamacpp.missing(entry)
        if why:
            return None, why
    bundle = Bundle(
        name=APPLICATION,
        script_name=recipe.path.name,
        script=finder.script(recipe),
        files=_files(script, entry) if recipe.builtin else {},
        entry=application_entry(ctid, entry),
        env={"PHOENIX_CTID": str(ctid), "PHOENIX_TIMEZONE": inventory.hypervisor.timezone},
        host_files=_host_files(script, entry) if recipe.builtin else {},
        timeout=llamacpp.BUILD_TIMEOUT if script == llamacpp.LLAMACPP_APP_SCRIPT else 1800.0,
        build_cache=llamacpp.build_name(entry)
        if _builds_llamacpp(script, recipe.builtin)
        else None,
    )
    return bundle, None


def _files(script: str, entry: dict[str, Any]) -> dict[str, bytes]:
    """A built-in application's files: shipped package files, and for vLLM its service
    (arguments from vllm_engine_config) as data."""
    files = builtin_application_files(script)
    if script == vllm.VLLM_APP_SCRIPT:
        service = json.dumps(vllm.service(entry), indent=1, sort_keys=True)
        files[vllm.SERVICE_FILE] = service.encode()
    if script == ollama.OLLAMA_APP_SCRIPT:
        files.update(ollama.app_files(entry))
    if script == llamacpp.LLAMACPP_APP_SCRIPT:
        files.update(llamacpp.app_files(entry))
    return files


def _builds_llamacpp(script: str, builtin: bool) -> bool:
    return builtin and script == llamacpp.LLAMACPP_APP_SCRIPT


def _host_files(script: str, entry: dict[str, Any]) -> dict[str, HostFile]:
    """Large files the host fetches once into its cache: llama.cpp's source from PyPI."""
    if script == llamacpp.LLAMACPP_APP_SCRIPT:
        return llamacpp.host_files(entry)
    return {}


def application_bundle(
    inventory: Inventory,
    ctid: int,
    entry: dict[str, Any],
    state_dir: Path | None,
    finder: RecipeFinder | None = None,
    persist: bool = True,
    gateway: GatewayApp | None = None,
) -> tuple[Bundle | None, str | None]:
    """(bundle, None); (None, why) when it cannot be built; (None, None) when the guest has
    no application. `persist=False`: the gateway's CA and keys are not written. `gateway`:
    the built-in gateway application (a gateway guest cannot be planned without it)."""
    if inventory.guests[ctid].runs_gateway:
        return gateway_application(inventory, ctid, state_dir, gateway, persist)
    if inventory.guests[ctid].application_script is None:
        return None, None
    return user_application(inventory, ctid, entry, finder)
