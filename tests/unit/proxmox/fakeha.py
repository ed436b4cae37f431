"""Proxmox HA in the fake cluster (fakecluster.py): its configuration, written through
pvesh on any node, and a CRM that places guests by it.

What it enforces, each rule from pve-ha-manager:

- Resources (`src/PVE/API2/HA/Resources.pm`): `create` of a configured sid fails "resource
  ID 'ct:N' already defined"; of a guest no node holds, "resource 'ct:N' does not exist in
  cluster" (`src/PVE/HA/Resources/PVECT.pm` exists); a `group` must exist ("HA group 'G'
  does not exist"), and on PVE 9, where HA groups are migrated to rules, a `group` is
  refused ("invalid parameter 'group': ha groups have been migrated to rules").
- Containers are `ct:N`, VMs `vm:N` (`PVECT.pm`, `PVEVM.pm` `type`): both plugins look the
  id up in the cluster's one guest list (`PVE::Cluster::get_vmlist`, VMs and containers
  together), and PVECT.pm refuses an id that is not a container ("resource 'ct:N' - guest
  with ID N is not a container"); the fake refuses the mirror case for `vm:N` alike (the
  stored PVEVM.pm reads only that the id exists, with "does not exists in cluster").
- A VM the CRM moves goes live (`PVEVM.pm` migrate with `online`: it keeps running), a
  container is stopped and started on the target (`PVECT.pm` migrate: "we cannot migrate
  CT (yet) online, only relocate"); either way it runs on its new node.
- Groups (`src/PVE/API2/HA/Groups.pm`): one id once ("ha group ID 'G' already defined");
  on PVE 9 every group call fails "ha groups have been migrated to rules".
- Rules (`src/PVE/API2/HA/Rules.pm`, PVE 9 only: PVE 8 has no such path): one id once
  ("HA rule 'R' already defined"); resources must be configured ("cannot use unmanaged
  resource(s) ..."), nodes must be members ("cannot use non-existant node(s) ..."); a
  resource sits in one node-affinity rule only (`src/PVE/HA/Rules/NodeAffinity.pm`,
  "resource 'ct:N' is already used in another node affinity rule": the rule is invalid).
- The CRM (`src/PVE/HA/Manager.pm` select_service_node, `Rules/NodeAffinity.pm`
  get_node_affinity): a started service whose node is gone is recovered to an online
  node of its highest available priority class (a non-strict rule or unrestricted group
  also allows every other node at the lowest priority; strict/restricted: none other);
  with failback (the default; a group's `nofailback` turns it off), a service not on its
  highest priority class moves there. The CRM acts when the test says (`crm_round`), as
  the real one acts on its own schedule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tests.unit.proxmox.fakenode import Fail

if TYPE_CHECKING:
    from tests.unit.proxmox.fakecluster import FakeCluster

MIGRATED = "ha groups have been migrated to rules"


def _params(argv: list[str]) -> dict[str, str]:
    rest = argv[3:]
    out = dict(zip(rest[::2], rest[1::2], strict=True))
    out.pop("--output-format", None)
    return {k.removeprefix("--"): v for k, v in out.items()}


def _sid_ctid(sid: str) -> int:
    return int(sid.partition(":")[2])


def _sid_kind(sid: str) -> str:
    return sid.partition(":")[0]


def _priorities(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in filter(None, text.split(",")):
        node, _, priority = item.partition(":")
        out[node] = int(priority) if priority else 0
    return out


@dataclass
class FakeHa:
    """The cluster-wide HA configuration (`/etc/pve/ha/*.cfg`). A resource's requested
    state lives in its node's `FakeNode.ha` (what `pct start`/`shutdown` consult); the rest
    of its options here."""

    cluster: FakeCluster
    options: dict[int, dict[str, str]] = field(default_factory=dict)
    vms: dict[int, str] = field(default_factory=dict)  # a VM resource's requested state
    rules: dict[str, dict[str, str]] = field(default_factory=dict)
    groups: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def has_rules(self) -> bool:
        return int(self.cluster.version.split(".")[0]) >= 9

    def requested(self) -> dict[int, str]:
        cts = {c: s for n in self.cluster.nodes.values() for c, s in n.ha.items()}
        return {**cts, **self.vms}

    def kind(self, ident: int) -> str:
        return "vm" if self.cluster.vm_owner(ident) is not None else "ct"

    def where(self, ident: int) -> str | None:
        """The node holding the guest, container or VM."""
        return self.cluster.owner(ident) or self.cluster.vm_owner(ident)

    # -- pvesh -------------------------------------------------------------------------

    def pvesh(self, argv: list[str]) -> str:
        verb, path = argv[1], argv[2].rstrip("/")
        parts = path.strip("/").split("/")  # cluster, ha, <kind>[, id]
        kind, ident = parts[2], (parts[3] if len(parts) > 3 else None)
        params = _params(argv)
        if kind == "rules" and not self.has_rules:
            raise Fail(255, f"No '{verb}' handler defined for '{path}'")
        if kind == "groups" and self.has_rules:
            raise Fail(255, f"cannot {'index' if verb == 'get' else verb} groups: {MIGRATED}")
        handler = getattr(self, f"_{kind}_{verb}", None)
        if handler is None:
            raise Fail(255, f"No '{verb}' handler defined for '{path}' (fake cluster)")
        result: object = handler(ident, params)
        return "" if result is None else json.dumps(result)

    def _resources_get(self, ident: str | None, params: dict[str, str]) -> object:
        rows = []
        for ctid, state in sorted(self.requested().items()):
            kind = "vm" if ctid in self.vms else "ct"
            rows.append(
                {"sid": f"{kind}:{ctid}", "type": kind, "state": state, **self.options[ctid]}
            )
        return rows if ident is None else next(r for r in rows if r["sid"] == ident)

    def _resources_create(self, ident: str | None, params: dict[str, str]) -> None:
        sid = params.pop("sid")
        kind, ctid = _sid_kind(sid), _sid_ctid(sid)
        owner = self.where(ctid)
        if owner is None:
            raise Fail(255, f"resource '{sid}' does not exist in cluster")
        if kind != self.kind(ctid):
            what = "a container" if kind == "ct" else "a VM"
            raise Fail(255, f"resource '{sid}' - guest with ID {ctid} is not {what}")
        if ctid in self.requested():
            raise Fail(255, f"resource ID '{sid}' already defined")
        self._check_group(params)
        state = params.pop("state", "started")
        params.pop("type", None)
        if kind == "vm":
            self.vms[ctid] = state
        else:
            self.cluster.nodes[owner].ha[ctid] = state
        self.options[ctid] = params

    def _resources_set(self, ident: str | None, params: dict[str, str]) -> None:
        assert ident is not None
        ctid = _sid_ctid(ident)
        owner = self.where(ctid)
        if owner is None or ctid not in self.requested() or _sid_kind(ident) != self.kind(ctid):
            raise Fail(255, f"no such resource '{ident}'")
        self._check_group(params)
        if "state" in params and ctid in self.vms:
            self.vms[ctid] = params.pop("state")
        elif "state" in params:
            self.cluster.nodes[owner].ha[ctid] = params.pop("state")
        self.options[ctid].update(params)

    def _check_group(self, params: dict[str, str]) -> None:
        group = params.get("group")
        if group is None:
            return
        if self.has_rules:
            raise Fail(255, f"400 Parameter verification failed.\ngroup: {MIGRATED}")
        if group not in self.groups:
            raise Fail(255, f"HA group '{group}' does not exist")

    def _groups_get(self, ident: str | None, params: dict[str, str]) -> object:
        rows = [{"group": g, "type": "group", **o} for g, o in sorted(self.groups.items())]
        return rows if ident is None else next(r for r in rows if r["group"] == ident)

    def _groups_create(self, ident: str | None, params: dict[str, str]) -> None:
        group = params.pop("group")
        if group in self.groups:
            raise Fail(255, f"ha group ID '{group}' already defined")
        self._check_nodes(params["nodes"])
        self.groups[group] = params

    def _groups_set(self, ident: str | None, params: dict[str, str]) -> None:
        assert ident is not None
        if ident not in self.groups:
            raise Fail(255, f"no such ha group '{ident}'")
        if "nodes" in params:
            self._check_nodes(params["nodes"])
        self.groups[ident].update(params)

    def _rules_get(self, ident: str | None, params: dict[str, str]) -> object:
        rows = [{"rule": r, "strict": "0", **o} for r, o in sorted(self.rules.items())]
        return rows if ident is None else next(r for r in rows if r["rule"] == ident)

    def _rules_create(self, ident: str | None, params: dict[str, str]) -> None:
        rule = params.pop("rule")
        if rule in self.rules:
            raise Fail(255, f"HA rule '{rule}' already defined")
        self._check_rule(rule, params)
        self.rules[rule] = params

    def _rules_set(self, ident: str | None, params: dict[str, str]) -> None:
        assert ident is not None
        if ident not in self.rules:
            raise Fail(255, f"HA rule '{ident}' does not exist")
        self._check_rule(ident, {**self.rules[ident], **params})
        self.rules[ident].update(params)

    def _check_rule(self, rule: str, params: dict[str, str]) -> None:
        resources = params["resources"].split(",")
        configured = {f"{self.kind(c)}:{c}" for c in self.requested()}
        unmanaged = [s for s in resources if s not in configured]
        if unmanaged:
            raise Fail(255, f"cannot use unmanaged resource(s) {', '.join(unmanaged)}.")
        if "nodes" in params:
            self._check_nodes(params["nodes"])
        for other, props in self.rules.items():
            taken = set(props["resources"].split(",")) & set(resources)
            if other != rule and props.get("type") == "node-affinity" and taken:
                sid = sorted(taken)[0]
                raise Fail(
                    255,
                    f"Rule '{rule}' is invalid.\nresources: resource '{sid}' is already used "
                    "in another node affinity rule",
                )

    def _check_nodes(self, nodes: str) -> None:
        unknown = [n for n in _priorities(nodes) if n not in self.cluster.nodes]
        if unknown:
            raise Fail(255, f"cannot use non-existant node(s) {', '.join(unknown)}.")

    # -- the CRM -----------------------------------------------------------------------

    def affinity(self, ctid: int) -> tuple[dict[str, int], bool, bool]:
        """(node -> priority, strict, failback) for the service."""
        sid = f"{self.kind(ctid)}:{ctid}"
        if self.has_rules:
            for props in self.rules.values():
                if props.get("type") == "node-affinity" and sid in props["resources"].split(","):
                    if props.get("disable") == "1":
                        continue
                    strict = props.get("strict") == "1"
                    return _priorities(props["nodes"]), strict, True
            return {}, False, True
        group = self.groups.get(self.options.get(ctid, {}).get("group", ""))
        if group is None:
            return {}, False, True
        restricted = group.get("restricted") == "1"
        return _priorities(group["nodes"]), restricted, group.get("nofailback") != "1"

    def choose(self, ctid: int, current: str) -> str | None:
        """The node the CRM puts a started service on (None: nowhere it may run)."""
        online = [n for n in self.cluster.names if self.cluster.online(n)]
        nodes, strict, failback = self.affinity(ctid)
        allowed = {n: p for n, p in nodes.items() if n in online}
        if not strict:
            allowed.update({n: -1 for n in online if n not in nodes})
        if not allowed:
            return None
        best = max(allowed.values())
        preferred = sorted(n for n, p in allowed.items() if p == best)
        if current in allowed and (current in preferred or not failback):
            return current
        load = {n: sum(1 for o in self.requested() if self.where(o) == n) for n in online}
        return min(preferred, key=lambda n: (load[n], n))

    def crm_round(self) -> dict[int, str]:
        """One pass of the CRM over every started service: recover those on a node that
        is gone, move those off their preferred nodes (failback). Returns what moved."""
        moved: dict[int, str] = {}
        for ctid, state in sorted(self.requested().items()):
            current = self.where(ctid)
            if state != "started" or current is None:
                continue
            target = self.choose(ctid, current)
            if target is None or target == current:
                continue
            self.cluster.relocate(ctid, current, target)
            moved[ctid] = target
        return moved
