"""A firewall rule's `comment` reaches the guest's .fw file and reads back the same (it was
kept by validate but dropped by the drivers)."""

from __future__ import annotations

from phoenix.drivers.base import FirewallRule
from phoenix.drivers.proxmox import firewall
from phoenix.inventory.models import LxcGuest
from phoenix.plan.desired import guest_settings


def test_comment_is_rendered_after_the_rule_and_parsed_back() -> None:
    rule = FirewallRule("in", "ACCEPT", proto="tcp", port="8000:8010", comment="vLLM # range")
    assert firewall.render_rule(rule) == "IN ACCEPT -p tcp -dport 8000:8010 # vLLM # range"
    parsed = firewall.parse(firewall.render(True, [rule]))
    assert parsed.rules == (rule,)


def test_a_rule_without_comment_reads_back_without_one() -> None:
    rule = FirewallRule("out", "DROP", dest="10.0.0.5")
    assert firewall.parse(firewall.render(True, [rule])).rules == (rule,)


def test_the_inventory_comment_is_desired() -> None:
    guest = LxcGuest.model_validate(
        {
            "name": "g",
            "firewall": {
                "enabled": True,
                "rules": [
                    {
                        "type": "in",
                        "action": "ACCEPT",
                        "proto": "tcp",
                        "port": "22",
                        "comment": "ssh",
                    }
                ],
            },
        }
    )
    (rule,) = guest_settings(guest).firewall_rules
    assert rule.comment == "ssh"
