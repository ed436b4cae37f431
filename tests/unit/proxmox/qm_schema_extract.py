"""What `phoenix.inventory.qm_schema` holds, extracted from the PVE API schemas of the
fixtures: the `qm set` options of `PUT /nodes/{node}/qemu/{vmid}/config`, each with what
a value must be (type, enum, pattern, range, a property string's keys), for every option
an inventory may give in `qm_options`. `python -m tests.unit.proxmox.qm_schema_extract`
writes the file anew."""

from __future__ import annotations

import json
from typing import Any

from tests.unit.proxmox.apischema import VERSIONS, endpoint

PATH = "/nodes/{node}/qemu/{vmid}/config"


def _spec(prop: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": prop["type"]}
    for attr in ("enum", "pattern", "minimum", "maximum", "maxLength"):
        if attr in prop:
            spec[attr] = prop[attr]
    fmt = prop.get("format")
    if isinstance(fmt, dict):
        keys: dict[str, Any] = {}
        for key, sub in fmt.items():
            if sub.get("alias"):
                keys[key] = {"alias": sub["alias"]}
                continue
            keys[key] = {"type": sub.get("type", "string")}
            if "enum" in sub:
                keys[key]["enum"] = sub["enum"]
            if sub.get("default_key"):
                spec["default_key"] = key
        spec["keys"] = keys
    elif isinstance(fmt, str):
        spec["format"] = fmt
    return spec


def _merge(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """One spec for both versions: what either accepts (enums joined)."""
    out = dict(new)
    if "enum" in old and "enum" in new:
        out["enum"] = sorted(set(old["enum"]) | set(new["enum"]))
    if "keys" in old and "keys" in new:
        keys = dict(old["keys"]) | dict(new["keys"])
        for key in set(old["keys"]) & set(new["keys"]):
            keys[key] = _merge(old["keys"][key], new["keys"][key])
        out["keys"] = dict(sorted(keys.items()))
    return out


def extract(skip: frozenset[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """(options of any version, {option: the first version that has it} where not all)."""
    options: dict[str, Any] = {}
    first: dict[str, str] = {}
    for version in VERSIONS:
        props = endpoint(version, PATH, "PUT")
        assert props is not None
        for name, prop in sorted(props["properties"].items()):
            if name in skip:
                continue
            spec = _spec(prop)
            options[name] = _merge(options[name], spec) if name in options else spec
            first.setdefault(name, version)
    since = {k: v for k, v in first.items() if v != VERSIONS[0]}
    return dict(sorted(options.items())), since


def render() -> str:
    from phoenix.inventory.qm_schema import NOT_OPTIONS

    found, since = extract(frozenset(NOT_OPTIONS))
    return json.dumps({"options": found, "since": since}, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    from phoenix.inventory.qm_schema import DATA_FILE

    DATA_FILE.write_text(render())
