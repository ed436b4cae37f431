"""The inventory's building blocks: its limits and name patterns, the `Model` base and the
constrained string types (each one validator with the message a user sees), shared by the
guest, network, gateway and host models."""

from __future__ import annotations

import functools
import ipaddress
import posixpath
import re
import shlex
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictInt,
    StrictStr,
    WithJsonSchema,
)

from phoenix.inventory.options import canonical_lxc_option, parse_pct_option

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
_PORT_SPEC = re.compile(r"[0-9]{1,5}(:[0-9]{1,5})?(,[0-9]{1,5}(:[0-9]{1,5})?)*")
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


# The schema says what the files hold: a number, or its text ("900", as the original wrote).
Ctid = Annotated[
    int,
    BeforeValidator(_ctid),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": MIN_CTID, "maximum": MAX_CTID},
                {"type": "string", "pattern": "^[1-9][0-9]{2,8}$"},
            ]
        }
    ),
]


def is_hostname(value: str) -> bool:
    """A DNS host name (or a dotted IPv4 address, which has the same shape)."""
    return _HOSTNAME.fullmatch(value) is not None


def _hostname(value: str) -> str:
    if len(value) > 253:
        raise ValueError(f"host name of {len(value)} characters; at most 253 (RFC 1035)")
    longest = max(value.split("."), key=len)
    if len(longest) > 63:
        raise ValueError(
            f"host name label {longest[:20]!r}... has {len(longest)} characters; "
            "at most 63 (RFC 1035)"
        )
    if not is_hostname(value):
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


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_CIDR = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}/(3[0-2]|[12]?[0-9])")


def canonical_cidr(text: str) -> tuple[int, int] | None:
    """(address as an integer, prefix length) of `text` when it is written exactly as
    `str(ipaddress.IPv4Interface(text))` writes it, else None (then ask `ipv4_interface`,
    which also says what is wrong). Every guest has an address, and building an
    `IPv4Interface` costs ten times this: at 10,000 guests that was most of validation."""
    match = _CANONICAL_CIDR.fullmatch(text)
    if match is None:
        return None
    a, b, c, d, prefix = map(int, match.groups())
    return (a << 24) | (b << 16) | (c << 8) | d, prefix


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
    match = re.fullmatch(r"([0-9]{1,5}):([0-9]{1,5})", value)
    if not match or not all(1 <= int(p) <= 65535 for p in match.groups()):
        raise ValueError(f"{value!r} is not a port mapping 'host:container' (e.g. '8000:8000')")
    return value


def _gpu_assignment(value: str) -> str:
    cleaned = value.replace(" ", "")
    if cleaned.lower() == "none" or re.fullmatch(r"[0-9]+(,[0-9]+)*", cleaned):
        return cleaned.lower() if cleaned.lower() == "none" else cleaned
    raise ValueError(f"{value!r}: expected 'none' or GPU indices such as '0' or '0,1'")


def _plain_path(value: str) -> str:
    """An absolute path written plainly: no `,` or `=` (Proxmox would read them as more
    `key=value` options of the mount point line) and no `.`, `..` or empty components
    (pve-container's `verify_lxc_mp_string` refuses `/./` and `/../`; a path written two
    ways would also escape the one-mount-per-path check). A trailing `/` is allowed."""
    if "," in value:
        raise ValueError(f"{value!r}: a ',' would add options to Proxmox's mount point line")
    if "=" in value:
        raise ValueError(f"{value!r}: a '=' would be read as an option by Proxmox")
    parts = value.rstrip("/").split("/")[1:]
    if any(part in ("", ".", "..") for part in parts):
        plain = posixpath.normpath(value)
        raise ValueError(
            f"{value!r}: write the path without '.', '..' or '//' components (e.g. {plain!r})"
        )
    return value


def _guest_path(value: str) -> str:
    if not value.startswith("/") or "\n" in value or "\0" in value:
        raise ValueError(f"{value!r} must be an absolute path inside the guest")
    return _plain_path(value)


def _host_path(value: str) -> str:
    if not value.startswith("/") or "\0" in value:
        raise ValueError(f"{value!r} must be an absolute path on the host")
    return _plain_path(value)


def _nameservers(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise ValueError(f"expected a string or a list of strings, got {value!r}")


StorageId = Annotated[StrictStr, AfterValidator(_storage_id)]
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
NotAnOption = Annotated[StrictStr, AfterValidator(_not_an_option)]
CommandWords = Annotated[StrictStr, AfterValidator(_command_words)]
GpuAssignment = Annotated[StrictStr, AfterValidator(_gpu_assignment)]
SshHost = Annotated[StrictStr, AfterValidator(_ssh_host)]
Nameservers = Annotated[str | list[str] | None, BeforeValidator(_nameservers)]
