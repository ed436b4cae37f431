"""Typed models of the config dir's JSON files (pydantic v2).

They accept the files written for the original bash tool unchanged: CTIDs as strings,
`""` for an automatic MAC, both raw-option spellings, the older flat `vllm_*` keys. Unknown
keys are kept (`extra="allow"`) and reported as warnings by the loader, never dropped
silently and never fatal. New keys are additions (`is_template`, `gateway`), never renames.

One module per job: `fields` (limits, the base model, constrained types), `network` (NIC
and firewall), `gateway` (the gateway block), `parts` (a container's other blocks), `guest`
(the container and its file), `vm` (the VM file), `host` (the hypervisor config), `scope`
(what each guest key reaches). Import from here; the split is an implementation detail.
"""

from phoenix.inventory.models.fields import (
    CTID_TEXT,
    DHCP,
    GATEWAY_COMPAT_SCRIPT,
    MAX_CTID,
    MAX_MODEL_NAME,
    MAX_PORT_NUMBERS,
    MIN_CTID,
    RESERVED_SNAPSHOTS,
    Ctid,
    Model,
    canonical_cidr,
    ipv4_address,
    ipv4_interface,
)
from phoenix.inventory.models.gateway import (
    ApiKey,
    GatewayConfig,
    HostRoute,
    OperatorKey,
    PathRoute,
    RouteTarget,
)
from phoenix.inventory.models.guest import LxcFile, LxcGuest
from phoenix.inventory.models.host import (
    DriverSettings,
    HostInterface,
    HostNetwork,
    HypervisorConfig,
)
from phoenix.inventory.models.network import FirewallConfig, FirewallRuleModel, NetworkConfig
from phoenix.inventory.models.parts import (
    HealthCheck,
    IdMap,
    MountPoint,
    VllmEngineConfig,
    VllmServerConfig,
    Volume,
)
from phoenix.inventory.models.vm import (
    DockerStack,
    LifecycleSnapshots,
    UserConfig,
    VmDefaults,
    VmFile,
    VmGuest,
    VmNetworkConfig,
    VmVolume,
    with_defaults,
)

__all__ = [
    "CTID_TEXT",
    "DHCP",
    "GATEWAY_COMPAT_SCRIPT",
    "MAX_CTID",
    "MAX_MODEL_NAME",
    "MAX_PORT_NUMBERS",
    "MIN_CTID",
    "RESERVED_SNAPSHOTS",
    "ApiKey",
    "Ctid",
    "DockerStack",
    "DriverSettings",
    "FirewallConfig",
    "FirewallRuleModel",
    "GatewayConfig",
    "HealthCheck",
    "HostInterface",
    "HostNetwork",
    "HostRoute",
    "HypervisorConfig",
    "IdMap",
    "LifecycleSnapshots",
    "LxcFile",
    "LxcGuest",
    "Model",
    "MountPoint",
    "NetworkConfig",
    "OperatorKey",
    "PathRoute",
    "RouteTarget",
    "UserConfig",
    "VllmEngineConfig",
    "VllmServerConfig",
    "VmDefaults",
    "VmFile",
    "VmGuest",
    "VmNetworkConfig",
    "VmVolume",
    "Volume",
    "canonical_cidr",
    "ipv4_address",
    "ipv4_interface",
    "with_defaults",
]
