"""VMs on a Proxmox node: the `Driver` contract for VM ids (see `VmConfig` for what each
call means for a VM), with `qm` and `pvesh` through the node's runner. Every command comes
from the pure builders in `qm` (and the `.fw` file from `configure_commands.firewall_part`,
the containers' own); this class observes, calls a builder and runs the result.

- Observed from `pvesh get /nodes/N/qemu/VMID/config`: the name, memory, cores, disk, NIC,
  cloud-init login, keys and resolvers, boot order; the firewall from the `.fw` file (only
  the rules Phoenix wrote, as for containers).
- A clone's task holds the new VM locked; the disk is resized only once the lock is gone
  (a resize right after `qm clone` races the task).
- `start` returns once the guest agent answers; `exec` is `qm guest exec`, its result read
  from the JSON (qm exits 0 whatever the command did).
- `configure` changes the config in one `pvesh set`; cloud-init and hardware take effect
  at the next boot, so a running VM is shut down and started again; the firewall changes
  in place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from phoenix.drivers.base import GuestSettings, NetSettings, ObservedGuest, VmConfig
from phoenix.drivers.proxmox import firewall, pvesh, qm
from phoenix.drivers.proxmox.commands import FIREWALL_FIELDS
from phoenix.drivers.proxmox.configure_commands import firewall_part
from phoenix.drivers.proxmox.errors import check, is_missing_guest
from phoenix.drivers.proxmox.node import NodeSession
from phoenix.drivers.proxmox.properties import (
    flag,
    parse_property_string,
    parse_startup,
    size_to_gib,
)
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult, Stdin, stdin_bytes

# The record of the VMs' firewall rules Phoenix wrote, in the state dir (`OwnedRaw`).
OWNED_FILE = "proxmox-vm-owned.json"
# Settings that take effect when the VM boots again (cloud-init and hardware).
BOOT_FIELDS = frozenset({"hostname", "memory_mb", "cores", "net", "vm", "qm_options"})
# Config keys Phoenix sets itself: never reported as `qm_options` read back.
_MANAGED = frozenset(
    {"name", "memory", "cores", "onboot", "startup", "agent", "net0", "ipconfig0", "ciuser",
     "sshkeys", "nameserver", "ciupgrade", "template", "digest", "lock", qm.DISK, qm.CLOUDINIT}
)  # fmt: skip


def vm_facts(config: Mapping[str, Any], fw: firewall.FirewallFile | None) -> GuestSettings:
    """A VM's config (as pvesh prints it) as the settings Phoenix compares."""
    options = {str(k): str(v) for k, v in config.items()}
    disk = parse_property_string(options.get(qm.DISK, ""), "file")
    net: NetSettings | None = None
    net_firewall = False
    if "net0" in options:
        props = parse_property_string(options["net0"], "model")
        ipconf = parse_property_string(options.get("ipconfig0", ""))
        net = NetSettings(
            "eth0",
            props.get("bridge", ""),
            ipconf.get("ip", "dhcp"),
            ipconf.get("gw"),
            props.get("virtio", "").upper() or None,
        )
        net_firewall = flag(props.get("firewall", "0"))
    order, up = parse_startup(options.get("startup"))
    fw = fw or firewall.FirewallFile(False, ())
    enabled = fw.enabled and (net is None or net_firewall)
    memory = parse_property_string(options.get("memory", "512"), "current")["current"]
    extra = tuple(sorted((k, v) for k, v in options.items() if k not in _MANAGED))
    return GuestSettings(
        hostname=options.get("name", ""),
        memory_mb=int(memory),
        swap_mb=0,
        cores=int(options.get("cores", "1")),
        disk_gb=size_to_gib(disk["size"]) if "size" in disk else 0,
        storage=disk.get("file", "").split(":")[0],
        unprivileged=False,
        net=net,
        onboot=flag(options.get("onboot", "0")),
        boot_order=order,
        boot_delay=up,
        firewall_enabled=enabled,
        firewall_rules=fw.rules if enabled else (),
        vm=VmConfig(
            username=options.get("ciuser"),
            ssh_keys=qm.decode_keys(options.get("sshkeys", "")),
            nameservers=tuple(options.get("nameserver", "").split()),
        ),
        qm_options=extra,
    )


class ProxmoxVmDriver(NodeSession):
    """The VMs of one Proxmox VE node (see the module docstring)."""

    name = "proxmox"

    # -- observing ---------------------------------------------------------------------

    def _path(self, vmid: int, *rest: str) -> str:
        return "/".join([f"/nodes/{self.node}/qemu/{vmid}", *rest])

    def _get(self, vmid: int, *rest: str) -> Any | None:
        """A VM's API path as JSON; None when the VM does not exist."""
        result = self._run("observe", pvesh.pvesh_get(self._path(vmid, *rest)))
        if is_missing_guest(result) or "does not exist" in result.stderr:
            return None
        check(vmid, result)
        return pvesh.load_json(result.stdout, f"VM {vmid} {'/'.join(rest)}")

    def _vm_config(self, vmid: int) -> dict[str, Any] | None:
        data = self._get(vmid, "config")
        if data is not None and not isinstance(data, dict):
            raise DriverError(f"VM {vmid}: unexpected config from pvesh: {data!r}")
        return data

    def _settings(self, vmid: int, config: Mapping[str, Any]) -> GuestSettings:
        text = self._read_file(vmid, pvesh.fw_path(vmid))
        fw = firewall.parse(text) if text is not None else None
        settings = vm_facts(config, fw)
        mine = set(firewall.rules_of(self.owned.fw_rules(vmid)))
        rules = tuple(r for r in settings.firewall_rules if r in mine)
        return GuestSettings(**{**settings.__dict__, "firewall_rules": rules})

    def _status(self, vmid: int) -> tuple[str, str | None]:  # type: ignore[override]
        data = self._get(vmid, "status", "current")
        if data is None:
            return "missing", None
        state = str(data.get("status", "stopped"))
        return ("running" if state == "running" else "stopped"), data.get("lock")

    def observe(self, ctid: int) -> ObservedGuest:
        config = self._vm_config(ctid)
        if config is None:
            return ObservedGuest(ctid, "missing")
        state, lock = self._status(ctid)
        return ObservedGuest(
            ctid=ctid,
            state="running" if state == "running" else "stopped",
            settings=self._settings(ctid, config),
            snapshots=tuple(self.list_snapshots(ctid)),
            is_template=flag(config.get("template", 0)),
            locked=lock or (str(config["lock"]) if config.get("lock") else None),
        )

    # -- creating ----------------------------------------------------------------------

    def create(self, ctid: int, template: str, settings: GuestSettings) -> None:
        version = self.version()
        self._mutate(ctid, qm.create(ctid, template, settings, version))
        if version < qm.IMPORT_FROM_SINCE:
            self._mutate(ctid, qm.import_disk(ctid, template, settings.storage))
            config = self._vm_config(ctid) or {}
            volume = str(config.get("unused0", "")).split(",")[0]
            if not volume:
                raise DriverError(f"VM {ctid}: `qm importdisk` left no unused0 disk")
            self._mutate(ctid, qm.attach_disk(ctid, volume))
        self.owned.forget(ctid)
        self.configure(ctid, settings, frozenset({"vm", "firewall_rules", "firewall_enabled"}))
        self.resize(ctid, settings.disk_gb)

    def clone(self, source: int, ctid: int, snapshot: str | None, settings: GuestSettings) -> None:
        self.clone_to(self, source, ctid, snapshot, settings)

    def clone_to(
        self,
        target: ProxmoxVmDriver,
        source: int,
        ctid: int,
        snapshot: str | None,
        settings: GuestSettings,
    ) -> None:
        """Clone `source` (on this node) into `ctid` on `target`'s node (`qm clone
        --target` when that is another node); `target` then finishes it."""
        config = self._vm_config(source)
        if config is None:
            raise DriverError(f"VM {ctid}: its clone source {source} does not exist")
        full = settings.vm.full_clone if settings.vm is not None else False
        qm.check_clone(ctid, source, full, flag(config.get("template", 0)))
        there = None if target is self else target.node
        self._mutate(ctid, qm.clone(source, ctid, snapshot, settings, full, there))
        target.owned.copy(source, ctid)  # Proxmox copies the source's `.fw` file
        target._wait_unlocked(ctid)
        target.configure(ctid, settings, frozenset({"vm", "firewall_rules", "firewall_enabled"}))
        target.resize(ctid, settings.disk_gb)

    def _wait_unlocked(self, vmid: int, timeout: float = 600.0) -> None:
        """Until the task holding the VM (a clone) has ended."""
        deadline = self._clock() + timeout
        while (lock := self._status(vmid)[1]) is not None:
            if self._clock() >= deadline:
                raise DriverError(
                    f"VM {vmid} is still locked ({lock}) after {timeout:.0f}s: see the node's "
                    "task log (`pvesh get /nodes/<node>/tasks`)"
                )
            self._sleep(self._poll)

    # -- configuring -------------------------------------------------------------------

    def configure(self, ctid: int, settings: GuestSettings, changed: frozenset[str]) -> None:
        config = self._vm_config(ctid)
        if config is None:
            raise DriverError(f"VM {ctid} does not exist on node {self.node}; create it first")
        if config.get("lock"):
            raise DriverError(f"VM {ctid} is locked ({config['lock']}): wait for its task")
        current = qm.VmFacts({str(k): str(v) for k, v in config.items()})
        argv = qm.config(self.node, ctid, settings, current, self.version())
        wrote = _differs(argv, current)
        if wrote:
            self._mutate(ctid, argv)
        extra = qm.set_options(ctid, settings.qm_options, current)
        if extra is not None:
            self._mutate(ctid, extra)
            wrote = True
        # Only a written change needs the boot (a converged VM keeps running).
        restart = wrote and bool(changed & BOOT_FIELDS) and self._status(ctid)[0] == "running"
        if changed & FIREWALL_FIELDS or settings.firewall_enabled:
            old = self._read_file(ctid, pvesh.fw_path(ctid))
            part = firewall_part(ctid, settings, old, self.owned.fw_rules(ctid))
            for command in part.commands:
                self._mutate(ctid, command.argv, input=command.content)
            part.owns.record(self.owned, ctid)
        if restart:
            self.stop(ctid)
            self.start(ctid)

    def resize(self, ctid: int, disk_gb: int) -> None:
        config = self._vm_config(ctid)
        if config is None:
            raise DriverError(f"VM {ctid} does not exist on node {self.node}")
        self._wait_unlocked(ctid)
        disk = parse_property_string(str(config.get(qm.DISK, "")), "file")
        current = size_to_gib(disk["size"]) if "size" in disk else None
        argv = qm.resize(ctid, disk_gb, current)
        if argv is not None:
            self._mutate(ctid, argv)

    # -- power -------------------------------------------------------------------------

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        state, _ = self._status(ctid)
        if state == "missing":
            raise DriverError(f"VM {ctid} does not exist on node {self.node}; cannot start it")
        if state != "running":
            self._mutate(ctid, qm.start(ctid))
        deadline = self._clock() + timeout
        while True:
            answer = self.exec(ctid, ["true"], timeout=10)
            if answer.ok:
                return
            if self._clock() >= deadline:
                raise DriverError(
                    f"VM {ctid} started but its guest agent did not answer within "
                    f"{timeout:.0f}s ({answer.stderr.strip() or 'no answer'}): is "
                    "qemu-guest-agent installed in the image?"
                )
            self._sleep(self._poll)

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        if self._status(ctid)[0] == "running":
            self._mutate(ctid, qm.shutdown(ctid, timeout), timeout=timeout + 30)

    def destroy(self, ctid: int) -> None:
        state, _ = self._status(ctid)
        if state == "missing":
            return
        if state == "running":
            self.stop(ctid)
        self._mutate(ctid, qm.destroy(ctid))
        self.owned.forget(ctid)

    # -- in-guest work, snapshots, templates ---------------------------------------------

    def exec(
        self,
        ctid: int,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        stdin: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        data = stdin_bytes(stdin) if stdin is not None else b""
        if len(data) > qm.PASS_STDIN_MAX:
            return self._exec_large_input(ctid, argv, env, data, timeout)
        full = qm.guest_exec(ctid, argv, env, timeout, len(data))
        wait = (timeout or 3600) + 30
        return qm.exec_result(ctid, self._run("exec", full, input=stdin, timeout=wait))

    def _exec_large_input(
        self,
        ctid: int,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        data: bytes,
        timeout: float | None,
    ) -> CommandResult:
        """Input over `--pass-stdin`'s 1 MiB: written to a file in the guest in parts,
        then the command reads it from there (the file removed after)."""
        path = qm.input_file(data)
        for write, part in qm.input_parts(ctid, data, path):
            done = qm.exec_result(ctid, self._run("exec", write, input=part, timeout=150))
            if not done.ok:
                self.exec(ctid, ["rm", "-f", path], timeout=30)
                return done
        return self.exec(ctid, qm.from_file(argv, path), env=env, timeout=timeout)

    def list_snapshots(self, ctid: int) -> list[str]:
        data = self._get(ctid, "snapshot")
        return [str(s["name"]) for s in data or [] if s.get("name") != "current"]

    def snapshot(self, ctid: int, name: str) -> None:
        argv = qm.snapshot(ctid, name)
        if name not in self.list_snapshots(ctid):
            self._mutate(ctid, argv)

    def mark_template(self, ctid: int) -> None:
        """cloud-init's state cleaned inside (each clone is a new instance), shut down,
        `qm template`."""
        config = self._vm_config(ctid)
        if config is None:
            raise DriverError(f"VM {ctid} does not exist on node {self.node}")
        if flag(config.get("template", 0)):
            return
        snapshots = self.list_snapshots(ctid)
        qm.template(ctid, snapshots, running=False)  # refused before anything is cleaned
        if self._status(ctid)[0] == "running":
            cleaned = self.exec(ctid, ["cloud-init", "clean", "--logs"], timeout=120)
            if not cleaned.ok:
                raise DriverError(f"VM {ctid}: `cloud-init clean` failed: {cleaned.stderr}")
            self.stop(ctid, timeout=120)
        self._mutate(ctid, qm.template(ctid, snapshots, running=False))


def _differs(argv: Sequence[str], current: qm.VmFacts) -> bool:
    """Whether the `pvesh set` would change anything (a converged VM gets no write)."""
    options = dict(zip(argv[3::2], argv[4::2], strict=False))
    if "--delete" in options:
        return True
    have = current.options
    for key, value in options.items():
        name = key[2:]
        if name == "memory":
            if parse_property_string(have.get(name, ""), "current").get("current") != value:
                return True
        elif have.get(name) != value:
            return True
    return False
