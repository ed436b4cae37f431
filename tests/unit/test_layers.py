"""The layering of ARCHITECTURE.md, enforced over every import in src/phoenix (top-level,
inside functions, under TYPE_CHECKING, and `importlib.import_module("phoenix...")`).

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
    {"phoenix", "files", "names"},  # the atomic write and the names every layer uses
    {"errors", "demo"},
]

# importing module -> package it may not import, as the code stands (issue 15 lists them).
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


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


def _imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0] if node.args else None
            if name == "import_module" and isinstance(first, ast.Constant):
                yield str(first.value)


def phoenix_imports() -> set[tuple[str, str]]:
    """(importing module, imported module) for every import of Phoenix by Phoenix."""
    edges: set[tuple[str, str]] = set()
    for path in sorted((SRC / "phoenix").rglob("*.py")):
        module = _module(path)
        for target in _imports(ast.parse(path.read_text(), str(path))):
            if target == "phoenix" or target.startswith("phoenix."):
                edges.add((module, target))
    return edges


def _rank(package: str) -> int:
    for rank, layer in enumerate(LAYERS):
        if package in layer:
            return rank
    raise AssertionError(f"package {package!r} is in no layer: add it to LAYERS")


def upward_imports(edges: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """(importing module, package) for each import of a package not strictly below."""
    out: set[tuple[str, str]] = set()
    for module, target in edges:
        source, imported = _package(module), _package(target)
        if source != imported and _rank(imported) <= _rank(source):
            out.add((module, imported))
    return out


def test_every_package_has_a_layer() -> None:
    packages = {_package(m) for edge in phoenix_imports() for m in edge}
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
    assert set(_imports(tree)) == {"importlib", "phoenix.gateway", "phoenix.plan.model"}


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
