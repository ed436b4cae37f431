from __future__ import annotations

import pytest

from phoenix.drivers.base import NetSettings
from phoenix.drivers.proxmox.properties import (
    parse_features,
    parse_net,
    parse_rootfs,
    parse_startup,
    render_net,
    render_property_string,
    size_to_gib,
)


def test_net_round_trip_keeps_mac_and_firewall() -> None:
    net = NetSettings("eth0", "vmbr0", "10.0.0.153/24", "10.0.0.1", "BC:24:11:5E:7A:01")
    text = render_net(net, net.mac, firewall=True)
    assert (
        text
        == "name=eth0,bridge=vmbr0,hwaddr=BC:24:11:5E:7A:01,ip=10.0.0.153/24,gw=10.0.0.1,firewall=1"
    )
    assert parse_net(text) == (net, True)


def test_net_parse_accepts_proxmox_order_and_lowercase_mac() -> None:
    net, fw = parse_net(
        "name=eth0,bridge=vmbr0,firewall=0,hwaddr=bc:24:11:5e:7a:01,ip=10.0.0.2/24,type=veth"
    )
    assert net == NetSettings("eth0", "vmbr0", "10.0.0.2/24", None, "BC:24:11:5E:7A:01")
    assert fw is False


def test_net_without_mac_leaves_hwaddr_out() -> None:
    net = NetSettings("eth0", "vmbr0", "10.0.0.2/24", None)
    assert (
        render_net(net, None, firewall=False) == "name=eth0,bridge=vmbr0,ip=10.0.0.2/24,firewall=0"
    )


def test_features_and_startup() -> None:
    assert parse_features("nesting=1,keyctl=true") == (("keyctl", "1"), ("nesting", "1"))
    assert parse_features(None) == ()
    assert parse_startup("order=1,up=5") == (1, 5)
    assert parse_startup("3") == (3, 0)
    assert parse_startup(None) == (0, 0)


@pytest.mark.parametrize(
    ("text", "gib"), [("32G", 32), ("8192M", 8), ("1T", 1024), ("512M", 1), ("0.5T", 512)]
)
def test_sizes(text: str, gib: int) -> None:
    assert size_to_gib(text) == gib


def test_rootfs() -> None:
    assert parse_rootfs("quickOS-lxc-disks:subvol-101-disk-0,size=32G") == ("quickOS-lxc-disks", 32)
    assert parse_rootfs("local-lvm:vm-900-disk-0,mountoptions=noatime,size=8G") == ("local-lvm", 8)


def test_property_string_refuses_separators_in_values() -> None:
    with pytest.raises(ValueError):
        render_property_string([("name", "eth0,bridge=evil")])
