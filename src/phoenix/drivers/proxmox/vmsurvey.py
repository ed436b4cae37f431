"""What `phoenix import` reads of a Proxmox VM beyond `observe`: the template a linked
clone builds on (its disk's volume name says so), and what the VM's config holds that
Phoenix does not manage, one line each, so a report can name it.

A linked clone's disk is `STORAGE:base-T-disk-N/vm-V-disk-M` (pve-storage
`ZFSPoolPlugin.pm`/`LvmThinPlugin.pm` clone_image: "$basename/$name"; `Plugin.pm` for file
storage: "T/base-T-disk-N.qcow2/V/vm-V-disk-M.qcow2"); `qm template` renamed the
template's own disk from `vm-T-` to `base-T-` (create_base). A full clone keeps no trace
of its source.

The cloud-init password (`cipassword`, stored hashed) and any option that may carry a
secret are named by key, never quoted: `secrets` lists them apart from `unmanaged`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from phoenix.drivers.proxmox import qm
from phoenix.drivers.proxmox.properties import flag, parse_property_string
from phoenix.drivers.proxmox.vmdriver import ProxmoxVmDriver
from phoenix.runners.base import Runner

# Keys `vm_facts` reads into settings, the hardware every Phoenix VM gets (qm.HARDWARE),
# and Proxmox's own bookkeeping: not reported.
_READ = frozenset(
    {
        "name", "memory", "cores", qm.DISK, "net0", "ipconfig0", "ciuser", "sshkeys",
        "nameserver", "onboot", "startup", "template", "ciupgrade", "agent", "scsihw",
        "ostype", "serial0", "vga", "boot", "digest", "lock", "meta", "vmgenid", "smbios1",
        "parent", "snaptime", "vmstate", "runningmachine", "runningcpu",
    }
)  # fmt: skip
# Keys whose value is shown; any other key is named only (it may be a secret).
_SHOWN = frozenset(
    {
        "tags", "protection", "hookscript", "searchdomain", "cpu", "sockets", "numa",
        "machine", "bios", "balloon", "cpulimit", "cpuunits", "citype", "kvm", "tablet",
        "hotplug", "keyboard", "localtime", "description",
    }
)  # fmt: skip
_SECRET = frozenset({"cipassword", "cicustom"})
_NIC_MODELS = frozenset({"virtio", "e1000", "e1000e", "rtl8139", "vmxnet3", "model"})
_NET_MANAGED = frozenset({"bridge", "firewall"}) | _NIC_MODELS
_IPCONFIG_MANAGED = frozenset({"ip", "gw"})
_DISK_MANAGED = frozenset({"file", "size"})
_STARTUP_MANAGED = frozenset({"order", "up"})
_BASE = re.compile(r"(?:^|[:/])base-([0-9]+)-disk-[0-9]+[^/]*/")


def on_node(vms: ProxmoxVmDriver, runner: Runner, node: str) -> ProxmoxVmDriver:
    """The VM backend for `node`, through `runner` (that node's own, or one whose pvesh
    forwards `/nodes/<node>`): reads only. The VMs' firewall record and the run's log are
    `vms`' own."""
    driver = ProxmoxVmDriver(runner, node, owned=vms.owned)
    driver.log = vms.log
    return driver


def config(driver: ProxmoxVmDriver, vmid: int) -> dict[str, Any] | None:
    """The VM's config as pvesh prints it (None: it does not exist)."""
    return driver._vm_config(vmid)


def clone_source(config: Mapping[str, Any]) -> int | None:
    """The template a linked clone's disk builds on; None for any other disk."""
    disk = parse_property_string(str(config.get(qm.DISK, "")), "file").get("file", "")
    match = _BASE.search(disk)
    return int(match.group(1)) if match else None


def secrets(config: Mapping[str, Any]) -> list[str]:
    """The options that hold a secret: named, their value never read out."""
    return [
        f"option `{key}` (the cloud-init password or custom files; value not written)"
        for key in sorted(config)
        if key in _SECRET
    ]


def unmanaged(vmid: int, config: Mapping[str, Any]) -> list[str]:
    """What the VM's config holds that `observe` does not report as its settings: kept on
    the node, not written to an inventory. One line each."""
    out: list[str] = []
    agent = parse_property_string(str(config.get("agent", "0")), "enabled")
    if not flag(agent.get("enabled", "0")):
        out.append(
            "the guest agent is off (`agent`): Phoenix reads a running VM's applied recipes, "
            "runs recipes and health checks and waits for a start through it, so `phoenix "
            f"plan` fails on this VM until it is on (`qm set {vmid} --agent enabled=1`, then "
            "restart the VM)"
        )
    out += _extra("disk", config.get(qm.DISK), "file", _DISK_MANAGED)
    out += _extra("net0", config.get("net0"), "model", _NET_MANAGED)
    out += _extra("ipconfig0", config.get("ipconfig0"), None, _IPCONFIG_MANAGED)
    out += _extra("startup", config.get("startup"), "order", _STARTUP_MANAGED)
    out += _nic_model(config.get("net0"))
    for key in sorted(config):
        value = config[key]
        if key in _READ or key in _SECRET:
            continue
        if re.fullmatch(r"(ide|sata|scsi|virtio)[0-9]+", key) and "cloudinit" in str(value):
            continue  # the cloud-init drive Phoenix adds
        if re.fullmatch(r"(ide|sata|scsi|virtio|efidisk|tpmstate|unused)[0-9]+", key):
            out.append(f"disk {key} `{value}`")
        elif re.fullmatch(r"hostpci[0-9]+|usb[0-9]+", key):
            out.append(f"device {key} `{value}`")
        elif re.fullmatch(r"(net|ipconfig)[0-9]+", key):
            out.append(f"second NIC {key}")
        elif key in _SHOWN:
            out.append(f"option `{key}: {value}`")
        else:
            out.append(f"option `{key}` (value not shown: it may hold a secret)")
    return out


def _extra(what: str, value: Any, first: str | None, managed: frozenset[str]) -> list[str]:
    """The keys of a property string Phoenix does not write (`what` settings k=v, ...)."""
    if value is None:
        return []
    try:
        props = parse_property_string(str(value), first)
    except ValueError:
        return [f"{what} `{value}`"]
    extra = [f"{k}={v}" for k, v in props.items() if k not in managed]
    return [f"{what} settings {', '.join(extra)}"] if extra else []


def _nic_model(net0: Any) -> list[str]:
    """A NIC model other than virtio: Phoenix writes `virtio=MAC`, so a configure of the
    NIC would change it."""
    if net0 is None:
        return []
    try:
        props = parse_property_string(str(net0), "model")
    except ValueError:
        return []
    model = next((k for k in props if k in _NIC_MODELS), None)
    if model in (None, "virtio"):
        return []
    return [f"NIC model {model} (Phoenix writes virtio: a change to the NIC would replace it)"]
