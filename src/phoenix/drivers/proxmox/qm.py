"""Pure builders of the commands that make VMs on a Proxmox node (`qm`, and `pvesh set` for
the config): settings and facts in, argv out, no I/O. The schema contract test
(tests/unit/proxmox/test_schema.py) holds every one to the API schema of PVE 8.4 and 9.1.

Where a rule comes from qemu-server's source, it is named (`PVE/API2/Qemu.pm`,
`PVE/CLI/qm.pm`, `PVE/QemuServer.pm`):

- a VM is created from an image with `--scsi0 STORAGE:0,import-from=IMAGE` (qemu-server
  7.2, PVE 7.2); before that `qm importdisk` leaves the disk as `unused0` to attach;
- the cloud-init drive is `--ide2 STORAGE:cloudinit`, added once (a second one is refused);
  `--ciupgrade 0` (qemu-server 8.0.2; without it Proxmox upgrades every package on the first
  boot); `sshkeys` is URL-encoded as the API stores it (`qm set --sshkeys` would take a file
  and encode it: `PVE/CLI/qm.pm` param_mapping), so the config goes through `pvesh set`;
- `qm template` refuses a running VM and one with snapshots; a linked clone needs a
  template source (`--storage` is refused for one); disks only grow;
- `qm guest exec` exits 0 whatever the command did: its JSON `exitcode` is the answer,
  `--pass-stdin` carries at most 1 MiB (larger input goes in parts into a file in the
  guest, which the command then reads), and without `--timeout` it gives up after 30 s.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from phoenix.drivers.base import GuestSettings, NetSettings
from phoenix.drivers.proxmox.commands import GUEST_ENV, RESERVED_SNAPSHOTS, Version
from phoenix.drivers.proxmox.properties import (
    parse_property_string,
    render_property_string,
    render_startup,
)
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult

IMPORT_FROM_SINCE: Version = (7, 2)
CIUPGRADE_SINCE: Version = (8, 0)
PASS_STDIN_MAX = 1024 * 1024  # qm guest exec --pass-stdin (PVE/CLI/qm.pm)
DISK = "scsi0"
CLOUDINIT = "ide2"
# The hardware every Phoenix VM gets: the guest agent (recipes run through it), a serial
# console (cloud images log there), virtio SCSI.
HARDWARE = (
    "--scsihw", "virtio-scsi-single", "--ostype", "l26", "--agent", "enabled=1",
    "--serial0", "socket", "--vga", "serial0",
)  # fmt: skip
# The net0 keys Phoenix writes; others (tag, mtu, queues, rate...) are carried over.
_NET_MANAGED = frozenset({"virtio", "bridge", "firewall", "model", "macaddr"})
# Config options Phoenix manages (and may delete when the inventory drops them).
_DELETABLE = ("startup", "ciuser", "sshkeys", "nameserver", "ipconfig0", "net0")


@dataclass(frozen=True)
class VmFacts:
    """What `pvesh get /nodes/N/qemu/VMID/config` says that configuring needs."""

    options: Mapping[str, str]

    @property
    def has_cloudinit_drive(self) -> bool:
        return any("cloudinit" in v for k, v in self.options.items() if k[:3] in ("ide", "scs"))


def image_argument(vmid: int, image: str) -> str:
    """The `import-from` source: an absolute path on the node or a volume id."""
    if not image:
        raise DriverError(
            f"VM {vmid} has no template_image: Phoenix's Debian base image is built for the "
            "local QEMU driver; on Proxmox name a cloud image on the node (an absolute path, "
            "or a volume id such as 'local:import/debian-12-genericcloud-amd64.qcow2')"
        )
    if "://" in image:
        raise DriverError(
            f"VM {vmid}: template_image {image!r} is a URL; Proxmox imports from a file on "
            "the node: download it there first (`pvesh create /nodes/<node>/storage/<storage>"
            "/download-url`) and give its volume id"
        )
    return image


def create(vmid: int, image: str, settings: GuestSettings, version: Version | None) -> list[str]:
    """`qm create` with the hardware and, where the node can import on create, the disk."""
    argv = [
        "qm", "create", str(vmid), "--name", settings.hostname,
        "--memory", str(settings.memory_mb), "--cores", str(settings.cores), *HARDWARE,
    ]  # fmt: skip
    if version is None or version >= IMPORT_FROM_SINCE:
        source = image_argument(vmid, image)
        argv += ["--scsi0", f"{settings.storage}:0,import-from={source}", "--boot", "order=scsi0"]
    return argv


def import_disk(vmid: int, image: str, storage: str) -> list[str]:
    """Before `import-from` (PVE < 7.2): the image becomes the VM's `unused0`."""
    return ["qm", "importdisk", str(vmid), image_argument(vmid, image), storage]


def attach_disk(vmid: int, volume: str) -> list[str]:
    return ["qm", "set", str(vmid), f"--{DISK}", volume, "--boot", f"order={DISK}"]


def encode_keys(keys: Sequence[str]) -> str:
    """SSH keys as the API stores them: one per line, URL-encoded like Perl's uri_escape."""
    return urllib.parse.quote("\n".join(keys) + "\n", safe="") if keys else ""


def decode_keys(value: str) -> tuple[str, ...]:
    return tuple(k for k in urllib.parse.unquote(value).splitlines() if k.strip())


def render_net(net: NetSettings, firewall: bool, current: str | None) -> str:
    """`virtio=MAC,bridge=B,firewall=0|1` with the node's other keys kept."""
    # `virtio=MAC` is the model and the MAC; `model=virtio` alone lets Proxmox draw one.
    nic = ("virtio", net.mac) if net.mac else ("model", "virtio")
    pairs = [nic, ("bridge", net.bridge), ("firewall", "1" if firewall else "0")]
    kept = parse_property_string(current) if current else {}
    pairs += [(k, v) for k, v in kept.items() if k not in _NET_MANAGED]
    return render_property_string(pairs)


def render_ipconfig(net: NetSettings) -> str:
    if net.ip in ("dhcp", ""):
        return "ip=dhcp"
    return f"ip={net.ip}" + (f",gw={net.gw}" if net.gw else "")


def config(
    node: str,
    vmid: int,
    settings: GuestSettings,
    current: VmFacts | None,
    version: Version | None,
) -> list[str]:
    """`pvesh set .../config` with the whole desired config (the cloud-init drive only when
    the VM has none); `--delete` what the node has and the inventory no longer says."""
    vm = settings.vm
    have = dict(current.options) if current is not None else {}
    wanted: dict[str, str] = {
        "name": settings.hostname,
        "memory": str(settings.memory_mb),
        "cores": str(settings.cores),
        "onboot": "1" if settings.onboot else "0",
        "agent": "enabled=1",
    }
    startup = render_startup(settings.boot_order, settings.boot_delay)
    if startup is not None:
        wanted["startup"] = startup
    if settings.net is not None:
        wanted["net0"] = render_net(settings.net, settings.firewall_enabled, have.get("net0"))
        wanted["ipconfig0"] = render_ipconfig(settings.net)
    if current is None or not current.has_cloudinit_drive:
        wanted[CLOUDINIT] = f"{settings.storage}:cloudinit"
    if vm is not None and vm.username:
        wanted["ciuser"] = vm.username
    if vm is not None and vm.ssh_keys:
        wanted["sshkeys"] = encode_keys(vm.ssh_keys)
    if vm is not None and vm.nameservers:
        wanted["nameserver"] = " ".join(vm.nameservers)
    if version is None or version >= CIUPGRADE_SINCE:
        wanted["ciupgrade"] = "0"
    argv = ["pvesh", "set", f"/nodes/{node}/qemu/{vmid}/config"]
    for key, value in wanted.items():
        argv += [f"--{key}", value]
    delete = [k for k in _DELETABLE if k in have and k not in wanted]
    if delete:
        argv += ["--delete", ",".join(delete)]
    return argv


def set_options(
    vmid: int, options: Sequence[tuple[str, str]], current: VmFacts
) -> list[str] | None:
    """`qm set VMID --option value...` for the inventory's `qm_options` the config does not
    already hold as written (qemu-server stores these values as given, so the config reads
    back what was set); None when all are there."""
    have = current.options
    argv = ["qm", "set", str(vmid)]
    for option, value in options:
        if have.get(option) != value:
            argv += [f"--{option}", value]
    return argv if len(argv) > 3 else None


def hostpci(addresses: Sequence[str]) -> list[str]:
    """`--hostpciN ADDR` for PCI devices passed through (a GPU: `0000:01:00`, all its
    functions); the node must have IOMMU on (Proxmox refuses to start the VM otherwise)."""
    out: list[str] = []
    for index, address in enumerate(addresses):
        out += [f"--hostpci{index}", address]
    return out


def check_clone(vmid: int, source: int, full: bool, source_is_template: bool) -> None:
    """A linked clone needs a template (`PVE/API2/Qemu.pm` clone_vm: without `full`, a
    non-template source has nothing to link to)."""
    if not full and not source_is_template:
        raise DriverError(
            f"VM {vmid}: a linked clone needs a template source and VM {source} is not one: "
            f"make {source} a template (is_template) or set full_clone on {vmid}"
        )


def clone(
    source: int,
    vmid: int,
    snapshot: str | None,
    settings: GuestSettings,
    full: bool,
    target: str | None = None,
) -> list[str]:
    """`qm clone`, run on the source's node; `target`: the node the clone goes to, when
    it is another one (`vmclone` says what Proxmox needs for that)."""
    argv = ["qm", "clone", str(source), str(vmid), "--name", settings.hostname]
    if snapshot is not None:
        argv += ["--snapname", snapshot]
    if full:  # `--storage` is refused for a linked clone (it lives beside its base)
        argv += ["--full", "1", "--storage", settings.storage]
    if target is not None:
        argv += ["--target", target]
    return argv


def resize(vmid: int, disk_gb: int, current_gb: int | None) -> list[str] | None:
    """`qm resize` to grow the disk; None when it already has that size (or a template's
    0: keep the image's size). The driver waits for a clone's task before (the resize
    races it)."""
    if disk_gb == 0:
        return None
    if current_gb is not None:
        if disk_gb < current_gb:
            raise DriverError(
                f"VM {vmid}'s disk is {current_gb} GiB and the inventory asks for {disk_gb} "
                "GiB: Proxmox only grows disks. Raise disk_size_gb, or recreate the VM "
                "(--recreate) to get a smaller disk"
            )
        if disk_gb == current_gb:
            return None
    return ["qm", "resize", str(vmid), DISK, f"{disk_gb}G"]


def snapshot(vmid: int, name: str) -> list[str]:
    if name in RESERVED_SNAPSHOTS:
        raise DriverError(
            f"VM {vmid}: snapshot name {name!r} is reserved by Proxmox; choose another"
        )
    return ["qm", "snapshot", str(vmid), name]


def template(vmid: int, snapshots: Sequence[str], running: bool) -> list[str]:
    """`qm template`, refused as qemu-server refuses it (`PVE/API2/Qemu.pm` template)."""
    if snapshots:
        raise DriverError(
            f"VM {vmid} cannot become a template: it has snapshots ({', '.join(snapshots)}) "
            "and `qm template` refuses a VM with snapshots. A template is itself the state "
            f"clones come from: drop template_snapshot_name, or `qm delsnapshot {vmid} <name>`"
        )
    if running:
        raise DriverError(f"VM {vmid} is running: `qm template` needs it shut down first")
    return ["qm", "template", str(vmid)]


def start(vmid: int) -> list[str]:
    return ["qm", "start", str(vmid)]


def shutdown(vmid: int, timeout: float) -> list[str]:
    seconds = str(max(1, int(timeout)))
    return ["qm", "shutdown", str(vmid), "--timeout", seconds, "--forceStop", "1"]


def stop(vmid: int) -> list[str]:
    return ["qm", "stop", str(vmid)]


def destroy(vmid: int) -> list[str]:
    """Without `--purge`, as for containers: Proxmox then refuses a VM that HA or
    replication holds instead of silently taking it out of those jobs."""
    return ["qm", "destroy", str(vmid)]


def guest_exec(
    vmid: int,
    argv: Sequence[str],
    env: Mapping[str, str] | None,
    timeout: float | None,
    stdin_size: int = 0,
) -> list[str]:
    """`qm guest exec` waiting up to `timeout` (qm's own default is 30 s), the input on
    `--pass-stdin` (at most 1 MiB: larger input goes in by `input_parts`)."""
    if stdin_size > PASS_STDIN_MAX:
        raise DriverError(
            f"VM {vmid}: {stdin_size} bytes for `qm guest exec --pass-stdin`, which takes at "
            f"most {PASS_STDIN_MAX} (1 MiB): send the input in parts"
        )
    full = ["qm", "guest", "exec", str(vmid), "--timeout", str(max(1, int(timeout or 3600)))]
    if stdin_size:
        full += ["--pass-stdin", "1"]
    merged = {**GUEST_ENV, **(env or {})}
    return [*full, "--", "env", *(f"{k}={v}" for k, v in merged.items()), *argv]


# Input over PASS_STDIN_MAX goes in parts into a file in the guest ($1), then the command
# reads it from there and the file is removed whatever the command did.
WRITE_PART = 'cat > "$1"'
APPEND_PART = 'cat >> "$1"'
FROM_FILE = 'f=$1; shift; "$@" < "$f"; rc=$?; rm -f "$f"; exit "$rc"'


def input_file(data: bytes) -> str:
    """Where a large input waits in the guest: named by its content (a retried run
    rewrites the same file from its first part)."""
    return f"/tmp/phoenix-input-{hashlib.sha256(data).hexdigest()[:16]}"


def input_parts(vmid: int, data: bytes, path: str) -> list[tuple[list[str], bytes]]:
    """The `qm guest exec` calls that write `data` to `path` in the guest, each with its
    part of at most PASS_STDIN_MAX bytes (the first truncates, the others append)."""
    out: list[tuple[list[str], bytes]] = []
    for start in range(0, len(data), PASS_STDIN_MAX):
        part = data[start : start + PASS_STDIN_MAX]
        script = APPEND_PART if start else WRITE_PART
        argv = guest_exec(vmid, ["sh", "-c", script, "phoenix-input", path], None, 120, len(part))
        out.append((argv, part))
    return out


def from_file(argv: Sequence[str], path: str) -> list[str]:
    """`argv` with its input read from `path` in the guest (then removed)."""
    return ["sh", "-c", FROM_FILE, "phoenix-input", path, *argv]


def exec_result(vmid: int, result: CommandResult) -> CommandResult:
    """The command's own result from `qm guest exec`'s JSON (qm exits 0 even when the
    command failed); a command still running at the timeout is 124, as `timeout` says."""
    if not result.ok:
        return result  # qm itself failed (no agent, VM not running): its message stands
    try:
        data = json.loads(result.stdout)
    except ValueError:
        raise DriverError(
            f"VM {vmid}: `qm guest exec` printed no JSON: {result.stdout[:200]!r}"
        ) from None
    if not data.get("exited"):
        return CommandResult(124, "", f"still running at the timeout (pid {data.get('pid')})")
    return CommandResult(
        int(data.get("exitcode", 1)),
        str(data.get("out-data", "")),
        str(data.get("err-data", "")),
        result.argv,
    )
