"""Render a guest's LXC config file from `GuestSettings`, and parse it back.

The config file is the truth for everything LXC enforces (limits, network, id map, start
order, features); `GuestMeta` (a JSON file beside it) holds what LXC has no key for (disk
size and storage on a dir backend, firewall rules, the template mark). Rendering and parsing
are pure functions on strings, so the round trip `render -> parse -> settings` is unit
tested: a converged guest must diff to nothing against `phoenix.plan.desired`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from phoenix.digits import is_digits, sint
from phoenix.drivers import gpu, idmaps
from phoenix.drivers.base import FirewallRule, GuestSettings, NetSettings
from phoenix.drivers.lxc import cgroups, idmap, mounts
from phoenix.drivers.lxc.cgroups import CgroupHost
from phoenix.errors import DriverError, ParseError
from phoenix.files import parse_json

LXC_CONFIG_DIR = Path("/usr/share/lxc/config")
HEADER = "# Written by Phoenix from the inventory: change the inventory, not this file."
RAW_MARKER = "# phoenix.raw_lxc: the inventory's lxc_options follow"
FEATURES_KEY = "#phoenix.features"
APPARMOR_KEY = "#phoenix.apparmor_profile"
GPUS_KEY = "#phoenix.gpus"
FUSE_ENTRY = "/dev/fuse dev/fuse none bind,create=file,optional 0 0"
SUPPORTED_FEATURES = ("fuse", "keyctl", "nesting")


def veth_name(ctid: int, index: int = 0) -> str:
    """Host side of the guest's NIC, named as Proxmox does (fits IFNAMSIZ for any CTID)."""
    return f"veth{ctid}i{index}"


@dataclass(frozen=True)
class RenderContext:
    """Host facts a config depends on (not part of the desired state)."""

    rootfs: Path
    cgroup: CgroupHost
    apparmor: bool
    lxc_config_dir: Path = LXC_CONFIG_DIR
    # A linked clone: `rootfs` is the overlay's upper dir on top of this read-only lower.
    lower: Path | None = None
    # Where volumes (mounts without a host path) keep their data: `<lxc path>/phoenix-volumes`.
    volume_root: Path = Path("/var/lib/lxc") / mounts.VOLUME_DIR
    # GPU passthrough: character majors from the host's /proc/devices, nodes under dev_dir.
    gpu_majors: Mapping[str, int] = field(default_factory=dict)
    dev_dir: Path = Path("/dev")


def render(ctid: int, settings: GuestSettings, ctx: RenderContext) -> str:
    """The full LXC config text. `settings.net.mac` must already be resolved (not None)."""
    s = settings
    inc = ctx.lxc_config_dir
    lines: list[tuple[str, str]] = [("lxc.include", str(inc / "debian.common.conf"))]
    if s.unprivileged:
        lines.append(("lxc.include", str(inc / "debian.userns.conf")))
    lines += [
        ("lxc.arch", "linux64"),
        ("lxc.uts.name", s.hostname),
    ]
    lines += RootfsSpec(ctx.rootfs, ctx.lower).keys()
    if s.unprivileged and not idmaps.from_raw(s.raw_lxc):  # a custom map: the raw lines
        lines += idmap.idmap_keys()
    lines += _net_keys(ctid, s.net)
    lines += cgroups.limit_keys(ctx.cgroup, ctid, s.memory_mb, s.swap_mb, s.cores)
    lines += [
        ("lxc.start.auto", "1" if s.onboot else "0"),
        ("lxc.start.order", str(s.boot_order)),
        ("lxc.start.delay", str(s.boot_delay)),
    ]
    features = dict(s.features)
    unknown = sorted(set(features) - set(SUPPORTED_FEATURES))
    if unknown:
        raise DriverError(
            f"guest {ctid}: the lxc driver does not support feature(s) {', '.join(unknown)} "
            f"(supported: {', '.join(SUPPORTED_FEATURES)})"
        )
    if features:
        lines.append((FEATURES_KEY, ",".join(f"{k}={v}" for k, v in sorted(features.items()))))
    if features.get("nesting") == "1":
        lines.append(("lxc.include", str(inc / "nesting.conf")))
        if ctx.apparmor:
            # As Proxmox does: LXC's generated profile with nesting allowed (nesting.conf
            # names a profile that only some distributions load).
            if s.apparmor_profile is None:
                lines.append(("lxc.apparmor.profile", "generated"))
            lines.append(("lxc.apparmor.allow_nesting", "1"))
    if features.get("fuse") == "1":
        lines.append(("lxc.mount.entry", FUSE_ENTRY))
    lines += mounts.render_keys(ctid, s.mounts, ctx.volume_root)
    lines += gpu_keys(s.gpus, ctx)
    # keyctl: Debian's common.seccomp does not block keyctl(2), so keyctl=1 needs no key;
    # it is recorded so the guest observes as configured.
    if s.apparmor_profile is not None:
        lines.append((APPARMOR_KEY, s.apparmor_profile))
        if ctx.apparmor:
            lines.append(("lxc.apparmor.profile", s.apparmor_profile))
    out = [HEADER]
    for key, value in lines:
        out.append(f"{key} = {value}")
    out.append(RAW_MARKER)
    out += [f"{key} = {value}" for key, value in s.raw_lxc]
    return "\n".join(out) + "\n"


# What LXC's common.conf admits (its userns.conf clears that list for unprivileged guests,
# leaving their device cgroup open): null, zero, full, tty, console, ptmx, random, urandom,
# ptys, fuse, and mknod of any node (the kernel refuses it in a user namespace anyway).
BASE_DEVICE_RULES = (
    "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 5:1 rwm",
    "c 5:2 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 136:* rwm", "c 10:229 rwm",
)  # fmt: skip


def gpu_keys(gpus: tuple[int, ...], ctx: RenderContext) -> list[tuple[str, str]]:
    """Each GPU node bind-mounted (no `optional`: a missing node fails the start loudly)
    and admitted by one device-cgroup rule for the hierarchy the host runs, after a
    `deny = a` and LXC's base rules: the guest's device cgroup then admits exactly its own
    GPUs besides the base devices (raw `lxc_options` allow lines, written after these, can
    add more). Proven on cgroup v1 for unprivileged guests (tests/e2e/test_passthrough.py)."""
    if not gpus:
        return []
    key = f"{ctx.cgroup.prefix}.devices"
    keys = [(GPUS_KEY, ",".join(str(i) for i in gpus)), (f"{key}.deny", "a")]
    keys += [(f"{key}.allow", rule) for rule in BASE_DEVICE_RULES]
    for device in gpu.devices(gpus, dict(ctx.gpu_majors)):
        source = ctx.dev_dir / device.path.removeprefix("/dev/")
        keys.append(("lxc.mount.entry", f"{source} {device.relative} none bind,create=file 0 0"))
        keys.append((f"{key}.allow", gpu.cgroup_rule(device)))
    return keys


def _broadcast(cidr: str) -> str:
    return str(ipaddress.IPv4Interface(cidr).network.broadcast_address)


def _net_keys(ctid: int, net: NetSettings | None) -> list[tuple[str, str]]:
    if net is None:
        return [("lxc.net.0.type", "empty")]
    if net.mac is None:
        raise ValueError("render needs a resolved MAC address (generate one first)")
    if net.ip == "dhcp":  # valid in the inventory (Proxmox ip=dhcp); not on this driver
        raise DriverError(
            f"guest {ctid}: 'ip': 'dhcp' needs the Proxmox driver; the LXC driver gives "
            "guests a static address (write one with its prefix, e.g. 10.0.3.10/24)"
        )
    keys = [
        ("lxc.net.0.type", "veth"),
        ("lxc.net.0.name", net.name),
        ("lxc.net.0.link", net.bridge),
        ("lxc.net.0.flags", "up"),
        ("lxc.net.0.hwaddr", net.mac.upper()),
        ("lxc.net.0.veth.pair", veth_name(ctid)),
        # With no explicit broadcast LXC 5.0 sets a wrong one (brd 0.0.0.255).
        ("lxc.net.0.ipv4.address", f"{net.ip} {_broadcast(net.ip)}"),
    ]
    if net.gw:
        keys.append(("lxc.net.0.ipv4.gateway", net.gw))
    return keys


@dataclass
class ParsedConfig:
    """A config file split into Phoenix-managed keys (in order, repeats kept) and raw ones."""

    managed: list[tuple[str, str]] = field(default_factory=list)
    raw: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> str | None:
        """Last value of `key` among the managed keys (LXC: a later line wins)."""
        found = None
        for k, v in self.managed:
            if k == key:
                found = v
        return found

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.managed if k == key]

    def idmap_values(self) -> list[str]:
        """Every `lxc.idmap` value: Phoenix's default map, or a custom one (raw lines)."""
        return [v for k, v in [*self.managed, *self.raw] if k == "lxc.idmap"]


def parse(text: str) -> ParsedConfig:
    """Parse `key = value` lines; `#phoenix.*` comments are kept as pseudo-keys."""
    parsed = ParsedConfig()
    in_raw = False
    for line in text.split("\n"):  # LXC splits on "\n" only; so must we (not splitlines)
        stripped = line.strip()
        if stripped == RAW_MARKER:
            in_raw = True
            continue
        if not stripped or (stripped.startswith("#") and not stripped.startswith("#phoenix.")):
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            continue
        pair = (key.strip(), value.strip())
        (parsed.raw if in_raw else parsed.managed).append(pair)
    return parsed


@dataclass(frozen=True)
class GuestMeta:
    """What the driver records beside the config because LXC has no key for it."""

    storage: str = "local"
    disk_gb: int = 8
    swap_mb: int = 0
    firewall_enabled: bool = False
    firewall_rules: tuple[FirewallRule, ...] = ()
    template: bool = False
    template_source: str = ""

    def to_json(self) -> str:
        data = asdict(self)
        data["firewall_rules"] = [asdict(r) for r in self.firewall_rules]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "guest metadata") -> GuestMeta:
        """The record `to_json` wrote; a ParseError naming `source` when it is damaged."""
        data = parse_json(text, source)
        try:
            rules = tuple(FirewallRule(**r) for r in data.pop("firewall_rules", []))
            known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            return cls(**known, firewall_rules=rules)
        except (AttributeError, TypeError) as exc:  # not an object, or unknown rule fields
            raise ParseError(f"{source}: not a Phoenix guest record ({exc})") from None

    @classmethod
    def of(cls, settings: GuestSettings, template: bool = False, source: str = "") -> GuestMeta:
        return cls(
            storage=settings.storage,
            disk_gb=settings.disk_gb,
            swap_mb=settings.swap_mb,
            firewall_enabled=settings.firewall_enabled,
            firewall_rules=settings.firewall_rules,
            template=template,
            template_source=source,
        )


def to_settings(parsed: ParsedConfig, meta: GuestMeta) -> GuestSettings:
    """The settings a config (plus its meta) enforces, normalised like the desired side."""
    keys = dict(parsed.managed)
    limits = cgroups.parse_limits(keys)
    features: dict[str, str] = {}
    declared = parsed.get(FEATURES_KEY)
    if declared:
        for part in declared.split(","):
            name, _, value = part.partition("=")
            features[name] = "0" if value == "0" else "1"
    includes = parsed.all("lxc.include")
    nesting = any(p.endswith("/nesting.conf") for p in includes)
    if nesting or "nesting" in features:
        features["nesting"] = "1" if nesting else "0"
    fuse = FUSE_ENTRY in parsed.all("lxc.mount.entry")
    if fuse or "fuse" in features:
        features["fuse"] = "1" if fuse else "0"
    # The requested profile is recorded as a comment; the lxc.apparmor.* keys may also hold
    # what nesting implies (`generated`), which is not a profile the inventory asked for.
    apparmor = parsed.get(APPARMOR_KEY)
    raw = tuple(p for p in parsed.raw if p[0] != "lxc.apparmor.profile")
    return GuestSettings(
        hostname=parsed.get("lxc.uts.name") or "",
        memory_mb=limits.memory_mb if limits.memory_mb is not None else 0,
        swap_mb=limits.swap_mb if limits.swap_mb is not None else meta.swap_mb,
        cores=limits.cores if limits.cores is not None else 0,
        disk_gb=meta.disk_gb,
        storage=meta.storage,
        unprivileged=bool(parsed.idmap_values()),
        net=_parse_net(parsed),
        features=tuple(sorted(features.items())),
        raw_lxc=raw,
        apparmor_profile=apparmor,
        onboot=parsed.get("lxc.start.auto") == "1",
        boot_order=_int(parsed.get("lxc.start.order")),
        boot_delay=_int(parsed.get("lxc.start.delay")),
        firewall_enabled=meta.firewall_enabled,
        firewall_rules=meta.firewall_rules if meta.firewall_enabled else (),
        mounts=mounts.parse_keys(parsed.all(mounts.MOUNT_KEY)),
        gpus=tuple(int(i) for i in (parsed.get(GPUS_KEY) or "").split(",") if is_digits(i)),
    )


def _parse_net(parsed: ParsedConfig) -> NetSettings | None:
    if parsed.get("lxc.net.0.type") != "veth":
        return None
    mac = parsed.get("lxc.net.0.hwaddr")
    return NetSettings(
        name=parsed.get("lxc.net.0.name") or "eth0",
        bridge=parsed.get("lxc.net.0.link") or "",
        ip=(parsed.get("lxc.net.0.ipv4.address") or "").split(" ")[0],
        gw=parsed.get("lxc.net.0.ipv4.gateway"),
        mac=mac.upper() if mac else None,
    )


def _int(value: str | None) -> int:
    number = None if value is None else sint(value)
    return 0 if number is None else number


# Overlay metadata (whiteouts' opaque marks) in user.* xattrs: an unprivileged guest's
# rootfs is mounted inside its user namespace, where trusted.* xattrs cannot be set.
OVERLAY_OPTIONS = "userxattr"


@dataclass(frozen=True)
class RootfsSpec:
    """Where a guest's root filesystem lives: a directory, or (a linked clone) an overlay
    whose writable upper dir `path` sits on a read-only `lower` (a snapshot's rootfs)."""

    path: Path
    lower: Path | None = None
    options: str = ""

    @property
    def linked(self) -> bool:
        return self.lower is not None

    def keys(self) -> list[tuple[str, str]]:
        if self.lower is None:
            return [("lxc.rootfs.path", f"dir:{self.path}")]
        return [
            ("lxc.rootfs.path", f"overlay:{self.lower}:{self.path}"),
            ("lxc.rootfs.options", OVERLAY_OPTIONS),
        ]


def rootfs_spec(parsed: ParsedConfig) -> RootfsSpec | None:
    """The rootfs a config names (`dir:`, `overlay:<lower>:<upper>` or a bare path)."""
    value = parsed.get("lxc.rootfs.path")
    if not value:
        return None
    if value.startswith("overlay:"):
        lower, sep, upper = value[len("overlay:") :].rpartition(":")
        if not sep or not lower or not upper:
            raise DriverError(f"unreadable overlay rootfs {value!r}")
        return RootfsSpec(Path(upper), Path(lower), parsed.get("lxc.rootfs.options") or "")
    return RootfsSpec(Path(value.split(":", 1)[1] if value.startswith("dir:") else value))
