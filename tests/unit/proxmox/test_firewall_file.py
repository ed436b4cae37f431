"""The guest `.fw` file as pve-firewall reads it (`src/PVE/Firewall.pm`): a firewall Phoenix
turns off is written off, a port pve-firewall would skip is refused with the way out, an
edit keeps the file's layout, and `enable` is on only where pve-firewall reads it on
(`parse_vmfw_option`: `^(enable|...):\\s*(0|1)\\s*$`, case-insensitive, on the line
trimmed of blanks; any other spelling is warned about and skipped, leaving the option
unset, and unset means off; the last line that parses wins)."""

from __future__ import annotations

import pytest

from phoenix.drivers.base import FirewallRule
from phoenix.drivers.proxmox import firewall

SSH = FirewallRule("in", "ACCEPT", proto="tcp", port="22")


def test_a_firewall_turned_off_is_written_off_and_keeps_no_policy() -> None:
    assert firewall.render(False, []) == "[OPTIONS]\n\nenable: 0\n"
    assert firewall.render(True, []) == (
        "[OPTIONS]\n\nenable: 1\npolicy_in: DROP\npolicy_out: ACCEPT\n"
    )


@pytest.mark.parametrize("port", ["8000-8010", "22,8000-8010"])
def test_a_dash_range_is_refused_with_the_colon_spelling(port: str) -> None:
    rule = FirewallRule("in", "ACCEPT", proto="tcp", port=port)
    fixed = port.replace("-", ":")
    with pytest.raises(ValueError) as raised:
        firewall.render_rule(rule)
    message = str(raised.value)
    assert f"writes ranges as a:b ({fixed!r})" in message
    assert message.endswith("skips the rule otherwise, leaving the port closed")


def test_an_edit_of_a_file_without_rules_adds_the_section_after_a_blank_line() -> None:
    old = "[OPTIONS]\n\nenable: 1\npolicy_in: DROP\npolicy_out: ACCEPT\nipfilter: 1\n"
    assert firewall.edit(old, True, [SSH], []) == old + "\n[RULES]\n\nIN ACCEPT -p tcp -dport 22\n"
    # The file as Phoenix renders it reads back the same.
    assert firewall.parse(firewall.edit(old, True, [SSH], [])).rules == (SSH,)


@pytest.mark.parametrize(
    ("line", "enabled"),
    [
        ("enable: 1", True),
        ("enable:1", True),
        ("  ENABLE: 1  ", True),
        ("enable: 0", False),
        # pve-firewall cannot parse these: the option stays unset, the firewall off.
        ("enable: true", False),
        ("enable: yes", False),
        ("enable: on", False),
        ("enable: 1 # on since the audit", False),
    ],
    ids=["1", "no-blank", "upper-case", "0", "true", "yes", "on", "comment"],
)
def test_enable_is_read_as_pve_firewall_reads_it(line: str, enabled: bool) -> None:
    assert firewall.parse(f"[OPTIONS]\n{line}\n").enabled is enabled


def test_the_last_enable_line_pve_firewall_parses_wins() -> None:
    assert firewall.parse("[OPTIONS]\nenable: 1\nenable: 0\n").enabled is False
    assert firewall.parse("[OPTIONS]\nenable: 0\nenable: 1\nenable: true\n").enabled is True


@pytest.mark.parametrize(
    "options",
    [
        "enable: true\n",
        "enable: 1 # on\npolicy_in: DROP\n",
        "enable: 1\nenable: 0\n",
        "policy_in: ACCEPT\nenable: 0\npolicy_in: ACCEPT\n",
    ],
    ids=["true", "comment", "second-enable-off", "policy-twice"],
)
def test_an_edit_turns_on_a_firewall_pve_firewall_reads_off(options: str) -> None:
    """What Phoenix reads as off after its own edit would be edited again on every run:
    the edit leaves no line pve-firewall reads otherwise than Phoenix asked."""
    old = f"[OPTIONS]\n\n{options}\n[RULES]\n\nIN ACCEPT -p tcp -dport 22\n"
    new = firewall.edit(old, True, [SSH], [SSH])
    assert firewall.parse(new) == firewall.FirewallFile(True, (SSH,))
    policies = [ln for ln in new.splitlines() if ln.startswith("policy_in")]
    assert policies and set(policies) == {"policy_in: DROP"}
    assert firewall.edit(new, True, [SSH], [SSH]) == new


def test_a_rule_added_to_a_file_with_only_the_administrators_rules_joins_their_section() -> None:
    old = "[OPTIONS]\n\nenable: 1\npolicy_in: DROP\npolicy_out: ACCEPT\n\n[RULES]\n\nIN SSH(ACCEPT)\n\n"
    new = firewall.edit(old, True, [SSH], [])
    assert new.count("[RULES]") == 1
    assert new == old.replace("IN SSH(ACCEPT)\n", "IN SSH(ACCEPT)\nIN ACCEPT -p tcp -dport 22\n")


def test_an_edit_of_a_file_without_options_or_a_last_newline_writes_pve_firewalls_layout() -> None:
    old = "[RULES]\n\nIN SSH(ACCEPT)\nIN DROP -p tcp -dport 23"
    assert firewall.edit(old, True, [SSH], []) == (
        "[OPTIONS]\n\nenable: 1\npolicy_in: DROP\npolicy_out: ACCEPT\n\n"
        "[RULES]\n\nIN SSH(ACCEPT)\nIN DROP -p tcp -dport 23\nIN ACCEPT -p tcp -dport 22\n"
    )
