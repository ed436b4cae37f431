"""What `phoenix import` reads of a Proxmox VE node beyond `observe`: which guests exist (in
the cluster's resource list) and what a guest's config holds that Phoenix does not manage.

`observe` reports a guest's settings as Phoenix compares them: only the raw lines, mount
points, devices and firewall rules Phoenix wrote (`ownership`). An import writes exactly
those settings, so `phoenix plan` right after shows nothing to change; everything else the
node holds stays there and is named here, one line each, so a report can say what the
inventory does not describe. Values that may carry secrets (`env`, `description`) are named
by key, never quoted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from phoenix.digits import is_digits
from phoenix.drivers.proxmox import firewall, pvesh
from phoenix.drivers.proxmox.driver import ProxmoxDriver
from phoenix.drivers.proxmox.node import NodeSession, parse_facts
from phoenix.drivers.proxmox.ownership import owned_lines
from phoenix.drivers.proxmox.properties import NET_MANAGED, parse_property_string
from phoenix.drivers.secrets import secret_variable
from phoenix.errors import DriverError

# Config keys `observe` reads into settings (or Proxmox's own bookkeeping): not reported.
_READ = frozenset(
    {
        "hostname", "memory", "swap", "cores", "rootfs", "net0", "features", "onboot",
        "startup", "unprivileged", "template", "lock", "digest", "lxc", "parent",
        "snaptime", "arch", "ostype",
    }
)  # fmt: skip
_PER_INDEX = re.compile(r"^(mp|dev|unused|net)[0-9]+$")
# Keys whose value is shown in the report; any other key is named only (it may be a secret).
_SHOWN = frozenset(
    {
        "tags", "protection", "hookscript", "nameserver", "searchdomain", "timezone",
        "cpulimit", "cpuunits", "cmode", "console", "tty", "entrypoint", "debug",
    }
)  # fmt: skip
_STARTUP_MANAGED = frozenset({"order", "up"})


@dataclass(frozen=True)
class Resource:
    """One guest of `/cluster/resources`: a container or a VM, on some node."""

    vmid: int
    kind: str  # "lxc" or "qemu"
    node: str
    name: str
    template: bool


def resources(session: NodeSession) -> list[Resource]:
    """Every guest the cluster (or the lone node) knows, sorted by id."""
    result = session._run("observe", pvesh.cluster_resources_cmd())
    if not result.ok:
        raise DriverError(
            f"node {session.node}: cannot list guests (`pvesh get /cluster/resources`): "
            f"{(result.stderr or result.stdout).strip()[-300:]}"
        )
    try:
        data = pvesh.load_json(result.stdout, "cluster resources")
    except ValueError as exc:
        raise DriverError(f"node {session.node}: {exc}") from None
    out: list[Resource] = []
    for entry in data if isinstance(data, list) else []:
        if not isinstance(entry, Mapping) or entry.get("type") not in ("lxc", "qemu"):
            continue
        vmid = str(entry.get("vmid", ""))
        if not is_digits(vmid):
            continue
        out.append(
            Resource(
                vmid=int(vmid),
                kind=str(entry["type"]),
                node=str(entry.get("node", "")),
                name=str(entry.get("name", "")),
                template=str(entry.get("template", 0)) in ("1", "true"),
            )
        )
    return sorted(out, key=lambda r: r.vmid)


@dataclass(frozen=True)
class Member:
    """One node of `/cluster/status`: its name, whether it is the node asked, whether up."""

    name: str
    local: bool
    online: bool


def members(session: NodeSession) -> list[Member]:
    """The cluster's nodes (`/cluster/status`); empty when it cannot be read (a node that
    is in no cluster answers with itself alone)."""
    result = session._run("observe", pvesh.cluster_status_cmd())
    if not result.ok:
        return []
    try:
        data = pvesh.load_json(result.stdout, "cluster status")
    except ValueError:
        return []
    return sorted(
        (
            Member(str(e["name"]), str(e.get("local", 0)) == "1", str(e.get("online", 1)) == "1")
            for e in (data if isinstance(data, list) else [])
            if isinstance(e, Mapping) and e.get("type") == "node" and e.get("name")
        ),
        key=lambda m: m.name,
    )


def on_node(driver: ProxmoxDriver, node: str) -> ProxmoxDriver:
    """A driver for another node of the cluster through the same runner: pvesh forwards
    `/nodes/<node>/...` there, and `/etc/pve/firewall` is cluster-wide. Reads only: `pct`
    acts on the local node's guests alone."""
    return ProxmoxDriver(driver.runner, node, owned=driver.owned)


def unmanaged(session: NodeSession, ctid: int) -> list[str]:
    """What guest `ctid`'s config and firewall file hold that `observe` does not report
    as its settings: kept on the node, not written to an inventory. One line each."""
    data = session._config(ctid)
    if data is None:
        return []
    fw_text = session._read_file(ctid, pvesh.fw_path(ctid))
    facts = parse_facts(ctid, data, firewall.parse(fw_text) if fw_text is not None else None)
    owned = session.owned
    out: list[str] = []
    mine = set(owned_lines(facts.raw, (), owned.get(ctid))) | set(owned.gpu_lines(ctid))
    for key, value in facts.raw:
        secret = secret_variable(key, value)
        if (key, value) in mine:
            continue
        if secret is not None:
            out.append(f"raw line `{key}` setting {secret} (value not shown: a secret)")
        elif key != pvesh.APPARMOR_KEY:
            out.append(f"raw line `{key}: {value}`")
        else:
            out.append(f"AppArmor profile `{value}` (a raw `{key}` line Phoenix did not write)")
    targets = set(owned.mount_targets(ctid))
    out += [
        f"mount point {p.key} `{p.value}`" for p in facts.mounts if p.mount.target not in targets
    ]
    devs = set(owned.dev_paths(ctid))
    out += [f"device {e.key} `{e.path}`" for e in facts.devices if e.path not in devs]
    if facts.net0 is not None:
        extra = [
            f"{k}={v}" for k, v in parse_property_string(facts.net0).items() if k not in NET_MANAGED
        ]
        if extra:
            out.append(f"net0 settings {', '.join(extra)}")
    if facts.startup:
        extra = [
            f"{k}={v}"
            for k, v in parse_property_string(facts.startup, "order").items()
            if k not in _STARTUP_MANAGED
        ]
        if extra:
            out.append(f"startup settings {', '.join(extra)}")
    out += _other_options(data)
    if fw_text is not None:
        out += _firewall_extras(fw_text, owned.fw_rules(ctid))
    return out


def _other_options(data: Mapping[str, Any]) -> list[str]:
    out = []
    for key in sorted(data):
        if key in _READ or (_PER_INDEX.match(key) and not key.startswith("net")):
            continue
        if key.startswith("net"):
            out.append(f"second NIC {key}")
        elif key in _SHOWN:
            out.append(f"option `{key}: {data[key]}`")
        else:
            out.append(f"option `{key}` (value not shown: it may hold a secret)")
    return out


def _firewall_extras(text: str, owned_rules: list[str]) -> list[str]:
    """Rules Phoenix did not write, and the sections and options it never manages."""
    mine = set(owned_rules)
    section = ""
    rules: list[str] = []
    out: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        match = re.match(r"^\[([^\]]+)\]", line)
        if match:
            section = match.group(1).split()[0].upper()
            if section not in ("OPTIONS", "RULES"):
                out.append(f"firewall section [{match.group(1)}]")
            continue
        if not line or line.startswith("#"):
            continue
        if section == "RULES" and line not in mine:
            rules.append(line)
        elif section == "OPTIONS":
            key = line.partition(":")[0].strip()
            if key not in ("enable", "policy_in", "policy_out"):
                out.append(f"firewall option `{line}`")
    out += [f"firewall rule `{rule}`" for rule in rules]
    return out
