"""Check `pct`/`pvesh` argv (and `.fw` files) against the Proxmox VE API schema of a version.

`pct` is a thin CLI over the API (tests/fixtures/pve/ and its README map each verb to its
endpoint): `pct set 101 --memory 4096` is `PUT /nodes/{node}/lxc/101/config memory=4096`.
A command is valid when its endpoint exists in that version, every option is a parameter of
the endpoint, every required parameter is there, and every value matches its schema: type,
enum, pattern, range, length, the keys and values of a property string (`net0`, `rootfs`,
`features`...), and the named formats Phoenix's values use (checked as pve-common defines
them). A named format this module does not know is reported, never silently accepted.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from phoenix.drivers.proxmox.properties import parse_property_string

PVE = Path(__file__).parents[2] / "fixtures" / "pve"
VERSIONS = ("8.4", "9.1")
CLI_ONLY = frozenset({"exec", "push", "pull", "enter", "console", "mount", "unmount"})

_CONFIGID = re.compile(r"^[a-z][a-z0-9_-]+$", re.IGNORECASE)
_STORAGE_ID = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", re.IGNORECASE)
_DNS_LABEL = r"[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?"
_DNS = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", re.IGNORECASE)
_DISK_SIZE = re.compile(r"^\d+(\.\d+)?[KMGT]?$")
_NODE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?$")
_VOLUME = re.compile(r"^[a-z][a-z0-9\-_.]*[a-z0-9]:.+$", re.IGNORECASE)
_PORT = re.compile(r"^\d+(:\d+)?$")
_PROTOCOLS = frozenset({"tcp", "udp", "icmp", "icmpv6", "ipv6-icmp", "sctp", "gre", "esp"})


@cache
def schema(version: str) -> list[dict[str, Any]]:
    with gzip.open(PVE / f"pve-{version}-api.json.gz") as f:
        data: list[dict[str, Any]] = json.load(f)
    return data


def endpoint(version: str, path: str, method: str) -> dict[str, Any] | None:
    """The parameter properties of `method path` (path with `{node}`-style names)."""

    def walk(nodes: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
        for node in nodes:
            if node["path"] == path:
                info = node.get("info", {}).get(method)
                return None if info is None else info.get("parameters", {})
            found = walk(node.get("children") or [])
            if found is not None:
                return found
        return None

    return walk(schema(version))


def concrete_to_template(version: str, path: str) -> str | None:
    """`/nodes/pve/lxc/101/config` -> `/nodes/{node}/lxc/{vmid}/config` (as in the tree)."""
    parts = path.strip("/").split("/")

    def walk(nodes: Sequence[Mapping[str, Any]], depth: int) -> str | None:
        for node in nodes:
            last = node["path"].rstrip("/").split("/")[-1]
            if last == parts[depth] or (last.startswith("{") and last.endswith("}")):
                if depth == len(parts) - 1:
                    return str(node["path"])
                found = walk(node.get("children") or [], depth + 1)
                if found is not None:
                    return found
        return None

    return walk(schema(version), 0)


def perl_regex(pattern: str) -> re.Pattern[str]:
    """pve's patterns are Perl: `(?^:...)` / `(?^i:...)` are groups with default flags."""
    return re.compile(pattern.replace("(?^i:", "(?i:").replace("(?^:", "(?:"))


@dataclass
class Report:
    """Problems found (empty: valid) and the named formats met that are not checked."""

    problems: list[str] = field(default_factory=list)
    unchecked: set[str] = field(default_factory=set)


def _lookup(props: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    if name in props:
        return props[name]  # type: ignore[no-any-return]
    match = re.fullmatch(r"([a-z]+)(\d+)", name)
    if match and f"{match.group(1)}[n]" in props:
        return props[f"{match.group(1)}[n]"]  # type: ignore[no-any-return]
    return None


def check_value(
    where: str, value: str, spec: Mapping[str, Any], report: Report, props: Mapping[str, Any]
) -> None:
    """One value against its property schema (recursing into property strings)."""
    kind = spec.get("type", "string")
    if kind == "boolean":
        if value.lower() not in ("0", "1", "true", "false", "yes", "no", "on", "off"):
            report.problems.append(f"{where}: {value!r} is not a boolean")
        return
    if kind in ("integer", "number"):
        try:
            number = int(value) if kind == "integer" else float(value)
        except ValueError:
            report.problems.append(f"{where}: {value!r} is not an {kind}")
            return
        if "minimum" in spec and number < spec["minimum"]:
            report.problems.append(f"{where}: {value} < minimum {spec['minimum']}")
        if "maximum" in spec and number > spec["maximum"]:
            report.problems.append(f"{where}: {value} > maximum {spec['maximum']}")
        return
    if "enum" in spec and value not in spec["enum"]:
        report.problems.append(f"{where}: {value!r} not one of {spec['enum']}")
    if "maxLength" in spec and len(value) > spec["maxLength"]:
        report.problems.append(f"{where}: longer than {spec['maxLength']}")
    if "minLength" in spec and len(value) < spec["minLength"]:
        report.problems.append(f"{where}: shorter than {spec['minLength']}")
    if "pattern" in spec and not perl_regex(spec["pattern"]).fullmatch(value):
        report.problems.append(f"{where}: {value!r} does not match {spec['pattern']}")
    fmt = spec.get("format")
    if isinstance(fmt, dict):
        check_property_string(where, value, fmt, report)
    elif isinstance(fmt, str):
        check_format(where, value, fmt, report, props)


def check_property_string(where: str, value: str, fmt: Mapping[str, Any], report: Report) -> None:
    default_key = next((k for k, s in fmt.items() if s.get("default_key")), None)
    try:
        pairs = parse_property_string(value, default_key)
    except ValueError as exc:
        report.problems.append(f"{where}: {exc}")
        return
    for key, item in pairs.items():
        spec = fmt.get(key)
        if spec is not None and "alias" in spec:  # `virtio=MAC` is `macaddr=MAC`
            spec = fmt.get(spec["alias"], spec)
        if spec is None:
            aliased = next((k for k, s in fmt.items() if s.get("alias") == key), None)
            spec = fmt.get(aliased) if aliased else None
        if spec is None:
            report.problems.append(f"{where}: key {key!r} is not in the format ({sorted(fmt)})")
            continue
        check_value(f"{where}.{key}", item, spec, report, fmt)
    given = set(pairs) | {fmt[k]["keyAlias"] for k in pairs if fmt.get(k, {}).get("keyAlias")}
    for key, spec in fmt.items():
        if not spec.get("optional") and not spec.get("alias") and key not in given:
            report.problems.append(f"{where}: required key {key!r} missing")


def check_format(
    where: str, value: str, fmt: str, report: Report, props: Mapping[str, Any]
) -> None:
    """The pve-common named formats Phoenix's values use."""
    ok: bool
    if fmt == "pve-node":
        ok = value == "localhost" or bool(_NODE.match(value))
    elif fmt == "pve-vmid":
        ok = value.isdigit() and 100 <= int(value) <= 999_999_999
    elif fmt == "pve-configid":
        ok = bool(_CONFIGID.match(value))
    elif fmt == "pve-configid-list":
        items = value.split(",")
        ok = all(_CONFIGID.match(i) for i in items)
        unknown = [i for i in items if _lookup(props, i) is None]
        if unknown:
            report.problems.append(f"{where}: deletes unknown options {unknown}")
    elif fmt == "pve-storage-id":
        ok = bool(_STORAGE_ID.match(value))
    elif fmt == "dns-name":
        ok = len(value) <= 255 and bool(_DNS.match(value))
    elif fmt == "mac-addr":
        # Not multicast: the I/G bit of the first octet is clear.
        ok = bool(_MAC.match(value)) and int(value[:2], 16) & 1 == 0
    elif fmt == "disk-size":
        ok = bool(_DISK_SIZE.match(value))
    elif fmt == "ipv4":
        ok = _is_ipv4(value)
    elif fmt == "pve-ipv4-config":
        ok = value in ("dhcp", "manual") or _is_ipv4_cidr(value)
    elif fmt == "pve-ha-resource-or-vm-id":
        # pve-ha-manager src/PVE/HA/Tools.pm, pve_verify_ha_resource_or_vm_id
        ok = bool(re.match(r"^(?:(?:vm|ct):)?[1-9][0-9]{2,8}$", value))
    elif fmt in ("pve-ha-node-list", "pve-ha-group-node-list"):
        # pve-ha-manager src/PVE/HA/Tools.pm, pve_verify_ha_group_node: `node[:priority]`
        ok = all(re.fullmatch(rf"{_DNS_LABEL}(:\d+)?", i) for i in value.split(","))
    elif fmt in ("pve-ha-resource-id", "pve-ha-resource-id-list"):
        # pve-ha-manager src/PVE/HA/Tools.pm, pve_verify_ha_resource_id: `type:name`
        ok = all(re.fullmatch(r"[a-z]+:\S+", i) for i in value.split(","))
    elif fmt == "ipv6":
        ok = _is_ip(value, ipaddress.IPv6Address)
    elif fmt == "pve-ipv6-config":
        ok = value in ("auto", "dhcp", "manual") or (
            "/" in value and _is_ip(value, ipaddress.IPv6Interface)
        )
    elif fmt == "pve-startup-order":
        try:
            parts = parse_property_string(value, "order")
        except ValueError:
            parts = {"?": "?"}
        ok = set(parts) <= {"order", "up", "down"} and all(v.isdigit() for v in parts.values())
    elif fmt in (
        "pve-lxc-mp-string",
        "pve-volume-id-or-qm-path",
        "pve-volume-id",
        "pve-volume-id-or-absolute-path",
    ):
        ok = bool(_VOLUME.match(value)) or value.startswith("/")
        if fmt == "pve-lxc-mp-string":
            # pve-container src/PVE/LXC/Config.pm, verify_lxc_mp_string: no `/./` or
            # `/../`, no `/.` or `/..` at the end, no `../` at the start.
            ok = ok and not re.search(r"/\.\.?/|/\.\.?$|^\.\./", value)
    elif fmt == "pve-qm-ipconfig":
        # qemu-server PVE/QemuServer.pm, $ipconfig_fmt: ip (dhcp or CIDR), gw, ip6, gw6
        try:
            parts = parse_property_string(value)
        except ValueError:
            parts = {"?": "?"}
        ip, gw = parts.get("ip"), parts.get("gw")
        ok = set(parts) <= {"ip", "gw", "ip6", "gw6"} and (
            ip is None or ip == "dhcp" or _is_ipv4_cidr(ip)
        )
        ok = ok and (gw is None or _is_ipv4(gw))
    elif fmt == "pve-bridge-id":
        # pve-common PVE/JSONSchema.pm, pve_verify_bridge_id
        ok = bool(re.fullmatch(r"[-_.\w]+", value, re.ASCII))
    elif fmt == "address-list":
        # pve-common PVE/JSONSchema.pm, verify_address_list: split on space, comma, ';'
        ok = all(
            _is_ipv4(a) or _is_ip(a, ipaddress.IPv6Address) for a in re.split(r"[ ,;]+", value)
        )
    elif fmt == "urlencoded":
        # pve-common PVE/JSONSchema.pm, pve_verify_urlencoded: only %XX and unreserved
        ok = bool(re.fullmatch(r"(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9\-._~])*", value))
    elif fmt == "pve-qm-boot":
        parts_ = parse_property_string(value, "legacy")
        ok = set(parts_) <= {"order", "legacy"} and all(
            re.fullmatch(r"(ide|sata|scsi|virtio|net|efidisk|tpmstate)\d+", d)
            for d in parts_.get("order", "scsi0").split(";")
        )
    elif fmt == "pve-qm-hostpci":
        # qemu-server PVE/QemuServer/PCI.pm: host=[domain:]bus:dev[.func][;...] first
        host = value.split(",")[0].removeprefix("host=")
        ok = all(
            re.fullmatch(r"([0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}(\.[0-7])?", h, re.I)
            for h in host.split(";")
        )
    elif fmt == "pve-lxc-dev-string":
        # pve-container's verify_lxc_dev_string: under /dev, no `.`/`..` path components.
        ok = value.startswith("/dev/") and not re.search(r"/\.\.?(/|$)", value)
    elif fmt == "pve-fw-dport-spec":
        items = value.split(",")
        ok = all(_PORT.match(i) for i in items)
        numbers = sum(2 if ":" in i else 1 for i in items)
        if numbers > 15:
            report.problems.append(f"{where}: {numbers} port numbers (pve-firewall: at most 15)")
    elif fmt == "pve-fw-protocol-spec":
        ok = value.lower() in _PROTOCOLS or value.isdigit()
    elif fmt == "pve-fw-addr-spec":
        ok = all(_is_ipv4(a) or _is_ipv4_cidr(a) for a in value.split(","))
    else:
        report.unchecked.add(fmt)
        return
    if not ok:
        report.problems.append(f"{where}: {value!r} is not a valid {fmt}")


def _is_ip(value: str, kind: type[object]) -> bool:
    try:
        kind(value)  # type: ignore[call-arg]
    except ValueError:
        return False
    return True


def _is_ipv4(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _is_ipv4_cidr(value: str) -> bool:
    if "/" not in value:
        return False
    try:
        ipaddress.IPv4Interface(value)
    except ValueError:
        return False
    return True


def check_params(
    version: str,
    what: str,
    path: str,
    method: str,
    params: Mapping[str, str],
    report: Report,
) -> None:
    """Parameters (path ones included) of one API call against its endpoint."""
    info = endpoint(version, path, method)
    if info is None:
        report.problems.append(f"{what}: PVE {version} has no {method} {path}")
        return
    props: Mapping[str, Any] = info.get("properties", {})
    for name, value in params.items():
        spec = _lookup(props, name)
        if spec is None:
            report.problems.append(f"{what}: PVE {version} {method} {path} has no {name!r}")
            continue
        check_value(f"{what}: {name}", value, spec, report, props)
    for name, spec in props.items():
        if not spec.get("optional") and "[n]" not in name and name not in params:
            report.problems.append(f"{what}: required parameter {name!r} missing")


def _options(args: Sequence[str], what: str, report: Report) -> dict[str, str]:
    out: dict[str, str] = {}
    index = 0
    while index < len(args):
        arg = args[index]
        if not arg.startswith("--") or index + 1 >= len(args):
            report.problems.append(f"{what}: cannot read option {arg!r}")
            return out
        out[arg[2:]] = args[index + 1]
        index += 2
    return out


# pct verb -> (method, path under /nodes/{node}/lxc, positional parameter names)
PCT: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "create": ("POST", "", ("vmid", "ostemplate")),
    "set": ("PUT", "/{vmid}/config", ("vmid",)),
    "clone": ("POST", "/{vmid}/clone", ("vmid", "newid")),
    "resize": ("PUT", "/{vmid}/resize", ("vmid", "disk", "size")),
    "snapshot": ("POST", "/{vmid}/snapshot", ("vmid", "snapname")),
    "delsnapshot": ("DELETE", "/{vmid}/snapshot/{snapname}", ("vmid", "snapname")),
    "template": ("POST", "/{vmid}/template", ("vmid",)),
    "migrate": ("POST", "/{vmid}/migrate", ("vmid", "target")),
    "start": ("POST", "/{vmid}/status/start", ("vmid",)),
    "stop": ("POST", "/{vmid}/status/stop", ("vmid",)),
    "shutdown": ("POST", "/{vmid}/status/shutdown", ("vmid",)),
    "reboot": ("POST", "/{vmid}/status/reboot", ("vmid",)),
    "destroy": ("DELETE", "/{vmid}", ("vmid",)),
}


# qm verb -> (method, path under /nodes/{node}/qemu, positional parameter names)
QM: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "create": ("POST", "", ("vmid",)),
    "set": ("PUT", "/{vmid}/config", ("vmid",)),
    "clone": ("POST", "/{vmid}/clone", ("vmid", "newid")),
    "resize": ("PUT", "/{vmid}/resize", ("vmid", "disk", "size")),
    "snapshot": ("POST", "/{vmid}/snapshot", ("vmid", "snapname")),
    "template": ("POST", "/{vmid}/template", ("vmid",)),
    "start": ("POST", "/{vmid}/status/start", ("vmid",)),
    "stop": ("POST", "/{vmid}/status/stop", ("vmid",)),
    "shutdown": ("POST", "/{vmid}/status/shutdown", ("vmid",)),
    "destroy": ("DELETE", "/{vmid}", ("vmid",)),
    "migrate": ("POST", "/{vmid}/migrate", ("vmid", "target")),
}
# qm commands of the CLI alone (PVE/CLI/qm.pm), with the options each takes there.
QM_CLI: dict[str, frozenset[str]] = {
    "guest exec": frozenset({"timeout", "pass-stdin", "synchronous"}),
    "importdisk": frozenset({"format", "target-disk"}),
}


def _api_call(
    version: str,
    what: str,
    base: str,
    table: tuple[str, str, tuple[str, ...]],
    rest: Sequence[str],
    node: str,
    report: Report,
) -> None:
    method, suffix, positional = table
    given = next((i for i, a in enumerate(rest) if a.startswith("--")), len(rest))
    given = min(given, len(positional))
    params = dict(zip(positional, rest[:given], strict=False))
    if given < len(positional):
        report.problems.append(f"{what}: missing positional {positional[given:]}")
    params.update(_options(rest[given:], what, report))
    params["node"] = node
    check_params(version, what, base + suffix, method, params, report)


def check_qm(version: str, argv: Sequence[str], node: str, report: Report) -> None:
    """`qm VERB ...`: the API call it is (`PVE/CLI/qm.pm` maps each verb to an endpoint),
    or a command of the CLI alone with its own options."""
    what = " ".join(argv)
    verb = " ".join(argv[1:3]) if argv[1:2] == ["guest"] else argv[1]
    rest = list(argv[1 + len(verb.split()) :])
    if verb in QM_CLI:
        check_format(f"{what}: vmid", rest[0] if rest else "", "pve-vmid", report, {})
        end = rest.index("--") if "--" in rest else len(rest)
        positional = 3 if verb == "importdisk" else 1
        options = _options(rest[positional:end], what, report)
        unknown = set(options) - QM_CLI[verb]
        if unknown:
            report.problems.append(f"{what}: qm {verb} has no option {sorted(unknown)}")
        if verb == "guest exec" and end == len(rest):
            report.problems.append(f"{what}: no command after --")
        return
    if verb not in QM:
        report.problems.append(f"{what}: qm verb {verb!r} has no API endpoint mapped")
        return
    _api_call(version, what, "/nodes/{node}/qemu", QM[verb], rest, node, report)


def check_argv(version: str, argv: Sequence[str], node: str = "localhost") -> Report:
    """One command Phoenix runs on a node, against PVE `version`'s schema."""
    report = Report()
    what = " ".join(argv)
    if argv[:1] == ["flock"]:
        argv = argv[4:]
    if not argv:
        report.problems.append("empty command")
        return report
    if argv[0] == "pct":
        verb = argv[1]
        if verb in CLI_ONLY:
            check_format(f"{what}: vmid", argv[2], "pve-vmid", report, {})
            return report
        if verb not in PCT:
            report.problems.append(f"{what}: pct verb {verb!r} has no API endpoint mapped")
            return report
        method, suffix, positional = PCT[verb]
        rest = list(argv[2:])
        given = next((i for i, a in enumerate(rest) if a.startswith("--")), len(rest))
        given = min(given, len(positional))
        params = dict(zip(positional, rest[:given], strict=False))
        if given < len(positional):
            report.problems.append(f"{what}: missing positional {positional[given:]}")
        params.update(_options(rest[given:], what, report))
        params["node"] = node
        check_params(version, what, "/nodes/{node}/lxc" + suffix, method, params, report)
        return report
    if argv[0] == "qm":
        check_qm(version, argv, node, report)
        return report
    if argv[0] == "pvesh":
        method = {"get": "GET", "set": "PUT", "create": "POST", "delete": "DELETE"}[argv[1]]
        path = argv[2]
        template = concrete_to_template(version, path)
        if template is None:
            report.problems.append(f"{what}: PVE {version} has no path {path}")
            return report
        params = {}
        for name, value in zip(template.split("/"), path.split("/"), strict=True):
            if name.startswith("{"):
                params[name[1:-1]] = value
        options = _options(argv[3:], what, report)
        if options.pop("output-format", "json") not in ("json", "json-pretty"):
            report.problems.append(f"{what}: --output-format must be json")
        params.update(options)
        check_params(version, what, template, method, params, report)
        return report
    # Not an API call (the file writer, mktemp, cat, rm): nothing to check here.
    return report


_FW_RULE = re.compile(r"^(IN|OUT)\s+(ACCEPT|DROP|REJECT)\b(.*)$")


def check_fw_file(version: str, text: str, vmid: int = 101) -> Report:
    """A rendered guest `.fw` file: [OPTIONS] as `PUT .../firewall/options`, each [RULES]
    line as `POST .../firewall/rules`."""
    report = Report()
    section = ""
    base = {"node": "localhost", "vmid": str(vmid)}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if section == "OPTIONS":
            key, _, value = line.partition(":")
            check_params(
                version,
                f".fw option {key}",
                "/nodes/{node}/lxc/{vmid}/firewall/options",
                "PUT",
                {**base, key.strip(): value.strip()},
                report,
            )
        elif section == "RULES":
            match = _FW_RULE.match(line)
            if not match:
                report.problems.append(f".fw rule {line!r}: not 'IN|OUT ACTION ...'")
                continue
            tokens = match.group(3).split()
            names = {"-p": "proto", "-dport": "dport", "-source": "source", "-dest": "dest"}
            params = {**base, "type": match.group(1).lower(), "action": match.group(2)}
            for flag_, value in zip(tokens[::2], tokens[1::2], strict=True):
                params[names.get(flag_, flag_)] = value
            check_params(
                version,
                f".fw rule {line!r}",
                "/nodes/{node}/lxc/{vmid}/firewall/rules",
                "POST",
                params,
                report,
            )
    return report
