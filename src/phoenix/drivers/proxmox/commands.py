"""Pure builders of the `pct` commands the Proxmox driver runs: settings and facts in, argv
out, no I/O. The driver observes, calls a builder and runs the result; the schema contract
test (tests/unit/proxmox/test_schema.py) feeds every builder's output to the Proxmox API
schema of each supported version.

A builder refuses (DriverError) what a node would refuse or get wrong, with the reason:
reserved snapshot names, shrinking a disk, a raw key the node's version does not keep.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from phoenix.drivers.base import GuestSettings
from phoenix.drivers.proxmox.properties import (
    render_features,
    render_net,
    render_property_string,
    render_startup,
)
from phoenix.drivers.proxmox.pvesh import ConfigFacts as NodeOptions
from phoenix.errors import DriverError

Version = tuple[int, int]

_VOLID = re.compile(r"^[A-Za-z][A-Za-z0-9\-_.]*:vztmpl/[^/\s]+$")
# pve-container: `current` is the running state, `vzdump` is vzdump's own snapshot.
RESERVED_SNAPSHOTS = frozenset({"current", "vzdump"})
# pct exec has --keep-env (default 1: the caller's environment leaks in) since pve-container
# 5.1 (PVE 8.2); on older nodes the option is unknown.
KEEP_ENV_SINCE: Version = (8, 2)

# The environment every `pct exec` gets (the LXC driver sets the same, with its PATH).
GUEST_ENV = {"HOME": "/root", "LANG": "C.UTF-8"}

# GuestSettings fields applied by `pct set`; the rest have their own commands.
PCT_SET_FIELDS = frozenset(
    {
        "hostname",
        "memory_mb",
        "swap_mb",
        "cores",
        "net",
        "features",
        "onboot",
        "boot_order",
        "boot_delay",
        "firewall_enabled",
    }
)
CONF_FIELDS = frozenset({"raw_lxc", "apparmor_profile"})
FIREWALL_FIELDS = frozenset({"firewall_enabled", "firewall_rules"})
# What create/clone apply right after `pct create`/`pct clone` (the Driver contract: a new
# guest has its settings), i.e. everything but what those commands fix themselves.
APPLIED_AFTER_CREATE = PCT_SET_FIELDS | CONF_FIELDS | FIREWALL_FIELDS | {"mounts", "gpus"}
# Changes that only take effect when the container starts again.
RESTART_FIELDS = frozenset({"raw_lxc", "apparmor_profile", "features", "mounts", "gpus"})


def template_argument(template: str) -> str:
    """The `ostemplate` argument of `pct create` for an inventory `template` value."""
    if _VOLID.match(template) or (template.startswith("/") and not template.endswith("/")):
        return template
    if template.startswith("debootstrap:"):
        raise DriverError(
            f"template {template!r} is built by the LXC driver; on Proxmox use a template "
            "archive (`pveam download <storage> <name>`) and give its path or volume id"
        )
    raise DriverError(
        f"template {template!r} is neither an absolute path nor a volume id "
        "('<storage>:vztmpl/<file>'); `pveam list <storage>` shows the ids"
    )


def create(ctid: int, template: str, settings: GuestSettings) -> list[str]:
    """`pct create` with what is fixed at creation; the rest is one `pct set` after it."""
    return [
        "pct", "create", str(ctid), template_argument(template),
        "--hostname", settings.hostname,
        "--rootfs", render_property_string([], head=f"{settings.storage}:{settings.disk_gb}"),
        "--unprivileged", "1" if settings.unprivileged else "0",
    ]  # fmt: skip


def clone(
    source: int,
    ctid: int,
    snapshot: str | None,
    settings: GuestSettings,
    target: str | None = None,
) -> list[str]:
    """`pct clone` (full, onto the guest's storage); `target`: onto another cluster node,
    which Proxmox allows only when that storage is shared (the config moves there)."""
    argv = ["pct", "clone", str(source), str(ctid)]
    if snapshot is not None:
        argv += ["--snapname", snapshot]
    argv += ["--full", "1", "--storage", settings.storage, "--hostname", settings.hostname]
    return argv if target is None else [*argv, "--target", target]


def migrate(ctid: int, target: str, running: bool) -> list[str]:
    """`pct migrate` to another node: a running container only in restart mode (shut
    down, moved, started there: containers cannot move live)."""
    argv = ["pct", "migrate", str(ctid), target]
    return [*argv, "--restart", "1"] if running else argv


def check_clone(
    source: int, ctid: int, settings: GuestSettings, source_settings: GuestSettings | None
) -> None:
    """Refuse a clone the node would make wrong: `unprivileged` is copied from the source and
    read-only afterwards; a disk smaller than the source's cannot be had (no shrinking)."""
    if source_settings is None:
        return
    if source_settings.unprivileged != settings.unprivileged:
        have = "unprivileged" if source_settings.unprivileged else "privileged"
        want = "unprivileged" if settings.unprivileged else "privileged"
        raise DriverError(
            f"guest {ctid} must be {want}, but its clone source {source} is {have}: a clone "
            f"copies this and it cannot change afterwards. Make {ctid} {have} in the "
            "inventory, or create it from a template instead of cloning"
        )
    if settings.disk_gb < source_settings.disk_gb:
        raise DriverError(
            f"guest {ctid} asks for a {settings.disk_gb} GiB disk, but its clone source "
            f"{source} has {source_settings.disk_gb} GiB and Proxmox cannot shrink a disk: "
            f"raise storage_size_gb of {ctid} to at least {source_settings.disk_gb}"
        )


def set_options(
    ctid: int, settings: GuestSettings, mac: str | None, current: NodeOptions | None
) -> list[str]:
    """`pct set` with the whole desired config; `--delete` what the node has and the
    inventory does not (only options Phoenix manages). `current` is what the node holds:
    its `net0` keys Phoenix does not manage are carried over (`render_net`)."""
    argv = [
        "pct", "set", str(ctid),
        "--hostname", settings.hostname,
        "--memory", str(settings.memory_mb),
        "--swap", str(settings.swap_mb),
        "--cores", str(settings.cores),
        "--onboot", "1" if settings.onboot else "0",
    ]  # fmt: skip
    delete: list[str] = []
    startup = render_startup(settings.boot_order, settings.boot_delay)
    if startup is not None:
        argv += ["--startup", startup]
    elif current is not None and current.startup:
        delete.append("startup")
    if settings.features:
        argv += ["--features", render_features(settings.features)]
    elif current is not None and current.settings.features:
        delete.append("features")
    if settings.net is not None:
        net0 = current.net0 if current is not None else None
        argv += [
            "--net0",
            render_net(settings.net, settings.net.mac or mac, settings.firewall_enabled, net0),
        ]
    elif current is not None and current.settings.net is not None:
        delete.append("net0")
    if delete:
        argv += ["--delete", ",".join(delete)]
    return argv


def resize(ctid: int, disk_gb: int, current_gb: int | None) -> list[str] | None:
    """`pct resize`, or None when the disk already has that size (`current_gb` unknown:
    offline, for a guest this run creates)."""
    if current_gb is not None:
        if disk_gb < current_gb:
            raise DriverError(
                f"guest {ctid}'s disk is {current_gb} GiB and the inventory asks for {disk_gb} "
                "GiB: Proxmox only grows disks. Raise storage_size_gb, or recreate the "
                "guest (--recreate) to get a smaller disk"
            )
        if disk_gb == current_gb:
            return None
    return ["pct", "resize", str(ctid), "rootfs", f"{disk_gb}G"]


def snapshot(ctid: int, name: str) -> list[str]:
    if name in RESERVED_SNAPSHOTS:
        raise DriverError(
            f"guest {ctid}: snapshot name {name!r} is reserved by Proxmox ('current' is the "
            "running state, 'vzdump' belongs to backups); choose another "
            "template_snapshot_name"
        )
    return ["pct", "snapshot", str(ctid), name]


def template(ctid: int, snapshots: Sequence[str]) -> list[str]:
    if snapshots:
        raise DriverError(
            f"guest {ctid} cannot become a template: it has snapshots ({', '.join(snapshots)}) "
            "and `pct template` refuses a container with snapshots. Use either "
            "template_snapshot_name (clones from a snapshot) or is_template, not both, or "
            f"delete the snapshots (`pct delsnapshot {ctid} <name>`)"
        )
    return ["pct", "template", str(ctid)]


def start(ctid: int) -> list[str]:
    return ["pct", "start", str(ctid)]


def shutdown(ctid: int, timeout: float) -> list[str]:
    seconds = str(max(1, int(timeout)))
    return ["pct", "shutdown", str(ctid), "--timeout", seconds, "--forceStop", "1"]


def destroy(ctid: int) -> list[str]:
    return ["pct", "destroy", str(ctid)]


def unprotect(ctid: int) -> list[str]:
    """Clear `protection` (a forced destroy only): pct refuses to destroy a protected guest."""
    return ["pct", "set", str(ctid), "--protection", "0"]


def exec_(
    ctid: int, argv: Sequence[str], env: Mapping[str, str] | None, version: Version | None
) -> list[str]:
    """`pct exec` without the caller's environment where the node can say so."""
    full = ["pct", "exec", str(ctid)]
    if version is not None and version >= KEEP_ENV_SINCE:
        full += ["--keep-env", "0"]
    full.append("--")
    # As the LXC driver's lxc-attach --clear-env gives: a login's HOME and a UTF-8 locale
    # (without them pip, apt and Python tools behave differently on the two drivers).
    merged = {**GUEST_ENV, **(env or {})}
    full += ["env", *(f"{k}={v}" for k, v in merged.items())]
    return full + list(argv)


ContainerVersion = tuple[int, int, int]

# The raw keys pve-container's `src/PVE/LXC/Config.pm` (`valid_lxc_conf_keys`) keeps, by the
# pve-container release that added them: older releases warn and drop the line.
RAW_KEYS_SINCE: dict[str, ContainerVersion] = {
    "lxc.init.cwd": (6, 0, 0),
    "lxc.init.uid": (6, 0, 0),
    "lxc.init.gid": (6, 0, 0),
    "lxc.init.groups": (6, 0, 0),
    "lxc.environment": (6, 0, 0),
    "lxc.environment.runtime": (6, 0, 15),
    "lxc.environment.hooks": (6, 0, 15),
}


def container_for(version: Version) -> ContainerVersion:
    """The pve-container release a pve-manager release ships with (for an offline plan or
    a node whose `pveversion` cannot be read): 9.1 has 6.0.15, 9.0 has 6.0.x before it."""
    if version >= (9, 1):
        return (6, 0, 15)
    if version >= (9, 0):
        return (6, 0, 0)
    return (5, 0, 0)


def parse_container_version(text: str) -> ContainerVersion | None:
    """`6.0.15` (pveversion's pve-container line) -> (6, 0, 15); None when unreadable."""
    parts = re.match(r"^([0-9]+)\.([0-9]+)(?:\.([0-9]+))?", text.strip())
    if parts is None:
        return None
    return int(parts.group(1)), int(parts.group(2)), int(parts.group(3) or 0)


def raw_key_problem(
    key: str, version: Version | None, container: ContainerVersion | None = None
) -> str | None:
    """Why this node would not keep a raw key as written (None: it does).

    What keeps a key is the node's pve-container release (`container`; derived from
    pve-manager's `version` when unknown): before it the key is dropped with a warning.
    PVE 9.1 also moves `lxc.environment.runtime` into the `env` option. Either way the key
    never reads back and every run would see drift and restart the guest.
    """
    if version is None and container is None:
        return None
    have = container or container_for(version or (0, 0))
    since = RAW_KEYS_SINCE.get(key)
    if since is None and key.startswith("lxc.environment."):
        since = (6, 0, 15)
    if since is not None and have < since:
        need = ".".join(map(str, since))
        found = ".".join(map(str, have))
        on = f"Proxmox VE {version[0]}.{version[1]}, " if version else ""
        return (
            f"{key}: {on}pve-container {found} does not know this key and drops it (it is "
            f"kept from pve-container {need} on); remove it from lxc_options or upgrade the "
            "node"
        )
    if version is not None and version >= (9, 1) and key == "lxc.environment.runtime":
        return (
            f"{key}: Proxmox VE {version[0]}.{version[1]} moves it into the container's `env` "
            "option, so it never reads back as written; set the variables with "
            "`pct set <vmid> --env` instead and remove it from lxc_options"
        )
    return None
