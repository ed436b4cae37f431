"""`phoenix_lxc_configs.json`: a container with what it runs and mounts (its blocks are in
`parts`), and the file around the containers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from phoenix.inventory.models.cluster import NodeName
from phoenix.inventory.models.fields import (
    GATEWAY_COMPAT_SCRIPT,
    Ctid,
    GpuAssignment,
    GuestPath,
    HostName,
    LxcOption,
    Mac,
    Model,
    ModelName,
    NotAnOption,
    Number,
    PctOption,
    PortMapping,
    RecipeName,
    SnapshotName,
    StorageId,
)
from phoenix.inventory.models.gateway import GatewayConfig
from phoenix.inventory.models.network import FirewallConfig, NetworkConfig
from phoenix.inventory.models.parts import (
    HealthCheck,
    IdMapEntry,
    MountPoint,
    VllmEngineConfig,
    Volume,
)
from phoenix.inventory.models.scope import Host, InGuest, Placement
from phoenix.inventory.options import parse_lxc_option, parse_pct_option


class LxcGuest(Model):
    """One container of `phoenix_lxc_configs.json` (`lxc_configs.<CTID>`)."""

    name: Placement[HostName] = Field(
        description="Hostname of the container (letters, digits, '-', '.')"
    )
    memory_mb: Host[StrictInt] = Field(
        default=2048, ge=16, le=16_777_216, description="RAM limit in MiB"
    )
    swap_mb: Host[StrictInt] = Field(
        default=512, ge=0, le=16_777_216, description="Swap limit in MiB"
    )
    cores: Host[StrictInt] = Field(default=1, ge=1, le=8192, description="CPU cores")
    template: Placement[NotAnOption | None] = Field(
        default=None,
        min_length=1,
        description="Create from this: rootfs tarball (.tar.gz/.tar.xz/.tar.zst) or "
        "'debootstrap:<suite>' (LXC driver)",
    )
    node: Host[NodeName | None] = Field(
        default=None,
        description="Proxmox cluster node the guest lives on (one of phoenix.nodes; "
        "default: phoenix.node)",
    )
    placement: Host[Literal["node", "ha"]] = Field(
        default="node",
        description="Who picks the node: 'node' (its `node`; a difference is a migration) "
        "or 'ha' (Proxmox HA, preferring `node`, among `ha_nodes`; Phoenix accepts HA's pick)",
    )
    ha_nodes: Host[list[NodeName] | None] = Field(
        default=None,
        description="With placement 'ha': the other nodes HA may run it on (absent: any)",
    )
    ha_strict: Host[StrictBool] = Field(
        default=False,
        description="With placement 'ha': never on another node than `node` and `ha_nodes`",
    )
    storage_pool: Host[StorageId] = Field(
        default="local", description="Proxmox storage id for the root disk"
    )
    storage_size_gb: Host[StrictInt] = Field(
        default=8, ge=1, le=1_048_576, description="Root disk size in GiB (grow only)"
    )
    network_config: Placement[NetworkConfig | None] = Field(
        default=None, description="NIC: name, bridge, ip (CIDR), gw"
    )
    mac_address: Placement[Mac] = Field(
        default=None, description="MAC; '' or absent: assigned, then kept"
    )
    gpu_assignment: InGuest[GpuAssignment] = Field(
        default="none", description="'none' or GPU indices such as '0,1'"
    )
    unprivileged: Placement[StrictBool] = Field(
        default=True, description="Map root in the guest to an unprivileged host uid"
    )
    portainer_role: InGuest[Literal["server", "agent", "none", "infrastructure"]] = Field(
        default="none", description="Role in Portainer (informational)"
    )
    clone_from_ctid: Placement[Ctid | None] = Field(
        default=None, description="Clone from this container (at its template_snapshot_name)"
    )
    template_snapshot_name: Host[SnapshotName | None] = Field(
        default=None, description="Snapshot taken when configured; clones are made from it"
    )
    is_template: Host[StrictBool] = Field(
        default=False, description="Mark as a Proxmox template; clones need no snapshot"
    )
    features: Placement[list[RecipeName]] = Field(
        default_factory=list, description="Recipes run inside the guest, in order"
    )
    pct_options: Host[list[PctOption]] = Field(
        default_factory=list, description="Container features: nesting=1, keyctl=1, ..."
    )
    lxc_options: Host[list[LxcOption]] = Field(
        default_factory=list, description="Raw lxc.* options ('key: value' or 'key=value')"
    )
    application_script: Placement[StrictStr | None] = Field(
        default=None, min_length=1, description="Script in the scripts folder run last"
    )
    firewall: Host[FirewallConfig] = Field(
        default_factory=FirewallConfig, description="enabled, rules (in/out, ACCEPT/DROP/REJECT)"
    )
    start_at_boot: Host[StrictBool] = Field(default=False, description="Start when the host boots")
    boot_order: Host[StrictInt] = Field(
        default=0, ge=0, le=100_000, description="Start order (lower first), then CTID"
    )
    boot_delay: Host[StrictInt] = Field(
        default=0, ge=0, le=86_400, description="Seconds to wait after starting this guest"
    )
    apparmor_profile: Host[StrictStr | None] = Field(
        default=None, pattern=r"^[A-Za-z0-9_./-]+$", description="AppArmor profile (wins over raw)"
    )
    apparmor_manages_nesting: Host[StrictBool] = Field(
        default=False, description="Original tool's flag (accepted, informational)"
    )
    enable_lifecycle_snapshots: Host[StrictBool] = Field(
        default=False, description="Take 'pre-configured' and 'final-form' snapshots"
    )
    lifecycle_snapshots_detach_bind_mounts: Host[StrictBool] = Field(
        default=False,
        description="Proxmox: take the lifecycle snapshots of a guest with bind mounts by "
        "stopping it, detaching them, snapshotting and putting them back (the snapshots hold "
        "no bind mounts); without it they are not taken",
    )
    dependencies: Placement[list[Ctid]] = Field(
        default_factory=list, description="Guests (LXC or VM) to create and start first"
    )
    ports: InGuest[list[PortMapping]] = Field(
        default_factory=list, description="'host:container' port notes (informational)"
    )
    zfs_volumes: InGuest[list[Volume]] = Field(
        default_factory=list, description="ZFS volumes: name, pool, size_gb, mount_point"
    )
    volumes: InGuest[list[Volume]] = Field(
        default_factory=list, description="Volumes: name, pool, size_gb, mount_point"
    )
    mount_points: InGuest[list[MountPoint]] = Field(
        default_factory=list, description="Host bind mounts: host_path, container_path, read_only"
    )
    id_maps: InGuest[list[IdMapEntry]] = Field(
        default_factory=list,
        description="Unprivileged id map: {type u|g|b, container_id, host_id, count} or "
        "'u 0 100000 65536' as written, or {type uid|gid, container_id, host_id, size} "
        "pass-throughs kept beside the default map (empty: guest 0..65535 -> host 100000..)",
    )
    vllm_engine_config: InGuest[VllmEngineConfig | None] = Field(
        default=None, description="vLLM config; ServerConfig says which model is served where"
    )
    health_check: Host[HealthCheck | None] = Field(
        default=None, description="command (run in the guest, no shell), retries, interval"
    )
    tests: Host[dict[str, Any]] = Field(
        default_factory=dict, description="Original tool's test lists"
    )
    gateway: Placement[GatewayConfig | None] = Field(
        default=None, description="Makes this guest the Phoenix API gateway (see Gateway block)"
    )

    # Older flat vLLM keys, still in inventories in the field.
    vllm_model: InGuest[ModelName | None] = Field(default=None, description="Legacy: model path")
    vllm_served_model_name: InGuest[ModelName | None] = Field(
        default=None, description="Legacy: served model name (routed by the gateway)"
    )
    vllm_model_type: InGuest[Literal["chat", "embedding"] | None] = Field(
        default=None, description="Legacy: chat or embedding"
    )
    vllm_port: InGuest[StrictInt | None] = Field(
        default=None, ge=1, le=65535, description="Legacy: port (default 8000)"
    )
    vllm_tensor_parallel_size: InGuest[StrictInt | None] = Field(
        default=None, ge=1, description="Legacy"
    )
    vllm_gpu_memory_utilization: InGuest[Number | None] = Field(
        default=None, ge=0, le=1, description="Legacy"
    )
    vllm_max_model_len: InGuest[StrictInt | None] = Field(default=None, ge=1, description="Legacy")
    vllm_quantization: InGuest[StrictStr | None] = Field(default=None, description="Legacy")
    vllm_trust_remote_code: InGuest[StrictBool | None] = Field(default=None, description="Legacy")
    vllm_parameters: InGuest[dict[str, Any] | None] = Field(default=None, description="Legacy")
    vllm_args: InGuest[list[StrictStr] | None] = Field(default=None, description="Legacy")
    nvidia_runfile_url: InGuest[StrictStr | None] = Field(
        default=None, min_length=1, description="NVIDIA driver runfile (wins over the top level)"
    )
    nvidia_driver_version: InGuest[StrictStr | None] = Field(
        default=None, min_length=1, description="Driver the host must run (wins over the top level)"
    )
    nvidia_runfile_sha256: InGuest[StrictStr | None] = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="The runfile's sha256 (optional)"
    )
    cuda_version: InGuest[StrictStr | None] = Field(
        default=None,
        pattern=r"^[0-9]+\.[0-9]+$",
        description="CUDA toolkit from nvidia_repo_url (default: the driver's newest)",
    )
    llamacpp_archive_url: InGuest[StrictStr | None] = Field(
        default=None,
        min_length=1,
        description="llama.cpp release or source archive (.zip or .tar.gz), or "
        "pypi:llama-cpp-python==VERSION (the source its sdist carries)",
    )
    llamacpp_sha256: InGuest[StrictStr | None] = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="The archive's sha256, or the sdist's for pypi: (required)",
    )
    llamacpp_model: InGuest[GuestPath | None] = Field(
        default=None, description="Model file (GGUF) inside the guest"
    )
    llamacpp_port: InGuest[StrictInt | None] = Field(
        default=None, ge=1, le=65535, description="llama-server's port (default 8081)"
    )
    llamacpp_model_url: InGuest[StrictStr | None] = Field(
        default=None,
        min_length=1,
        description="Where the host fetches the model file (once per host) to install at "
        "llamacpp_model",
    )
    llamacpp_model_sha256: InGuest[StrictStr | None] = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="The model file's sha256"
    )
    llamacpp_alias: InGuest[ModelName | None] = Field(
        default=None,
        description="Model name llama-server answers to (--alias); the gateway routes it",
    )
    llamacpp_args: InGuest[list[StrictStr]] = Field(
        default_factory=list, description="Extra llama-server arguments"
    )
    ollama_version: InGuest[StrictStr | None] = Field(
        default=None, min_length=1, description="Ollama release the ollama feature pins"
    )
    ollama_archive_url: InGuest[StrictStr | None] = Field(
        default=None, min_length=1, description="Ollama release archive (wins over the version)"
    )
    ollama_sha256: InGuest[StrictStr | None] = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="The archive's sha256"
    )
    ollama_port: InGuest[StrictInt | None] = Field(
        default=None, ge=1, le=65535, description="Ollama's port (default 11434)"
    )
    ollama_models: InGuest[list[ModelName]] = Field(
        default_factory=list, description="Models pulled when missing (never removed)"
    )
    vllm_version: InGuest[StrictStr | None] = Field(
        default=None, min_length=1, description="vLLM version the vllm feature pins"
    )
    vllm_package: InGuest[StrictStr | None] = Field(
        default=None,
        min_length=1,
        description="pip requirement or wheel URL (wins over vllm_version)",
    )

    @property
    def runs_gateway(self) -> bool:
        """The built-in gateway application: a `gateway` block, or the original script."""
        return self.gateway is not None or self.application_script == GATEWAY_COMPAT_SCRIPT

    @property
    def is_clone_source(self) -> bool:
        """A template in either Proxmox sense: snapshot-based or `pct template`."""
        return self.is_template or self.template_snapshot_name is not None

    @property
    def parks_after_snapshot(self) -> bool:
        """A snapshot clone source not started at boot: stopped once its snapshot exists
        (clones use the snapshot; a running template costs memory and CPU for nothing)."""
        return (
            self.template_snapshot_name is not None
            and not self.start_at_boot
            and not self.is_template
        )

    @property
    def pct_features(self) -> dict[str, str]:
        features: dict[str, str] = {}
        for option in self.pct_options:
            features.update(parse_pct_option(option))
        return features

    @property
    def lxc_option_pairs(self) -> list[tuple[str, str]]:
        return [parse_lxc_option(o) for o in self.lxc_options]

    @property
    def gpus(self) -> list[int]:
        return (
            []
            if self.gpu_assignment == "none"
            else [int(g) for g in self.gpu_assignment.split(",")]
        )

    @property
    def served_model(self) -> tuple[str, int] | None:
        """(model name, port) this guest serves, from vllm_engine_config or the flat keys."""
        if self.vllm_engine_config is not None:
            server = self.vllm_engine_config.ServerConfig
            name = server.served_model_name or self.vllm_engine_config.ModelConfig.get("model")
            if isinstance(name, str) and name:
                return name, server.port
        name = self.vllm_served_model_name or self.vllm_model
        if name:
            return name, self.vllm_port or 8000
        return None


class LxcFile(Model):
    """`phoenix_lxc_configs.json`."""

    schema_: StrictStr | None = Field(default=None, alias="$schema")
    nvidia_driver_version: StrictStr | None = None
    nvidia_repo_url: StrictStr | None = None
    nvidia_runfile_url: StrictStr | None = None
    nvidia_runfile_sha256: StrictStr | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    cuda_version: StrictStr | None = Field(default=None, pattern=r"^[0-9]+\.[0-9]+$")
    lxc_configs: dict[StrictStr, LxcGuest]
