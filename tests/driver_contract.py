"""What "implements the Driver protocol" means in a test.

`isinstance(x, Driver)` on a runtime-checkable Protocol only checks that the names exist: a
`start(self)` that forgot `timeout`, or an `exec` whose `env` became positional, passes it.
Here every method of the protocol is compared with the implementation's: the same
parameters, in the same order, of the same kind, with defaults where the protocol has
them and the same (resolved) types; extra parameters must be optional. `as_driver` is the
static half: a typed assignment mypy checks member by member once it reads the tests.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

from phoenix.drivers.base import Driver


def as_driver(driver: Driver) -> Driver:
    """The driver, typed as `Driver` (mypy rejects a call with anything that is not one)."""
    return driver


def _members(protocol: type) -> list[str]:
    # Under mutation testing (scripts/mutation.py) mutmut adds its copies of each method
    # (`xǁDriverǁstart__mutmut_1`): not members of the protocol.
    return sorted(
        name
        for name, value in vars(protocol).items()
        if inspect.isfunction(value) and not name.startswith("_") and "__mutmut_" not in name
    )


def _hints(function: Any) -> dict[str, Any]:
    return typing.get_type_hints(function)


def contract_breaches(implementation: type, protocol: type = Driver) -> list[str]:
    """How `implementation` differs from `protocol`'s methods and attributes (empty: none)."""
    out: list[str] = []
    for name in sorted(typing.get_type_hints(protocol)):
        # A class attribute, or one __init__ sets (not on the class until an instance is).
        sources = [inspect.getsource(c) for c in implementation.__mro__[:-1]]
        if not hasattr(implementation, name) and not any(f"self.{name} " in s for s in sources):
            out.append(f"attribute {name!r} is missing")
    for name in _members(protocol):
        impl = getattr(implementation, name, None)
        if impl is None or not callable(impl):
            out.append(f"{name}() is missing")
            continue
        want = inspect.signature(getattr(protocol, name))
        have = inspect.signature(impl)
        want_hints, have_hints = _hints(getattr(protocol, name)), _hints(impl)
        have_params = dict(have.parameters)
        for param in want.parameters.values():
            got = have_params.pop(param.name, None)
            if got is None:
                out.append(f"{name}(): parameter {param.name!r} is missing")
                continue
            if got.kind != param.kind:
                out.append(f"{name}(): {param.name!r} is {got.kind.description}")
            if param.default is not param.empty and got.default != param.default:
                out.append(f"{name}(): {param.name!r} defaults to {got.default!r}")
            if want_hints.get(param.name) != have_hints.get(param.name):
                out.append(
                    f"{name}(): {param.name!r} is {have_hints.get(param.name)}, "
                    f"not {want_hints.get(param.name)}"
                )
        order = [p for p in have.parameters if p in want.parameters]
        if order != list(want.parameters):
            out.append(f"{name}(): parameters in another order: {order}")
        for extra in have_params.values():
            optional = extra.default is not extra.empty or extra.kind in (
                extra.VAR_POSITIONAL,
                extra.VAR_KEYWORD,
            )
            if not optional:
                out.append(f"{name}(): extra parameter {extra.name!r} is required")
        if want_hints.get("return") != have_hints.get("return"):
            out.append(f"{name}(): returns {have_hints.get('return')}")
    return out
