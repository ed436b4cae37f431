"""Where recipes come from: built into Phoenix, or the user's scripts in the config dir.

Feature `<name>` is found as the built-in `feature_<name>.sh` shipped with Phoenix, or as
the user's `<config dir>/scripts/phoenix_hypervisor_feature_install_<name>.sh` (the original
tool's naming). The user's script wins, so an operator can override a built-in.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from phoenix.inventory.scripts import USER_FEATURE_PATTERN, application_script_problem
from phoenix.recipes import llamacpp

__all__ = [
    "BUILTIN_APPLICATIONS",
    "USER_FEATURE_PATTERN",
    "Recipe",
    "application_needs",
    "application_script_problem",
    "builtin_application_files",
    "builtin_features",
    "builtin_scripts_dir",
    "feature_search_paths",
    "find_application",
    "find_feature",
]


@functools.cache
def builtin_scripts_dir() -> Path:
    return Path(str(resources.files("phoenix.recipes") / "scripts"))


def builtin_features() -> list[str]:
    return sorted(
        p.name.removeprefix("feature_").removesuffix(".sh")
        for p in builtin_scripts_dir().glob("feature_*.sh")
    )


@dataclass(frozen=True)
class Recipe:
    """A script to run inside a guest, and where it came from."""

    name: str
    path: Path
    builtin: bool


def feature_search_paths(name: str, scripts_dir: Path) -> list[Path]:
    return [
        scripts_dir / USER_FEATURE_PATTERN.format(name=name),
        builtin_scripts_dir() / f"feature_{name}.sh",
    ]


def find_feature(name: str, scripts_dir: Path) -> Recipe | None:
    user, builtin = feature_search_paths(name, scripts_dir)
    if user.is_file():
        return Recipe(name, user, builtin=False)
    if builtin.is_file():
        return Recipe(name, builtin, builtin=True)
    return None


# Applications shipped with Phoenix, by the script name an inventory uses. A user's file of
# the same name in the scripts folder wins. Each maps to (script, {bundle path: package file}).
BUILTIN_APPLICATIONS: dict[str, tuple[str, dict[str, str]]] = {
    "phoenix_demo_model_server.sh": (
        "app_demo_model_server.sh",
        {"model_server.py": "phoenix.demo/model_server.py"},
    ),
    # vLLM's OpenAI server as a unit; its arguments come with the bundle (recipes.vllm).
    "phoenix_hypervisor_lxc_vllm.sh": ("app_vllm.sh", {}),
    # Ollama (the original's script for guest 914 was deleted while the inventory names it).
    "phoenix_hypervisor_lxc_955.sh": ("app_ollama.sh", {}),
    # llama.cpp's llama-server (the original's script for guest 917 was deleted too).
    "phoenix_hypervisor_lxc_957.sh": ("app_llamacpp.sh", {}),
}


def builtin_application_files(script: str) -> dict[str, bytes]:
    """The extra files a built-in application's bundle carries (empty for others)."""
    _, files = BUILTIN_APPLICATIONS.get(script, ("", {}))
    out: dict[str, bytes] = {}
    for target, source in files.items():
        package, _, name = source.partition("/")
        out[target] = (resources.files(package) / name).read_bytes()
    return out


def application_needs(script: str, scripts_dir: Path, values: Mapping[str, object]) -> str | None:
    """What the application `script` resolves to cannot run without (a built-in's required
    keys), or None; a user's own script says for itself."""
    recipe = find_application(script, scripts_dir)
    if recipe is None or not recipe.builtin:
        return None
    if script == llamacpp.LLAMACPP_APP_SCRIPT:
        return llamacpp.missing(values)
    return None


def find_application(script: str, scripts_dir: Path) -> Recipe | None:
    """The user's application script (resolved under the scripts folder), else a built-in
    application of that name, if any."""
    if application_script_problem(script) is not None:
        return None
    path = scripts_dir / script
    try:
        inside = path.resolve().is_relative_to(scripts_dir.resolve())
    except OSError:
        return None
    if inside and path.is_file():
        return Recipe(script, path, builtin=False)
    if script in BUILTIN_APPLICATIONS:
        return Recipe(script, builtin_scripts_dir() / BUILTIN_APPLICATIONS[script][0], builtin=True)
    return None
