"""Guests under Proxmox HA: read their requested state, drive start/stop through it.

For an HA-managed guest, `pct start` and `pct shutdown` do not act: they queue a request to
the HA manager and return (pve-container `src/PVE/API2/LXC/Status.pm`: `ha-manager set
ct:N --state started|stopped` in a `hastart`/`hastop` worker), and the guest changes state
later, when the CRM/LRM get to it (pve-ha-manager `src/PVE/HA/Manager.pm`). A stop through
HA also leaves the resource's requested state at `stopped`. So Phoenix reads the HA state
from the guest's status (`ha: {managed, state}`, pve-ha-manager `src/PVE/HA/Config.pm`
`get_service_status`), sets the requested state itself through the API
(`PUT /cluster/ha/resources/ct:N`), waits until the guest reaches it, and puts back the
requested state it found after a restart of its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phoenix.drivers.proxmox.pvesh import pvesh_get

# Requested states under which the HA manager keeps a guest running.
RUNNING_STATES = frozenset({"started"})


def sid(ctid: int) -> str:
    return f"ct:{ctid}"


def parse_status(data: Mapping[str, Any]) -> str | None:
    """The HA requested state of `.../status/current`, or None when HA does not manage it."""
    ha = data.get("ha")
    if not isinstance(ha, Mapping) or str(ha.get("managed", 0)) not in ("1", "true"):
        return None
    return str(ha.get("state") or "started")


def set_state(ctid: int, state: str) -> list[str]:
    """Ask the HA manager for `state` (what `ha-manager set ct:N --state` does)."""
    return ["pvesh", "set", f"/cluster/ha/resources/{sid(ctid)}", "--state", state]


def resources_cmd() -> list[str]:
    return pvesh_get("/cluster/ha/resources")


def refusal(ctid: int, state: str, what: str) -> str:
    """Why Phoenix will not `what` an HA-managed guest, and how the user can let it."""
    return (
        f"guest {ctid} is managed by Proxmox HA (requested state {state!r}): Phoenix does not "
        f"{what} a guest HA keeps, and never removes one from HA itself. If you mean it, run "
        f"`ha-manager remove {sid(ctid)}` on the node, then run Phoenix again"
    )
