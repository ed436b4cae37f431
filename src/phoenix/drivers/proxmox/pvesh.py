"""Observing a guest: the `pvesh` commands to run and pure parsers of their JSON.

Like a pyinfra fact, each observation is a command (built here, in one place) plus a parser
with no I/O that turns recorded output into typed values: `parse_config` gives the guest's
`GuestSettings` in the same normalised shape `phoenix.plan.desired` builds, so
`desired.diff(observed)` is empty exactly when the guest is converged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from phoenix.digits import is_digits
from phoenix.drivers.base import GuestSettings, GuestState, NetSettings
from phoenix.drivers.proxmox import devices, firewall, mounts
from phoenix.drivers.proxmox.properties import (
    as_int,
    flag,
    parse_features,
    parse_net,
    parse_rootfs,
    parse_startup,
)
from phoenix.errors import ParseError

APPARMOR_KEY = "lxc.apparmor.profile"

# Proxmox's defaults for options absent from a config (pve-container's $confdesc).
DEFAULT_MEMORY_MB = 512
DEFAULT_SWAP_MB = 512


def pvesh_get(path: str, *options: str) -> list[str]:
    """`pvesh get <path> [options] --output-format json` — the only way we read the API."""
    return ["pvesh", "get", path, *options, "--output-format", "json"]


def config_cmd(node: str, ctid: int) -> list[str]:
    return pvesh_get(f"/nodes/{node}/lxc/{ctid}/config", "--current", "1")


def status_cmd(node: str, ctid: int) -> list[str]:
    return pvesh_get(f"/nodes/{node}/lxc/{ctid}/status/current")


def snapshots_cmd(node: str, ctid: int) -> list[str]:
    return pvesh_get(f"/nodes/{node}/lxc/{ctid}/snapshot")


def snapshot_config_cmd(node: str, ctid: int, name: str) -> list[str]:
    """The config a snapshot holds (its disks' sizes as they were when it was taken)."""
    return pvesh_get(f"/nodes/{node}/lxc/{ctid}/snapshot/{name}/config")


def interfaces_cmd(node: str, ctid: int) -> list[str]:
    return pvesh_get(f"/nodes/{node}/lxc/{ctid}/interfaces")


def storage_cmd(node: str) -> list[str]:
    return pvesh_get(f"/nodes/{node}/storage")


def network_cmd(node: str) -> list[str]:
    """Every kind of bridge, SDN VNets included (`any_bridge`)."""
    return pvesh_get(f"/nodes/{node}/network", "--type", "any_bridge")


def version_cmd() -> list[str]:
    return pvesh_get("/version")


def cluster_firewall_cmd() -> list[str]:
    return pvesh_get("/cluster/firewall/options")


def cluster_status_cmd() -> list[str]:
    return pvesh_get("/cluster/status")


def cluster_resources_cmd() -> list[str]:
    return pvesh_get("/cluster/resources", "--type", "vm")


Version = tuple[int, int]


def parse_version(data: Any) -> Version:
    """`/version` (`{"version": "8.4.1", "release": "8.4", ...}`) -> (8, 4)."""
    text = str(data.get("version", "")) if isinstance(data, Mapping) else ""
    parts = text.split(".")
    if len(parts) < 2 or not is_digits(parts[0]) or not is_digits(parts[1]):
        raise ParseError(f"/version: cannot read a version from {data!r}")
    return int(parts[0]), int(parts[1])


def conf_path(ctid: int) -> str:
    return f"/etc/pve/lxc/{ctid}.conf"


def fw_path(ctid: int) -> str:
    return f"/etc/pve/firewall/{ctid}.fw"


def config_lock_path(ctid: int) -> str:
    """The flock pct itself takes while it changes a container config."""
    return f"/run/lock/lxc/pve-config-{ctid}.lock"


def load_json(text: str, what: str) -> Any:
    """pvesh's answer; a ParseError (a ValueError the driver re-raises naming the guest, a
    PhoenixError where nothing does) when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"{what}: pvesh did not return JSON ({exc.msg} at {exc.pos})") from None


@dataclass(frozen=True)
class ConfigFacts:
    """The parts of a container config that are not GuestSettings but matter to a driver."""

    settings: GuestSettings
    mac: str | None
    net_firewall: bool
    locked: str | None
    is_template: bool
    raw: tuple[tuple[str, str], ...]
    mounts: tuple[mounts.Present, ...] = ()
    devices: tuple[devices.DevEntry, ...] = ()
    net0: str | None = None  # as the node holds it: keys Phoenix does not manage are kept
    startup: str | None = None


def parse_config(data: Mapping[str, Any], fw: firewall.FirewallFile | None = None) -> ConfigFacts:
    """`pvesh get .../config --output-format json` (a dict) -> settings and facts.

    Raw keys arrive under `lxc` as `[[key, value], ...]`; AppArmor is split off as it is in
    the desired state. The firewall counts as enabled only when the `.fw` file enables it
    and the NIC has `firewall=1` (both are needed for Proxmox to filter the guest).
    """
    raw_pairs = tuple((str(k), str(v)) for k, v in data.get("lxc", []) or [])
    apparmor: str | None = None
    raw: list[tuple[str, str]] = []
    for key, value in raw_pairs:
        if key == APPARMOR_KEY:
            apparmor = value
        else:
            raw.append((key, value))

    net: NetSettings | None = None
    mac: str | None = None
    net_firewall = False
    if "net0" in data:
        net, net_firewall = parse_net(str(data["net0"]))
        mac = net.mac

    storage, disk_gb = parse_rootfs(str(data.get("rootfs", "")))
    order, up = parse_startup(data.get("startup"))
    fw = fw or firewall.FirewallFile(False, ())
    enabled = fw.enabled and (net is None or net_firewall)
    settings = GuestSettings(
        hostname=str(data.get("hostname", "")),
        memory_mb=as_int(data, "memory", DEFAULT_MEMORY_MB),
        swap_mb=as_int(data, "swap", DEFAULT_SWAP_MB),
        cores=as_int(data, "cores", 0),
        disk_gb=disk_gb,
        storage=storage,
        unprivileged=flag(data.get("unprivileged", 0)),
        net=net,
        features=parse_features(data.get("features")),
        raw_lxc=tuple(raw),  # as found: a duplicated line is drift the next write removes
        apparmor_profile=apparmor,
        onboot=flag(data.get("onboot", 0)),
        boot_order=order,
        boot_delay=up,
        firewall_enabled=enabled,
        firewall_rules=fw.rules if enabled else (),
        gpus=devices.observed_gpus(devices.parse_entries(data), raw_pairs),
    )
    lock = data.get("lock")
    return ConfigFacts(
        settings=settings,
        mac=mac,
        net_firewall=net_firewall,
        locked=str(lock) if lock else None,
        is_template=flag(data.get("template", 0)),
        raw=raw_pairs,
        mounts=tuple(mounts.parse_entries(data)),
        devices=tuple(devices.parse_entries(data)),
        net0=str(data["net0"]) if "net0" in data else None,
        startup=str(data["startup"]) if data.get("startup") else None,
    )


def parse_status(data: Mapping[str, Any]) -> tuple[GuestState, str | None]:
    """`.../status/current` -> ("running"|"stopped", lock or None)."""
    state: GuestState = "running" if data.get("status") == "running" else "stopped"
    lock = data.get("lock")
    return state, (str(lock) if lock else None)


def parse_snapshots(data: list[Mapping[str, Any]]) -> tuple[str, ...]:
    """`.../snapshot` -> snapshot names, oldest first; the pseudo-entry `current` is dropped."""
    snaps = [s for s in data if s.get("name") != "current"]
    snaps.sort(key=lambda s: (as_int(s, "snaptime", 0), str(s.get("name"))))
    return tuple(str(s["name"]) for s in snaps)


def parse_interfaces(data: Any) -> tuple[str, ...]:
    """`.../interfaces` -> the guest's IPv4 addresses (no prefix), loopback excluded.

    Reads `ip-addresses` (the current field) and falls back to the deprecated `inet`; pvesh
    prints `null` for a guest that reports no interfaces.
    """
    out: list[str] = []
    for iface in data if isinstance(data, list) else []:
        if not isinstance(iface, Mapping) or iface.get("name") == "lo":
            continue
        listed = iface.get("ip-addresses")
        if isinstance(listed, list):
            out += [
                str(a["ip-address"])
                for a in listed
                if isinstance(a, Mapping)
                and a.get("ip-address-type") == "inet"
                and a.get("ip-address")
            ]
            continue
        inet = iface.get("inet")
        if inet:
            out.append(str(inet).split("/", 1)[0])
    return tuple(out)


def parse_storages(data: list[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """`/nodes/{node}/storage` -> {storage id: entry}."""
    return {str(s["storage"]): dict(s) for s in data if "storage" in s}


def parse_bridges(data: list[Mapping[str, Any]]) -> set[str]:
    """`/nodes/{node}/network` -> names of Linux and OVS bridges."""
    kinds = ("bridge", "OVSBridge", "vnet")
    return {str(i["iface"]) for i in data if i.get("type") in kinds and "iface" in i}
