"""Load a config dir into an `Inventory`, reporting every problem at once.

Files are found in the config dir itself (never through the absolute `core_paths` of the
original tool), so a copied dir loads anywhere. Every user mistake becomes a `Problem`
(`FILE: JSON.PATH: message`), never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from phoenix.errors import InventoryError
from phoenix.inventory.checks import semantic_problems
from phoenix.inventory.core import HYPERVISOR_FILE, LXC_FILE, VM_FILE, Inventory
from phoenix.inventory.jsonfile import (
    MAX_FILE_BYTES,
    DuplicateKey,
    JsonFileError,
    parse_json,
    read_regular_file,
)
from phoenix.inventory.models import (
    CTID_TEXT,
    MAX_CTID,
    MIN_CTID,
    HypervisorConfig,
    LxcFile,
    LxcGuest,
    VmFile,
    VmGuest,
)
from phoenix.inventory.problems import Problem, errors, json_path, unsafe_character
from phoenix.inventory.scripts import RecipeCatalog

# Inventory and the file names live in core (what the checks read too); named here as well,
# since the loader is where callers have always found them.
__all__ = [
    "HYPERVISOR_FILE",
    "LXC_FILE",
    "SYSTEM_CONFIG_DIR",
    "VM_FILE",
    "Inventory",
    "RecipeCatalog",
    "load_files",
    "load_inventory",
    "read_json",
    "resolve_config_dir",
    "validate_config_dir",
]

SYSTEM_CONFIG_DIR = Path("/usr/local/phoenix_hypervisor/etc")

M = TypeVar("M", bound=BaseModel)


def resolve_config_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """--config-dir, else $PHOENIX_CONFIG_DIR, else the original tool's etc/, else ./etc."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("PHOENIX_CONFIG_DIR")
    if env:
        return Path(env)
    if SYSTEM_CONFIG_DIR.is_dir():
        return SYSTEM_CONFIG_DIR
    return Path("etc")


def _lines(numbers: Sequence[int]) -> str:
    shown = [str(n) for n in numbers]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def _duplicate_problem(shown: str, dup: DuplicateKey) -> Problem:
    """A repeated key: jq and Python's json use the last value, so it is a warning, except
    inside a guest's definition when the values differ (which one was meant is a guess)."""
    where = json_path([*dup.path, dup.key])
    lines = _lines(dup.lines)
    in_guest = shown == LXC_FILE and dup.path[:1] == ("lxc_configs",)
    if in_guest and dup.values_differ:
        return Problem(
            shown,
            where,
            f"duplicate key {dup.key!r} at lines {lines} with different values: "
            "keep the one you mean",
        )
    same = " (the same value each time)" if not dup.values_differ else ""
    return Problem(
        shown,
        where,
        f"key {dup.key!r} appears at lines {lines}{same}; the value at line {dup.lines[-1]} "
        "is used, as the original tool's jq did",
        "warning",
    )


def read_json(path: Path, shown: str) -> tuple[Any, list[Problem]]:
    """Parse one JSON file (a regular file, bounded); problems name the line and column of a
    syntax error, and the lines of a repeated key."""
    data, problems, _ = _read_document(path, shown)
    return data, problems


def _read_document(path: Path, shown: str) -> tuple[Any, list[Problem], str]:
    """`read_json`, also returning the text parsed ("" when none was)."""
    try:
        raw = read_regular_file(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        return None, [Problem(shown, "$", f"file not found: {path}")], ""
    except JsonFileError as exc:
        return None, [Problem(shown, "$", str(exc))], ""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        return None, [Problem(shown, "$", f"not UTF-8 text (byte {exc.start})")], ""
    if not text.strip():
        return None, [Problem(shown, "$", "file is empty; expected a JSON object")], ""
    try:
        data, duplicates = parse_json(text)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        return None, [Problem(shown, "$", message)], ""
    except JsonFileError as exc:
        return None, [Problem(shown, "$", str(exc))], ""
    if not isinstance(data, dict):
        return None, [Problem(shown, "$", f"expected a JSON object, got {type(data).__name__}")], ""
    return data, [_duplicate_problem(shown, dup) for dup in duplicates], text


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
}


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pydantic_problems(
    exc: ValidationError, shown: str, base: Sequence[str | int]
) -> list[Problem]:
    out: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for err in exc.errors(include_url=False):
        loc = [*base, *err["loc"]]
        kind = err["type"]
        if kind == "missing":
            message = "required field is missing"
        elif kind in _EXPECTED:
            message = f"expected {_EXPECTED[kind]}, got {_describe(err['input'])}"
        elif kind == "literal_error":
            expected = err["msg"].replace("Input should be", "expected")
            message = f"{expected}, got {_describe(err['input'])}"
        elif kind == "value_error":
            message = err["msg"].removeprefix("Value error, ")
        elif kind == "greater_than_equal" or kind == "less_than_equal":
            message = (
                f"{err['msg'].replace('Input should be', 'must be')}, got {_describe(err['input'])}"
            )
        else:
            message = f"{err['msg']} (got {_describe(err['input'])})"
        key = (json_path(loc), message)
        if key not in seen:
            seen.add(key)
            out.append(Problem(shown, key[0], message))
    return out


def _validate(
    model: type[M], data: Any, shown: str, base: Sequence[str | int] = ()
) -> tuple[M | None, list[Problem]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, _pydantic_problems(exc, shown, base)


def _holds_model(annotation: Any) -> bool:
    """Whether a field of this type can hold a model (a value typed `Any` or `str` cannot:
    validated JSON data there stays plain, so it has no unknown keys to report)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_holds_model(arg) for arg in get_args(annotation))


@functools.cache
def _walked_fields(cls: type[BaseModel]) -> tuple[bool, tuple[tuple[str, str], ...]]:
    """Whether `cls` keeps unknown keys, and (attribute, JSON key) of the fields worth
    walking: computed once per class, so the walk visits models only, not every value."""
    keeps = cls.model_config.get("extra") == "allow"
    fields = tuple(
        (name, info.alias or name)
        for name, info in cls.model_fields.items()
        if _holds_model(info.annotation)
    )
    return keeps, fields


def _extras(obj: Any, loc: list[str | int]) -> Iterator[tuple[list[str | int], str]]:
    """Yield (location, key) for every unknown key kept by the models."""
    if isinstance(obj, BaseModel):
        keeps, fields = _walked_fields(type(obj))
        if keeps and obj.model_extra:
            for key in obj.model_extra:
                yield loc, key
        for name, alias in fields:
            value = getattr(obj, name)
            # Most such fields are absent or empty lists: not worth a generator each.
            if value is not None and (value or not isinstance(value, list | dict)):
                yield from _extras(value, [*loc, alias])
    elif isinstance(obj, list):
        for i, item in enumerate(obj):
            yield from _extras(item, [*loc, i])
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from _extras(item, [*loc, key])


def _unknown_key_warnings(obj: BaseModel, shown: str, loc: list[str | int]) -> list[Problem]:
    return [
        Problem(shown, json_path([*where, key]), "unknown key (ignored)", "warning")
        for where, key in _extras(obj, loc)
    ]


def _ctid_key(key: str) -> int | None:
    if CTID_TEXT.fullmatch(key) and MIN_CTID <= int(key) <= MAX_CTID:
        return int(key)
    return None


# Bytes of an ASCII JSON text that cannot put an unsafe character (`unsafe_character`) into
# a key or string: printable ASCII but the backslash (which may start an escape such as
# "\n"), and the tab, newline and carriage return that the parser accepts only as
# whitespace between tokens. A text of these alone needs no walk.
_HARMLESS_ASCII = bytes(range(0x20, 0x7F)).replace(b"\\", b"") + b"\t\n\r"


def _control_characters(data: Any, shown: str, text: str | None = None) -> list[Problem]:
    """Every key and string holding a control character, a line or paragraph separator or a
    bidi override: such text would split a config line, reach a command, or rewrite the
    terminal that shows it. None of the original tool's inventories has one, so the text the
    data was parsed from is looked at first, in C (the walk took a tenth of a second at
    10,000 guests): only a text with a backslash or beyond printable ASCII is walked."""
    if text and text.isascii() and not text.encode("ascii").translate(None, _HARMLESS_ASCII):
        return []
    out: list[Problem] = []

    def walk(node: Any, loc: tuple[str | int, ...]) -> None:
        # A location is built only for containers and for problems: most leaves are fine.
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            bad_key = unsafe_character(key) if isinstance(key, str) else None
            if bad_key is not None:
                out.append(Problem(shown, json_path([*loc, key]), f"key {_said(bad_key)}"))
            if isinstance(item, str):
                bad_value = unsafe_character(item)
                if bad_value is not None:
                    out.append(Problem(shown, json_path([*loc, key]), f"value {_said(bad_value)}"))
            elif isinstance(item, dict | list):
                walk(item, (*loc, key))

    if isinstance(data, dict | list):  # read_json returns an object or None
        walk(data, ())
    return sorted(out, key=lambda p: p.path)


def _said(char: str) -> str:
    return (
        f"contains the control character U+{ord(char):04X}: inventory text may not hold line "
        "breaks, escape sequences or other control characters"
    )


def load_files(config_dir: Path) -> tuple[Inventory | None, list[Problem]]:
    """Parse and type-check the config dir's files; no cross-guest checks yet."""
    problems: list[Problem] = []
    if not config_dir.exists():
        return None, [
            Problem(
                str(config_dir),
                "$",
                f"config dir not found: {config_dir.absolute()} (looked at --config-dir/-c, "
                f"then $PHOENIX_CONFIG_DIR, then {SYSTEM_CONFIG_DIR}, then ./etc); pass "
                "-c DIR or set PHOENIX_CONFIG_DIR",
            )
        ]
    if not config_dir.is_dir():
        return None, [Problem(str(config_dir), "$", f"not a directory: {config_dir}")]

    hyp_data, found, text = _read_document(config_dir / HYPERVISOR_FILE, HYPERVISOR_FILE)
    problems += found + _control_characters(hyp_data, HYPERVISOR_FILE, text)
    hypervisor: HypervisorConfig | None = None
    if hyp_data is not None:
        hypervisor, found = _validate(HypervisorConfig, hyp_data, HYPERVISOR_FILE)
        problems += found
        if hypervisor is not None:
            problems += _unknown_key_warnings(hypervisor, HYPERVISOR_FILE, [])

    guests: dict[int, LxcGuest] = {}
    invalid_ids: set[int] = set()
    shell: LxcFile | None = None
    lxc_data, found, text = _read_document(config_dir / LXC_FILE, LXC_FILE)
    problems += found + _control_characters(lxc_data, LXC_FILE, text)
    if lxc_data is not None:
        configs = lxc_data.get("lxc_configs")
        top = {k: v for k, v in lxc_data.items() if k != "lxc_configs"}
        top["lxc_configs"] = {}
        shell, found = _validate(LxcFile, top, LXC_FILE)
        problems += found
        if shell is not None:
            problems += _unknown_key_warnings(shell, LXC_FILE, [])
        if configs is None:
            problems.append(Problem(LXC_FILE, "lxc_configs", "required field is missing"))
        elif not isinstance(configs, dict):
            problems.append(
                Problem(
                    LXC_FILE,
                    "lxc_configs",
                    f"expected an object keyed by CTID, got {_describe(configs)}",
                )
            )
        else:
            for key, entry in configs.items():
                ctid = _ctid_key(key)
                if ctid is None:
                    problems.append(
                        Problem(
                            LXC_FILE,
                            json_path(["lxc_configs", key]),
                            f"{key!r} is not a container id: "
                            f"use a number in {MIN_CTID}..{MAX_CTID}",
                        )
                    )
                    continue
                guest, found = _validate(LxcGuest, entry, LXC_FILE, ["lxc_configs", key])
                problems += found
                if guest is None:
                    invalid_ids.add(ctid)
                else:
                    guests[ctid] = guest
                    problems += _unknown_key_warnings(guest, LXC_FILE, ["lxc_configs", key])

    vms: dict[int, VmGuest] = {}
    vm_path = config_dir / VM_FILE
    if vm_path.exists():
        vm_data, found, text = _read_document(vm_path, VM_FILE)
        problems += found + _control_characters(vm_data, VM_FILE, text)
        if vm_data is not None:
            vm_file, found = _validate(VmFile, vm_data, VM_FILE)
            problems += found
            if vm_file is not None:
                for index, vm in enumerate(vm_file.vms):
                    if vm.vmid in vms:
                        problems.append(
                            Problem(
                                VM_FILE,
                                json_path(["vms", index, "vmid"]),
                                f"duplicate VM id {vm.vmid}",
                            )
                        )
                    vms[vm.vmid] = vm

    if hypervisor is None or lxc_data is None or not isinstance(lxc_data.get("lxc_configs"), dict):
        return None, problems
    # Returned even when some entries failed, so cross-guest checks still run on the rest.
    inventory = Inventory(config_dir, hypervisor, guests, vms, [], invalid_ids, lxc_file=shell)
    return inventory, problems


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading builds hundreds of thousands of objects that all stay alive (nothing for the
    cycle collector to find), yet each allocation burst makes it walk every one of them
    again: at 10,000 guests that was most of the load time. Objects no longer used are
    still freed as usual (reference counting); the collector runs again afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def validate_config_dir(
    config_dir: Path, recipes: RecipeCatalog | None = None
) -> tuple[Inventory | None, list[Problem]]:
    """Load and run every semantic check; returns the inventory only when error-free.
    With `recipes` (the CLI hands in `phoenix.recipes.registry`), a feature or application
    script that no recipe provides is a warning too."""
    with _collector_paused():
        return _validate_config_dir(config_dir, recipes)


def _validate_config_dir(
    config_dir: Path, recipes: RecipeCatalog | None
) -> tuple[Inventory | None, list[Problem]]:
    inventory, problems = load_files(config_dir)
    if inventory is None:
        return None, problems
    problems += semantic_problems(inventory, recipes)
    inventory.problems = problems
    if errors(problems):
        return None, problems
    inventory.invalid_ids = set()
    return inventory, problems


def load_inventory(config_dir: Path, recipes: RecipeCatalog | None = None) -> Inventory:
    """Load a valid inventory or raise InventoryError with every problem found."""
    inventory, problems = validate_config_dir(config_dir, recipes)
    if inventory is None:
        raise InventoryError(problems)
    return inventory
