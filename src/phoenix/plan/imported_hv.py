"""`phoenix import`'s hypervisor config: the `phoenix` block that says how to reach what was
read (one node, or every node of a cluster), merged into the file that may already be
there (the original tool's keys kept). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phoenix.plan.imported import FoundHost, Note


def merged_hypervisor(
    existing: Mapping[str, Any] | None, phoenix: Mapping[str, Any]
) -> dict[str, Any]:
    """The hypervisor config with its `phoenix` block updated by `phoenix` (every other
    key of the original tool's file kept as it was)."""
    out = dict(existing or {})
    block = dict(out.get("phoenix") or {})
    block.update(phoenix)
    out["phoenix"] = {k: v for k, v in block.items() if v is not None}
    return out


def cluster_block(
    host: FoundHost, known: Mapping[str, Mapping[str, Any]], ssh_host: str | None
) -> tuple[dict[str, Any], list[Note]]:
    """The `phoenix` keys that describe `host`'s cluster: every node under `nodes` (what
    the config already says of a node is kept), the node read through as the default
    `node`. A node the config does not say how to reach is reached by SSH as root under its
    name (how Proxmox nodes reach each other), which the notes say; the node read through
    keeps `ssh_host` (None: Phoenix runs on it)."""
    nodes: dict[str, Any] = {name: dict(entry) for name, entry in known.items()}
    notes: list[Note] = []
    for name in host.nodes:
        if name in nodes:
            continue
        if name == host.reached:
            nodes[name] = {"ssh_host": ssh_host} if ssh_host else {}
            continue
        nodes[name] = {"ssh_host": f"root@{name}"}
        notes.append(
            Note(
                None,
                "inferred",
                f"nodes.{name}.ssh_host 'root@{name}': how Phoenix reaches node {name} "
                "(Proxmox nodes reach each other as root by name); change it if yours differs",
            )
        )
    return {"nodes": nodes, "node": host.reached, "ssh_host": None}, notes
