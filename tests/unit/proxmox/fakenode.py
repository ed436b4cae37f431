"""A fake Proxmox VE node for unit tests: a Runner that keeps guests as real `.conf` text and
enforces the rules pve-container, pve-firewall and pvesh apply (issue 12), so each rule is a
test: locks, no shrinking, `pct template` refusing snapshots, reserved snapshot names,
storage without snapshots, raw keys PVE 8 drops, a missing `/etc/pve/firewall`, pvesh
proxying an unknown node, and `pct resize`/`pct template` exiting 0 when their worker fails.

Files live under `root` (a tmp dir standing for `/`); the writer program Phoenix sends is
run for real against them (only its path arguments are moved under `root`). Device nodes
are `devices` (`add_device`): a plain file under `root` is not one, for `test -c` as for
the `devN` entries pct checks. `fakeshim.py` makes the node answer a `phoenix` process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import struct
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phoenix.drivers.proxmox import files, idshift
from phoenix.drivers.proxmox.commands import RAW_KEYS_SINCE, parse_container_version
from phoenix.drivers.proxmox.properties import parse_property_string, size_to_gib
from phoenix.runners.base import CommandResult, Stdin, stdin_bytes
from tests.unit.proxmox.fakeqemu import FakeQemu, QmFail

HA_REQUESTS = frozenset({"started", "stopped", "enabled", "disabled", "ignored"})
# pve-container src/PVE/LXC/Config.pm: `$dev_desc`'s keys, `$MAX_DEVICES`; the schema's
# boolean forms (pve-common src/PVE/JSONSchema.pm).
DEV_KEYS = frozenset({"path", "mode", "uid", "gid", "deny-write"})
MAX_DEVICES = 256
BOOLEANS = frozenset({"0", "1", "on", "off", "yes", "no", "true", "false"})
SNAPSHOT_TYPES = frozenset({"zfspool", "lvmthin", "rbd", "btrfs"})
_LINE = re.compile(r"^([a-z][a-z0-9_.\-]*)(?::|\s*=)\s*(.*?)\s*$")
_SECTION = re.compile(r"^\[([^\]]+)\]\s*$")


@dataclass
class Conf:
    """A parsed container config: main section lines, then named sections' lines."""

    main: list[str]
    sections: dict[str, list[str]]

    @staticmethod
    def parse(text: str) -> Conf:
        main: list[str] = []
        sections: dict[str, list[str]] = {}
        current = main
        for line in text.split("\n"):
            match = _SECTION.match(line)
            if match:
                current = sections.setdefault(match.group(1), [])
                continue
            current.append(line)
        for lines in (main, *sections.values()):
            while lines and not lines[-1].strip():
                lines.pop()
        return Conf(main, sections)

    def render(self) -> str:
        out = list(self.main)
        for name, lines in self.sections.items():
            out += ["", f"[{name}]", *lines]
        return "\n".join(out) + "\n"


def options(lines: Sequence[str]) -> dict[str, str]:
    """Non-raw `key: value` options of a section (last one wins)."""
    out: dict[str, str] = {}
    for line in lines:
        match = _LINE.match(line)
        if match and not match.group(1).startswith("lxc."):
            out[match.group(1)] = match.group(2)
    return out


def raw(lines: Sequence[str]) -> list[list[str]]:
    out = []
    for line in lines:
        match = _LINE.match(line)
        if match and match.group(1).startswith("lxc."):
            out.append([match.group(1), match.group(2)])
    return out


def set_option(lines: list[str], key: str, value: str | None) -> None:
    """Set (or with None delete) one option where it is, else before the raw keys."""
    for index, line in enumerate(lines):
        match = _LINE.match(line)
        if match and match.group(1) == key:
            if value is None:
                del lines[index]
            else:
                lines[index] = f"{key}: {value}"
            return
    if value is None:
        return
    at = next((i for i, ln in enumerate(lines) if ln.startswith("lxc.")), len(lines))
    lines.insert(at, f"{key}: {value}")


@dataclass
class FakeNode:
    """Runner standing for one node named `name` running PVE `version`."""

    root: Path
    version: str = "8.4.1"
    container: str | None = None  # pve-container's version; None: the one `version` ships
    name: str = "pve"
    storages: dict[str, str] = field(default_factory=lambda: {"local-zfs": "zfspool"})
    datacenter_firewall: bool = False
    bridges: set[str] = field(default_factory=lambda: {"vmbr0"})
    running: set[int] = field(default_factory=set)
    resize_worker_fails: bool = False
    template_worker_fails: bool = False
    calls: list[tuple[str, ...]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    owners: dict[str, str] = field(default_factory=dict)
    # The node's device nodes (path -> "c" or "b"): a plain file under `root` is not one.
    devices: dict[str, str] = field(default_factory=dict)
    # HA: ctid -> requested state (pve-ha-manager). A request takes effect only when the HA
    # manager gets to it, modelled as the next status read after it (`ha_acts`).
    ha: dict[int, str] = field(default_factory=dict)
    ha_acts: bool = True
    ha_error: set[int] = field(default_factory=set)  # services the CRM holds in `error`
    ha_crm: dict[int, str] = field(default_factory=dict)  # the CRM's state, once it acted
    # Resources deleted from the config that the CRM still lists (it drops them on its next
    # round: pve-ha-manager src/PVE/HA/Manager.pm removes services with no config), until
    # `ha_acts` lets it: listed by one more status read. ctid -> the request it had.
    ha_leaving: dict[int, str] = field(default_factory=dict)
    elsewhere: dict[int, str] = field(default_factory=dict)  # ctid -> other cluster node
    # In a FakeCluster (fakecluster.py): the cluster deciding what pmxcfs, corosync and
    # pvesh's proxying decide, and the storages it shares between nodes.
    cluster: Any = None
    shared_storages: set[str] = field(default_factory=set)
    # A template's files as its archive holds them (owners as the guest sees them): when
    # set, `pct create` unpacks it for real (as root) under the default map.
    template_tree: Path | None = None
    _macs: int = 0
    _volumes: int = 0

    qemu: FakeQemu = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.qemu = FakeQemu(self)  # the node's VMs (`qm`, /nodes/N/qemu)
        (self.root / "etc/pve/lxc").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    # -- the node's files -----------------------------------------------------------

    def path(self, node_path: str) -> Path:
        return self.root / node_path.lstrip("/")

    def conf_path(self, ctid: int) -> Path:
        return self.path(f"/etc/pve/lxc/{ctid}.conf")

    def conf_text(self, ctid: int) -> str:
        return self.conf_path(ctid).read_text()

    def put_conf(self, ctid: int, text: str) -> None:
        self.conf_path(ctid).write_text(text)

    def conf(self, ctid: int) -> Conf | None:
        path = self.conf_path(ctid)
        return Conf.parse(path.read_text()) if path.exists() else None

    def _save(self, ctid: int, conf: Conf) -> None:
        self.put_conf(ctid, conf.render())

    def add_device(self, path: str, kind: str = "c") -> None:
        """Give the node a device node (a character device unless `kind` is "b")."""
        self.devices[path] = kind

    @property
    def container_version_text(self) -> str:
        if self.container is not None:
            return self.container
        return {(9, 1): "6.0.15", (9, 0): "6.0.9"}.get(self.major_minor, "5.2.7")

    @property
    def major_minor(self) -> tuple[int, int]:
        major, minor = self.version.split(".")[:2]
        return int(major), int(minor)

    # -- Runner ---------------------------------------------------------------------

    def run(
        self,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        env: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> CommandResult:
        args = tuple(argv)
        self.calls.append(args)
        try:
            out = self._dispatch(list(args), input)
        except (_Fail, QmFail) as exc:
            return CommandResult(exc.code, "", exc.message + "\n", args)
        return CommandResult(0, out, "", args)

    def mutations(self) -> list[tuple[str, ...]]:
        readers = ("pvesh", "cat", "test", "uname", "mktemp")
        return [
            c
            for c in self.calls
            if c[0] not in readers and c[:2] != ("pct", "exec") and c[:1] != ("pveversion",)
        ]

    def _dispatch(self, argv: list[str], input: Stdin) -> str:
        if argv[0] == "flock":
            argv = argv[4:]  # flock --timeout N LOCK cmd...
        if self.cluster is not None:
            answer = self.cluster.intercept(self, argv, input)
            if answer is not None:
                return str(answer)
        if argv[0] == "pvesh":
            return self._pvesh(argv)
        if argv[0] == "pct":
            return self._pct(argv, input)
        if argv[0] == "qm":
            return self.qemu.qm(argv, input)
        if argv[:2] == ["pveversion", "--verbose"]:
            return (
                f"proxmox-ve: {self.version}\npve-manager: {self.version} (running version: "
                f"{self.version}/0)\npve-container: {self.container_version_text}\n"
            )
        if argv[0] == "cat":
            path = self.path(argv[-1])
            if not path.is_file():
                raise _Fail(1, f"cat: {argv[-1]}: No such file or directory")
            return path.read_text()
        if argv[0] == "python3" and argv[2] in (files.WRITER, idshift.SHIFTER):
            moved = [str(self.path(a)) if a.startswith("/") else a for a in argv[3:]]
            data = stdin_bytes(input)
            proc = subprocess.run(
                [sys.executable, "-I", "-S", "-c", argv[2], *moved], input=data, capture_output=True
            )
            if proc.returncode:
                raise _Fail(proc.returncode, proc.stderr.decode().strip() or "exit 1")
            return ""
        if argv[0] == "mktemp":
            self._macs += 1
            made = f"/tmp/phoenix-push.fake{self._macs}"
            self.path(made).write_bytes(b"")
            self.path(made).chmod(0o600)
            return made + "\n"
        if argv[0] == "rm":
            self.path(argv[-1]).unlink(missing_ok=True)
            return ""
        if argv[0] == "test":  # test -d DIR / -c, -b DEVICE / -f FILE / -e PATH
            flag, name = argv[1], argv[2]
            target = self.path(name)
            if flag in ("-c", "-b"):
                ok = self.devices.get(name) == flag[1]
            elif flag in ("-d", "-f"):
                ok = target.is_dir() if flag == "-d" else target.is_file()
            else:
                ok = target.exists() or name in self.devices
            if not ok:
                raise _Fail(1, "")
            return ""
        if argv[:3] == ["mkdir", "-p", "--"]:
            self.path(argv[3]).mkdir(parents=True, exist_ok=True)
            return ""
        if argv[:2] == ["chown", "--"]:
            self.owners[argv[3]] = argv[2]
            return ""
        raise _Fail(127, f"{argv[0]}: command not found (fake node)")

    # -- pvesh ----------------------------------------------------------------------

    def _pvesh(self, argv: list[str]) -> str:
        if argv[1] == "delete" and argv[2].startswith("/cluster/ha/resources/ct:"):
            # pve-ha-manager src/PVE/API2/HA/Resources.pm, delete: the resource leaves the
            # config at once (any state, `ignored` too); the guest is left as it is.
            ctid = int(argv[2].rsplit(":", 1)[1])
            if ctid not in self.ha:
                raise _Fail(255, f"no such resource 'ct:{ctid}'")
            self.ha_crm.setdefault(ctid, self._crm(ctid))
            self.ha_leaving[ctid] = self.ha.pop(ctid)
            return ""
        if argv[1] == "set" and argv[2].startswith("/cluster/ha/resources/ct:"):
            ctid = int(argv[2].rsplit(":", 1)[1])
            if ctid not in self.ha:
                raise _Fail(255, f"service 'ct:{ctid}' not defined")
            state = _opts(argv[3:])["state"]
            if state not in HA_REQUESTS:  # the API schema's enum (pve-ha-manager)
                raise _Fail(255, f"state: value '{state}' does not have a value in the enumeration")
            self.ha[ctid] = state
            return ""
        vm_path = argv[2].strip("/").split("/")
        if (
            vm_path[0] == "nodes"
            and vm_path[2:3] == ["qemu"]
            and vm_path[1] in ("localhost", self.name)
        ):
            return self.qemu.pvesh(argv, vm_path)
        assert argv[1] == "get" and argv[-2:] == ["--output-format", "json"], argv
        path = argv[2]
        if path == "/version":
            return json.dumps({"version": self.version, "release": self.version.rsplit(".", 1)[0]})
        if path == "/cluster/resources":  # pve-manager PVE/API2/Cluster.pm, resources
            here = [int(p.stem) for p in self.path("/etc/pve/lxc").glob("*.conf")]
            rows = [(c, self.name) for c in here] + list(self.elsewhere.items())
            vms = [
                {"id": f"qemu/{v}", "vmid": v, "type": "qemu", "node": self.name}
                for v in self.qemu.vms
            ]
            return json.dumps(
                [{"id": f"lxc/{c}", "vmid": c, "type": "lxc", "node": n} for c, n in rows] + vms
            )
        if path == "/cluster/ha/resources":  # pve-ha-manager src/PVE/API2/HA/Resources.pm
            return json.dumps(
                [{"sid": f"ct:{c}", "type": "ct", "state": s} for c, s in sorted(self.ha.items())]
            )
        if path == "/cluster/ha/status/current":  # pve-ha-manager src/PVE/API2/HA/Status.pm
            quorum = {"id": "quorum", "type": "quorum", "node": self.name, "status": "OK"}
            services = [
                {
                    "id": f"service:ct:{c}",
                    "type": "service",
                    "sid": f"ct:{c}",
                    "node": self.name,
                    "crm_state": self._crm(c),
                    "request_state": s,
                    "state": self._crm(c),
                    "status": f"ct:{c} ({self.name}, {self._crm(c)})",
                }
                for c, s in sorted({**self.ha_leaving, **self.ha}.items())
            ]
            if self.ha_acts:  # the CRM's next round drops what has no config any more
                self.ha_leaving.clear()
            return json.dumps([quorum, *services])
        if path == "/cluster/status":  # pve-manager PVE/API2/Cluster.pm: a lone node, itself
            node = {"type": "node", "id": f"node/{self.name}", "name": self.name, "nodeid": 0}
            return json.dumps([{**node, "ip": "192.0.2.1", "local": 1, "online": 1}])
        if path == "/cluster/firewall/options":
            return json.dumps({"enable": 1} if self.datacenter_firewall else {})
        parts = path.strip("/").split("/")
        if parts[0] == "nodes" and parts[1] not in ("localhost", self.name):
            raise _Fail(255, f"hostname lookup '{parts[1]}' failed - failed to get address info")
        if parts[2:] == ["network"]:  # pve-manager PVE/API2/Network.pm, `--type any_bridge`
            return json.dumps(
                [{"iface": b, "type": "bridge", "active": 1} for b in sorted(self.bridges)]
            )
        if parts[2:] == ["storage"]:
            return json.dumps(
                [
                    {
                        "storage": n,
                        "type": t,
                        "content": "rootdir,images",
                        "active": 1,
                        "shared": int(n in self.shared_storages),
                    }
                    for n, t in self.storages.items()
                ]
            )
        if parts[2] == "lxc":
            ctid = int(parts[3])
            conf = self.conf(ctid)
            if conf is None:
                raise _Fail(
                    2, f"Configuration file 'nodes/{self.name}/lxc/{ctid}.conf' does not exist"
                )
            rest = parts[4:]
            if rest == ["config"]:
                return json.dumps(self._config_json(conf))
            if rest == ["status", "current"]:
                self._ha_manager(ctid)
                # pve-ha-manager src/PVE/HA/Config.pm get_service_status: `state` is the
                # CRM's service state; an `ignored` resource is not managed.
                data: dict[str, object] = {
                    "status": "running" if ctid in self.running else "stopped",
                    "ha": {"managed": 1, "state": self._crm(ctid)}
                    if self._ha_managed(ctid)
                    else {"managed": 0},
                }
                lock = options(conf.main).get("lock")
                if lock:
                    data["lock"] = lock
                return json.dumps(data)
            if len(rest) == 3 and rest[0] == "snapshot" and rest[2] == "config":
                if rest[1] not in self._snaps(conf):
                    raise _Fail(2, f"snapshot '{rest[1]}' does not exist")
                return json.dumps(self._config_json(Conf(conf.sections[rest[1]], {})))
            if rest == ["snapshot"]:
                snaps = [{"name": n, "snaptime": i} for i, n in enumerate(self._snaps(conf))]
                return json.dumps([*snaps, {"name": "current", "running": 0}])
            if rest == ["interfaces"]:
                return "null" if ctid not in self.running else "[]"
        raise _Fail(255, f"no such path {path} (fake node)")

    def _config_json(self, conf: Conf) -> dict[str, object]:
        data: dict[str, object] = dict(options(conf.main))
        pairs = raw(conf.main)
        # pve-container src/PVE/LXC/Config.pm keeps only the keys its release knows (the
        # rest: a warning, and the line is left out).
        have = parse_container_version(self.container_version_text) or (0, 0, 0)
        dropped = [p for p in pairs if have < RAW_KEYS_SINCE.get(p[0], (0, 0, 0))]
        self.warnings += [f"unknown key {k}" for k, _ in dropped]
        pairs = [p for p in pairs if p not in dropped]
        if pairs:
            data["lxc"] = pairs
        for key in ("memory", "swap", "cores", "onboot", "unprivileged", "template"):
            if key in data:
                data[key] = int(str(data[key]))
        return data

    @staticmethod
    def _snaps(conf: Conf) -> list[str]:
        return [n for n in conf.sections if n != "pve:pending"]

    def _ha_managed(self, ctid: int) -> bool:
        return ctid in self.ha and self.ha[ctid] != "ignored"

    def _crm(self, ctid: int) -> str:
        if ctid in self.ha_error:
            return "error"
        return self.ha_crm.get(ctid, "started" if ctid in self.running else "stopped")

    def _ha_manager(self, ctid: int) -> None:
        """The HA manager acting on a request made earlier (pve-ha-manager's CRM/LRM); a
        service in `error` is left alone until an administrator clears it."""
        if not self._ha_managed(ctid) or not self.ha_acts or ctid in self.ha_error:
            return
        if self.ha[ctid] == "started":
            if ctid not in self.running:
                conf = self.conf(ctid)
                if conf is not None:
                    self._apply_pending(ctid, conf)
            self.running.add(ctid)
            self.ha_crm[ctid] = "started"
        elif self.ha[ctid] in ("stopped", "disabled"):
            self.running.discard(ctid)
            self.ha_crm[ctid] = "stopped"

    # -- pct ------------------------------------------------------------------------

    def _locked(self, ctid: int, conf: Conf) -> None:
        lock = options(conf.main).get("lock")
        if lock:
            raise _Fail(255, f"CT {ctid} is locked ({lock})")

    def _need(self, ctid: int) -> Conf:
        conf = self.conf(ctid)
        if conf is None:
            raise _Fail(2, f"Configuration file 'nodes/{self.name}/lxc/{ctid}.conf' does not exist")
        return conf

    def _mac(self) -> str:
        self._macs += 1
        return f"BC:24:11:00:00:{self._macs:02X}"

    def _pct(self, argv: list[str], input: Stdin) -> str:
        verb, ctid = argv[1], int(argv[2])
        if verb == "create":
            # pve-container src/PVE/API2/LXC.pm: the id is checked cluster-wide (pmxcfs).
            if self.qemu.exists(ctid):  # pve-cluster check_vmid_unused names the kind
                raise _Fail(255, f"VM {ctid} already exists on node '{self.name}'")
            owner = self._owner(ctid)
            if owner is not None:
                raise _Fail(255, f"CT {ctid} already exists on node '{owner}'")
            opts = _opts(argv[4:])
            storage, size = opts.pop("rootfs").split(":")
            self._storage(storage)
            lines = ["arch: amd64", "ostype: debian"]
            lines.append(f"rootfs: {storage}:subvol-{ctid}-disk-0,size={size}G")
            for key, value in opts.items():
                if re.match(r"^dev\d+$", key):
                    self._check_device(key, value)
                set_option(lines, key, value)
            self._save(ctid, Conf(lines, {}))
            if self.template_tree is not None:
                self._unpack(self.template_tree, self.disk(ctid))
            return ""
        conf = self._need(ctid)
        main = conf.main
        if verb == "set":
            self._locked(ctid, conf)
            opts = _opts(argv[3:])
            for key in opts.pop("delete", "").split(","):
                if key and ctid in self.running and not _hot_delete(key):
                    pending = conf.sections.setdefault(PENDING, [])
                    have = [k for k in options(pending).get("delete", "").split(",") if k]
                    set_option(pending, "delete", ",".join([*have, key]))
                    continue
                volume = options(main).get(key, "").split(",")[0]
                if key.startswith("mp") and not volume.startswith("/"):
                    # Proxmox keeps a detached volume as unusedN: its data is not deleted.
                    n = sum(1 for k in options(main) if k.startswith("unused"))
                    set_option(main, f"unused{n}", volume)
                if key:
                    set_option(main, key, None)
            for key, value in opts.items():
                if re.match(r"^dev\d+$", key):
                    self._check_device(key, value)
                if key == "net0" and "hwaddr=" not in value:
                    value += f",hwaddr={self._mac()}"
                if key == "unprivileged":
                    raise _Fail(255, "unable to modify read-only option: 'unprivileged'")
                if ctid in self.running and not _hotplugs(key, options(main)):
                    set_option(conf.sections.setdefault(PENDING, []), key, value)
                    continue
                value = self._allocate(ctid, key, value)
                set_option(main, key, value)
            self._save(ctid, conf)
            return ""
        if verb == "clone":
            new = int(argv[3])
            self._locked(ctid, conf)
            opts = _opts(argv[4:])
            # clone_vm checks the new id cluster-wide too (pve-cluster check_vmid_unused).
            owner = self._owner(new)
            if owner is not None:
                raise _Fail(255, f"CT {new} already exists on node '{owner}'")
            snap = opts.get("snapname")
            # pve-container src/PVE/API2/LXC.pm, clone_vm: an unknown snapshot, a bind mount
            # and a full clone of a running guest without a snapshot are refused.
            if snap is not None and snap not in self._snaps(conf):
                raise _Fail(255, f"snapshot '{snap}' does not exist")
            lines = list(conf.sections[snap] if snap else main)
            for key, value in options(lines).items():
                if re.match(r"^mp\d+$", key) and value.startswith("/"):
                    raise _Fail(255, f"unable to clone mountpoint '{key}' (type bind)")
            if ctid in self.running and snap is None and opts.get("full") == "1":
                raise _Fail(255, "Cannot do full clones on a running container without snapshots")
            # Not copied: snapshot bookkeeping, `template`, `unusedN` volumes.
            skip = ("snaptime:", "parent:", "lock:", "template:", "unused")
            lines = [ln for ln in lines if not ln.startswith(skip)]
            net = options(lines).get("net0")
            if net is not None:
                props = parse_property_string(net)
                props["hwaddr"] = self._mac()
                set_option(lines, "net0", ",".join(f"{k}={v}" for k, v in props.items()))
            rootfs = parse_property_string(options(lines)["rootfs"], "volume")
            storage = opts.get("storage", rootfs["volume"].split(":")[0])
            set_option(lines, "rootfs", f"{storage}:subvol-{new}-disk-0,size={rootfs['size']}")
            if "hostname" in opts:
                set_option(lines, "hostname", opts["hostname"])
            target = opts.get("target")
            if target is not None:  # only in a cluster: a lone node knows no other node
                volumes = [storage] + [
                    v.split(":")[0]
                    for k, v in options(lines).items()
                    if re.match(r"^mp\d+$", k) and not v.startswith("/")
                ]
                self.cluster.clone_target(
                    self, target, volumes if "storage" not in opts else [storage]
                )
            self._save(new, Conf(lines, {}))
            if target is not None:
                self.conf_path(new).rename(self.cluster.conf_path(target, new))
            if self.disk(ctid).is_dir():  # the files as they are (owners included)
                subprocess.run(["cp", "-a", "--", str(self.disk(ctid)), str(self.disk(new))])
            fw = self.path(f"/etc/pve/firewall/{ctid}.fw")  # PVE::Firewall::clone_vmfw_conf
            if fw.is_file():
                self.path(f"/etc/pve/firewall/{new}.fw").write_text(fw.read_text())
            return ""
        if verb == "resize":
            # pve-container src/PVE/API2/LXC.pm, resize_vm: `+N` grows by N; a smaller size
            # dies, and so does the size the disk has ("disk is already at specified size").
            self._locked(ctid, conf)
            disk = argv[3]
            props = parse_property_string(options(main)[disk], "volume")
            size_now = size_to_gib(str(props["size"]))
            asked = size_to_gib(argv[4].lstrip("+"))
            new_gib = size_now + asked if argv[4].startswith("+") else asked
            if new_gib < size_now:
                raise _Fail(255, "unable to shrink disk size")
            if new_gib == size_now:
                raise _Fail(255, "disk is already at specified size")
            if not self.resize_worker_fails:
                props["size"] = f"{new_gib}G"
                volume = props.pop("volume")
                rest = ",".join(f"{k}={v}" for k, v in props.items())
                set_option(main, disk, f"{volume},{rest}")
                self._save(ctid, conf)
            return ""  # the worker's failure is only in the task log: exit 0 regardless
        if verb == "snapshot":
            # pve-guest-common src/PVE/AbstractConfig.pm, __snapshot_prepare: a template
            # first, then the lock; pve-container src/PVE/API2/LXC/Snapshot.pm reserves
            # `current` and `vzdump` (only those).
            if options(main).get("template") == "1":
                raise _Fail(255, "you can't take a snapshot if it's a template")
            self._locked(ctid, conf)
            name = argv[3]
            if name in ("current", "vzdump"):
                raise _Fail(255, f"snapshot name '{name}' is reserved")
            if name in conf.sections:
                raise _Fail(255, f"snapshot name '{name}' already used")
            if not self._can(conf, SNAPSHOT_TYPES):
                raise _Fail(255, "snapshot feature is not available")
            conf.sections[name] = [ln for ln in main if not ln.startswith("parent:")]
            set_option(main, "parent", name)
            self._save(ctid, conf)
            return ""
        if verb == "delsnapshot":
            self._locked(ctid, conf)
            conf.sections.pop(argv[3], None)
            self._save(ctid, conf)
            return ""
        if verb == "template":
            self._locked(ctid, conf)
            if self._snaps(conf):
                raise _Fail(255, "you can't convert a CT to template if the CT has snapshots")
            if ctid in self.running:
                raise _Fail(255, "you can't convert a running CT to a template")
            # The worker fails on a mount point without the template feature (pve-container
            # src/PVE/LXC.pm, template_create) while `pct template` exits 0.
            if not self.template_worker_fails and self._can(conf, SNAPSHOT_TYPES | {"dir"}):
                set_option(main, "template", "1")
                self._save(ctid, conf)
            return ""
        # pve-container src/PVE/API2/LXC/Status.pm: for an HA-managed guest, start and
        # shutdown only ask HA (`ha-manager set ct:N --state ...`) and return.
        if verb == "start":
            self._locked(ctid, conf)
            if options(main).get("template") == "1":  # pve-container src/PVE/API2/LXC/Status.pm
                raise _Fail(255, "you can't start a CT if it's a template")
            if ctid not in self.running:
                self._apply_pending(ctid, conf)
            if self._ha_managed(ctid):
                self.ha[ctid] = "started"
            else:
                self.running.add(ctid)
            return ""
        if verb == "shutdown":
            self._locked(ctid, conf)
            if self._ha_managed(ctid):
                self.ha[ctid] = "stopped"
            else:
                self.running.discard(ctid)
            return ""
        if verb == "destroy":
            # pve-container src/PVE/API2/LXC.pm, destroy_vm: protection, the lock, any HA
            # resource (pve-ha-manager src/PVE/HA/Config.pm `service_is_configured`:
            # `ignored` too, bug #1602), then running.
            if options(main).get("protection") == "1":
                raise _Fail(255, f"can't remove CT {ctid} - protection mode enabled")
            self._locked(ctid, conf)
            if ctid in self.ha and "--purge" not in argv:
                raise _Fail(
                    255,
                    f"unable to remove CT {ctid} - used in HA resources and purge parameter "
                    "not set.",
                )
            if ctid in self.running:
                raise _Fail(255, f"unable to destroy CT {ctid} - container is running")
            self.conf_path(ctid).unlink()
            shutil.rmtree(self.disk(ctid), ignore_errors=True)
            return ""
        # pve-container src/PVE/CLI/pct.pm, mount/unmount: `lock: mounted` is held between
        # them (set_lock dies on a guest locked already; remove_lock, pve-guest-common
        # src/PVE/AbstractConfig.pm, on a lock that is not 'mounted'), the guest's file
        # systems at /var/lib/lxc/N/rootfs (here: the disk's tree moved there).
        if verb == "mount":
            self._locked(ctid, conf)
            set_option(main, "lock", idshift.MOUNT_LOCK)
            self._save(ctid, conf)
            mounted = self.path(idshift.rootfs_path(ctid))
            mounted.parent.mkdir(parents=True, exist_ok=True)
            if self.disk(ctid).is_dir():
                self.disk(ctid).rename(mounted)
            else:
                mounted.mkdir(exist_ok=True)
            return ""
        if verb == "unmount":
            lock = options(main).get("lock")
            if lock != idshift.MOUNT_LOCK:
                found = f"found lock '{lock}'" if lock else "no lock found"
                raise _Fail(255, f"{found} trying to remove 'mounted' lock")
            set_option(main, "lock", None)
            self._save(ctid, conf)
            mounted = self.path(idshift.rootfs_path(ctid))
            if mounted.is_dir() and any(mounted.iterdir()):
                mounted.rename(self.disk(ctid))
            return ""
        if verb == "exec":
            # --keep-env arrived in pve-container 5.1 (PVE 8.2): older pct rejects it.
            if "--keep-env" in argv and self.major_minor < (8, 2):
                raise _Fail(255, "Unknown option: keep-env")
            if ctid not in self.running:
                raise _Fail(255, f"CT {ctid} not running")
            command = argv[argv.index("--") + 1 :]
            if command[:1] == ["env"]:  # `env K=V ... cmd`: the command after the settings
                command = command[1:]
                while command and "=" in command[0]:
                    command = command[1:]
            if command[:2] == ["ip", "-4"]:
                return "2: eth0    inet 10.0.0.9/24 scope global eth0\n"
            return ""
        if verb == "push":
            return ""
        raise _Fail(255, f"unknown pct verb {verb}")

    def _apply_pending(self, ctid: int, conf: Conf) -> None:
        """What waited in [pve:pending] takes effect as the guest starts (pve-container
        src/PVE/LXC/Config.pm, vmconfig_apply_pending): a dropped volume mount becomes
        unusedN, a new volume is allocated."""
        pending = conf.sections.pop(PENDING, None)
        if pending is None:
            return
        main = conf.main
        wanted = options(pending)
        for key in [k for k in wanted.pop("delete", "").split(",") if k]:
            volume = options(main).get(key, "").split(",")[0]
            if key.startswith("mp") and volume and not volume.startswith("/"):
                n = sum(1 for k in options(main) if k.startswith("unused"))
                set_option(main, f"unused{n}", volume)
            set_option(main, key, None)
        for key, value in wanted.items():
            set_option(main, key, self._allocate(ctid, key, value))
        self._save(ctid, conf)

    def disk(self, ctid: int) -> Path:
        """The tree of a guest's root disk (only modelled with a `template_tree`)."""
        return self.path(f"/disks/subvol-{ctid}-disk-0")

    @staticmethod
    def _unpack(tree: Path, disk: Path) -> None:
        """The template unpacked as pve-container does (`src/PVE/LXC/Create.pm`,
        `restore_archive`): tar inside `lxc-usernsexec` with the default map, so every owner
        is its guest id + 100000, and a file capability is written as the kernel writes it
        from that namespace (v3, root id 100000)."""
        disk.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["cp", "-a", "--", str(tree), str(disk)], check=True)
        seen: set[int] = set()
        for path in [disk, *disk.rglob("*")]:
            st = os.lstat(path)
            if st.st_ino in seen:
                continue
            seen.add(st.st_ino)
            try:
                cap = None if stat.S_ISLNK(st.st_mode) else os.getxattr(path, "security.capability")
            except OSError:
                cap = None
            os.lchown(path, st.st_uid + 100_000, st.st_gid + 100_000)
            if stat.S_ISLNK(st.st_mode):
                continue
            os.chmod(path, stat.S_IMODE(st.st_mode))
            if cap is not None:
                v3 = struct.pack("<I", 0x03000000 | (struct.unpack("<I", cap[:4])[0] & 1))
                root = struct.pack("<I", 100_000)
                os.setxattr(path, "security.capability", v3 + cap[4:20] + root)

    def _owner(self, ctid: int) -> str | None:
        """The node holding `ctid` anywhere in the cluster (pmxcfs), or None."""
        if self.cluster is not None:
            found = self.cluster.owner(ctid)
            return None if found is None else str(found)
        if self.conf(ctid) is not None:
            return self.name
        return self.elsewhere.get(ctid)

    # -- what the cluster (fakecluster.py) asks of a node ---------------------------

    def dispatch(self, argv: Sequence[str], input: Stdin = None) -> str:
        return self._dispatch(list(argv), input)

    def need(self, ctid: int) -> Conf:
        return self._need(ctid)

    def refuse_locked(self, ctid: int, conf: Conf) -> None:
        self._locked(ctid, conf)

    def _can(self, conf: Conf, types: frozenset[str] | set[str]) -> bool:
        """Whether every mount point (rootfs and each `mpN`) is on storage of `types`: a bind
        mount has no feature at all (pve-container src/PVE/LXC/Config.pm `has_feature`,
        pve-storage src/PVE/Storage.pm `volume_has_feature`)."""
        for key, value in options(conf.main).items():
            if key == "rootfs" or re.match(r"^mp\d+$", key):
                volume = value.split(",")[0]
                if volume.startswith("/") or self.storages.get(volume.split(":")[0]) not in types:
                    return False
        return True

    def _check_device(self, key: str, value: str) -> None:
        """A `devN` value as pve-container takes it (src/PVE/LXC/Config.pm): its schema
        (`$dev_desc`: `path` in `/dev/` without `.`/`..` parts, `verify_lxc_dev_string`;
        `mode` matching 0[0-7]{3}; `uid`/`gid` integers >= 0; `deny-write` a boolean; no
        other key; dev0..dev255, `$MAX_DEVICES`), `parse_device` (a path is required), then
        `update_pct_config` stats it (src/PVE/LXC/Tools.pm `get_device_mode_and_rdev`): it
        must exist on the node and be a block or character device. Nothing else: an
        unprivileged guest takes devices too (`uid`/`gid`/`mode` are there for it)."""
        bad = "400 Parameter verification failed.\n" + key
        if int(key[3:]) >= MAX_DEVICES:
            raise _Fail(255, f"{bad}: property is not defined in schema")
        props = parse_property_string(value, "path")
        for name, given in props.items():
            given = str(given)
            if name not in DEV_KEYS:
                raise _Fail(255, f"{bad}: invalid format - unknown property '{name}'")
            if name == "path" and (
                not given.startswith("/dev/") or re.search(r"/\.\.?(/|$)", given)
            ):
                raise _Fail(255, f"{bad}: invalid format - {given} is not a valid device path")
            if name == "mode" and not re.fullmatch(r"0[0-7]{3}", given):
                raise _Fail(255, f"{bad}: invalid format - mode: value does not match the regex")
            if name in ("uid", "gid") and not re.fullmatch(r"\d+", given):
                raise _Fail(255, f"{bad}: invalid format - {name}: type check ('integer') failed")
            if name == "deny-write" and given.lower() not in BOOLEANS:
                raise _Fail(255, f"{bad}: invalid format - deny-write: type check ('boolean')")
        path = props.get("path")
        if path is None:
            raise _Fail(255, "Path has to be defined")
        if str(path) not in self.devices:
            exists = self.path(str(path)).exists()
            raise _Fail(
                255, f"{path} is not a device" if exists else f"Device {path} does not exist"
            )

    def _allocate(self, ctid: int, key: str, value: str) -> str:
        """`mpN: STORAGE:SIZE,...` allocates a volume, as Proxmox does."""
        head, _, rest = value.partition(",")
        storage, _, size = head.partition(":")
        if not key.startswith("mp") or not size.isdigit():
            return value
        self._storage(storage)
        self._volumes += 1
        return f"{storage}:subvol-{ctid}-disk-{self._volumes},{rest},size={size}G"

    def _storage(self, name: str) -> None:
        if name not in self.storages:
            raise _Fail(255, f"storage '{name}' does not exist")


# pve-container src/PVE/LXC/Config.pm: on a running guest `pct set` writes every change to
# [pve:pending], then applies at once what vmconfig_hotplug_pending can: the fast-plug
# options, memory/swap/cpu limits, NICs, and mount points and devices that are new. The rest
# (features, a changed mpN or devN, ...) waits for the next start.
PENDING = "pve:pending"
_FASTPLUG = frozenset(
    {"description", "onboot", "startup", "protection", "hostname", "hookscript", "cores", "tags"}
)
_HOTPLUG = _FASTPLUG | {"memory", "swap", "cpulimit", "cpuunits"}


def _hotplugs(key: str, current: Mapping[str, str]) -> bool:
    if key in _HOTPLUG or re.match(r"^net\d+$", key):
        return True
    return bool(re.match(r"^(mp|dev)\d+$", key)) and key not in current


def _hot_delete(key: str) -> bool:
    return key in _FASTPLUG | {"swap", "cpulimit", "cpuunits"} or bool(
        re.match(r"^(net|unused)\d+$", key)
    )


def _opts(args: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    it = iter(args)
    for arg in it:
        assert arg.startswith("--"), args
        out[arg[2:]] = next(it)
    return out


class _Fail(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Fail = _Fail  # what the cluster raises for a command the node refuses
