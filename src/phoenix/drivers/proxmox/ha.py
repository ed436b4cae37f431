"""Guests under Proxmox HA: read their requested state, drive start/stop through it.

For an HA-managed guest, `pct start` and `pct shutdown` do not act: they queue a request to
the HA manager and return (pve-container `src/PVE/API2/LXC/Status.pm`: `ha-manager set
ct:N --state started|stopped` in a `hastart`/`hastop` worker), and the guest changes state
later, when the CRM/LRM get to it (pve-ha-manager `src/PVE/HA/Manager.pm`). A stop through
HA also leaves the resource's requested state at `stopped`.

What Phoenix reads, and where:
- whether HA manages the guest, from the guest's status (`ha: {managed, state}`,
  pve-ha-manager `src/PVE/HA/Config.pm` `get_service_status`; a resource whose requested
  state is `ignored` is not managed: `pct start` acts itself). The `state` there is the
  CRM's service state (`started`, `request_stop`, `error`, `fence`...), not the request;
- the requested state (`started`, `stopped`, `disabled`, `ignored`) from
  `/cluster/ha/resources` (`state`, default `started`), which Phoenix puts back after a
  restart of its own;
- while waiting, the CRM's view of the service from `/cluster/ha/status/current` (its
  state and node): a service in `error` never moves until an administrator clears it, so
  Phoenix stops waiting at once and says how.

`pct destroy` refuses a guest with an HA resource, whatever its requested state (`ignored`
too: pve-container `src/PVE/API2/LXC.pm` `destroy_vm` asks pve-ha-manager
`src/PVE/HA/Config.pm` `service_is_configured`, which counts every configured resource).
Phoenix removes the resource only for a forced destroy (`phoenix delete --force`), with
`pvesh delete /cluster/ha/resources/ct:N` (what `ha-manager remove` runs), and waits until
the CRM has dropped the service from its status: until then the LRM may still act on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from phoenix.drivers.proxmox.pvesh import pvesh_get

# Requested states under which the HA manager keeps a guest running.
RUNNING_STATES = frozenset({"started"})
# CRM service states from which no request moves the guest (pve-ha-manager
# src/PVE/HA/Manager.pm: `error` needs `--state disabled` first).
STUCK_STATES = frozenset({"error"})


@dataclass(frozen=True)
class Service:
    """The CRM's view of one HA service (`/cluster/ha/status/current`)."""

    state: str
    node: str
    status: str

    def describe(self) -> str:
        return f"HA reports it {self.state!r} on node {self.node!r} ({self.status})"


def sid(ctid: int) -> str:
    return f"ct:{ctid}"


def is_managed(data: Mapping[str, Any]) -> bool:
    """Whether `.../status/current` says HA manages the guest."""
    ha = data.get("ha")
    return isinstance(ha, Mapping) and str(ha.get("managed", 0)) in ("1", "true")


def parse_requested(data: Any, ctid: int) -> str | None:
    """The requested state of `ct:N` in `/cluster/ha/resources` (None: no such resource)."""
    for entry in data if isinstance(data, list) else []:
        if isinstance(entry, Mapping) and entry.get("sid") == sid(ctid):
            return str(entry.get("state") or "started")
    return None


def parse_service(data: Any, ctid: int) -> Service | None:
    """The `service:ct:N` entry of `/cluster/ha/status/current` (None: not listed)."""
    for entry in data if isinstance(data, list) else []:
        if isinstance(entry, Mapping) and entry.get("id") == f"service:{sid(ctid)}":
            state = entry.get("crm_state") or entry.get("state") or "?"
            return Service(str(state), str(entry.get("node", "?")), str(entry.get("status", "")))
    return None


def set_state(ctid: int, state: str) -> list[str]:
    """Ask the HA manager for `state` (what `ha-manager set ct:N --state` does)."""
    return ["pvesh", "set", f"/cluster/ha/resources/{sid(ctid)}", "--state", state]


def remove_cmd(ctid: int) -> list[str]:
    """Take the guest out of HA (`ha-manager remove ct:N`): the guest itself is untouched."""
    return ["pvesh", "delete", f"/cluster/ha/resources/{sid(ctid)}"]


def resources_cmd() -> list[str]:
    return pvesh_get("/cluster/ha/resources")


def status_cmd() -> list[str]:
    return pvesh_get("/cluster/ha/status/current")


def stuck(ctid: int, service: Service, wanted: str) -> str:
    """Why waiting for an HA service in a stuck state is pointless, and the way out."""
    return (
        f"guest {ctid} is managed by Proxmox HA and cannot become {wanted}: "
        f"{service.describe()}, and the HA manager moves a service in error only after an "
        f"administrator clears it. Look at `ha-manager status` and the node's log, then run "
        f"`ha-manager set {sid(ctid)} --state disabled` and `ha-manager set {sid(ctid)} "
        "--state started`, and run Phoenix again"
    )


def refusal(ctid: int, state: str, what: str) -> str:
    """Why Phoenix will not `what` an HA-managed guest, and how the user can let it."""
    return (
        f"guest {ctid} is managed by Proxmox HA (requested state {state!r}): Phoenix does not "
        f"{what} a guest HA keeps, and never removes one from HA unasked. If you mean it, run "
        f"`ha-manager remove {sid(ctid)}` on the node, then run Phoenix again"
    )


def not_released(ctid: int, waited: float, service: Service | None) -> str:
    """The HA manager still lists a guest whose resource Phoenix removed."""
    seen = f" ({service.describe()})" if service else ""
    return (
        f"guest {ctid} was taken out of Proxmox HA, but the HA manager still lists "
        f"{sid(ctid)} after {waited:.0f}s{seen}, so it may still act on the guest: nothing "
        "was stopped or destroyed. Check `ha-manager status` (is a CRM master active?), then "
        "run the same command again: it goes on from here"
    )
