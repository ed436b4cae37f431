"""Which recipe bundles see a guest key: a scope tag on every `LxcGuest` field.

A bundle's digest covers the part of the guest's entry its recipe receives, so a key in
it re-runs the recipe when it changes. Which part that is was two hand-kept key lists in
the recipes; a field added to the model and to neither list silently re-ran every
application on the next converge. Now each field says where it belongs:

    Host[T]       applied by the driver on the host (sizes, boot order, firewall, raw
                  options, snapshots, the health check): no recipe sees it
    Placement[T]  who and where the guest is (name, NIC, template, what it runs): its
                  application sees it, a feature does not (a clone inherits its source's
                  feature markers)
    InGuest[T]    what the software inside uses (GPUs, volumes, model servers): every
                  recipe sees it

Unknown keys (kept, warned about) count as InGuest. A test fails for an untagged field.
"""

from __future__ import annotations

import functools
from enum import Enum
from typing import Annotated, TypeVar

from pydantic import BaseModel

T = TypeVar("T")


class Scope(Enum):
    HOST = "host"
    PLACEMENT = "placement"
    GUEST = "guest"


Host = Annotated[T, Scope.HOST]
Placement = Annotated[T, Scope.PLACEMENT]
InGuest = Annotated[T, Scope.GUEST]


def field_scopes(model: type[BaseModel]) -> dict[str, Scope | None]:
    """Entry key (its alias, as `model_dump(by_alias=True)` writes it) -> scope; None for a
    field nobody tagged."""
    out: dict[str, Scope | None] = {}
    for name, info in model.model_fields.items():
        tags = [m for m in info.metadata if isinstance(m, Scope)]
        out[info.alias or name] = tags[-1] if tags else None
    return out


@functools.cache
def keys_in(model: type[BaseModel], *scopes: Scope) -> frozenset[str]:
    """The entry keys of `model` whose fields are tagged with one of `scopes`."""
    return frozenset(key for key, scope in field_scopes(model).items() if scope in scopes)
