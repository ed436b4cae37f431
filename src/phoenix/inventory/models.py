"""Typed models of the config dir's JSON files (pydantic v2).

They accept the files written for the original bash tool unchanged: CTIDs as strings,
`""` for an automatic MAC, both raw-option spellings, the older flat `vllm_*` keys. Unknown
keys are kept (`extra="allow"`) and reported as warnings by the loader, never dropped
silently and never fatal. New keys are additions (`is_template`, `gateway`), never renames.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import shlex
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from phoenix.inventory.options import canonical_lxc_option, parse_lxc_option, parse_pct_option

# The original tool's gateway script: a guest naming it runs Phoenix's built-in gateway.
GATEWAY_COMPAT_SCRIPT = "phoenix_hypervisor_lxc_101.sh"
# `network_config.ip` of a guest that asks for its address (Proxmox `net0: ...,ip=dhcp`).
DHCP = "dhcp"
MIN_CTID = 100
MAX_CTID = 999_999_999
# How a CTID is written as text: ASCII digits, no leading zero ("0101", fullwidth or
# Arabic-Indic digits and "\u00b2" are not 101: str.isdigit() let them replace or crash a guest).
CTID_TEXT = re.compile(r"[1-9][0-9]{0,8}")

# Python's `$` also matches before a trailing newline: every pattern here is used with
# fullmatch, so "gw\n" is not a host name.
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_IFNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")
_MAC = re.compile(r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}")
_SNAPSHOT = re.compile(r"[A-Za-z][A-Za-z0-9_-]{1,39}")
_RECIPE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")
_PORT_SPEC = re.compile(r"\d{1,5}(:\d{1,5})?(,\d{1,5}(:\d{1,5})?)*")
# pve-storage's storage id: it reaches `--rootfs STORAGE:SIZE`, so nothing else may.
_STORAGE_ID = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*[A-Za-z0-9]")
_SSH_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
# Snapshot names pve-container keeps for itself; pve-firewall's limit of numbers per rule.
RESERVED_SNAPSHOTS = frozenset({"current", "vzdump"})
MAX_PORT_NUMBERS = 15
# Served model names land in nginx config and in njs; far beyond any real model id.
MAX_MODEL_NAME = 256


class Model(BaseModel):
    """Base for inventory models: unknown keys kept (reported as warnings), no coercion of
    strings into numbers or booleans (a quoted "2048" is a mistake worth naming)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _ctid(value: Any) -> int:
    """CTIDs are written as strings in the original files ("900") and as numbers elsewhere."""
    if isinstance(value, bool):
        raise ValueError("expected a container id (a number such as 101), got a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and CTID_TEXT.fullmatch(value):
        number = int(value)
    else:
        raise ValueError(f"expected a container id (a number such as 101), got {value!r}")
    if not MIN_CTID <= number <= MAX_CTID:
        raise ValueError(f"container id {number} is outside {MIN_CTID}..{MAX_CTID}")
    return number


Ctid = Annotated[int, BeforeValidator(_ctid)]


def _hostname(value: str) -> str:
    if not _HOSTNAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid host name: use letters, digits, '-' and '.', "
            "start and end with a letter or digit (it becomes the container's hostname)"
        )
    return value


def _ifname(value: str) -> str:
    if not _IFNAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a valid interface name (1-15 of A-Z a-z 0-9 _ . -)")
    return value


@functools.lru_cache(maxsize=65536)
def ipv4_interface(text: str) -> ipaddress.IPv4Interface:
    """`ipaddress.IPv4Interface(text)`, parsed once per text: validation, the checks and the
    drivers all ask for a guest's interface, and parsing is the slow part (immutable result)."""
    return ipaddress.IPv4Interface(text)


@functools.lru_cache(maxsize=65536)
def ipv4_address(text: str) -> ipaddress.IPv4Address:
    """`ipaddress.IPv4Address(text)`, parsed once per text (gateways repeat across guests)."""
    return ipaddress.IPv4Address(text)


def _ipv4(value: str) -> str:
    try:
        return str(ipv4_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address") from None


def _ipv4_or_net(value: str) -> str:
    try:
        if "/" in value:
            return str(ipaddress.IPv4Network(value, strict=False))
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 address or network") from None


def _mac(value: str) -> str | None:
    if value == "":
        return None
    if not _MAC.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a MAC address (expected six hex pairs, 52:54:00:12:34:56)"
        )
    if int(value[:2], 16) & 1:
        raise ValueError(f"{value!r} is a multicast MAC; a NIC needs a unicast address")
    return value.upper()


def _recipe_name(value: str) -> str:
    if not _RECIPE_NAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a feature name (letters, digits, '_' and '-')")
    return value


def _snapshot_name(value: str) -> str:
    if value.lower() in RESERVED_SNAPSHOTS:
        raise ValueError(f"{value!r} is reserved by Proxmox for its own use; choose another name")
    if not _SNAPSHOT.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid snapshot name (2-40 chars, starts with a letter, "
            "then letters, digits, '_' or '-')"
        )
    return value


def _storage_id(value: str) -> str:
    if not _STORAGE_ID.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Proxmox storage id (letters, digits, '-', '_', '.'; "
            "e.g. local-lvm); options such as ',ro=1' cannot be given here"
        )
    return value


def _ssh_host(value: str) -> str:
    """`host` or `user@host`: never anything ssh would read as an option."""
    user, at, host = value.rpartition("@")
    if at and not _SSH_USER.fullmatch(user):
        raise ValueError(f"{value!r}: {user!r} is not a user name (expected user@host)")
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
        return value
    except ValueError:
        pass
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{value!r} is not a host, or user@host, to reach the node by SSH")
    return value


def _not_an_option(value: str) -> str:
    if value.startswith("-"):
        raise ValueError(f"{value!r} starts with '-': a command would read it as an option")
    return value


def _absolute(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"{value!r} must be an absolute path")
    return value


def _command_words(value: str) -> str:
    try:
        words = shlex.split(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} cannot be split into words ({exc})") from None
    if not words:
        raise ValueError("the command is empty")
    return value


def _model_name(value: str) -> str:
    if len(value) > MAX_MODEL_NAME:
        raise ValueError(
            f"model name of {len(value)} characters; the gateway takes at most {MAX_MODEL_NAME}"
        )
    return value


def _lxc_option(value: str) -> str:
    return canonical_lxc_option(value)


def _pct_option(value: str) -> str:
    parse_pct_option(value)
    return value


def _port_spec(value: Any) -> str:
    """pve-firewall's `dport`: ports and `a:b` ranges, comma-separated, at most 15 numbers."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and _PORT_SPEC.fullmatch(value.replace("-", ":")) and "-" in value:
        raise ValueError(
            f"{value!r}: Proxmox writes port ranges as {value.replace('-', ':')!r} "
            "(pve-firewall skips a rule with a '-' range, leaving the port closed)"
        )
    if not isinstance(value, str) or not _PORT_SPEC.fullmatch(value):
        raise ValueError(f"{value!r} is not a port (8000), range (8000:8010) or list (80,443)")
    numbers = re.split(r"[:,]", value)
    for number in numbers:
        if not 1 <= int(number) <= 65535:
            raise ValueError(f"port {number} is outside 1..65535")
    for part in value.split(","):
        low, _, high = part.partition(":")
        if high and int(low) > int(high):
            raise ValueError(f"range {part!r} runs backwards; write {high}:{low}")
    if len(numbers) > MAX_PORT_NUMBERS:
        raise ValueError(
            f"{value!r} has {len(numbers)} port numbers; pve-firewall takes at most "
            f"{MAX_PORT_NUMBERS} in one rule (split it into several rules)"
        )
    return value


def _port_mapping(value: str) -> str:
    match = re.fullmatch(r"(\d{1,5}):(\d{1,5})", value)
    if not match or not all(1 <= int(p) <= 65535 for p in match.groups()):
        raise ValueError(f"{value!r} is not a port mapping 'host:container' (e.g. '8000:8000')")
    return value


def _gpu_assignment(value: str) -> str:
    cleaned = value.replace(" ", "")
    if cleaned.lower() == "none" or re.fullmatch(r"\d+(,\d+)*", cleaned):
        return cleaned.lower() if cleaned.lower() == "none" else cleaned
    raise ValueError(f"{value!r}: expected 'none' or GPU indices such as '0' or '0,1'")


def _guest_path(value: str) -> str:
    if not value.startswith("/") or "\n" in value or "\0" in value:
        raise ValueError(f"{value!r} must be an absolute path inside the guest")
    if "," in value:
        raise ValueError(f"{value!r}: a ',' would add options to Proxmox's mount point line")
    return value


def _host_path(value: str) -> str:
    if not value.startswith("/") or "\0" in value:
        raise ValueError(f"{value!r} must be an absolute path on the host")
    if "," in value:
        raise ValueError(f"{value!r}: a ',' would add options to Proxmox's mount point line")
    return value


def _nameservers(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError(f"expected a string or a list of strings, got {value!r}")


StorageId = Annotated[StrictStr, AfterValidator(_storage_id)]
AbsolutePath = Annotated[StrictStr, AfterValidator(_absolute)]
ModelName = Annotated[StrictStr, AfterValidator(_model_name)]
HostName = Annotated[StrictStr, AfterValidator(_hostname)]
IfName = Annotated[StrictStr, AfterValidator(_ifname)]
IPv4 = Annotated[StrictStr, AfterValidator(_ipv4)]
IPv4OrNet = Annotated[StrictStr, AfterValidator(_ipv4_or_net)]
Mac = Annotated[StrictStr | None, AfterValidator(lambda v: None if v is None else _mac(v))]
RecipeName = Annotated[StrictStr, AfterValidator(_recipe_name)]
SnapshotName = Annotated[StrictStr, AfterValidator(_snapshot_name)]
LxcOption = Annotated[StrictStr, AfterValidator(_lxc_option)]
PctOption = Annotated[StrictStr, AfterValidator(_pct_option)]
PortSpec = Annotated[str, BeforeValidator(_port_spec)]
PortMapping = Annotated[StrictStr, AfterValidator(_port_mapping)]
GuestPath = Annotated[StrictStr, AfterValidator(_guest_path)]
HostPath = Annotated[StrictStr, AfterValidator(_host_path)]
Number = StrictInt | float


class NetworkConfig(Model):
    """The guest's NIC: a static IPv4 address in CIDR form on a host bridge."""

    name: IfName = "eth0"
    bridge: IfName
    ip: StrictStr = Field(
        description="Static IPv4 address with prefix, e.g. 10.0.0.153/24, or 'dhcp'"
    )
    gw: IPv4 | None = Field(default=None, description="Default gateway (inside the subnet)")

    @field_validator("ip")
    @classmethod
    def _check_ip(cls, value: str) -> str:
        if value == DHCP:
            return value
        if "/" not in value:
            raise ValueError(f"{value!r} needs a prefix length, e.g. {value}/24 (or write 'dhcp')")
        try:
            iface = ipv4_interface(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IPv4 address with prefix (10.0.0.5/24)"
            ) from None
        if iface.network.prefixlen < 32 and iface.ip in (
            iface.network.network_address,
            iface.network.broadcast_address,
        ):
            raise ValueError(f"{value!r} is the network or broadcast address of its subnet")
        return str(iface)

    @property
    def dhcp(self) -> bool:
        return self.ip == DHCP

    @property
    def interface(self) -> ipaddress.IPv4Interface | None:
        """The static address with its subnet; None with DHCP."""
        return None if self.dhcp else ipv4_interface(self.ip)

    @property
    def address(self) -> str | None:
        """The static address; None with DHCP (not known before the guest runs)."""
        iface = self.interface
        return None if iface is None else str(iface.ip)


class FirewallRuleModel(Model):
    """A Proxmox-style firewall rule: direction, action, and optional match fields."""

    type: Literal["in", "out"]
    action: Literal["ACCEPT", "DROP", "REJECT"]
    source: IPv4OrNet | None = None
    dest: IPv4OrNet | None = None
    proto: Literal["tcp", "udp", "icmp"] | None = None
    port: PortSpec | None = None
    comment: StrictStr | None = None

    @model_validator(mode="after")
    def _port_needs_proto(self) -> FirewallRuleModel:
        if self.port is not None and self.proto not in ("tcp", "udp"):
            raise ValueError("a rule with a port needs proto 'tcp' or 'udp'")
        return self


class FirewallConfig(Model):
    """Firewall for the guest's traffic. Enabled with no ACCEPT rules means inbound is closed."""

    enabled: StrictBool = False
    rules: list[FirewallRuleModel] = Field(default_factory=list)


class HealthCheck(Model):
    """A command run inside the guest (split like a shell would, but never run by one)."""

    command: Annotated[StrictStr, AfterValidator(_command_words)] = Field(min_length=1)
    retries: StrictInt = Field(default=3, ge=1, le=1000)
    interval: StrictInt = Field(default=5, ge=0, le=3600)


class Volume(Model):
    """A dedicated storage volume mounted into the guest (Proxmox `mpN`)."""

    name: StrictStr = Field(min_length=1)
    pool: StrictStr = Field(min_length=1)
    size_gb: StrictInt = Field(ge=1, le=1_048_576)
    mount_point: GuestPath


class MountPoint(Model):
    """A host path bind-mounted into the guest (Proxmox `mpN: HOST,mp=CONTAINER`), written
    as the original tool did (`container_path`); `guest_path` is accepted too."""

    host_path: HostPath
    container_path: GuestPath = Field(validation_alias=AliasChoices("container_path", "guest_path"))
    read_only: StrictBool = False
    owner_uid: StrictInt | None = Field(default=None, ge=0, le=4_294_967_294)
    owner_gid: StrictInt | None = Field(default=None, ge=0, le=4_294_967_294)


class VllmServerConfig(Model):
    host: StrictStr = "0.0.0.0"
    port: StrictInt = Field(default=8000, ge=1, le=65535)
    served_model_name: ModelName | None = None


class VllmEngineConfig(Model):
    """vLLM's engine arguments grouped as the original tool wrote them; only ServerConfig
    matters to Phoenix (it says which model is served where). Other keys pass through."""

    ModelConfig: dict[str, Any] = Field(default_factory=dict)
    CacheConfig: dict[str, Any] = Field(default_factory=dict)
    ParallelConfig: dict[str, Any] = Field(default_factory=dict)
    ServerConfig: VllmServerConfig = Field(default_factory=VllmServerConfig)

    # vLLM has hundreds of engine options: extras here are not worth a warning.
    model_config = ConfigDict(extra="allow")


class RouteTarget(Model):
    """Where a gateway route sends traffic: a guest by CTID (and port), or a URL."""

    ctid: Ctid | None = None
    port: StrictInt | None = Field(default=None, ge=1, le=65535)
    url: StrictStr | None = Field(default=None, pattern=r"^https?://[^\s;{}'\"]+$")
    scheme: Literal["http", "https"] = "http"

    @model_validator(mode="after")
    def _one_target(self) -> RouteTarget:
        if (self.ctid is None) == (self.url is None):
            raise ValueError("a route needs exactly one of 'ctid' (with 'port') or 'url'")
        if self.ctid is not None and self.port is None:
            raise ValueError("a route to a guest ('ctid') needs its 'port'")
        return self


class PathRoute(RouteTarget):
    """`/prefix/...` on the gateway's main server, proxied to a guest or URL."""

    path: StrictStr = Field(pattern=r"^/[A-Za-z0-9._~/-]*$")
    strip_prefix: StrictBool = True
    websocket: StrictBool = False
    name: StrictStr | None = Field(default=None, pattern=r"^[a-z0-9_]+$")


class HostRoute(RouteTarget):
    """A whole virtual host (`server_name`), optionally TLS with an HTTP->HTTPS redirect."""

    hostname: HostName
    tls: StrictBool = True
    redirect_http: StrictBool = True
    websocket: StrictBool = False


class ApiKey(Model):
    """A client key of the gateway. Only a hash of the key is kept: `phoenix gateway key
    add NAME` creates a key, prints it once and adds this entry."""

    name: StrictStr = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,47}$", description="Key name")
    sha256: StrictStr = Field(
        pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the key, hex (never the key)"
    )
    models: list[StrictStr] = Field(
        default_factory=lambda: ["*"],
        min_length=1,
        description="Models this key may use ('*': all)",
    )
    rpm: StrictInt | None = Field(
        default=None, ge=1, le=1_000_000, description="Requests per minute (absent: no limit)"
    )


class GatewayConfig(Model):
    """Additive block that makes a guest the Phoenix API gateway (container 101's role).

    Model routes are derived from the inventory (every non-template guest with a vLLM
    config); this block adds the other services and the gateway's own settings.
    """

    hostnames: list[HostName] = Field(
        default_factory=list,
        description="Names of the API server; a TLS certificate is issued for them.",
    )
    tls: StrictBool = Field(default=True, description="Serve the API on HTTPS too.")
    http_port: StrictInt = Field(default=80, ge=1, le=65535)
    https_port: StrictInt = Field(default=443, ge=1, le=65535)
    max_body_mb: StrictInt = Field(default=16, ge=1, le=1024)
    generation_timeout_s: StrictInt = Field(default=600, ge=1, le=86400)
    path_routes: list[PathRoute] = Field(default_factory=list)
    host_routes: list[HostRoute] = Field(default_factory=list)
    api_keys: list[ApiKey] = Field(
        default_factory=list,
        description="Client keys of the API (none: the API is open to whoever reaches it)",
    )

    @field_validator("api_keys")
    @classmethod
    def _unique_keys(cls, keys: list[ApiKey]) -> list[ApiKey]:
        for attr in ("name", "sha256"):
            values = [getattr(k, attr) for k in keys]
            dup = sorted({v for v in values if values.count(v) > 1})
            if dup:
                raise ValueError(f"api_keys: {attr} repeated: {', '.join(dup)}")
        return keys


class LxcGuest(Model):
    """One container of `phoenix_lxc_configs.json` (`lxc_configs.<CTID>`)."""

    name: HostName = Field(description="Hostname of the container (letters, digits, '-', '.')")
    memory_mb: StrictInt = Field(default=2048, ge=16, le=16_777_216, description="RAM limit in MiB")
    swap_mb: StrictInt = Field(default=512, ge=0, le=16_777_216, description="Swap limit in MiB")
    cores: StrictInt = Field(default=1, ge=1, le=8192, description="CPU cores")
    template: Annotated[StrictStr, AfterValidator(_not_an_option)] | None = Field(
        default=None,
        min_length=1,
        description="Create from this: rootfs tarball (.tar.gz/.tar.xz/.tar.zst) or "
        "'debootstrap:<suite>' (LXC driver)",
    )
    storage_pool: StorageId = Field(
        default="local", description="Proxmox storage id for the root disk"
    )
    storage_size_gb: StrictInt = Field(
        default=8, ge=1, le=1_048_576, description="Root disk size in GiB (grow only)"
    )
    network_config: NetworkConfig | None = Field(
        default=None, description="NIC: name, bridge, ip (CIDR), gw"
    )
    mac_address: Mac = Field(default=None, description="MAC; '' or absent: assigned, then kept")
    gpu_assignment: Annotated[StrictStr, AfterValidator(_gpu_assignment)] = Field(
        default="none", description="'none' or GPU indices such as '0,1'"
    )
    unprivileged: StrictBool = Field(
        default=True, description="Map root in the guest to an unprivileged host uid"
    )
    portainer_role: Literal["server", "agent", "none", "infrastructure"] = Field(
        default="none", description="Role in Portainer (informational)"
    )
    clone_from_ctid: Ctid | None = Field(
        default=None, description="Clone from this container (at its template_snapshot_name)"
    )
    template_snapshot_name: SnapshotName | None = Field(
        default=None, description="Snapshot taken when configured; clones are made from it"
    )
    is_template: StrictBool = Field(
        default=False, description="Mark as a Proxmox template; clones need no snapshot"
    )
    features: list[RecipeName] = Field(
        default_factory=list, description="Recipes run inside the guest, in order"
    )
    pct_options: list[PctOption] = Field(
        default_factory=list, description="Container features: nesting=1, keyctl=1, ..."
    )
    lxc_options: list[LxcOption] = Field(
        default_factory=list, description="Raw lxc.* options ('key: value' or 'key=value')"
    )
    application_script: StrictStr | None = Field(
        default=None, min_length=1, description="Script in the scripts folder run last"
    )
    firewall: FirewallConfig = Field(
        default_factory=FirewallConfig, description="enabled, rules (in/out, ACCEPT/DROP/REJECT)"
    )
    start_at_boot: StrictBool = Field(default=False, description="Start when the host boots")
    boot_order: StrictInt = Field(
        default=0, ge=0, le=100_000, description="Start order (lower first), then CTID"
    )
    boot_delay: StrictInt = Field(
        default=0, ge=0, le=86_400, description="Seconds to wait after starting this guest"
    )
    apparmor_profile: StrictStr | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_./-]+$", description="AppArmor profile (wins over raw)"
    )
    apparmor_manages_nesting: StrictBool = Field(
        default=False, description="Original tool's flag (accepted, informational)"
    )
    enable_lifecycle_snapshots: StrictBool = Field(
        default=False, description="Take 'pre-configured' and 'final-form' snapshots"
    )
    dependencies: list[Ctid] = Field(
        default_factory=list, description="Guests (LXC or VM) to create and start first"
    )
    ports: list[PortMapping] = Field(
        default_factory=list, description="'host:container' port notes (informational)"
    )
    zfs_volumes: list[Volume] = Field(
        default_factory=list, description="ZFS volumes: name, pool, size_gb, mount_point"
    )
    volumes: list[Volume] = Field(
        default_factory=list, description="Volumes: name, pool, size_gb, mount_point"
    )
    mount_points: list[MountPoint] = Field(
        default_factory=list, description="Host bind mounts: host_path, container_path, read_only"
    )
    vllm_engine_config: VllmEngineConfig | None = Field(
        default=None, description="vLLM config; ServerConfig says which model is served where"
    )
    health_check: HealthCheck | None = Field(
        default=None, description="command (run in the guest, no shell), retries, interval"
    )
    tests: dict[str, Any] = Field(default_factory=dict, description="Original tool's test lists")
    gateway: GatewayConfig | None = Field(
        default=None, description="Makes this guest the Phoenix API gateway (see Gateway block)"
    )

    # Older flat vLLM keys, still in inventories in the field.
    vllm_model: ModelName | None = Field(default=None, description="Legacy: model path")
    vllm_served_model_name: ModelName | None = Field(
        default=None, description="Legacy: served model name (routed by the gateway)"
    )
    vllm_model_type: Literal["chat", "embedding"] | None = Field(
        default=None, description="Legacy: chat or embedding"
    )
    vllm_port: StrictInt | None = Field(
        default=None, ge=1, le=65535, description="Legacy: port (default 8000)"
    )
    vllm_tensor_parallel_size: StrictInt | None = Field(default=None, ge=1, description="Legacy")
    vllm_gpu_memory_utilization: Number | None = Field(
        default=None, ge=0, le=1, description="Legacy"
    )
    vllm_max_model_len: StrictInt | None = Field(default=None, ge=1, description="Legacy")
    vllm_quantization: StrictStr | None = Field(default=None, description="Legacy")
    vllm_trust_remote_code: StrictBool | None = Field(default=None, description="Legacy")
    vllm_parameters: dict[str, Any] | None = Field(default=None, description="Legacy")
    vllm_args: list[StrictStr] | None = Field(default=None, description="Legacy")
    nvidia_runfile_url: StrictStr | None = Field(
        default=None, min_length=1, description="NVIDIA driver runfile (wins over the top level)"
    )
    nvidia_driver_version: StrictStr | None = Field(
        default=None, min_length=1, description="Driver the host must run (wins over the top level)"
    )
    llamacpp_archive_url: StrictStr | None = Field(
        default=None, min_length=1, description="llama.cpp release archive (.zip or .tar.gz)"
    )
    llamacpp_sha256: StrictStr | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="The archive's sha256 (required)"
    )
    llamacpp_model: GuestPath | None = Field(
        default=None, description="Model file (GGUF) inside the guest"
    )
    llamacpp_port: StrictInt | None = Field(
        default=None, ge=1, le=65535, description="llama-server's port (default 8081)"
    )
    llamacpp_args: list[StrictStr] = Field(
        default_factory=list, description="Extra llama-server arguments"
    )
    ollama_version: StrictStr | None = Field(
        default=None, min_length=1, description="Ollama release the ollama feature pins"
    )
    ollama_archive_url: StrictStr | None = Field(
        default=None, min_length=1, description="Ollama release archive (wins over the version)"
    )
    ollama_sha256: StrictStr | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="The archive's sha256"
    )
    ollama_port: StrictInt | None = Field(
        default=None, ge=1, le=65535, description="Ollama's port (default 11434)"
    )
    ollama_models: list[ModelName] = Field(
        default_factory=list, description="Models pulled when missing (never removed)"
    )
    vllm_version: StrictStr | None = Field(
        default=None, min_length=1, description="vLLM version the vllm feature pins"
    )
    vllm_package: StrictStr | None = Field(
        default=None,
        min_length=1,
        description="pip requirement or wheel URL (wins over vllm_version)",
    )

    @property
    def runs_gateway(self) -> bool:
        """The built-in gateway application: a `gateway` block, or the original script."""
        return self.gateway is not None or self.application_script == GATEWAY_COMPAT_SCRIPT

    @property
    def is_clone_source(self) -> bool:
        """A template in either Proxmox sense: snapshot-based or `pct template`."""
        return self.is_template or self.template_snapshot_name is not None

    @property
    def parks_after_snapshot(self) -> bool:
        """A snapshot clone source not started at boot: stopped once its snapshot exists
        (clones use the snapshot; a running template costs memory and CPU for nothing)."""
        return (
            self.template_snapshot_name is not None
            and not self.start_at_boot
            and not self.is_template
        )

    @property
    def pct_features(self) -> dict[str, str]:
        features: dict[str, str] = {}
        for option in self.pct_options:
            features.update(parse_pct_option(option))
        return features

    @property
    def lxc_option_pairs(self) -> list[tuple[str, str]]:
        return [parse_lxc_option(o) for o in self.lxc_options]

    @property
    def gpus(self) -> list[int]:
        return (
            []
            if self.gpu_assignment == "none"
            else [int(g) for g in self.gpu_assignment.split(",")]
        )

    @property
    def served_model(self) -> tuple[str, int] | None:
        """(model name, port) this guest serves, from vllm_engine_config or the flat keys."""
        if self.vllm_engine_config is not None:
            server = self.vllm_engine_config.ServerConfig
            name = server.served_model_name or self.vllm_engine_config.ModelConfig.get("model")
            if isinstance(name, str) and name:
                return name, server.port
        name = self.vllm_served_model_name or self.vllm_model
        if name:
            return name, self.vllm_port or 8000
        return None


class LxcFile(Model):
    """`phoenix_lxc_configs.json`."""

    schema_: StrictStr | None = Field(default=None, alias="$schema")
    nvidia_driver_version: StrictStr | None = None
    nvidia_repo_url: StrictStr | None = None
    nvidia_runfile_url: StrictStr | None = None
    lxc_configs: dict[StrictStr, LxcGuest]


class VmGuest(Model):
    """Just enough of a VM entry to place it in the dependency graph."""

    vmid: Ctid
    name: HostName
    is_template: StrictBool = False
    template_snapshot_name: StrictStr | None = None
    clone_from_vmid: Ctid | None = None
    dependencies: list[Ctid] = Field(default_factory=list)
    network_config: dict[str, Any] = Field(default_factory=dict)

    # VM entries are not provisioned by Phoenix yet: their other keys are not our business.
    model_config = ConfigDict(extra="ignore")


class VmFile(Model):
    """`phoenix_vm_configs.json`."""

    vm_defaults: dict[str, Any] = Field(default_factory=dict)
    vms: list[VmGuest] = Field(default_factory=list)


class HostInterface(Model):
    name: IfName | None = None
    address: StrictStr | None = None
    gateway: StrictStr | None = None
    # A string in some of the original tool's versions, a list in others (its jq read both).
    dns_nameservers: Annotated[str | list[str] | None, BeforeValidator(_nameservers)] = None

    @property
    def nameservers(self) -> list[str]:
        value = self.dns_nameservers
        return [] if value is None else [value] if isinstance(value, str) else list(value)


class HostNetwork(Model):
    interfaces: HostInterface | None = None
    default_subnet: StrictStr | None = None
    external_registry_url: Any = None
    portainer_server_ip: Any = None
    portainer_server_port: Any = None
    portainer_agent_port: Any = None
    nfs_server: Any = None


class DriverSettings(Model):
    """Additive `phoenix` block of the hypervisor config: which driver and where."""

    driver: Literal["lxc", "proxmox"] = "lxc"
    lxc_path: AbsolutePath = "/var/lib/phoenix/lxc"
    state_dir: AbsolutePath = "/var/lib/phoenix/state"
    template_cache: AbsolutePath = "/var/cache/phoenix/templates"
    node: HostName | None = Field(default=None, description="Proxmox node name")
    ssh_host: Annotated[StrictStr, AfterValidator(_ssh_host)] | None = Field(
        default=None, description="host or user@host of the node (SSH)"
    )
    parallel: StrictInt = Field(default=4, ge=1, le=64)
    lxc_clone: Literal["linked", "full"] = Field(
        default="linked",
        description="lxc driver: `linked` clones are overlays on the source's snapshot "
        "(instant; the snapshot then cannot be deleted while they exist), `full` copies",
    )


class HypervisorConfig(Model):
    """`phoenix_hypervisor_config.json`: what Phoenix uses of it is modelled; the rest of the
    original tool's host settings (ZFS, NFS, Samba, users…) are accepted as they are."""

    version: StrictStr | None = None
    timezone: StrictStr = "UTC"
    network: HostNetwork = Field(default_factory=HostNetwork)
    proxmox_storage_ids: dict[str, StrictStr] = Field(default_factory=dict)
    phoenix: DriverSettings = Field(default_factory=DriverSettings)

    author: Any = None
    users: Any = None
    core_paths: dict[str, Any] = Field(default_factory=dict)
    docker: Any = None
    nfs: Any = None
    samba: Any = None
    zfs: Any = None
    mount_point_base: Any = None
    proxmox_defaults: Any = None
    tests: Any = None
    nvidia_driver: Any = None
    behavior: Any = None
    shared_volumes: Any = None
    schema_: StrictStr | None = Field(default=None, alias="$schema")
