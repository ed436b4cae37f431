"""What a fresh node holds for each guest while an offline preview walks a plan: the
config as `pvesh get .../config` would show it, made from the commands the preview lists,
so the configure builder sees the facts the driver would read at that point.

It follows what Proxmox does with each command (pve-container `src/PVE/LXC/Config.pm`,
`src/PVE/API2/LXC.pm`): `pct create` makes the root disk; `pct set` replaces each option
given and deletes those named by `--delete`, draws a MAC for a NIC without one and
allocates a `mpN` volume given as `STORAGE:GiB`; `pct resize` grows a disk; `pct clone`
copies the source's config (not its snapshot bookkeeping or `template`) with a new MAC;
`pct template` marks it. A MAC Proxmox draws is shown as `<MAC of CTID>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from phoenix.digits import is_digits
from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox.properties import parse_property_string, render_property_string

Config = dict[str, Any]

# Not copied by a clone (pve-container `LXC.pm` clone_vm / `Config.pm`).
_NOT_CLONED = ("template", "lock", "parent", "snaptime")


def mac_placeholder(ctid: int) -> str:
    return f"<MAC of {ctid}>"


def created(ctid: int, settings: GuestSettings) -> Config:
    """The config `pct create` leaves (what the preview's later commands start from)."""
    return {
        "hostname": settings.hostname,
        "rootfs": f"{settings.storage}:subvol-{ctid}-disk-0,size={settings.disk_gb}G",
        "unprivileged": 1 if settings.unprivileged else 0,
    }


def cloned(source: Config, ctid: int, storage: str, hostname: str) -> Config:
    config = {
        k: v for k, v in source.items() if k not in _NOT_CLONED and not k.startswith("unused")
    }
    if "net0" in config:
        config["net0"] = _with_mac(str(config["net0"]), mac_placeholder(ctid))
    size = parse_property_string(str(source.get("rootfs", "")), "volume").get("size", "0G")
    config["rootfs"] = f"{storage}:subvol-{ctid}-disk-0,size={size}"
    config["hostname"] = hostname
    return config


def apply(config: Config, argv: Sequence[str]) -> None:
    """One `pct set`/`pct resize`/`pct template` the preview listed, as the node applies it."""
    if tuple(argv[:2]) == ("pct", "template"):
        config["template"] = 1
    elif tuple(argv[:2]) == ("pct", "resize"):
        disk, size = argv[3], argv[4]
        props = parse_property_string(str(config.get(disk, "")), "volume")
        volume = props.pop("volume", "")
        props["size"] = size
        config[disk] = f"{volume},{render_property_string(list(props.items()))}"
    elif tuple(argv[:2]) == ("pct", "set"):
        ctid = int(argv[2])
        options = dict(zip(argv[3::2], argv[4::2], strict=True))
        for key in options.pop("--delete", "").split(","):
            config.pop(key, None)
        for option, value in options.items():
            config[option[2:]] = _allocated(ctid, option[2:], value, config)


def set_raw(config: Config, pairs: Sequence[tuple[str, str]]) -> None:
    """The conf's raw keys after a write (pvesh lists them under `lxc`)."""
    if pairs:
        config["lxc"] = [list(p) for p in pairs]
    else:
        config.pop("lxc", None)


def _with_mac(net: str, mac: str) -> str:
    props = parse_property_string(net)
    props["hwaddr"] = mac
    return render_property_string(list(props.items()))


def _allocated(ctid: int, key: str, value: str, config: Config) -> str:
    if key == "net0" and "hwaddr=" not in value:
        return _with_mac(value, mac_placeholder(ctid))
    head, _, rest = value.partition(",")
    storage, _, size = head.partition(":")
    if not key.startswith("mp") or not is_digits(size):
        return value
    disk = 1 + sum(1 for k in config if k.startswith("mp"))
    return f"{storage}:subvol-{ctid}-disk-{disk},{rest},size={size}G"
