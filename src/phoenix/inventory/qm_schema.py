"""`qm_options`: extra `qm set` options of a VM, checked against the Proxmox VE API schema.

`qm_options.json` holds the parameter list of `PUT /nodes/{node}/qemu/{vmid}/config` in PVE 8.4 and
9.1 (what `qm set` takes; tests/unit/proxmox/qm_schema_extract.py rebuilds it from the
schemas in tests/fixtures/pve and a test holds it equal), less `NOT_OPTIONS`: the ones
Phoenix sets from inventory keys, disks (Proxmox allocates a disk and stores its volume id,
so the option never reads back as written and each run would add one) and the API's
request flags. Everything else is stored by qemu-server as given, so reading the VM's
config back tells whether an option is applied.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from pathlib import Path
from typing import Any

DATA_FILE = Path(__file__).with_name("qm_options.json")


@functools.cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return data


_DISK = (
    "a disk: Proxmox allocates it and stores its volume id, so it never reads back as "
    "written (each run would add one); add it once with `qm set` on the node"
)
_FLAG = "a flag of the API request, not a setting of the VM"
NOT_OPTIONS: dict[str, str] = {
    "name": "set from the VM's 'name'",
    "memory": "set from 'memory_mb'",
    "cores": "set from 'cores'",
    "onboot": "set from 'start_at_boot'",
    "startup": "set from 'boot_order' and 'boot_delay'",
    "agent": "always enabled: Phoenix runs recipes through the guest agent",
    "net[n]": "the NIC comes from 'network_config' and 'network_bridge'",
    "ipconfig[n]": "set from 'network_config'",
    "ciuser": "set from 'user_config.username'",
    "sshkeys": "set from 'user_config.ssh_authorized_keys'",
    "nameserver": "set from 'network_config.nameserver'",
    "ciupgrade": "Phoenix turns cloud-init's package upgrade off",
    "cipassword": "stored hashed, so it never reads back as written: use "
    "'user_config.ssh_authorized_keys'",
    "template": "set from 'is_template'",
    "scsi[n]": _DISK,
    "ide[n]": _DISK,
    "sata[n]": _DISK,
    "virtio[n]": _DISK,
    "efidisk0": _DISK,
    "tpmstate0": _DISK,
    "unused[n]": _DISK,
    "cdrom": _DISK,
    "vmid": _FLAG,
    "node": _FLAG,
    "delete": _FLAG,
    "digest": _FLAG,
    "force": _FLAG,
    "skiplock": _FLAG,
    "revert": _FLAG,
    "lock": _FLAG,
}
_BOOLEANS = {"0", "1", "on", "off", "yes", "no", "true", "false"}  # pve-common parse_boolean
_NUMBERED = re.compile(r"([a-z]+)([0-9]+)")
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def schema_name(option: str) -> str:
    """`hostpci0` -> `hostpci[n]` where the schema has that family, else the name."""
    options = _data()["options"]
    if option in options or option in NOT_OPTIONS:
        return option
    match = _NUMBERED.fullmatch(option)
    if match:
        family = f"{match[1]}[n]"
        if family in options or family in NOT_OPTIONS:
            return family
    return option


def parse_qm_options(text: str) -> list[tuple[str, str]]:
    """`"--vga qxl --balloon 0"` -> [("vga", "qxl"), ("balloon", "0")] (shlex words, no
    shell); ValueError says what is wrong."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    out: list[tuple[str, str]] = []
    index = 0
    while index < len(words):
        word = words[index]
        if not word.startswith("--") or len(word) < 3:
            raise ValueError(f"{word!r} is not an option: write '--option value'")
        name, eq, value = word[2:].partition("=")
        if not eq:
            if index + 1 >= len(words):
                raise ValueError(f"--{name} has no value: write '--{name} VALUE'")
            index += 1
            value = words[index]
        out.append((name, value))
        index += 1
    if not out:
        raise ValueError("empty: write '--option value'")
    return out


def option_problem(option: str, value: str) -> str | None:
    """Why `qm set --option value` is not for `qm_options`, else None."""
    name = schema_name(option)
    if name in NOT_OPTIONS:
        return f"--{option} is not for qm_options: {NOT_OPTIONS[name]}"
    spec = _data()["options"].get(name)
    if spec is None:
        return f"--{option} is not an option of `qm set` (PVE 8.4/9.1 API schema)"
    why = _value_problem(spec, value)
    return f"--{option} {value!r}: {why}" if why else None


def since(option: str) -> str | None:
    """The first PVE version (of those checked) that has the option, when not all do."""
    since: str | None = _data()["since"].get(schema_name(option))
    return since


def _value_problem(spec: dict[str, Any], value: str) -> str | None:
    kind = spec.get("type")
    if kind == "boolean":
        return None if value.lower() in _BOOLEANS else "expected a boolean (0 or 1)"
    if kind in ("integer", "number"):
        if not (_INTEGER if kind == "integer" else _NUMBER).fullmatch(value):
            return f"expected {'an integer' if kind == 'integer' else 'a number'}"
        number = int(value) if kind == "integer" else float(value)
        if "minimum" in spec and number < spec["minimum"]:
            return f"below the minimum {spec['minimum']}"
        if "maximum" in spec and number > spec["maximum"]:
            return f"above the maximum {spec['maximum']}"
        return None
    if "enum" in spec and value not in spec["enum"]:
        return f"expected one of {', '.join(spec['enum'])}"
    if "maxLength" in spec and len(value) > spec["maxLength"]:
        return f"longer than {spec['maxLength']} characters"
    if "pattern" in spec:
        try:
            if not re.fullmatch(spec["pattern"], value):
                return f"does not match {spec['pattern']}"
        except re.error:
            pass  # a Perl-only construct: the node checks it
    if "keys" in spec:
        return _property_problem(spec, value)
    return None


def _property_problem(spec: dict[str, Any], value: str) -> str | None:
    """A property string (`type=qxl,memory=32`): known keys, and values of enum/boolean
    keys as the schema says."""
    keys: dict[str, Any] = spec["keys"]
    for part in value.split(","):
        key, eq, sub = part.partition("=")
        if not eq:
            if "default_key" not in spec:
                return f"{part!r} needs a key (one of {', '.join(sorted(keys))})"
            key, sub = spec["default_key"], part
        key = keys.get(key, {}).get("alias", key)
        if key not in keys:
            return f"unknown key {key!r} (known: {', '.join(sorted(keys))})"
        why = _value_problem({k: v for k, v in keys[key].items() if k != "keys"}, sub)
        if why:
            return f"{key}={sub}: {why}"
    return None
