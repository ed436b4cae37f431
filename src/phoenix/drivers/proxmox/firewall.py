"""The guest firewall file `/etc/pve/firewall/<vmid>.fw`: render from settings, parse back.

Phoenix owns this file for the guests it manages: it is rendered whole from the inventory
(`[OPTIONS]` with `enable`, then `[RULES]`), so a re-render of a converged guest is
byte-identical. Parsing reads what Proxmox or an operator may have written (comments,
disabled `|IN ...` rules, extra options) into the same `FirewallRule` shape for the diff.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from phoenix.drivers.base import Direction, FirewallRule

_RULE = re.compile(r"^(IN|OUT)\s+(ACCEPT|DROP|REJECT)\b(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class FirewallFile:
    """What a `.fw` file says about a guest (only the parts Phoenix manages)."""

    enabled: bool
    rules: tuple[FirewallRule, ...]


# iptables' multiport match takes at most 15 ports per rule, a range counting as two.
MAX_PORT_NUMBERS = 15


def port_problem(port: str) -> str | None:
    """Why pve-firewall would skip a rule with this `-dport` (None: it reads it)."""
    if "-" in port:
        fixed = port.replace("-", ":")
        return (
            f"port {port!r}: pve-firewall writes ranges as a:b ({fixed!r}) and skips the rule "
            "otherwise, leaving the port closed"
        )
    numbers = sum(2 if ":" in item else 1 for item in port.split(","))
    if numbers > MAX_PORT_NUMBERS:
        return (
            f"port {port!r} names {numbers} ports (a range counts as 2); pve-firewall allows "
            f"{MAX_PORT_NUMBERS} per rule: split it into several rules"
        )
    return None


def render_rule(rule: FirewallRule) -> str:
    """One `[RULES]` line; ValueError for a port pve-firewall would skip."""
    problem = port_problem(rule.port) if rule.port is not None else None
    if problem is not None:
        raise ValueError(problem)
    parts = [rule.direction.upper(), rule.action]
    for option, value in (
        ("-source", rule.source),
        ("-dest", rule.dest),
        ("-p", rule.proto),
        ("-dport", rule.port),
    ):
        if value is not None:
            parts += [option, value]
    if rule.comment:
        parts += ["#", rule.comment]
    return " ".join(parts)


def render(enabled: bool, rules: Sequence[FirewallRule]) -> str:
    """The whole file. Inbound policy DROP is written out: enabled with no rules = closed."""
    lines = ["[OPTIONS]", "", f"enable: {1 if enabled else 0}"]
    if enabled:
        lines += ["policy_in: DROP", "policy_out: ACCEPT"]
    if rules:
        lines += ["", "[RULES]", ""]
        lines += [render_rule(rule) for rule in rules]
    return "\n".join(lines) + "\n"


def _parse_rule(line: str, comment: str | None = None) -> FirewallRule | None:
    match = _RULE.match(line)
    if not match:
        return None
    tokens = match.group(3).split()
    options: dict[str, str] = {}
    for index, token in enumerate(tokens):
        if token.startswith("-") and index + 1 < len(tokens):
            options[token] = tokens[index + 1]
    direction: Direction = "in" if match.group(1).upper() == "IN" else "out"
    action = match.group(2).upper()
    return FirewallRule(
        direction=direction,
        action=action,  # type: ignore[arg-type]  # matched by _RULE
        source=options.get("-source"),
        dest=options.get("-dest"),
        proto=options.get("-p") or options.get("-proto"),
        port=options.get("-dport"),
        comment=comment,
    )


def parse(text: str) -> FirewallFile:
    """A `.fw` file -> enabled flag and the active rules, in order (disabled rules skipped)."""
    section = ""
    enabled = False
    rules: list[FirewallRule] = []
    for raw in text.split("\n"):
        line, hash_, remark = raw.partition("#")
        line = line.strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().upper()
            continue
        if section == "OPTIONS":
            key, _, value = line.partition(":")
            if key.strip() == "enable":
                enabled = value.strip() in ("1", "true", "yes", "on")
        elif section == "RULES" and not line.startswith("|"):
            rule = _parse_rule(line, remark.strip() or None if hash_ else None)
            if rule is not None:
                rules.append(rule)
    return FirewallFile(enabled, tuple(rules))
