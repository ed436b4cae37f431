"""The fake node (fakenode.py) as the commands a `phoenix` process runs: `pct`, `pvesh` and
`pveversion` executables where a Proxmox VE node has them, each call answered by a
`FakeNode` whose files live under one directory and whose state (versions, storages,
bridges, device nodes, running guests, HA) is kept in `node.json` there between calls.

For the Proxmox install test (tests/e2e/test_proxmox_install.py): a Phoenix installed as
on a node runs `phoenix doctor` and `phoenix delete` against it. Like every use of the fake
node, it proves Phoenix's side of the command contract, not Proxmox's.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

from tests.unit.proxmox.fakenode import FakeNode

# Where a Proxmox VE node has its commands (pve-container, pve-manager).
TOOLS = {"pct": "/usr/sbin/pct", "pvesh": "/usr/bin/pvesh", "pveversion": "/usr/bin/pveversion"}
STATE = "node.json"


def load(root: Path) -> FakeNode:
    """The node kept under `root` (a new one with the fake's defaults at first)."""
    path = root / STATE
    data = json.loads(path.read_text()) if path.is_file() else {}
    node = FakeNode(root / "fs", version=data.get("version", "8.4.1"), name=data.get("name", "pve"))
    node.storages = data.get("storages", node.storages)
    node.bridges = set(data.get("bridges", sorted(node.bridges)))
    node.devices = data.get("devices", {})
    node.datacenter_firewall = bool(data.get("datacenter_firewall", False))
    node.running = set(data.get("running", []))
    node.ha = {int(k): v for k, v in data.get("ha", {}).items()}
    node.ha_leaving = {int(k): v for k, v in data.get("ha_leaving", {}).items()}
    return node


def save(root: Path, node: FakeNode) -> None:
    data = {
        "version": node.version,
        "name": node.name,
        "storages": node.storages,
        "bridges": sorted(node.bridges),
        "devices": node.devices,
        "datacenter_firewall": node.datacenter_firewall,
        "running": sorted(node.running),
        "ha": {str(k): v for k, v in node.ha.items()},
        "ha_leaving": {str(k): v for k, v in node.ha_leaving.items()},
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / STATE).write_text(json.dumps(data, indent=1) + "\n")


def main(root: str, tool: str, args: list[str]) -> int:
    """Answer one command as the node under `root` would; log it to `calls.log` there."""
    where = Path(root)
    node = load(where)
    result = node.run([tool, *args])
    save(where, node)
    with (where / "calls.log").open("a") as log:
        log.write(shlex.join([tool, *args]) + "\n")
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def install(system_root: Path, python: str, project: str, node_root: str) -> None:
    """Write the commands under `system_root` (a chroot's `/`): each runs `python` with
    `project` (a checkout holding tests/) on its path, answered by the node at
    `node_root` (a path as seen inside that root)."""
    for tool, path in TOOLS.items():
        code = (
            f"import sys; sys.path.insert(0, {project!r}); "
            "from tests.unit.proxmox.fakeshim import main; "
            f"sys.exit(main({node_root!r}, {tool!r}, sys.argv[1:]))"
        )
        script = system_root / path.lstrip("/")
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(f'#!/bin/sh\nexec {shlex.quote(python)} -c {shlex.quote(code)} "$@"\n')
        script.chmod(0o755)
