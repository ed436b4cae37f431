"""What guests run from the config dir: feature and application scripts that exist, and no
link out of the config dir into what gets shipped."""

from __future__ import annotations

from pathlib import Path

from phoenix.inventory.core import LXC_FILE, Inventory
from phoenix.inventory.models import LxcGuest
from phoenix.inventory.problems import Problem, lxc_at, shown_text
from phoenix.inventory.scripts import (
    USER_FEATURE_PATTERN,
    RecipeCatalog,
    application_script_problem,
)


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


def _script_link_out(inventory: Inventory, script: str) -> str | None:
    """Why the user's application script `script` may not be shipped, or None."""
    path = inventory.scripts_dir / script
    if (path.is_symlink() or path.exists()) and not _inside(path, inventory.config_dir):
        return f"{script!r} {_LINK_OUT.format(target=shown_text(str(path.resolve())))}"
    return None


def links_out_problems(inventory: Inventory) -> list[Problem]:
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
                out.append(Problem(LXC_FILE, lxc_at(ctid, "features", index), message))
    # Application scripts too, and through a link anywhere on the way (a `scripts` folder
    # that is itself a link to /etc would ship /etc/shadow as "shadow").
    for ctid, guest in sorted(inventory.guests.items()):
        script = guest.application_script
        if script is None or application_script_problem(script):
            continue
        if script not in why:
            why[script] = _script_link_out(inventory, script)
        message = why[script]
        if message is not None:
            out.append(Problem(LXC_FILE, lxc_at(ctid, "application_script"), message))
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


class Lookups:
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


def script_problems(ctid: int, guest: LxcGuest, lookups: Lookups | None) -> list[Problem]:
    out: list[Problem] = []
    script = guest.application_script
    if script is not None:
        why = application_script_problem(script)
        if why:
            out.append(Problem(LXC_FILE, lxc_at(ctid, "application_script"), why))
        elif guest.runs_gateway or lookups is None:
            pass  # the built-in gateway application, or no catalog to ask
        elif not lookups.has_application(script):
            out.append(
                Problem(
                    LXC_FILE,
                    lxc_at(ctid, "application_script"),
                    f"{script!r} is not in {lookups.scripts_dir} yet "
                    "(converging this guest will fail until it is)",
                    "warning",
                )
            )
        else:
            values = guest.model_dump(by_alias=True, exclude_unset=True)
            needs = lookups.recipes.application_needs(script, lookups.scripts_dir, values)
            if needs:
                out.append(
                    Problem(
                        LXC_FILE,
                        lxc_at(ctid),
                        f"{needs}; until then its application step cannot run",
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
                    lxc_at(ctid, "features", index),
                    f"feature {name!r} has no recipe (looked for {looked}); "
                    "converging this guest will fail",
                    "warning",
                )
            )
    return out
