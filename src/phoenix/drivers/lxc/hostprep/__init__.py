"""Host preparation for the LXC driver (`phoenix setup`): bridges, forwarding, NAT and the
unprivileged id range. Facts are read through the runner (`facts`), planned by a pure
function (`plan`), applied and torn down by `HostSetup` (`setup`)."""

from phoenix.drivers.lxc.hostprep.errors import SetupError
from phoenix.drivers.lxc.hostprep.facts import (
    DEFAULT_NAT_TABLE,
    REQUIRED_PACKAGES,
    BridgeSpec,
    HostFacts,
    routes_overlapping,
)
from phoenix.drivers.lxc.hostprep.plan import Step, nat_marker, nat_script, plan
from phoenix.drivers.lxc.hostprep.record import Record
from phoenix.drivers.lxc.hostprep.setup import HostSetup

__all__ = [
    "DEFAULT_NAT_TABLE",
    "REQUIRED_PACKAGES",
    "BridgeSpec",
    "HostFacts",
    "HostSetup",
    "Record",
    "SetupError",
    "Step",
    "nat_marker",
    "nat_script",
    "plan",
    "routes_overlapping",
]
