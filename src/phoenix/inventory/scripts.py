"""The config dir's scripts folder: how the original tool named feature scripts there, which
`application_script` paths stay inside it, and what the inventory asks of a recipe catalog.

The catalog itself (built-in recipes) belongs to `phoenix.recipes`, a layer above: the
caller hands it in (`phoenix.recipes.registry` satisfies `RecipeCatalog` as a module), so
the inventory never imports recipes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Protocol

USER_FEATURE_PATTERN = "phoenix_hypervisor_feature_install_{name}.sh"


def application_script_problem(script: str) -> str | None:
    """Why `script` is not an acceptable path under the scripts folder, or None."""
    if "\0" in script or "\n" in script:
        return "application_script contains a control character"
    pure = PurePosixPath(script)
    if pure.is_absolute():
        return f"application_script {script!r} is absolute; name a file in the scripts folder"
    if ".." in pure.parts:
        return f"application_script {script!r} escapes the scripts folder"
    return None


class RecipeCatalog(Protocol):
    """Where recipes are found: the user's scripts folder first, then the built-ins."""

    def feature_search_paths(self, name: str, scripts_dir: Path) -> list[Path]:
        """Where feature `name` is looked for, in order (for the warning's text)."""
        ...

    def find_feature(self, name: str, scripts_dir: Path) -> object | None:
        """The recipe of feature `name`, or None when there is none."""
        ...

    def find_application(self, script: str, scripts_dir: Path) -> object | None:
        """The recipe of application `script`, or None when there is none."""
        ...

    def application_needs(
        self, script: str, scripts_dir: Path, values: Mapping[str, object]
    ) -> str | None:
        """What the application found for `script` cannot run without (keys of the guest's
        entry, said with how to add them), or None. `values`: the guest's keys as written."""
        ...
