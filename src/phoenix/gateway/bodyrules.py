"""What a request body's `model` is, as a JSON parser reads it: the PCRE rules nginx (the
native route) and njs (the precise answers) both use, so the gateway authorizes and routes
on exactly the value a model server will use.

A backend reads the top-level `model` of a JSON object, and when a body names it more
than once, takes one of them (Python's json and Go's encoding/json take the last; Go also
matches `Model` or `MODEL`, and every parser decodes `mod\\u0065l` to `model`). So a body
is routed natively only when it is a valid JSON object with exactly one top-level key that
any of them could read as `model`, spelled `model`, whose value is a plain string; nested
`model` keys (a tool's schema, metadata) are never looked at. Everything else goes to njs,
which answers what is wrong (invalid JSON, not an object, no model, a `model` named twice)
or routes a value that only needs decoding (`"demo\\u002dembed"`).

The rules are PCRE2 (recursion through `(?(DEFINE)...)`, possessive quantifiers, so
matching never backtracks into a value): nginx runs them with JIT, njs 0.7.9's RegExp runs
the same source. Nesting deeper than PCRE's JIT stack, or a body whose matching exceeds
PCRE's match limit, makes nginx's match fail with an error, answered as a 400 by the
gateway; nothing of the body is ever built into a JavaScript object."""

from __future__ import annotations

_WS = r"[ \t\n\r]*+"
_STRING = r'"(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4}))*+"'
_NUMBER = r"-?+(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][-+]?+[0-9]++)?+"


def _letter(ch: str) -> str:
    """One letter of a key, either case, or its \\u00XX escape."""
    low, up = format(ord(ch), "x"), format(ord(ch.upper()), "x")
    digit = low[1]
    hexdigit = f"[{digit}{digit.upper()}]" if digit.isalpha() else digit
    return f"(?:[{ch}{ch.upper()}]|\\\\u00[{low[0]}{up[0]}]{hexdigit})"


# A key any backend could read as `model` (any case, any letter escaped).
MODEL_LIKE_KEY = '"' + "".join(_letter(c) for c in "model") + '"'
_PAIR = rf"(?&phxs){_WS}:{_WS}(?&phxv){_WS}"
_OBJECT = rf"\{{{_WS}(?:{_PAIR}(?:,{_WS}{_PAIR})*+)?+\}}"
_ARRAY = rf"\[{_WS}(?:(?&phxv){_WS}(?:,{_WS}(?&phxv){_WS})*+)?+\]"
_DEFINE = (
    rf"(?(DEFINE)(?<phxs>{_STRING})"
    rf"(?<phxv>(?:(?&phxs)|{_NUMBER}|true|false|null|{_OBJECT}|{_ARRAY})))"
)
# A top-level member whose key is not model-like.
_OTHER = rf"(?!{MODEL_LIKE_KEY})(?&phxs){_WS}:{_WS}(?&phxv){_WS}"
_BEFORE = rf"\A{_WS}\{{{_WS}(?:{_OTHER},{_WS})*+"
_AFTER = rf"(?:,{_WS}{_OTHER})*+\}}{_WS}\z"

# The native route: $1 is the model of a body that names it once, plainly, at top level.
FAST_MODEL_RE = rf'{_BEFORE}"model"{_WS}:{_WS}"([^"\\\x00-\x1f]++)"{_WS}{_AFTER}{_DEFINE}'
# njs: a valid JSON object (anything else is answered 400).
JSON_OBJECT_RE = rf"\A{_WS}{_OBJECT}{_WS}\z{_DEFINE}"
# njs: the first top-level model-like key ($1, raw) and its value ($2, raw JSON).
FIRST_MODEL_RE = rf"{_BEFORE}({MODEL_LIKE_KEY}){_WS}:{_WS}((?&phxv))" + _DEFINE
# njs: a second top-level model-like key after the first (ambiguous: refused).
SECOND_MODEL_RE = (
    rf"{_BEFORE}{MODEL_LIKE_KEY}{_WS}:{_WS}(?&phxv){_WS}(?:,{_WS}{_OTHER})*+,{_WS}"
    rf"{MODEL_LIKE_KEY}" + _DEFINE
)

# Multipart bodies: the form field `model` (its part's headers, a blank line, the value).
_FORM_FIELD = r'(?i)content-disposition:[ \t]*+form-data;[ \t]*+name="model"\r\n'
FORM_MODEL_RE = _FORM_FIELD + r"(?:[^\r\n]++\r\n)*?\r\n([^\r\n]++)\r\n"
# Two `model` fields: a backend takes one of them, so the gateway takes neither.
FORM_TWICE_RE = _FORM_FIELD + r"[\s\S]*?" + _FORM_FIELD.removeprefix("(?i)")


def njs_rules() -> dict[str, str]:
    """The rules njs needs, for phoenix_models.js."""
    return {
        "object": JSON_OBJECT_RE,
        "first": FIRST_MODEL_RE,
        "second": SECOND_MODEL_RE,
        "form": FORM_MODEL_RE.removeprefix("(?i)"),
        "formTwice": FORM_TWICE_RE.removeprefix("(?i)"),
    }
