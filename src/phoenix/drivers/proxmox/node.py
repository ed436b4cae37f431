"""One Proxmox VE node as the driver sees it: commands run and logged through a Runner (in
the C locale), a guest's config, firewall file and state read back into facts, and the
power cycle (start and wait until up, clean shutdown) that configuring also needs.

`ProxmoxDriver` (driver.py) builds on it: `configure.GuestConfigurer` adds the writes, the
driver the guest's lifecycle and in-guest work.
"""

from __future__ import annotations

import dataclasses
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from phoenix.drivers.base import CommandKind, CommandLog, GuestSettings, ObservedGuest
from phoenix.drivers.proxmox import commands, devices, files, firewall, ha, mounts, pvesh
from phoenix.drivers.proxmox.bindsnap import DetachedBinds
from phoenix.drivers.proxmox.errors import check, explain, is_missing_guest
from phoenix.drivers.proxmox.ownership import OwnedRaw, owned_lines
from phoenix.errors import DriverError
from phoenix.runners.base import CommandResult, Runner, Stdin

# Commands run with the C locale: Phoenix reads their messages ("No such file", pct's).
NODE_ENV = {"LC_ALL": "C"}

# Run in the guest while waiting for it: init answers, and shows its global IPv4 address.
IP_PROBE = ("ip", "-4", "-o", "addr", "show", "scope", "global")


def parse_facts(
    ctid: int, data: Mapping[str, Any], fw: firewall.FirewallFile | None = None
) -> pvesh.ConfigFacts:
    """parse_config, with a config Phoenix cannot read (a non-numeric `memory`, a `net0`
    without `name=`) as a DriverError naming the guest instead of a bare ValueError."""
    try:
        return pvesh.parse_config(data, fw)
    except (ValueError, KeyError) as exc:
        raise DriverError(f"guest {ctid}: cannot read its config from pvesh: {exc}") from None


class NodeSession:
    """Runs and observes on one node; keeps what it learnt (MACs, NICs, the version)."""

    def __init__(
        self,
        runner: Runner,
        node: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        poll_interval: float = 1.0,
        owned: OwnedRaw | None = None,
        version: pvesh.Version | None = None,
        detached: DetachedBinds | None = None,
    ) -> None:
        self.runner = runner
        self.node = node
        self.owned = owned or OwnedRaw()
        self.detached = detached or DetachedBinds()  # bind mounts out for a snapshot
        self._version = version  # the node's PVE version: asked once (`pvesh get /version`)
        self._container: commands.ContainerVersion | None = None
        self.log = CommandLog()
        self._sleep = sleep
        self._clock = clock
        self._poll = poll_interval
        self._macs: dict[int, str] = {}
        self._nics: set[int] = set()  # guests known to have a NIC
        self._guard = threading.Lock()
        self._source_locks: dict[int, threading.Lock] = {}

    # -- running commands -------------------------------------------------------------

    def _run(
        self,
        kind: CommandKind,
        argv: Sequence[str],
        *,
        input: Stdin = None,
        timeout: float | None = None,
    ) -> CommandResult:
        """Log and run one argv (in the C locale: Phoenix reads the messages)."""
        self.log.add(kind, argv)
        return self.runner.run(argv, input=input, env=NODE_ENV, timeout=timeout)

    def _mutate(self, ctid: int, argv: Sequence[str], **kw: Any) -> CommandResult:
        return check(ctid, self._run("mutate", argv, **kw))

    def _json(self, ctid: int, argv: Sequence[str]) -> Any:
        result = check(ctid, self._run("observe", argv))
        try:
            return pvesh.load_json(result.stdout, shlex.join(argv))
        except ValueError as exc:
            raise DriverError(f"guest {ctid}: {exc}") from None

    # -- observing ---------------------------------------------------------------------

    def _config(self, ctid: int) -> dict[str, Any] | None:
        result = self._run("observe", pvesh.config_cmd(self.node, ctid))
        if is_missing_guest(result):
            return None
        check(ctid, result)
        try:
            data = pvesh.load_json(result.stdout, "lxc config")
        except ValueError as exc:
            raise DriverError(f"guest {ctid}: {exc}") from None
        if not isinstance(data, dict):
            raise DriverError(f"guest {ctid}: unexpected config from pvesh: {data!r}")
        return data

    def version(self) -> pvesh.Version:
        """The node's Proxmox VE version (major, minor), asked once."""
        if self._version is None:
            data = self._json(0, pvesh.version_cmd())
            try:
                self._version = pvesh.parse_version(data)
            except ValueError as exc:
                raise DriverError(f"node {self.node}: {exc}") from None
        return self._version

    def container_version(self) -> commands.ContainerVersion:
        """The node's pve-container release, asked once (`pveversion --verbose`): it decides
        which raw keys the node keeps. Unreadable: the one its pve-manager ships with."""
        if self._container is None:
            result = self._run("observe", ["pveversion", "--verbose"])
            found = None
            for line in result.stdout.splitlines() if result.ok else []:
                name, _, rest = line.partition(":")
                if name.strip() == "pve-container":
                    found = commands.parse_container_version(rest)
            self._container = found or commands.container_for(self.version())
        return self._container

    def _read_file(self, ctid: int, path: str) -> str | None:
        result = self._run("observe", files.read_cmd(path))
        if result.ok:
            return result.stdout
        if "No such file" in result.stderr:
            return None
        raise explain(ctid, result)

    def _facts(self, ctid: int) -> pvesh.ConfigFacts | None:
        data = self._config(ctid)
        if data is None:
            return None
        fw_text = self._read_file(ctid, pvesh.fw_path(ctid))
        fw = firewall.parse(fw_text) if fw_text is not None else None
        facts = parse_facts(ctid, data, fw)
        self._remember_mac(ctid, facts.mac)
        return facts

    def _owned_settings(self, ctid: int, facts: pvesh.ConfigFacts) -> GuestSettings:
        """The settings with only the raw lines Phoenix owns (the others are not its to
        compare or change)."""
        mine = owned_lines(facts.raw, (), self.owned.get(ctid))
        apparmor = next((v for k, v in mine if k == pvesh.APPARMOR_KEY), None)
        gpu_lines = set(self.owned.gpu_lines(ctid))  # reported as `gpus`, not as raw keys
        raw = tuple(
            line for line in mine if line[0] != pvesh.APPARMOR_KEY and line not in gpu_lines
        )
        mine_mounts = mounts.owned(facts.mounts, self._mount_targets(ctid))
        fw_mine = set(firewall.rules_of(self.owned.fw_rules(ctid)))
        mine_devs = set(self.owned.dev_paths(ctid))
        return dataclasses.replace(
            facts.settings,
            # Only the rules and GPU devices Phoenix wrote: the others are not its to change.
            firewall_rules=tuple(r for r in facts.settings.firewall_rules if r in fw_mine),
            gpus=devices.observed_gpus(
                [e for e in facts.devices if e.path in mine_devs], facts.raw
            ),
            raw_lxc=raw,
            apparmor_profile=apparmor,
            mounts=tuple(sorted((p.mount for p in mine_mounts), key=lambda m: m.target)),
        )

    def _mount_targets(self, ctid: int) -> list[str]:
        return self.owned.mount_targets(ctid)

    def _remember_mac(self, ctid: int, mac: str | None) -> None:
        if mac is not None:
            self._macs[ctid] = mac
            self._nics.add(ctid)

    def _state(self, ctid: int) -> str:
        return self._status(ctid, requested=False)[0]

    def _status(self, ctid: int, requested: bool = True) -> tuple[str, str | None]:
        """("missing"|"stopped"|"running", the HA requested state or None if not HA's);
        without `requested`, only the state (the second is None)."""
        result = self._run("observe", pvesh.status_cmd(self.node, ctid))
        if is_missing_guest(result):
            return "missing", None
        check(ctid, result)
        data = pvesh.load_json(result.stdout, "lxc status")
        state, _ = pvesh.parse_status(data)
        if not requested or not isinstance(data, Mapping) or not ha.is_managed(data):
            return state, None
        wanted = ha.parse_requested(self._json(ctid, ha.resources_cmd()), ctid)
        return state, wanted or "started"

    def _ha_service(self, ctid: int) -> ha.Service | None:
        """The CRM's view of the guest (None when the HA status cannot be read)."""
        result = self._run("observe", ha.status_cmd())
        if not result.ok:
            return None
        try:
            return ha.parse_service(pvesh.load_json(result.stdout, "HA status"), ctid)
        except ValueError:
            return None

    def _check_ha(self, ctid: int, wanted: str) -> ha.Service | None:
        """While waiting on HA: fail at once when the service is stuck (`ha.STUCK_STATES`)."""
        service = self._ha_service(ctid)
        if service is not None and service.state in ha.STUCK_STATES:
            raise DriverError(ha.stuck(ctid, service, wanted))
        return service

    def _elsewhere(self, ctid: int) -> tuple[str, str] | None:
        """(type, node) of the guest with this id in the cluster, for one this node lacks:
        a container on another node (moved there by HA or by hand), or a VM."""
        result = self._run("observe", pvesh.cluster_resources_cmd())
        if not result.ok:
            return None  # not readable: the node itself is all Phoenix can know
        data = pvesh.load_json(result.stdout, "cluster resources")
        for entry in data if isinstance(data, list) else []:
            if isinstance(entry, Mapping) and str(entry.get("vmid")) == str(ctid):
                return str(entry.get("type", "?")), str(entry.get("node", "?"))
        return None

    def observe(self, ctid: int) -> ObservedGuest:
        facts = self._facts(ctid)
        if facts is None:
            where = self._elsewhere(ctid)
            if where is not None:
                kind, node = where
                what = "a VM" if kind == "qemu" else "a container"
                raise DriverError(
                    f"guest {ctid} is {what} on cluster node {node!r}, not on the node Phoenix "
                    f"drives ({self.node}): Phoenix changes guests only on that node and will "
                    f"not create a second {ctid}. Move it back (`pct migrate {ctid} <node>`, "
                    f"or `ha-manager migrate ct:{ctid} <node>` under HA), point phoenix.node "
                    f"and phoenix.ssh_host at {node!r}, or renumber the guest in the inventory"
                )
            return ObservedGuest(ctid, "missing")
        state, status_lock = pvesh.parse_status(self._json(ctid, pvesh.status_cmd(self.node, ctid)))
        snapshots = pvesh.parse_snapshots(self._json(ctid, pvesh.snapshots_cmd(self.node, ctid)))
        addresses: tuple[str, ...] = ()
        if state == "running":
            result = self._run("observe", pvesh.interfaces_cmd(self.node, ctid))
            if result.ok:  # older nodes have no interfaces endpoint: addresses stay unknown
                addresses = pvesh.parse_interfaces(pvesh.load_json(result.stdout, "interfaces"))
        return ObservedGuest(
            ctid=ctid,
            state=state,
            settings=self._owned_settings(ctid, facts),
            snapshots=snapshots,
            is_template=facts.is_template,
            locked=facts.locked or status_lock,
            ip_addresses=addresses,
        )

    # -- power -------------------------------------------------------------------------

    def start(self, ctid: int, timeout: float = 120.0) -> None:
        state, requested = self._status(ctid)
        if state == "running":
            return
        if state == "missing":
            raise DriverError(f"guest {ctid} does not exist on node {self.node}; cannot start it")
        if requested is None:
            self._mutate(ctid, commands.start(ctid))
        else:  # `pct start` would only queue this request and return
            self._mutate(ctid, ha.set_state(ctid, "started"))
        self._wait_up(ctid, timeout, requested is not None)

    def _wait_up(self, ctid: int, timeout: float, through_ha: bool = False) -> None:
        """Poll until the guest runs and its init answers with a global IPv4 address
        (or, without a NIC, answers at all)."""
        deadline = self._clock() + timeout
        has_nic = ctid in self._nics
        probe = commands.exec_(ctid, IP_PROBE, None, self.version())
        last = ""
        service: ha.Service | None = None
        while True:
            if through_ha:
                service = self._check_ha(ctid, "running")
            if self._state(ctid) == "running":
                result = self._run("observe", probe)
                last = (result.stderr or result.stdout).strip()
                if result.ok and (not has_nic or " inet " in f" {result.stdout}"):
                    return
            if self._clock() >= deadline:
                seen = service.describe() if service else "its HA status unreadable"
                ha_note = (
                    f" (started through Proxmox HA; {seen}: `ha-manager status` shows what "
                    f"the HA manager did with {ha.sid(ctid)})"
                    if through_ha
                    else ""
                )
                raise DriverError(
                    f"guest {ctid} did not come up within {timeout:.0f}s (running, init "
                    f"answering{' and an IPv4 address' if has_nic else ''}){ha_note}; last "
                    f"probe: {last or 'no answer'}. Look at `pct status {ctid}` and the "
                    "guest's journal"
                )
            self._sleep(self._poll)

    def stop(self, ctid: int, timeout: float = 60.0) -> None:
        state, requested = self._status(ctid)
        if state != "running":
            return
        if requested is None:
            self._mutate(ctid, commands.shutdown(ctid, timeout), timeout=timeout + 30)
            return
        # Through HA: the request returns at once; the guest stops when the LRM acts.
        self._mutate(ctid, ha.set_state(ctid, "stopped"))
        deadline = self._clock() + timeout + 30
        while self._state(ctid) == "running":
            service = self._check_ha(ctid, "stopped")
            if self._clock() >= deadline:
                seen = f" ({service.describe()})" if service else ""
                raise DriverError(
                    f"guest {ctid} is managed by Proxmox HA and did not stop within "
                    f"{timeout + 30:.0f}s of Phoenix asking HA to stop it{seen}; `ha-manager "
                    f"status` shows what the HA manager is doing with {ha.sid(ctid)}"
                )
            self._sleep(self._poll)

    def restart(self, ctid: int) -> None:
        """Stop and start again (a change that needs it), leaving an HA-managed guest with
        the requested state it had: a stop through HA sets it to `stopped`, a start to
        `started`, and an `ignored` guest must stay ignored."""
        _, requested = self._status(ctid)
        self.stop(ctid)
        self.start(ctid)
        if requested is not None and requested not in ha.RUNNING_STATES:
            self._mutate(ctid, ha.set_state(ctid, requested))
