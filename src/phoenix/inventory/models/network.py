"""A guest's NIC and its firewall."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, StrictBool, StrictStr, field_validator, model_validator

from phoenix.inventory.models.fields import (
    DHCP,
    IfName,
    IPv4,
    IPv4OrNet,
    Model,
    PortSpec,
    canonical_cidr,
    ipv4_interface,
)


class NetworkConfig(Model):
    """The guest's NIC: a static IPv4 address in CIDR form on a host bridge."""

    name: IfName = "eth0"
    bridge: IfName
    ip: StrictStr = Field(
        description="Static IPv4 address with prefix, e.g. 10.0.0.153/24, or 'dhcp'"
    )
    gw: IPv4 | None = Field(default=None, description="Default gateway (inside the subnet)")

    @field_validator("ip")
    @classmethod
    def _check_ip(cls, value: str) -> str:
        if value == DHCP:
            return value
        parsed = canonical_cidr(value)
        if parsed is not None:  # the common spelling, checked without an IPv4Interface
            address, prefix = parsed
            host_bits = (1 << (32 - prefix)) - 1
            if prefix < 32 and address & host_bits in (0, host_bits):
                raise ValueError(f"{value!r} is the network or broadcast address of its subnet")
            return value
        if "/" not in value:
            raise ValueError(f"{value!r} needs a prefix length, e.g. {value}/24 (or write 'dhcp')")
        try:
            iface = ipv4_interface(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IPv4 address with prefix (10.0.0.5/24)"
            ) from None
        if iface.network.prefixlen < 32 and iface.ip in (
            iface.network.network_address,
            iface.network.broadcast_address,
        ):
            raise ValueError(f"{value!r} is the network or broadcast address of its subnet")
        return str(iface)

    @property
    def dhcp(self) -> bool:
        return self.ip == DHCP

    @property
    def interface(self) -> ipaddress.IPv4Interface | None:
        """The static address with its subnet; None with DHCP."""
        return None if self.dhcp else ipv4_interface(self.ip)

    @property
    def address(self) -> str | None:
        """The static address; None with DHCP (not known before the guest runs)."""
        # `ip` is validated into IPv4Interface's own spelling: its address is the part before
        # the "/" (no parsing: the duplicate check asks for every guest's address).
        return None if self.dhcp else self.ip.partition("/")[0]


class FirewallRuleModel(Model):
    """A Proxmox-style firewall rule: direction, action, and optional match fields."""

    type: Literal["in", "out"]
    action: Literal["ACCEPT", "DROP", "REJECT"]
    source: IPv4OrNet | None = None
    dest: IPv4OrNet | None = None
    proto: Literal["tcp", "udp", "icmp"] | None = None
    port: PortSpec | None = None
    comment: StrictStr | None = None

    @model_validator(mode="after")
    def _port_needs_proto(self) -> FirewallRuleModel:
        if self.port is not None and self.proto not in ("tcp", "udp"):
            raise ValueError("a rule with a port needs proto 'tcp' or 'udp'")
        return self


class FirewallConfig(Model):
    """Firewall for the guest's traffic. Enabled with no ACCEPT rules means inbound is closed."""

    enabled: StrictBool = False
    rules: list[FirewallRuleModel] = Field(default_factory=list)
