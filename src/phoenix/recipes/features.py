"""Feature bundles: `features: ["base_setup", ...]` -> one Bundle per feature.

A feature installs software; it does not care where the guest sits. Its bundle therefore
carries the guest's entry *without* placement keys (name, address, sizes, boot order…), so a
clone whose feature inputs equal its source's has the same digest and inherits the source's
applied-marker instead of running the feature again. Anything a feature may read (GPUs,
vLLM settings, ports, volumes, unknown keys) stays in and changes the digest.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from phoenix.inventory.loader import Inventory
from phoenix.inventory.models import LxcGuest
from phoenix.inventory.models.scope import Scope, keys_in
from phoenix.recipes import ollama, vllm
from phoenix.recipes.bundle import Bundle, HostFile
from phoenix.recipes.gateway_app import NOT_HANDED, GatewayApp
from phoenix.recipes.registry import Recipe, find_application, find_feature


@functools.lru_cache(maxsize=256)
def _read(path: Path, _mtime_ns: int) -> bytes:
    return path.read_bytes()


def read_script(path: Path) -> bytes:
    """Script bytes, cached per (path, mtime): planning thousands of guests reads each once."""
    return _read(path, path.stat().st_mtime_ns)


class RecipeFinder:
    """Recipe lookups memoized for one planning pass (thousands of guests share a handful
    of scripts; a new finder sees files changed since)."""

    def __init__(self, scripts_dir: Path) -> None:
        self.scripts_dir = scripts_dir
        self._features: dict[str, Recipe | None] = {}
        self._apps: dict[str, Recipe | None] = {}
        self._scripts: dict[Path, bytes] = {}

    def script(self, recipe: Recipe) -> bytes:
        if recipe.path not in self._scripts:
            self._scripts[recipe.path] = read_script(recipe.path)
        return self._scripts[recipe.path]

    def feature(self, name: str) -> Recipe | None:
        if name not in self._features:
            self._features[name] = find_feature(name, self.scripts_dir)
        return self._features[name]

    def application(self, script: str) -> Recipe | None:
        if script not in self._apps:
            self._apps[script] = find_application(script, self.scripts_dir)
        return self._apps[script]


def bundle_name(feature: str) -> str:
    return f"feature-{feature}"


def feature_entry(entry: dict[str, Any], model: type[LxcGuest] = LxcGuest) -> dict[str, Any]:
    """The entry without the keys that say where/how big the guest is, not what a feature
    installs: fields tagged Host or Placement (`phoenix.inventory.models.scope`)."""
    hidden = keys_in(model, Scope.HOST, Scope.PLACEMENT)
    return {k: v for k, v in entry.items() if k not in hidden}


def feature_env(inventory: Inventory) -> dict[str, str]:
    return {"PHOENIX_TIMEZONE": inventory.hypervisor.timezone}


TRUSTED_CA = "trusted_ca"
CA_FILE = "phoenix-local-ca.crt"


def feature_files(
    feature: str, state_dir: Path | None, persist: bool, gateway: GatewayApp | None
) -> dict[str, bytes]:
    """Files a built-in feature needs beside its script (trusted_ca: the CA certificate of
    the gateway handed in; feature_bundle refuses trusted_ca without one)."""
    if feature == TRUSTED_CA and gateway is not None:
        return {CA_FILE: gateway.ca_pem(state_dir, persist=persist)}
    return {}


def feature_bundle(
    inventory: Inventory,
    feature: str,
    entry: dict[str, Any],
    finder: RecipeFinder | None = None,
    *,
    state_dir: Path | None = None,
    persist: bool = True,
    gateway: GatewayApp | None = None,
) -> tuple[Bundle | None, str | None]:
    """(bundle, None), or (None, why) when no recipe exists for the feature. `state_dir`
    and `persist` are the gateway's (where its CA lives, whether a plan may create it)."""
    finder = finder or RecipeFinder(inventory.scripts_dir)
    recipe = finder.feature(feature)
    if recipe is None:
        return None, (
            f"feature {feature!r} has no recipe (built-in feature_{feature}.sh or "
            f"{inventory.scripts_dir}/phoenix_hypervisor_feature_install_{feature}.sh)"
        )
    if gateway is None and feature == TRUSTED_CA:
        return None, f"feature {feature!r} needs the gateway's CA: {NOT_HANDED}"
    bundle = Bundle(
        name=bundle_name(feature),
        script_name=recipe.path.name,
        script=finder.script(recipe),
        files=feature_files(feature, state_dir, persist, gateway),
        entry=feature_entry(entry),
        env=feature_env(inventory) | _feature_env(feature, entry, inventory),
        host_files=_host_files(feature, entry, inventory),
    )
    return bundle, None


def _feature_env(feature: str, entry: dict[str, Any], inventory: Inventory) -> dict[str, str]:
    """Values a built-in feature reads from the inventory, passed as its environment (a
    guest's own value wins over the top level's)."""
    if feature == "vllm":
        return {"PHOENIX_VLLM_SPEC": vllm.pip_spec(entry)}
    if feature == "ollama":
        return ollama.feature_env(entry)
    if feature == "nvidia":
        env = {}
        for key, var in (
            ("nvidia_runfile_url", "PHOENIX_NVIDIA_RUNFILE_URL"),
            ("nvidia_driver_version", "PHOENIX_NVIDIA_DRIVER_VERSION"),
            ("nvidia_repo_url", "PHOENIX_NVIDIA_REPO_URL"),
            ("cuda_version", "PHOENIX_CUDA_VERSION"),
        ):
            value = _nvidia_key(key, entry, inventory)
            if value:
                env[var] = value
        files = _host_files(feature, entry, inventory)
        if files:
            env["PHOENIX_NVIDIA_RUNFILE"] = next(iter(files))
        return env
    return {}


def _nvidia_key(key: str, entry: dict[str, Any], inventory: Inventory) -> str | None:
    """A guest's own value, else the top level's (`phoenix_lxc_configs.json`)."""
    top = inventory.lxc_file
    value = entry.get(key) or (getattr(top, key, None) if top is not None else None)
    return value if isinstance(value, str) and value else None


def _host_files(feature: str, entry: dict[str, Any], inventory: Inventory) -> dict[str, HostFile]:
    """nvidia: the runfile, fetched once per host and pushed beside the script (a URL that
    names no `NVIDIA-Linux-*.run` file is left to the script, which says what is wrong)."""
    if feature != "nvidia":
        return {}
    url = _nvidia_key("nvidia_runfile_url", entry, inventory)
    if url is None:
        return {}
    name = url.rsplit("/", 1)[-1]
    if not (name.startswith("NVIDIA-Linux-") and name.endswith(".run")) or "/" in name:
        return {}
    return {name: HostFile(url, _nvidia_key("nvidia_runfile_sha256", entry, inventory))}
