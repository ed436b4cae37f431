"""A fake Proxmox VE cluster for unit tests: `FakeNode`s that share one cluster filesystem
the way pmxcfs does, reached the way Phoenix reaches them (this machine's node directly,
the others through the real `SshRunner` over a stand-in ssh client).

What it enforces, each rule from the Proxmox source that decides it:

- One cluster filesystem: every node's guests are `/etc/pve/nodes/<node>/lxc/N.conf`, and
  each node's `/etc/pve/lxc` is a link to its own folder there (pve-cluster `pmxcfs`); a
  CTID is unique across all of them: `pct create`/`pct clone` of an id any node holds fail
  "CT N already exists on node 'X'" (pve-cluster `src/PVE/Cluster.pm`, check_vmid_unused).
- `pvesh` proxies `/nodes/X/...` to node X (pve-manager `PVE/CLI/pvesh.pm`, over ssh: an
  unreachable X fails like ssh does); `/cluster/resources` and `/cluster/status` answer from
  any node (pve-manager `PVE/API2/Cluster.pm`).
- Quorum: a node outside the quorate partition has a read-only `/etc/pve` (pmxcfs), and
  every command that writes a guest's config dies "cluster not ready - no quorum?"
  (pve-cluster `src/PVE/Cluster.pm`, check_cfs_quorum; pve-container `src/PVE/API2/LXC.pm`).
- `pct migrate` (pve-container `src/PVE/API2/LXC.pm` migrate_vm, `src/PVE/LXC/Migrate.pm`
  prepare/phase1): the target must be another member; a running container moves only in
  restart mode (no live migration of containers); a bind or device mount point without
  `shared=1` blocks it; every volume's storage must exist on the target; a local volume
  with snapshots moves only on zfspool/btrfs; the target must answer over ssh.
- `pct clone --target` (pve-container `src/PVE/API2/LXC.pm`, clone_vm): every volume of the
  clone (or the `--storage` given) must be on shared storage, "can't clone CT to node 'X'
  (CT uses local storage)"; the new config is moved to the target.
- VMs (each node's `FakeQemu`): listed in `/cluster/resources`, a VMID unique across the
  cluster's VMs and containers (`check_vmid_unused`), and `qm migrate` (qemu-server
  `PVE/API2/Qemu.pm` migrate_vm, `PVE/QemuMigrate.pm` prepare): a running VM only with
  `--online`, none with local devices, every disk's storage on the target, a live move
  of local disks only with `--with-local-disks`; `qm clone --target` (fakevmclone.py)
  only from and onto shared storage, the config then moved to the target.
- Proxmox HA (fakeha.py): resources, node-affinity rules (PVE 9) or groups (PVE 8) written
  through pvesh on any node, and a CRM that recovers and places guests by them.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phoenix.drivers.proxmox.properties import parse_property_string
from phoenix.runners.base import CommandResult, Runner, Stdin
from phoenix.runners.ssh import SshRunner
from tests.unit.proxmox import fakevmclone
from tests.unit.proxmox.fakeha import FakeHa
from tests.unit.proxmox.fakenode import Conf, Fail, FakeNode, options

# pve-container src/PVE/LXC/Migrate.pm: local storage types a volume can be copied from.
MIGRATABLE_LOCAL = frozenset({"dir", "zfspool", "lvmthin", "lvm", "btrfs"})
# ... and those whose snapshots travel with it.
SNAPSHOTS_MIGRATE = frozenset({"zfspool", "btrfs"})
# pct verbs that write the guest's config under /etc/pve (or start it: vm_start checks
# quorum too, pve-container src/PVE/API2/LXC/Status.pm).
WRITERS = frozenset(
    {"create", "set", "clone", "resize", "snapshot", "delsnapshot", "template", "destroy"}
    | {"start", "migrate", "push"}
)
NO_QUORUM = "cluster not ready - no quorum?"


@dataclass
class FakeCluster:
    """Nodes `names` (the first is the machine Phoenix runs on), each with the local
    storages of `local` and the cluster-wide ones of `shared`."""

    root: Path
    names: tuple[str, ...] = ("pve1", "pve2", "pve3")
    version: str = "8.4.1"
    shared: dict[str, str] = field(default_factory=lambda: {"ceph": "rbd"})
    local: dict[str, str] = field(default_factory=lambda: {"local-zfs": "zfspool"})
    down: set[str] = field(default_factory=set)
    nodes: dict[str, FakeNode] = field(default_factory=dict)
    ha: FakeHa = field(init=False)

    def __post_init__(self) -> None:
        self.ha = FakeHa(self)
        pmxcfs = self.root / "pmxcfs"
        (pmxcfs / "firewall").mkdir(parents=True, exist_ok=True)
        for name in self.names:
            (pmxcfs / "nodes" / name / "lxc").mkdir(parents=True, exist_ok=True)
            etc = self.root / name / "etc/pve"
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "nodes").symlink_to(pmxcfs / "nodes")
            (etc / "firewall").symlink_to(pmxcfs / "firewall")
            (etc / "lxc").symlink_to(pmxcfs / "nodes" / name / "lxc")
            node = FakeNode(
                self.root / name,
                version=self.version,
                name=name,
                storages={**self.local, **self.shared},
                shared_storages=set(self.shared),
            )
            node.cluster = self
            self.nodes[name] = node

    # -- reaching nodes ----------------------------------------------------------------

    def runner(self, name: str) -> Runner:
        """The first node directly (Phoenix runs on it); the others over ssh."""
        if name == self.names[0]:
            return self.nodes[name]
        return SshRunner(name, local=_Ssh(self))

    def online(self, name: str) -> bool:
        return name in self.nodes and name not in self.down

    def quorate(self, name: str) -> bool:
        """corosync's view from `name`: its partition holds a majority of the votes."""
        up = [n for n in self.names if self.online(n)]
        return self.online(name) and 2 * len(up) > len(self.names)

    # -- the cluster filesystem --------------------------------------------------------

    def conf_path(self, node: str, ctid: int) -> Path:
        return self.root / "pmxcfs/nodes" / node / "lxc" / f"{ctid}.conf"

    def owner(self, ctid: int) -> str | None:
        return next((n for n in self.names if self.conf_path(n, ctid).exists()), None)

    def vm_owner(self, vmid: int) -> str | None:
        return next((n for n in self.names if vmid in self.nodes[n].qemu.vms), None)

    def guests(self) -> list[tuple[int, str]]:
        return sorted(
            (int(p.stem), n)
            for n in self.names
            for p in (self.root / "pmxcfs/nodes" / n / "lxc").glob("*.conf")
        )

    # -- what a node does differently in a cluster -------------------------------------

    def intercept(self, node: FakeNode, argv: list[str], input: Stdin) -> str | None:
        """Answer what the cluster decides; None: the node handles it alone."""
        if argv[0] == "pvesh":
            return self._pvesh(node, argv, input)
        if argv[0] == "pct" and argv[1] in WRITERS and not self.quorate(node.name):
            raise Fail(255, NO_QUORUM)
        writes_pve = argv[0] == "python3" and any(a.startswith("/etc/pve") for a in argv[3:])
        if writes_pve and not self.quorate(node.name):  # pmxcfs is read-only without quorum
            raise Fail(1, "PermissionError: [Errno 13] Permission denied: /etc/pve")
        if argv[:2] == ["pct", "migrate"]:
            return self._migrate(node, argv)
        if argv[:2] == ["qm", "migrate"]:
            return self._qm_migrate(node, argv)
        if argv[:2] in (["qm", "create"], ["qm", "clone"]):
            self._vmid_unused(int(argv[2 if argv[1] == "create" else 3]))
        if argv[:2] == ["qm", "clone"]:
            return fakevmclone.qm_clone(self, node, argv, input)
        return None

    def _vmid_unused(self, vmid: int) -> None:
        """pve-cluster check_vmid_unused, over every node's VMs and containers."""
        for name, other in self.nodes.items():
            if vmid in other.qemu.vms:
                raise Fail(255, f"VM {vmid} already exists on node '{name}'")
        owner = self.owner(vmid)
        if owner is not None:
            raise Fail(255, f"CT {vmid} already exists on node '{owner}'")

    def _pvesh(self, node: FakeNode, argv: list[str], input: Stdin) -> str | None:
        path = argv[2]
        if argv[1] != "get" and not self.quorate(node.name):
            raise Fail(255, NO_QUORUM)
        if path == "/cluster/status":  # pve-manager PVE/API2/ClusterConfig.pm / Cluster.pm
            return json.dumps(self._status(node.name))
        if path == "/cluster/resources":
            return json.dumps(self._resources())
        if path.split("/")[1:3] == ["cluster", "ha"] and path != "/cluster/ha/status/current":
            return self.ha.pvesh(argv)
        parts = path.strip("/").split("/")
        if parts[0] == "nodes" and len(parts) > 1 and parts[1] in self.nodes:
            other = parts[1]
            if other != node.name:
                if not self.online(other):
                    raise Fail(255, f"ssh: connect to host {other} port 22: No route to host")
                return self.nodes[other].dispatch(argv, input)
        return None

    def _status(self, viewer: str) -> list[dict[str, object]]:
        up = [n for n in self.names if self.online(n)]
        rows: list[dict[str, object]] = [
            {
                "type": "cluster",
                "id": "cluster",
                "name": "fake",
                "nodes": len(self.names),
                "quorate": int(self.quorate(viewer)),
                "version": len(self.names),
            }
        ]
        for index, name in enumerate(self.names, 1):
            rows.append(
                {
                    "type": "node",
                    "id": f"node/{name}",
                    "name": name,
                    "nodeid": index,
                    "ip": f"192.0.2.{index}",
                    "local": int(name == viewer),
                    "online": int(name in up),
                    "level": "",
                }
            )
        return rows

    def _resources(self) -> list[dict[str, object]]:
        out: list[dict[str, object]] = []
        for ctid, name in self.guests():
            conf = Conf.parse(self.conf_path(name, ctid).read_text())
            opts = options(conf.main)
            state = "running" if ctid in self.nodes[name].running else "stopped"
            out.append(
                {
                    "id": f"lxc/{ctid}",
                    "vmid": ctid,
                    "type": "lxc",
                    "node": name,
                    "name": opts.get("hostname", f"CT{ctid}"),
                    "status": state if self.online(name) else "unknown",
                    "template": int(opts.get("template", "0")),
                }
            )
        for name, node in self.nodes.items():
            for vmid, vm in sorted(node.qemu.vms.items()):
                running = "running" if vmid in node.qemu.running else "stopped"
                out.append(
                    {
                        "id": f"qemu/{vmid}",
                        "vmid": vmid,
                        "type": "qemu",
                        "node": name,
                        "name": vm.options.get("name", f"VM{vmid}"),
                        "status": running if self.online(name) else "unknown",
                        "template": int(vm.options.get("template", "0")),
                    }
                )
        return out

    # -- pct migrate -------------------------------------------------------------------

    def _migrate(self, node: FakeNode, argv: list[str]) -> str:
        ctid, target = int(argv[2]), argv[3]
        opts = dict(zip(argv[4::2], argv[5::2], strict=True))
        if target == node.name:
            raise Fail(255, "400 Parameter verification failed.\ntarget: target is local node.")
        if target not in self.nodes:
            raise Fail(255, f"no such cluster node '{target}'")
        conf = node.need(ctid)
        node.refuse_locked(ctid, conf)
        running = ctid in node.running
        restart, online = opts.get("--restart") == "1", opts.get("--online") == "1"
        if running and not (restart or online):
            raise Fail(255, "can't migrate running container without --online or --restart")
        if ctid in node.ha:
            raise Fail(255, "fake cluster: HA migration (ha-manager migrate) is not modelled")
        if running and not restart:
            raise Fail(255, "lxc live migration is currently not implemented")
        self._check_volumes(node, target, ctid, conf)
        if not self.online(target):
            raise Fail(255, "Can't connect to destination address using public key")
        node.running.discard(ctid)  # restart mode: shut down first
        source = self.conf_path(node.name, ctid)
        source.rename(self.conf_path(target, ctid))
        if running:
            self.nodes[target].running.add(ctid)
        return ""

    def _check_volumes(self, node: FakeNode, target: str, ctid: int, conf: Conf) -> None:
        errors: list[str] = []
        for key, value in options(conf.main).items():
            if key != "rootfs" and not key.startswith(("mp", "unused")):
                continue
            props = parse_property_string(value, "volume")
            volume = props["volume"]
            if volume.startswith("/"):
                if props.get("shared") != "1":
                    kind = "device" if volume.startswith("/dev/") else "bind"
                    raise Fail(255, f"cannot migrate local {kind} mount point '{key}'")
                continue
            storage = volume.split(":")[0]
            if storage not in self.nodes[target].storages:
                raise Fail(255, f"storage '{storage}' is not available on node '{target}'")
            kind = node.storages.get(storage, "")
            if storage in node.shared_storages:
                continue
            if kind not in MIGRATABLE_LOCAL:
                errors.append(f"{volume}: storage type '{kind}' not supported")
            elif conf.sections and kind not in SNAPSHOTS_MIGRATE:
                errors.append(f"{volume}: non-migratable snapshot exists")
        if errors:
            lines = [f"can't migrate local volume '{e}'" for e in errors]
            raise Fail(255, "\n".join([*lines, "can't migrate CT - check log"]))

    def relocate(self, ctid: int, source: str, target: str) -> None:
        """HA moving a service (recovery from a node that is gone, or failback): its
        config goes to `target`, where it runs; its HA state goes with it. A VM moves
        live (or, from a node that is gone, its config is taken over) and runs there."""
        if self.vm_owner(ctid) == source:
            self.move_vm(ctid, source, target, running=True)
            return
        self.conf_path(source, ctid).rename(self.conf_path(target, ctid))
        was = self.nodes[source]
        self.nodes[target].ha[ctid] = was.ha.pop(ctid)
        was.running.discard(ctid)
        self.nodes[target].running.add(ctid)

    # -- qm migrate --------------------------------------------------------------------

    def _qm_migrate(self, node: FakeNode, argv: list[str]) -> str:
        """qemu-server PVE/API2/Qemu.pm migrate_vm, PVE/QemuMigrate.pm prepare/phase1."""
        vmid, target = int(argv[2]), argv[3]
        opts = dict(zip(argv[4::2], argv[5::2], strict=True))
        if target == node.name:
            raise Fail(255, "400 Parameter verification failed.\ntarget: target is local node.")
        if target not in self.nodes:
            raise Fail(255, f"no such cluster node '{target}'")
        vm = node.qemu.vms.get(vmid)
        if vm is None:
            raise Fail(
                255,
                f"Configuration file 'nodes/{node.name}/qemu-server/{vmid}.conf' does not exist",
            )
        if vm.lock:
            raise Fail(255, f"VM is locked ({vm.lock})")
        running = vmid in node.qemu.running
        online = opts.get("--online") == "1"
        if running and not online:
            raise Fail(255, "can't migrate running VM without --online")
        devices = _vm_devices(vm.options)
        if devices:
            raise Fail(255, f"can't migrate VM which uses local devices: {', '.join(devices)}")
        local = []
        for key, storage in sorted(_vm_disks(vm.options).items()):
            if storage not in self.nodes[target].storages:
                raise Fail(255, f"storage '{storage}' is not available on node '{target}'")
            if storage not in node.shared_storages:
                local.append(key)
        if running and local and opts.get("--with-local-disks") != "1":
            raise Fail(
                255, "can't live migrate attached local disks without with-local-disks option"
            )
        if not self.online(target):
            raise Fail(255, "Can't connect to destination address using public key")
        self.move_vm(vmid, node.name, target, running)
        return ""

    def move_vm(self, vmid: int, source: str, target: str, running: bool) -> None:
        """The VM's config to `target`; a running VM runs there, its guest agent with it."""
        was, now = self.nodes[source].qemu, self.nodes[target].qemu
        now.vms[vmid] = was.vms.pop(vmid)
        agent = vmid in was.agent_up
        was.running.discard(vmid)
        was.agent_up.discard(vmid)
        if running:
            now.running.add(vmid)
            if agent:
                now.agent_up.add(vmid)

    # -- pct clone --target ------------------------------------------------------------

    def clone_target(self, node: FakeNode, target: str, volumes: Sequence[str]) -> None:
        """Refuse `--target` as clone_vm does; `volumes` are the clone's storages."""
        if target not in self.nodes:
            raise Fail(255, f"no such cluster node '{target}'")
        local = [v for v in volumes if v not in node.shared_storages]
        if local:
            raise Fail(255, f"can't clone CT to node '{target}' (CT uses local storage)")
        if not self.online(target):
            raise Fail(255, f"ssh: connect to host {target} port 22: No route to host")


def _vm_devices(options: Mapping[str, str]) -> list[str]:
    """qemu-server check_local_resources: PCI passthrough, host USB, host serial/parallel."""
    out = []
    for key, value in sorted(options.items()):
        kind = key.rstrip("0123456789")
        on_host = value.startswith("/dev/") if kind in ("serial", "parallel") else False
        if kind == "hostpci" or (kind == "usb" and "host=" in value) or on_host:
            out.append(key)
    return out


def _vm_disks(options: Mapping[str, str]) -> dict[str, str]:
    """Disk key -> storage of each disk image (not a CD-ROM or cloud-init drive)."""
    out = {}
    for key, value in options.items():
        if key.rstrip("0123456789") not in ("scsi", "virtio", "sata", "ide", "efidisk"):
            continue
        volume = value.split(",")[0]
        if "media=cdrom" in value or "cloudinit" in volume or ":" not in volume:
            continue
        out[key] = volume.split(":")[0]
    return out


class _Ssh:
    """The local side of `SshRunner` on this machine: runs the remote argv on the named
    node, or fails as ssh does when the node does not answer."""

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        host = argv[argv.index("--") + 1] if "--" in argv else argv[-2]
        remote = shlex.split(argv[-1])
        if not self.cluster.online(host):
            message = f"ssh: connect to host {host} port 22: No route to host\n"
            return CommandResult(255, "", message, tuple(argv))
        node_env: dict[str, str] = {}
        if remote[:1] == ["env"]:
            remote = remote[1:]
            while remote and "=" in remote[0]:
                key, _, value = remote.pop(0).partition("=")
                node_env[key] = value
        return self.cluster.nodes[host].run(remote, input=input, env=node_env, timeout=timeout)
