"""The layering of ARCHITECTURE.md, enforced over every import in src/phoenix: top-level,
inside functions, under TYPE_CHECKING, relative (`from ..cli import x`), submodules named
in `from phoenix import cli`, and computed ones: every string literal that names a Phoenix
module counts as an import of it (`importlib.import_module("phoenix.x")`, `__import__`,
or a helper handed the name), an f-string or `+` with a constant prefix counts as that
prefix (`f"phoenix.cli.{name}"`), and an `import_module`/`__import__` the test cannot
resolve to a package fails unless UNRESOLVED_ALLOWED names it with its reason.

A package may import packages of the layers below it only; packages in the same layer
are independent of each other. The imports that break this today are listed one by one
(importing module -> package) in KNOWN_VIOLATIONS, so any new upward import fails here;
fixing one means deleting its line (a line that no longer matches is reported as a
warning, so the list only shrinks). A dependency-free equivalent of an import-linter
"layers" contract: the project adds no tool for one test.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# Highest first. "phoenix" is the package's own __init__ (its version); "demo" is package
# data run inside guests (it imports nothing of Phoenix).
LAYERS: list[set[str]] = [
    {"cli"},  # with phoenix.__main__
    {"gateway"},  # the gateway application; handed to the planner by the CLI
    {"plan"},  # planner, executor, journal, lock
    {"recipes"},  # what runs inside guests: features, applications, bundles
    {"host"},  # host preparation and doctor
    {"inventory", "drivers"},  # a driver knows nothing of JSON files, planning or recipes
    {"runners"},
    {"phoenix", "files", "names", "digits"},  # the atomic write, shared names, strict digits
    {"errors", "demo"},
]

# importing module -> package it may not import, as the code stands (issue 15 lists them).
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


# module -> why its computed import (import_module(name)) is still checked.
UNRESOLVED_ALLOWED: dict[str, str] = {
    "phoenix.drivers.factory": "_import(module, ...) is only called with string literals, "
    "which count as imports",
}


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _package(module: str) -> str:
    """`phoenix.plan.executor` -> `plan`; the top package itself -> `phoenix`."""
    parts = module.split(".")
    package = parts[1] if len(parts) > 1 else parts[0]
    return "cli" if package == "__main__" else package


def _is_module(name: str) -> bool:
    if not all(part.isidentifier() for part in name.split(".")):
        return False
    path = SRC / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute module of a relative `from ... import` in `module`."""
    parts = module.split(".") if is_package else module.split(".")[:-1]
    base = parts[: len(parts) - (level - 1)] if level > 1 else parts
    return ".".join([*base, name] if name else base)


def _constant_prefix(node: ast.AST) -> str | None:
    """The text of a string expression up to its first computed part."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        text = ""
        for value in node.values:
            if not (isinstance(value, ast.Constant) and isinstance(value.value, str)):
                return text
            text += value.value
        return text
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left = _constant_prefix(node.left)
        if left is None:
            return None
        right = _constant_prefix(node.right)
        whole = isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant)
        return left + (right or "") if whole or right is not None else left
    return None


UNRESOLVED = "<unresolved computed import>"


def _imports(tree: ast.AST, module: str = "phoenix.x", is_package: bool = False) -> Iterator[str]:
    """Every module `module`'s source imports or names; UNRESOLVED for a computed import
    whose target is not a literal."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve(module, is_package, node.level, node.module)
            yield base
            for alias in node.names:
                if _is_module(f"{base}.{alias.name}"):
                    yield f"{base}.{alias.name}"  # a submodule: `from phoenix import cli`
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value.startswith("phoenix") and _is_module(node.value):
                yield node.value
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0] if node.args else None
            if name not in ("import_module", "__import__") or first is None:
                continue
            prefix = _constant_prefix(first)
            if isinstance(first, ast.Constant) and not str(first.value).startswith("."):
                yield str(first.value)
            elif prefix and prefix.startswith(".") and not node.keywords:
                yield _resolve(module, is_package, len(prefix) - len(prefix.lstrip(".")), None)
            elif prefix and prefix.count(".") >= 2 and prefix.startswith("phoenix."):
                yield prefix.rsplit(".", 1)[0]  # f"phoenix.cli.{name}" -> phoenix.cli
            else:
                yield UNRESOLVED


def phoenix_imports() -> set[tuple[str, str]]:
    """(importing module, imported module) for every import of Phoenix by Phoenix."""
    edges: set[tuple[str, str]] = set()
    for path in sorted((SRC / "phoenix").rglob("*.py")):
        module = _module(path)
        tree = ast.parse(path.read_text(), str(path))
        for target in _imports(tree, module, path.name == "__init__.py"):
            if target == "phoenix" or target.startswith("phoenix.") or target == UNRESOLVED:
                edges.add((module, target))
    return edges


def _rank(package: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if package in layer:
            return rank
    raise AssertionError(f"package {package!r} is in no layer: add it to LAYERS")


def upward_imports(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """(importing module, package) for each import of a package not strictly below, and
    (module, UNRESOLVED) for a computed import not allowed in UNRESOLVED_ALLOWED."""
    out: set[tuple[str, str]] = set()
    for module, target in edges:
        if target == UNRESOLVED:
            if module not in UNRESOLVED_ALLOWED:
                out.add((module, UNRESOLVED))
            continue
        source, imported = _package(module), _package(target)
        if source != imported and _rank(imported) <= _rank(source):
            out.add((module, imported))
    return out


def test_every_package_has_a_layer() -> None:
    packages = {_package(m) for edge in phoenix_imports() for m in edge if m != UNRESOLVED}
    for package in packages:
        _rank(package)


def test_no_new_import_goes_up_or_sideways() -> None:
    found = upward_imports(phoenix_imports())
    new = sorted(found - KNOWN_VIOLATIONS)
    assert not new, (
        "imports against ARCHITECTURE.md's layering (module -> package): "
        f"{new}; hand the value in from the caller instead, or move the shared part down"
    )
    fixed = sorted(KNOWN_VIOLATIONS - found)
    if fixed:
        warnings.warn(f"fixed, delete from KNOWN_VIOLATIONS: {fixed}", stacklevel=1)


def test_the_check_sees_upward_and_sideways_imports() -> None:
    edges = {
        ("phoenix.inventory.checks", "phoenix.recipes.registry"),  # up
        ("phoenix.drivers.lxc.driver", "phoenix.inventory.models"),  # sideways
        ("phoenix.plan.planner", "phoenix.inventory.loader"),  # down: fine
        ("phoenix.inventory.loader", "phoenix.inventory.checks"),  # within: fine
    }
    assert upward_imports(edges) == {
        ("phoenix.inventory.checks", "recipes"),
        ("phoenix.drivers.lxc.driver", "inventory"),
    }
    tree = ast.parse(
        "import importlib\n"
        "def f():\n"
        "    from phoenix.gateway import routes\n"
        "    importlib.import_module('phoenix.plan.model')\n"
    )
    assert set(_imports(tree)) == {
        "importlib",
        "phoenix.gateway",
        "phoenix.gateway.routes",
        "phoenix.plan.model",
    }


@pytest.mark.parametrize(
    ("source", "imported"),
    [
        ("from ..cli import app", "phoenix.cli"),  # relative, up one package
        ("from ..cli.app import main", "phoenix.cli.app"),
        ("from .. import cli", "phoenix.cli"),  # a submodule named in the import list
        ("from phoenix import cli", "phoenix.cli"),
        ("import importlib\nimportlib.import_module('phoenix.cli.app')", "phoenix.cli.app"),
        ("__import__('phoenix.gateway.render')", "phoenix.gateway.render"),
        ("import_module(f'phoenix.cli.{name}')", "phoenix.cli"),  # computed, constant prefix
        ("import_module('phoenix.gateway.' + name)", "phoenix.gateway"),
        ("load('phoenix.plan.run', 'converge')", "phoenix.plan.run"),  # a helper handed it
        ("import_module(name)", UNRESOLVED),
        ("import_module('phoenix.' + name)", UNRESOLVED),  # which package: unknown
    ],
)
def test_the_check_sees_relative_and_computed_imports(source: str, imported: str) -> None:
    """Planted in the inventory layer, each of these is an import of a higher layer."""
    module = "phoenix.inventory.core"
    found = set(_imports(ast.parse(source), module))
    assert imported in found, found
    edges = {(module, t) for t in found if t.startswith("phoenix") or t == UNRESOLVED}
    assert upward_imports(edges), edges


def test_the_inventory_imports_no_recipes_and_has_no_import_circle() -> None:
    edges = {(a, b) for a, b in phoenix_imports() if _package(a) == "inventory"}
    assert not {b for _, b in edges if _package(b) == "recipes"}
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        if _package(b) == "inventory":
            graph.setdefault(a, set()).add(b)
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        assert node not in path, f"import circle: {' -> '.join([*path, node])}"
        if node in done:
            return
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        done.add(node)

    for start in sorted(graph):
        visit(start, [])
