"""`validate`, `schema`, `graph`: commands that only read the config dir."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from phoenix.cli.context import console, fail, load, parse_ids, print_problems, state
from phoenix.cli.plain import lit, visible


def validate(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print problems as a JSON list.")] = False,
) -> None:
    """Check the config dir: types, then cross-guest rules. Exit 0 when valid (warnings are
    printed), 1 when not. Each problem is one line: FILE: JSON.PATH: message."""
    from phoenix.inventory import validate_config_dir
    from phoenix.inventory.problems import errors
    from phoenix.recipes import registry

    config_dir = state(ctx).config_dir
    inventory, problems = validate_config_dir(config_dir, registry, state(ctx).driver)
    print_problems(problems, as_json)
    if inventory is None or errors(problems):
        if not as_json:
            n = len(errors(problems))
            console.print(
                f"[red]{lit(config_dir)}: invalid ({n} error{'s' if n != 1 else ''})[/]",
                markup=True,
            )
        fail(None)
    if not as_json:
        n_warn = len(problems)
        console.print(
            f"[green]{lit(config_dir)}: valid[/] — {len(inventory.guests)} containers, "
            f"{len(inventory.vms)} VMs, {n_warn} warning{'s' if n_warn != 1 else ''}",
            markup=True,
        )


def schema(
    file: Annotated[
        str,
        typer.Option(
            help="Which file's schema: lxc (phoenix_lxc_configs.json), vm "
            "(phoenix_vm_configs.json) or hypervisor."
        ),
    ] = "lxc",
) -> None:
    """Print the JSON Schema of the inventory (point your editor at it)."""
    from phoenix.inventory.schema import SCHEMA_FILES, inventory_schema

    if file not in SCHEMA_FILES:
        fail(f"--file must be 'lxc', 'vm' or 'hypervisor', not {file!r}")
    typer.echo(json.dumps(inventory_schema(file), indent=2))


class GraphFormat(StrEnum):
    tree = "tree"
    mermaid = "mermaid"
    dot = "dot"


def graph(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Argument(help="Guest ids (default: all).")] = None,
    fmt: Annotated[GraphFormat, typer.Option("--format", help="Output format.")] = GraphFormat.tree,
) -> None:
    """Print the dependency tree: what each guest clones from and depends on, and the
    creation order Phoenix will use."""
    from phoenix.inventory import build_graph, start_order

    inventory = load(ctx)
    roots = parse_ids(inventory, ids)
    g = build_graph(inventory)
    if fmt is GraphFormat.mermaid:
        typer.echo(visible(g.to_mermaid(roots)), nl=False)
    elif fmt is GraphFormat.dot:
        typer.echo(visible(g.to_dot(roots)), nl=False)
    else:
        typer.echo(visible(g.to_tree(roots)), nl=False)
        order = g.creation_order(roots)
        typer.echo("creation order: " + " ".join(map(str, order)))
        typer.echo("start order: " + " ".join(map(str, start_order(inventory, order))))
