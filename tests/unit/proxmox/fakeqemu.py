"""The VM half of the fake Proxmox node (fakenode.FakeNode.qemu): `qm` and the
`/nodes/N/qemu` API paths, with the rules qemu-server applies, each naming the source that
decides it (proxmox/qemu-server: `PVE/API2/Qemu.pm`, `PVE/QemuServer.pm`,
`PVE/QemuServer/Agent.pm`, `PVE/CLI/qm.pm`; pve-cluster `check_vmid_unused`; pve-common
`PVE/AbstractConfig.pm`), no more and no less lenient than they are:

- a VMID is unique across containers and VMs (`check_vmid_unused`: "VM|CT N already
  exists on node", by the kind that holds it);
- a second cloud-init drive is refused (`Qemu.pm` create_disks);
- `qm template` refuses a VM with snapshots, one already a template, a running one, and
  renames its disk `vm-N-disk-K` to `base-N-disk-K` (pve-storage `create_base`);
- a linked clone's disk is `STORAGE:base-T-disk-K/vm-N-disk-M` (pve-storage
  `ZFSPoolPlugin.pm` clone_image);
- `qm clone`: the snapshot must exist; without `--full` a template makes a linked clone
  and any other VM a full one (`$full //= !is_template`); `--full 0` of a non-template
  has no base to link to ("Linked clone feature is not supported"), and `--storage` is
  refused for a linked clone; a running VM may be cloned (drive-mirror); the new VM stays
  locked (`clone`) until the clone task ends, which a status read models here;
- `qm resize` refuses to shrink, does nothing for the same size (`Qemu.pm` resize_vm) and
  is refused on a locked VM, so a resize right after a clone races its task;
- `qm snapshot` refuses a template and reserved names (`AbstractConfig.pm`);
- `qm guest exec` needs `agent` in the config, a running VM and a running agent
  (`Agent.pm` agent_available), exits 0 whatever the command did and prints JSON with its
  `exitcode`; `--pass-stdin` takes at most 1 MiB (`qm.pm`);
- `qm destroy` refuses a running VM, a protected one, and one in HA without `--purge`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from phoenix.drivers.proxmox.properties import parse_property_string, size_to_gib
from phoenix.runners.base import Stdin, stdin_bytes

if TYPE_CHECKING:
    from tests.unit.proxmox.fakenode import FakeNode

GuestRun = Callable[[list[str]], tuple[int, str, str]]
RESERVED = ("current", "vzdump")


class QmFail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Vm:
    options: dict[str, str]
    snapshots: dict[str, dict[str, str]] = field(default_factory=dict)
    lock: str | None = None
    lock_reads: int = 0  # status reads until the task holding `lock` ends


@dataclass
class FakeQemu:
    node: FakeNode
    vms: dict[int, Vm] = field(default_factory=dict)
    running: set[int] = field(default_factory=set)
    agent_up: set[int] = field(default_factory=set)  # started VMs whose agent answers
    # What a command run in a guest answers (default: exit 0, no output).
    guest: GuestRun = lambda argv: (0, "", "")
    clone_task_reads: int = 1
    inputs: list[bytes] = field(default_factory=list)  # what each `--pass-stdin` carried
    _disks: int = 0

    def exists(self, vmid: int) -> bool:
        return vmid in self.vms

    def _need(self, vmid: int) -> Vm:
        vm = self.vms.get(vmid)
        if vm is None:
            name = self.node.name
            raise QmFail(
                2, f"Configuration file 'nodes/{name}/qemu-server/{vmid}.conf' does not exist"
            )
        return vm

    def _unused(self, vmid: int) -> None:
        """pve-cluster check_vmid_unused: the message names the kind that holds the id."""
        if vmid in self.vms:
            raise QmFail(255, f"VM {vmid} already exists on node '{self.node.name}'")
        if self.node.conf(vmid) is not None:
            raise QmFail(255, f"CT {vmid} already exists on node '{self.node.name}'")

    @staticmethod
    def _check_lock(vmid: int, vm: Vm) -> None:
        if vm.lock:
            raise QmFail(255, f"VM {vmid} is locked ({vm.lock})")

    def _volume(self, vmid: int, storage: str, size: str) -> str:
        self.node._storage(storage)
        self._disks += 1
        return f"{storage}:vm-{vmid}-disk-{self._disks},size={size}"

    # -- qm -------------------------------------------------------------------------

    def qm(self, argv: list[str], input: Stdin) -> str:
        if argv[1:2] == ["guest"]:
            return self._guest_exec(argv, input)
        verb, vmid = argv[1], int(argv[2])
        opts, rest = _split(argv[3:])
        if verb == "create":
            self._unused(vmid)
            vm = Vm({"name": f"VM{vmid}", "memory": "512", "cores": "1"})
            self.vms[vmid] = vm
            try:
                self._update(vmid, vm, opts)
            except QmFail:
                del self.vms[vmid]  # a failed create leaves nothing (Qemu.pm create_vm)
                raise
            return ""
        vm = self._need(vmid)
        if verb == "set":
            self._update(vmid, vm, opts)
            return ""
        if verb == "importdisk":
            source, storage = rest
            if not self.node.path(source).is_file():
                raise QmFail(255, f"source image file '{source}' does not exist")
            n = sum(1 for k in vm.options if k.startswith("unused"))
            vm.options[f"unused{n}"] = self._volume(vmid, storage, "3G").split(",")[0]
            return ""
        if verb == "template":
            self._check_lock(vmid, vm)
            if vm.snapshots:
                raise QmFail(255, "unable to create template, because VM contains snapshots")
            if vm.options.get("template") == "1":
                raise QmFail(255, "you can't convert a template to a template")
            if vmid in self.running:
                raise QmFail(255, "you can't convert a VM to template if VM is running")
            vm.options["template"] = "1"
            # pve-storage create_base: the template's disks are renamed vm-N- -> base-N-.
            for key, value in list(vm.options.items()):
                if key == "scsi0":
                    vm.options[key] = value.replace(f":vm-{vmid}-disk-", f":base-{vmid}-disk-")
            return ""
        if verb == "clone":
            return self._clone(vmid, vm, int(rest[0]), opts)
        if verb == "resize":
            self._check_lock(vmid, vm)
            disk, size = rest
            props = parse_property_string(vm.options[disk], "file")
            old = size_to_gib(props["size"])
            new = old + size_to_gib(size[1:]) if size.startswith("+") else size_to_gib(size)
            if new < old:
                raise QmFail(255, "shrinking disks is not supported")
            if new > old:
                props["size"] = f"{new}G"
                head = props.pop("file")
                vm.options[disk] = ",".join([head, *(f"{k}={v}" for k, v in props.items())])
            return ""
        if verb == "snapshot":
            self._check_lock(vmid, vm)
            name = rest[0]
            if vm.options.get("template") == "1":
                raise QmFail(255, "you can't take a snapshot if it's a template")
            if name in RESERVED:
                raise QmFail(255, f"snapshot name '{name}' is reserved")
            if name in vm.snapshots:
                raise QmFail(255, f"snapshot name '{name}' already used")
            vm.snapshots[name] = dict(vm.options)
            return ""
        if verb == "start":
            self._check_lock(vmid, vm)
            if vm.options.get("template") == "1":
                raise QmFail(255, "you can't start a vm if it's a template")
            self.running.add(vmid)
            if _agent_enabled(vm.options):
                self.agent_up.add(vmid)
            return ""
        if verb in ("shutdown", "stop"):
            self.running.discard(vmid)
            self.agent_up.discard(vmid)
            return ""
        if verb == "destroy":
            self._check_lock(vmid, vm)
            if vm.options.get("protection") == "1":
                raise QmFail(255, f"can't remove VM {vmid} - protection mode enabled")
            if vmid in self.running:
                raise QmFail(255, f"VM {vmid} is running - destroy failed")
            del self.vms[vmid]
            return ""
        raise QmFail(255, f"unknown qm verb {verb} (fake node)")

    def _update(self, vmid: int, vm: Vm, opts: dict[str, str]) -> None:
        """Qemu.pm update_vm / create_vm: options replaced, `--delete` removed, disks made."""
        for key in opts.pop("delete", "").split(","):
            vm.options.pop(key, None)
        for key, value in opts.items():
            if key.startswith(("scsi", "ide", "sata", "virtio")) and key[-1].isdigit():
                value = self._disk(vmid, vm, key, value)
            if key.startswith("net") and "virtio=" not in value:
                props = parse_property_string(value, "model")
                model = props.pop("model", "virtio")
                self.node._macs += 1
                mac = f"BC:24:11:00:01:{self.node._macs:02X}"
                value = ",".join([f"{model}={mac}", *(f"{k}={v}" for k, v in props.items())])
            vm.options[key] = value

    def _disk(self, vmid: int, vm: Vm, key: str, value: str) -> str:
        props = parse_property_string(value, "file")
        file = props.pop("file")
        storage, _, what = file.partition(":")
        if what == "cloudinit":
            held = next((k for k, v in vm.options.items() if "cloudinit" in v), None)
            if held is not None:
                raise QmFail(255, f"{key} - cloud-init drive is already attached at '{held}'")
            self.node._storage(storage)
            return f"{storage}:vm-{vmid}-cloudinit,media=cdrom"
        source = props.pop("import-from", None)
        if source is not None:
            if (
                not (source.startswith("/") and self.node.path(source).is_file())
                and ":" not in source
            ):
                raise QmFail(255, f"import-from: '{source}' does not exist")
            made = self._volume(vmid, storage, "3G")
            return ",".join([made, *(f"{k}={v}" for k, v in props.items())])
        return value

    def _clone(self, vmid: int, vm: Vm, newid: int, opts: dict[str, str]) -> str:
        self._unused(newid)
        snap = opts.get("snapname")
        if snap is not None and snap not in vm.snapshots:
            raise QmFail(255, f"snapshot '{snap}' does not exist")
        template = vm.options.get("template") == "1"
        full = opts["full"] == "1" if "full" in opts else not template
        if not full and "storage" in opts:
            raise QmFail(255, "parameter 'storage' not allowed for linked clones")
        if not full and not template:
            raise QmFail(255, "Linked clone feature is not supported for drive 'scsi0'")
        source = dict(vm.snapshots[snap] if snap else vm.options)
        source.pop("template", None)
        new = Vm(source, lock="clone", lock_reads=self.clone_task_reads)
        for key, value in list(source.items()):
            if key.startswith("net"):  # Qemu.pm clone_vm: every NIC gets a new MAC
                props = parse_property_string(value, "model")
                model = next(k for k in props if k in ("virtio", "e1000", "model"))
                props.pop(model)
                self.node._macs += 1
                mac = f"BC:24:11:00:02:{self.node._macs:02X}"
                new.options[key] = ",".join(
                    [f"virtio={mac}", *(f"{k}={v}" for k, v in props.items())]
                )
            if key == "scsi0":
                props = parse_property_string(value, "file")
                storage = opts.get("storage", props["file"].split(":")[0])
                self._disks += 1
                volume = f"vm-{newid}-disk-{self._disks}"
                if not full:  # pve-storage ZFSPoolPlugin.pm clone_image: "$basename/$name"
                    volume = props["file"].split(":", 1)[1].split("/")[0] + "/" + volume
                new.options[key] = f"{storage}:{volume},size={props['size']}"
        if "name" in opts:
            new.options["name"] = opts["name"]
        self.vms[newid] = new
        fw = self.node.path(f"/etc/pve/firewall/{vmid}.fw")  # PVE::Firewall::clone_vmfw_conf
        if fw.is_file():
            self.node.path(f"/etc/pve/firewall/{newid}.fw").write_text(fw.read_text())
        return ""

    def _guest_exec(self, argv: list[str], input: Stdin) -> str:
        vmid = int(argv[3])
        vm = self._need(vmid)
        end = argv.index("--")
        opts, _ = _split(argv[4:end])
        if not _agent_enabled(vm.options):
            raise QmFail(255, "No QEMU guest agent configured")
        if vmid not in self.running:
            raise QmFail(255, f"VM {vmid} is not running")
        if vmid not in self.agent_up:
            raise QmFail(255, "QEMU guest agent is not running")
        data = stdin_bytes(input) if opts.get("pass-stdin") == "1" else b""
        if len(data) > 1024 * 1024:
            raise QmFail(255, "'input-data' size exceeds maximum of 1 MiB")
        if opts.get("pass-stdin") == "1":
            self.inputs.append(data)
        code, out, err = self.guest(argv[end + 1 :])
        return json.dumps({"exitcode": code, "exited": 1, "out-data": out, "err-data": err})

    # -- pvesh ----------------------------------------------------------------------

    def pvesh(self, argv: list[str], parts: list[str]) -> str:
        if len(parts) == 3:  # /nodes/N/qemu
            return json.dumps(
                [
                    {"vmid": v, "name": vm.options.get("name"), "template": int(vm.options.get("template", "0")),
                     "status": "running" if v in self.running else "stopped"}
                    for v, vm in sorted(self.vms.items())
                ]
            )  # fmt: skip
        vmid = int(parts[3])
        vm = self._need(vmid)
        rest = parts[4:]
        if argv[1] == "set" and rest == ["config"]:
            self._update(vmid, vm, _split(argv[3:])[0])
            return ""
        if rest == ["config"]:
            data: dict[str, object] = dict(vm.options)
            for key in ("memory", "cores", "onboot", "template", "ciupgrade"):
                if key in data:
                    data[key] = int(str(data[key]))
            if vm.lock:
                data["lock"] = vm.lock
            return json.dumps(data)
        if rest == ["status", "current"]:
            if vm.lock_reads > 0:
                vm.lock_reads -= 1
                if vm.lock_reads == 0:
                    vm.lock = None  # the task holding it ended
            status: dict[str, object] = {"status": "running" if vmid in self.running else "stopped"}
            if _agent_enabled(vm.options):
                status["agent"] = 1
            if vm.lock:
                status["lock"] = vm.lock
            return json.dumps(status)
        if rest == ["snapshot"]:
            snaps = [{"name": n} for n in vm.snapshots]
            return json.dumps([*snaps, {"name": "current", "running": int(vmid in self.running)}])
        raise QmFail(255, f"no such path {'/'.join(parts)} (fake node)")


def _agent_enabled(options: dict[str, str]) -> bool:
    value = options.get("agent")
    return value is not None and parse_property_string(value, "enabled").get("enabled") in (
        "1",
        "true",
    )


def _split(args: list[str]) -> tuple[dict[str, str], list[str]]:
    """`--key value` pairs and the positional words between them."""
    opts: dict[str, str] = {}
    rest: list[str] = []
    it = iter(args)
    for arg in it:
        if arg.startswith("--"):
            opts[arg[2:]] = next(it)
        else:
            rest.append(arg)
    return opts, rest


def image(node_root: Path, path: str) -> None:
    """Put an image file on the node (for `import-from` / `qm importdisk`)."""
    target = node_root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"QFI\xfb")
