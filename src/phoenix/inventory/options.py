"""Parsing and normalising `pct_options` and raw `lxc_options` strings.

The original tool accepted raw LXC options in two spellings (`lxc.key=value` as in an LXC
config, `lxc.key: value` as in a Proxmox `.conf`). Phoenix keeps one canonical form,
`lxc.key: value`, and the (key, value) pairs behind it.
"""

from __future__ import annotations

import re

from phoenix.inventory.problems import unsafe_character

# Container features Proxmox knows for `pct set --features` (pct(1), "features").
PCT_FEATURES: dict[str, str] = {
    "nesting": "boolean",
    "keyctl": "boolean",
    "fuse": "boolean",
    "mknod": "boolean",
    "force_rw_sys": "boolean",
    "mount": "fstype list separated by ';'",
}

_LXC_KEY = re.compile(r"[ \t]*(lxc(?:\.[A-Za-z0-9_]+)+)[ \t]*[:=][ \t]*(.*?)[ \t]*")
_BOOL_VALUES = {"0": "0", "1": "1", "true": "1", "false": "0", "yes": "1", "no": "0"}


def parse_lxc_option(text: str) -> tuple[str, str]:
    """`"lxc.mount.auto: sys:rw"` or `"lxc.mount.auto=sys:rw"` -> `("lxc.mount.auto", "sys:rw")`.

    Raises ValueError with an operator-facing message for anything else.
    """
    match = _LXC_KEY.fullmatch(text)
    if not match or unsafe_character(text) is not None:
        raise ValueError(
            f"{text!r} is not a raw LXC option: expected 'lxc.<key>: <value>' "
            "or 'lxc.<key>=<value>'"
        )
    key, value = match.group(1), match.group(2)
    if not value:
        raise ValueError(f"{text!r} has no value after the key {key!r}")
    return key, value


def canonical_lxc_option(text: str) -> str:
    key, value = parse_lxc_option(text)
    return f"{key}: {value}"


def parse_pct_option(text: str) -> list[tuple[str, str]]:
    """`"nesting=1"` (or `"nesting=1,keyctl=1"`) -> `[("nesting", "1"), ...]`.

    Only container features Proxmox knows are accepted; booleans become "0"/"1".
    """
    out: list[tuple[str, str]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip().lstrip("-")
        if not sep:
            raise ValueError(f"{text!r}: expected '<feature>=<value>', e.g. 'nesting=1'")
        kind = PCT_FEATURES.get(name)
        if kind is None:
            known = ", ".join(sorted(PCT_FEATURES))
            raise ValueError(f"{name!r} is not a container feature Proxmox knows (known: {known})")
        value = value.strip()
        if kind == "boolean":
            norm = _BOOL_VALUES.get(value.lower())
            if norm is None:
                raise ValueError(f"{name}={value!r}: expected 0 or 1")
            value = norm
        elif not re.fullmatch(r"[A-Za-z0-9;]+", value):
            raise ValueError(f"{name}={value!r}: expected filesystem names separated by ';'")
        out.append((name, value))
    return out
