"""The guest firewall file `/etc/pve/firewall/<vmid>.fw`: render from settings, parse back.

A new file is rendered whole from the inventory (`[OPTIONS]` with `enable`, then
`[RULES]`). An existing file is edited (`edit`): Phoenix changes only the options it sets
(`enable`, `policy_in`, `policy_out`) and its own rules — the rules of the inventory and
those it wrote before — and every other byte comes back as it was: `[IPSET]`, `[ALIASES]`,
`GROUP` and macro rules (`SSH(ACCEPT)`), rules with options Phoenix never writes (`-i`,
`-log`, `-sport`, `-icmp-type`), disabled `|IN ...` rules, comments, other options
(`ipfilter`, `log_level_in`...). pve-firewall (`src/PVE/Firewall.pm`,
`parse_fw_rule`/`parse_vmfw_option`) reads all of these.

Parsing reports only rules of the plain form Phoenix writes, so a rule it does not manage is
never drift.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from phoenix.drivers.base import Direction, FirewallRule

_RULE = re.compile(r"^(IN|OUT)\s+(ACCEPT|DROP|REJECT)(\s.*)?$", re.IGNORECASE)
_SECTION = re.compile(r"^\[([A-Za-z]+)(\s[^\]]*)?\]\s*(#.*)?$")
_OPTIONS_PHOENIX_WRITES = {"-source", "-dest", "-p", "-dport"}
# pve-firewall's `parse_vmfw_option` for the options Phoenix sets, on the line trimmed of
# blanks: any other spelling (`enable: true`, a trailing `# comment`) is warned about and
# skipped, leaving the option unset (`enable` unset: the firewall is off).
_PVE_OPTION = re.compile(
    r"^(enable):\s*([01])\s*$|^(policy_(?:in|out)):\s*(ACCEPT|DROP|REJECT)\s*$", re.IGNORECASE
)


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
    """A rule of the plain form Phoenix writes, or None (a macro, a group, a rule with an
    option Phoenix never writes such as `-i net0` or `-log`: not Phoenix's)."""
    match = _RULE.match(line)
    if not match:
        return None
    tokens = (match.group(3) or "").split()
    if len(tokens) % 2:
        return None
    options = dict(zip(tokens[::2], tokens[1::2], strict=True))
    if len(options) * 2 != len(tokens) or not set(options) <= _OPTIONS_PHOENIX_WRITES:
        return None
    direction: Direction = "in" if match.group(1).upper() == "IN" else "out"
    action = match.group(2).upper()
    return FirewallRule(
        direction=direction,
        action=action,  # type: ignore[arg-type]  # matched by _RULE
        source=options.get("-source"),
        dest=options.get("-dest"),
        proto=options.get("-p"),
        port=options.get("-dport"),
        comment=comment,
    )


def _rule_of(raw: str) -> FirewallRule | None:
    """The Phoenix-form rule on one `[RULES]` line (comment included), or None."""
    line, _, remark = raw.partition("#")
    line = line.strip()
    if not line or line.startswith("|"):
        return None
    return _parse_rule(line, remark.strip() or None)


def rules_of(lines: Sequence[str]) -> list[FirewallRule]:
    """Rendered rule lines (Phoenix's record of what it wrote) back to rules."""
    return [rule for line in lines if (rule := _rule_of(line)) is not None]


def _option_read(raw: str) -> tuple[str, str] | None:
    """(option, value) of an `[OPTIONS]` line setting `enable` or a policy, as pve-firewall
    reads it; None for a line it skips or one of another option."""
    match = _PVE_OPTION.match(raw.strip())
    if match is None:
        return None
    if match.group(1):
        return match.group(1).lower(), match.group(2)
    return match.group(3).lower(), match.group(4).upper()


def _section_of(raw: str) -> str | None:
    match = _SECTION.match(raw.strip())
    return match.group(1).upper() if match else None


def parse(text: str) -> FirewallFile:
    """A `.fw` file -> enabled flag and the active Phoenix-form rules, in order."""
    section = ""
    enabled = False
    rules: list[FirewallRule] = []
    for raw in text.split("\n"):
        named = _section_of(raw)
        if named is not None:
            section = named
            continue
        if section == "OPTIONS":
            read = _option_read(raw)
            if read is not None and read[0] == "enable":
                enabled = read[1] == "1"  # the last line pve-firewall reads wins
        elif section == "RULES":
            rule = _rule_of(raw)
            if rule is not None:
                rules.append(rule)
    return FirewallFile(enabled, tuple(rules))


def options_phoenix_sets(enabled: bool) -> dict[str, str]:
    """The `[OPTIONS]` Phoenix sets; with the firewall off it leaves the policies alone."""
    if not enabled:
        return {"enable": "0"}
    return {"enable": "1", "policy_in": "DROP", "policy_out": "ACCEPT"}


def edit(
    old: str, enabled: bool, rules: Sequence[FirewallRule], owned: Sequence[FirewallRule]
) -> str:
    """`old` with Phoenix's options set and its rules (`owned`: the ones it wrote before,
    plus `rules`) replaced by `rules`, where the first of them stood; nothing else moves.
    ValueError for a rule pve-firewall would skip (`render_rule`)."""
    wanted = [render_rule(rule) + "\n" for rule in rules]
    mine = set(owned) | set(rules)
    lines = old.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    lines = _set_options(lines, options_phoenix_sets(enabled))
    out: list[str] = []
    section = ""
    placed = False
    rules_end: int | None = None  # where the [RULES] section's last non-blank line ends
    for raw in lines:
        named = _section_of(raw)
        if named is not None:
            section = named
        elif section == "RULES":
            rule = _rule_of(raw)
            if rule is not None and rule in mine:
                if not placed:
                    out += wanted
                    placed = True
                continue
        out.append(raw)
        if section == "RULES" and raw.strip():
            rules_end = len(out)
    if not placed and wanted:
        if rules_end is None:
            out += ["\n"] if out and out[-1].strip() else []
            out += ["[RULES]\n", "\n", *wanted]
        else:
            out[rules_end:rules_end] = wanted
    return "".join(out)


def _set_options(lines: list[str], values: dict[str, str]) -> list[str]:
    """Each option in `values` set on every line that names it in `[OPTIONS]` (a line
    pve-firewall already reads as right keeps its bytes; any other, a second `enable`
    included, is rewritten), the missing ones added after the section's last line."""
    out: list[str] = []
    section = ""
    todo = dict(values)
    options_end: int | None = None
    for raw in lines:
        named = _section_of(raw)
        if named is not None:
            section = named
        elif section == "OPTIONS" and raw.strip():
            key, sep, _ = raw.partition(":")
            key = key.strip().lower()
            if sep and key in values:
                todo.pop(key, None)
                if _option_read(raw) != (key, values[key]):
                    raw = f"{key}: {values[key]}\n"
        out.append(raw)
        if section == "OPTIONS" and (raw.strip() or named is not None):
            options_end = len(out)
    added = [f"{k}: {v}\n" for k, v in todo.items()]
    if added and options_end is None:
        return ["[OPTIONS]\n", "\n", *added, "\n", *out]
    if added and options_end is not None:
        out[options_end:options_end] = added
    return out
