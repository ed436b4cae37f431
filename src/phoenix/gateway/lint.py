"""Lint nginx sites, rendered or hand-written, and report `file:line: severity: message`.

Checks: conflicting `listen`/`server_name` pairs across sites (nginx keeps the first and
ignores the rest), duplicate upstream names, locations that can never match, content
handlers that fight (`js_content` with `proxy_pass`), a forced `Connection: upgrade`,
old TLS versions, and upstream addresses that are no guest of the inventory (or a
template). `fatal` marks what `nginx -t` itself would reject.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from crossplane.analyzer import DIRECTIVES

from phoenix.digits import is_digits
from phoenix.errors import GatewayError
from phoenix.gateway.nginx import Directive, parse_file
from phoenix.inventory import Inventory

Severity = Literal["error", "warning"]
NJS_DIRECTIVES = {
    "js_import",
    "js_content",
    "js_set",
    "js_path",
    "js_var",
    "js_body_filter",
    "js_header_filter",
    "js_access",
    "js_preload_object",
    "js_include",
    "js_fetch_trusted_certificate",
    "js_fetch_verify",
    "js_fetch_timeout",
    "js_fetch_buffer_size",
    "js_fetch_max_response_buffer_size",
    "js_fetch_ciphers",
    "js_fetch_protocols",
    "js_fetch_verify_depth",
}
# Blocks whose children are data (map keys, mime types), not directives.
DATA_BLOCKS = {"map", "types", "geo", "split_clients", "charset_map", "match"}
OLD_TLS = {"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"}


@dataclass(frozen=True)
class Finding:
    file: str
    line: int
    severity: Severity
    code: str
    message: str
    fatal: bool = False

    def render(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}: {self.message} [{self.code}]"


def _walk(directives: Sequence[Directive]) -> Iterator[Directive]:
    for x in directives:
        yield x
        if x.block is not None and x.name not in DATA_BLOCKS:
            yield from _walk(x.block)


def _servers(directives: Sequence[Directive]) -> Iterator[Directive]:
    return (x for x in _walk(directives) if x.name == "server" and x.block is not None)


def _listen_key(arg: str) -> str:
    if arg.startswith("unix:"):
        return arg
    if is_digits(arg):  # a port; nginx reads `listen ²;` as a host
        return f"*:{arg}"
    if arg.startswith("["):
        return arg if "]:" in arg else f"{arg}:80"
    return arg if ":" in arg else f"{arg}:80"


def _where(x: Directive) -> str:
    return f"{x.file}:{x.line}"


def _unknown(directives: Sequence[Directive]) -> list[Finding]:
    out: list[Finding] = []
    for x in _walk(directives):
        if x.name == "js_include":
            out.append(
                Finding(
                    x.file,
                    x.line,
                    "error",
                    "removed-directive",
                    "js_include was removed in njs 0.7; use js_import",
                    True,
                )
            )
        elif x.name not in DIRECTIVES and x.name not in NJS_DIRECTIVES:
            out.append(
                Finding(
                    x.file,
                    x.line,
                    "error",
                    "unknown-directive",
                    f"unknown directive {x.name!r} (nginx -t rejects it)",
                    True,
                )
            )
    return out


def _conflicts(directives: Sequence[Directive]) -> list[Finding]:
    out: list[Finding] = []
    seen: dict[tuple[str, str], Directive] = {}
    for server in _servers(directives):
        listens = [_listen_key(x.args[0]) for x in server.children("listen") if x.args] or ["*:80"]
        names = [a.lower() for x in server.children("server_name") for a in x.args] or [""]
        reported: set[str] = set()
        for listen in dict.fromkeys(listens):
            for name in dict.fromkeys(names):
                first = seen.get((listen, name))
                if first is None:
                    seen[(listen, name)] = server
                elif first is not server and name not in reported:
                    reported.add(name)
                    shown = repr(name) if name else "''"
                    out.append(
                        Finding(
                            server.file,
                            server.line,
                            "error",
                            "conflicting-server-name",
                            f"server_name {shown} on {listen} is already served at "
                            f"{_where(first)}; nginx ignores this server for it",
                        )
                    )
    return out


def _upstreams(directives: Sequence[Directive]) -> list[Finding]:
    out: list[Finding] = []
    seen: dict[str, Directive] = {}
    for x in _walk(directives):
        if x.name != "upstream" or not x.args:
            continue
        name = x.args[0]
        if name in seen:
            out.append(
                Finding(
                    x.file,
                    x.line,
                    "error",
                    "duplicate-upstream",
                    f"upstream {name!r} is already defined at {_where(seen[name])}",
                    True,
                )
            )
        else:
            seen[name] = x
    return out


def _regex_literal_prefix(pattern: str) -> str | None:
    """`^/static/img/.*` -> `/static/img/`; None when the regex is not anchored."""
    if not pattern.startswith("^"):
        return None
    match = re.match(r"[A-Za-z0-9/_\-]*", pattern[1:])
    return match.group(0) if match else ""


def _locations(server: Directive) -> list[Finding]:
    out: list[Finding] = []
    locs = [x for x in server.block or [] if x.name == "location" and x.args]
    if server.children("return") and locs:
        ret = server.children("return")[0]
        out.append(
            Finding(
                locs[0].file,
                locs[0].line,
                "warning",
                "unreachable-location",
                f"the server returns at {_where(ret)} before any location is "
                "matched: its locations never match",
            )
        )
    seen: dict[tuple[str, str], Directive] = {}
    caret: list[tuple[str, Directive]] = []
    regexes: list[Directive] = []
    for loc in locs:
        mod, path = (loc.args[0], loc.args[1]) if len(loc.args) > 1 else ("", loc.args[0])
        key = (mod, path if mod != "~*" else path.lower())
        if key in seen:
            out.append(
                Finding(
                    loc.file,
                    loc.line,
                    "error",
                    "duplicate-location",
                    f"location {' '.join(loc.args)} duplicates {_where(seen[key])}; "
                    "it can never match",
                    True,
                )
            )
            continue
        seen[key] = loc
        if mod == "^~":
            caret.append((path, loc))
        if mod in ("", "^~", "=") and not path.startswith(("/", "@")):
            out.append(
                Finding(
                    loc.file,
                    loc.line,
                    "warning",
                    "unreachable-location",
                    f"location {path!r} does not start with '/': no request URI matches it",
                )
            )
        if mod in ("~", "~*"):
            for earlier in regexes:
                if earlier.args[1] in ("/", "^/", ".*", "^.*", "^/.*") or (
                    earlier.args[1] == path and earlier.args[0] in (mod, "~*")
                ):
                    out.append(
                        Finding(
                            loc.file,
                            loc.line,
                            "warning",
                            "unreachable-location",
                            f"regex location {path!r} comes after "
                            f"{' '.join(earlier.args)} ({_where(earlier)}), "
                            "which matches first: it can never match",
                        )
                    )
                    break
            literal = _regex_literal_prefix(path)
            for prefix, shadow in caret:
                if literal is not None and literal.startswith(prefix):
                    out.append(
                        Finding(
                            loc.file,
                            loc.line,
                            "warning",
                            "unreachable-location",
                            f"regex location {path!r} only matches URIs under "
                            f"{prefix!r}, which ^~ at {_where(shadow)} takes first",
                        )
                    )
                    break
            regexes.append(loc)
    for loc in locs:
        if loc.block is not None:
            out += _locations(loc)
    return out


def _handlers(directives: Sequence[Directive]) -> list[Finding]:
    out: list[Finding] = []
    for x in _walk(directives):
        if x.block is None:
            continue
        names = {c.name for c in x.block}
        if x.name == "location" and "js_content" in names and "proxy_pass" in names:
            out.append(
                Finding(
                    x.file,
                    x.line,
                    "error",
                    "conflicting-handlers",
                    "js_content and proxy_pass in one location: only one content "
                    "handler runs (route with r.internalRedirect to a named "
                    "location instead)",
                )
            )
        for c in x.block:
            if (
                c.name == "proxy_set_header"
                and len(c.args) == 2
                and c.args[0].lower() == "connection"
                and c.args[1].lower() == "upgrade"
            ):
                out.append(
                    Finding(
                        c.file,
                        c.line,
                        "warning",
                        "forced-upgrade",
                        'Connection "upgrade" is sent on every request; use '
                        "'map $http_upgrade $connection_upgrade' and "
                        "$connection_upgrade",
                    )
                )
            old = sorted(OLD_TLS & set(c.args)) if c.name == "ssl_protocols" else []
            if old:
                out.append(
                    Finding(
                        c.file,
                        c.line,
                        "warning",
                        "old-tls",
                        f"ssl_protocols allows {', '.join(old)}; use TLSv1.2 TLSv1.3",
                    )
                )
    return out


_ADDR = re.compile(r"^(?:https?://)?([0-9]{1,3}(?:\.[0-9]{1,3}){3})(?::([0-9]+))?(?:/.*)?$")


def _targets(directives: Sequence[Directive], inventory: Inventory) -> list[Finding]:
    by_ip: dict[str, int] = {}
    for guest_id, guest in inventory.guests.items():
        address = guest.network_config.address if guest.network_config else None
        if address is not None:
            by_ip.setdefault(address, guest_id)
    out: list[Finding] = []
    for x in _walk(directives):
        upstream_server = x.name == "server" and x.block is None and x.args
        if not (upstream_server or (x.name == "proxy_pass" and x.args)):
            continue
        match = _ADDR.match(x.args[0])
        if not match or match.group(1).startswith("127."):
            continue
        ip = match.group(1)
        ctid = by_ip.get(ip)
        if ctid is None:
            out.append(
                Finding(
                    x.file,
                    x.line,
                    "warning",
                    "unknown-target",
                    f"{ip} is not the address of any guest in the inventory",
                )
            )
        elif inventory.guests[ctid].is_clone_source:
            out.append(
                Finding(
                    x.file,
                    x.line,
                    "warning",
                    "template-target",
                    f"{ip} is guest {ctid}, a template: it serves nothing",
                )
            )
    return out


def lint_directives(
    directives: Sequence[Directive], inventory: Inventory | None = None
) -> list[Finding]:
    out = _unknown(directives) + _conflicts(directives) + _upstreams(directives)
    for server in _servers(directives):
        out += _locations(server)
    out += _handlers(directives)
    if inventory is not None:
        out += _targets(directives, inventory)
    return sorted(out, key=lambda f: (f.file, f.line, f.code))


def lint_paths(
    paths: Sequence[Path], inventory: Inventory | None = None, root: Path | None = None
) -> list[Finding]:
    """Lint several site files together (conflicts are found across files)."""
    directives: list[Directive] = []
    findings: list[Finding] = []
    for path in paths:
        shown = str(path.relative_to(root)) if root is not None else str(path)
        try:
            parsed, errors = parse_file(path, shown)
        except GatewayError as exc:
            findings.append(Finding(shown, 0, "error", "parse", str(exc), True))
            continue
        directives += parsed
        findings += [Finding(e.file, e.line, "error", "parse", e.message, True) for e in errors]
    return findings + lint_directives(directives, inventory)


def lint_tree(tree: Path, inventory: Inventory | None = None) -> list[Finding]:
    """Lint a rendered tree: its conf.d and sites-available files."""
    files = sorted((tree / "conf.d").glob("*.conf")) + sorted(
        p for p in (tree / "sites-available").glob("*") if p.is_file()
    )
    return lint_paths(files, inventory, root=tree)
