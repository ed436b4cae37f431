"""Plain data checked against the models: pydantic's errors said as Problems, and the
unknown keys the models kept (`extra="allow"`) reported as warnings."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ValidationError

from phoenix.inventory.problems import Problem, json_path

M = TypeVar("M", bound=BaseModel)


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


def describe(value: Any) -> str:
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
            message = f"expected {_EXPECTED[kind]}, got {describe(err['input'])}"
        elif kind == "literal_error":
            expected = err["msg"].replace("Input should be", "expected")
            message = f"{expected}, got {describe(err['input'])}"
        elif kind == "value_error":
            message = err["msg"].removeprefix("Value error, ")
        elif kind == "greater_than_equal" or kind == "less_than_equal":
            message = (
                f"{err['msg'].replace('Input should be', 'must be')}, got {describe(err['input'])}"
            )
        else:
            message = f"{err['msg']} (got {describe(err['input'])})"
        key = (json_path(loc), message)
        if key not in seen:
            seen.add(key)
            out.append(Problem(shown, key[0], message))
    return out


def validate_model(
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


def unknown_key_warnings(obj: BaseModel, shown: str, loc: list[str | int]) -> list[Problem]:
    return [
        Problem(shown, json_path([*where, key]), "unknown key (ignored)", "warning")
        for where, key in _extras(obj, loc)
    ]
