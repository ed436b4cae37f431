"""A Proxmox VE cluster in the hypervisor config: its nodes and how Phoenix reaches each.

`phoenix.nodes` is an addition: a config without it is one node, exactly as before
(`phoenix.node`, `phoenix.ssh_host`). With it, each node is reached locally (this machine
is that node: no `ssh_host`) or over SSH, and a guest names the node it lives on
(`node`), else it lives on the default node (`default_node`).

What a node entry says it has (`storages`, `bridges`) is checked at validate time when
given; what it does not say is read from the node itself when Phoenix observes it.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StrictStr

from phoenix.inventory.models.fields import IfName, Model, SshHost, StorageId

# A Proxmox node name: one host name label (pve-cluster `pvecm add` refuses dots in it),
# and the path component of `/nodes/<node>/...`.
_NODE_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _node_name(value: str) -> str:
    if not _NODE_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Proxmox node name (one host name label: letters, digits, '-')"
        )
    if value == "localhost":
        raise ValueError(
            "'localhost' names whichever node pvesh runs on, not one node of the cluster: "
            "use the node's own name (`hostname` on the node)"
        )
    return value


NodeName = Annotated[StrictStr, AfterValidator(_node_name)]


class ClusterNode(Model):
    """One node of the cluster (`phoenix.nodes.<name>`)."""

    ssh_host: SshHost | None = Field(
        default=None,
        description="host or user@host to reach the node by SSH; absent: Phoenix runs on "
        "this node itself (at most one node)",
    )
    storages: list[StorageId] | None = Field(
        default=None,
        description="Storage ids usable on this node (checked by validate when given; "
        "otherwise read from the node)",
    )
    bridges: list[IfName] | None = Field(
        default=None,
        description="Bridges on this node (checked by validate when given; otherwise read "
        "from the node)",
    )

    @property
    def is_local(self) -> bool:
        return self.ssh_host is None


def local_node(nodes: dict[str, ClusterNode]) -> str | None:
    """The node Phoenix runs on (the one without `ssh_host`), if any."""
    return next((name for name, node in nodes.items() if node.is_local), None)


def cluster_problem(
    nodes: dict[str, ClusterNode], node: str | None, ssh_host: str | None
) -> str | None:
    """Why `phoenix.nodes` cannot be read together with `node`/`ssh_host`, or None."""
    if not nodes:
        return None
    if ssh_host is not None:
        return (
            "'ssh_host' and 'nodes' cannot both be given: with 'nodes', each node's "
            "'ssh_host' says how to reach it"
        )
    if node is not None and node not in nodes:
        return f"'node' {node!r} is not one of 'nodes' ({', '.join(sorted(nodes))})"
    local = sorted(name for name, entry in nodes.items() if entry.is_local)
    if len(local) > 1:
        return (
            f"nodes {', '.join(local)} have no 'ssh_host', so each would be this machine: "
            "give all but the one Phoenix runs on an 'ssh_host'"
        )
    return None


def default_node(nodes: dict[str, ClusterNode], node: str | None) -> str | None:
    """Where a guest that names no node lives: `phoenix.node`, else the only node, else the
    node Phoenix runs on. None when the cluster leaves it open (each guest must say)."""
    if node is not None:
        return node
    if len(nodes) == 1:
        return next(iter(nodes))
    return local_node(nodes)
