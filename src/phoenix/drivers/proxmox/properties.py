"""Proxmox property strings (`net0`, `features`, `startup`, `rootfs`): parse and render.

Proxmox stores structured options as `key=value,key=value` strings. These helpers are pure,
so the same code renders what `pct set` receives and parses what `pvesh get .../config`
returns, and both sides compare equal when converged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from phoenix.drivers.base import NetSettings
from phoenix.errors import DriverError

_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([KMGT]?)$")
_SIZE_GIB = {"K": 1 / (1024 * 1024), "M": 1 / 1024, "G": 1.0, "T": 1024.0, "": 1 / (1024**3)}


def parse_property_string(text: str, default_key: str | None = None) -> dict[str, str]:
    """`"name=eth0,bridge=vmbr0"` -> `{"name": "eth0", "bridge": "vmbr0"}`.

    A part without `=` is the value of `default_key` (Proxmox's `rootfs: local:subvol-1,...`).
    """
    out: dict[str, str] = {}
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            if default_key is None:
                raise ValueError(f"{text!r}: {part!r} is not 'key=value'")
            out[default_key] = part
            continue
        out[key.strip()] = value.strip()
    return out


class PropertyStringError(DriverError, ValueError):
    """A value that would change a property string's meaning: shown as Phoenix's one-line
    error, never written to the node."""


def render_property_string(pairs: Sequence[tuple[str, str]], head: str | None = None) -> str:
    """Pairs -> `k=v,k=v` in the given order (callers choose a stable order), after `head`,
    the value of the format's default key (`mpN: HEAD,mp=...`) when given.

    The one place an option string is put together: a value holding a `,` (or a head
    holding a `=`) would add options of its own, so it is refused, never written."""
    for key, value in pairs:
        if any(c in f"{key}{value}" for c in ",\n\0") or "=" in key or not key:
            raise PropertyStringError(
                f"{key}={value!r} cannot be written into a Proxmox property string"
            )
    parts = [f"{k}={v}" for k, v in pairs]
    if head is not None:
        if not head or any(c in head for c in ",=\n\0"):
            raise PropertyStringError(f"{head!r} cannot lead a Proxmox property string")
        parts.insert(0, head)
    return ",".join(parts)


# The `net0` keys Phoenix manages; every other key (`tag`, `ip6`, `gw6`, `mtu`, `rate`,
# `trunks`, `link_down`, `type`...) is the administrator's and is carried over as found.
NET_MANAGED = ("name", "bridge", "hwaddr", "ip", "gw", "firewall")


def render_net(
    net: NetSettings, mac: str | None, firewall: bool, current: str | None = None
) -> str:
    """The `--net0` value; `mac=None` leaves hwaddr out (only for a NIC not created yet).

    `pct set --net0` replaces the whole value (pve-container `LXC/Config.pm`
    `update_pct_config` writes the new string as given), so the keys Phoenix does not manage
    are taken from `current`, the node's value, in their order: a VLAN guest keeps its
    `tag` through a memory change."""
    pairs: list[tuple[str, str]] = [("name", net.name), ("bridge", net.bridge)]
    if mac is not None:
        pairs.append(("hwaddr", mac))
    pairs.append(("ip", net.ip))
    if net.gw is not None:
        pairs.append(("gw", net.gw))
    pairs.append(("firewall", "1" if firewall else "0"))
    kept = parse_property_string(current) if current else {}
    pairs += [(k, v) for k, v in kept.items() if k not in NET_MANAGED]
    return render_property_string(pairs)


def parse_net(text: str) -> tuple[NetSettings, bool]:
    """A `net0` value -> (NetSettings with the MAC Proxmox holds, firewall flag)."""
    props = parse_property_string(text)
    if "name" not in props:
        raise ValueError(f"net value {text!r} has no name=")
    mac = props.get("hwaddr")
    net = NetSettings(
        name=props["name"],
        bridge=props.get("bridge", ""),
        ip=props.get("ip", ""),
        gw=props.get("gw"),
        mac=mac.upper() if mac else None,
    )
    return net, props.get("firewall", "0") in ("1", "true", "yes", "on")


def render_features(features: Sequence[tuple[str, str]]) -> str:
    """`(("keyctl","1"),("nesting","1"))` -> `keyctl=1,nesting=1` (already sorted)."""
    return render_property_string(list(features))


def parse_features(text: str | None) -> tuple[tuple[str, str], ...]:
    """A `features` value -> sorted pairs with booleans as "0"/"1" like the inventory's."""
    if not text:
        return ()
    props = parse_property_string(text)
    norm = {"true": "1", "false": "0", "yes": "1", "no": "0", "on": "1", "off": "0"}
    return tuple(sorted((k, norm.get(v.lower(), v)) for k, v in props.items()))


def render_startup(order: int, up: int) -> str | None:
    """The `--startup` value with only what the inventory sets (0 = not set), or None.

    Proxmox sorts guests without `order` after every ordered one (pve-manager
    `PVE/API2/Nodes.pm` `get_start_stop_list`): writing `order=0` for an inventory that says
    nothing would start the guest first and stop it last."""
    pairs = [(k, str(v)) for k, v in (("order", order), ("up", up)) if v]
    return render_property_string(pairs) if pairs else None


def parse_startup(text: str | None) -> tuple[int, int]:
    """`order=1,up=5` -> (1, 5); absent parts are 0 (Proxmox's defaults for ordering)."""
    if not text:
        return 0, 0
    props = parse_property_string(text, default_key="order")
    return int(props.get("order", "0")), int(props.get("up", "0"))


def size_to_gib(text: str) -> int:
    """`32G`, `8192M`, `1T` -> whole GiB (rounded up: a disk never reads as smaller)."""
    match = _SIZE.match(text.strip().upper())
    if not match:
        raise ValueError(f"{text!r} is not a Proxmox disk size")
    return math.ceil(float(match.group(1)) * _SIZE_GIB[match.group(2)])


def parse_rootfs(text: str) -> tuple[str, int]:
    """`quickOS-lxc-disks:subvol-101-disk-0,size=32G` -> ("quickOS-lxc-disks", 32)."""
    props = parse_property_string(text, default_key="volume")
    volume = props.get("volume", "")
    storage = volume.split(":", 1)[0] if ":" in volume else ""
    size = size_to_gib(props["size"]) if "size" in props else 0
    return storage, size


def flag(value: object) -> bool:
    """Proxmox booleans arrive as 0/1 ints or strings."""
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def as_int(mapping: Mapping[str, object], key: str, default: int) -> int:
    value = mapping.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    return int(str(value))
