"""`phoenix_vm_configs.json`: a VM as the original tool's VM inventory writes it, and the
file with its `vm_defaults` (applied to every entry, a VM's own key winning)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)

from phoenix.inventory.models.cluster import NodeName
from phoenix.inventory.models.fields import (
    Ctid,
    GuestPath,
    HostName,
    HostPath,
    IfName,
    IPv4,
    Mac,
    Model,
    Nameservers,
    NotAnOption,
    RecipeName,
    SnapshotName,
    StorageId,
)
from phoenix.inventory.models.network import FirewallConfig, NetworkConfig
from phoenix.inventory.models.parts import HealthCheck

# The keys `vm_defaults` may give: what the original tool's schema lists there, plus the
# per-VM sizes and placement a lab wants once (never identity: vmid, name, clone source).
DEFAULTABLE = (
    "template",
    "cores",
    "memory_mb",
    "disk_size_gb",
    "storage_pool",
    "network_bridge",
    "start_at_boot",
    "user_config",
)


class VmNetworkConfig(NetworkConfig):
    """A VM's NIC: the container NIC's rules for `ip` and `gw`, plus the nameserver; its
    bridge defaults to the VM's `network_bridge` (or `vm_defaults.network_bridge`)."""

    name: IfName = "eth0"
    bridge: IfName | None = None  # type: ignore[assignment]
    nameserver: Nameservers = Field(default=None, description="DNS server(s) for cloud-init")

    @property
    def nameservers(self) -> list[str]:
        if self.nameserver is None:
            return []
        return [self.nameserver] if isinstance(self.nameserver, str) else list(self.nameserver)


_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def _user_name(value: str) -> str:
    """useradd's portable names (cloud-init passes it on): lower case, digits, '_', '-'."""
    if not _USER_NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a user name (up to 32 of a-z 0-9 _ -, starting with a letter or _)"
        )
    return value


UserName = Annotated[StrictStr, AfterValidator(_user_name)]


class UserConfig(Model):
    """The login cloud-init creates: a user with sudo and these SSH keys."""

    username: UserName = Field(description="Login created by cloud-init (sudo, no password)")
    ssh_authorized_keys: list[StrictStr] = Field(
        default_factory=list, description="Public keys for the user (one line each)"
    )

    @model_validator(mode="after")
    def _one_line_keys(self) -> UserConfig:
        for key in self.ssh_authorized_keys:
            if not key.startswith(("ssh-", "ecdsa-", "sk-")):
                raise ValueError(f"{key[:40]!r} is not an SSH public key line (ssh-ed25519 ...)")
        return self


class VmVolume(Model):
    """A volume of a VM: an NFS export mounted in the guest (`type: nfs`, the newest
    format) or a disk of `size_gb` from `pool` (the older one)."""

    type: Literal["nfs", "disk"] = Field(
        default="disk", description="nfs (mounted in the VM); disk is refused when validating"
    )
    name: StrictStr = Field(min_length=1, description="Name of the volume")
    mount_point: GuestPath = Field(description="Where it is mounted in the VM")
    server: IPv4 | None = Field(default=None, description="nfs: the NFS server")
    path: HostPath | None = Field(default=None, description="nfs: the export's path")
    pool: StorageId | None = Field(default=None, description="disk: storage")
    size_gb: StrictInt | None = Field(
        default=None, ge=1, le=1_048_576, description="disk: size in GiB"
    )

    @model_validator(mode="after")
    def _complete(self) -> VmVolume:
        need = ("server", "path") if self.type == "nfs" else ("pool", "size_gb")
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"a {self.type} volume needs {' and '.join(map(repr, missing))}")
        return self


class DockerStack(Model):
    """A compose stack the docker feature brings up (`stacks/<name>/` in the config dir)."""

    name: RecipeName = Field(description="The stack's folder: stacks/<name>/ in the config dir")
    environment: StrictStr = Field(
        min_length=1, description="An environment of its phoenix.json, or configs/<env>.env"
    )


class LifecycleSnapshots(Model):
    """Snapshots taken around the features' first run; both spellings of the original."""

    pre_features: SnapshotName | None = Field(
        default=None, validation_alias=AliasChoices("pre_features", "pre-features")
    )
    post_features: SnapshotName | None = Field(
        default=None, validation_alias=AliasChoices("post_features", "post-features")
    )


class TraefikService(Model):
    """The original tool's reverse-proxy entry for the VM (informational here)."""

    name: StrictStr = Field(min_length=1)
    port: StrictInt = Field(ge=1, le=65535)


class DnsRecord(Model):
    """A DNS name the original tool published for the VM (informational here)."""

    hostname: HostName
    ip: IPv4


class VmGuest(Model):
    """One entry of `vms[]`, with `vm_defaults` already applied."""

    vmid: Ctid = Field(description="VM id; unique across containers and VMs")
    name: HostName = Field(description="Name and hostname of the VM")
    node: NodeName | None = Field(
        default=None,
        description="Proxmox cluster node the VM lives on (one of phoenix.nodes; default: "
        "phoenix.node)",
    )
    placement: Literal["node", "ha"] = Field(
        default="node",
        description="Who picks the node: 'node' (its `node`; a difference is a migration) "
        "or 'ha' (Proxmox HA, preferring `node`, among `ha_nodes`; Phoenix accepts HA's pick)",
    )
    ha_nodes: list[NodeName] | None = Field(
        default=None,
        description="With placement 'ha': the other nodes HA may run it on (absent: any)",
    )
    ha_strict: StrictBool = Field(
        default=False,
        description="With placement 'ha': never on another node than `node` and `ha_nodes`",
    )
    template: StrictStr | None = Field(
        default=None, min_length=1, description="Original tool's default template name (unused)"
    )
    is_template: StrictBool = Field(
        default=False, description="A read-only template others clone from"
    )
    template_image: NotAnOption | None = Field(
        default=None,
        min_length=1,
        description="Disk image to create from: a file in the config dir's images/, an "
        "absolute path or an https URL (with template_image_sha256); absent: Phoenix's "
        "Debian base image",
    )
    template_image_sha256: StrictStr | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="The image's sha256"
    )
    template_snapshot_name: SnapshotName | None = Field(
        default=None, description="Snapshot of the configured VM that clones are made from"
    )
    clone_from_vmid: Ctid | None = Field(default=None, description="Clone from this VM")
    full_clone: StrictBool = Field(
        default=False, description="Copy the source's disk instead of a linked clone"
    )
    cores: StrictInt = Field(default=1, ge=1, le=8192, description="vCPUs")
    memory_mb: StrictInt = Field(default=1024, ge=64, le=16_777_216, description="RAM in MiB")
    disk_size_gb: StrictInt = Field(
        default=8,
        ge=1,
        le=1_048_576,
        description="Root disk size in GiB (grow only; a template keeps its image's size)",
    )
    storage_pool: StorageId = Field(default="local", description="Proxmox storage for the disk")
    network_bridge: IfName | None = Field(default=None, description="Bridge of the NIC")
    network_config: VmNetworkConfig | None = Field(
        default=None, description="ip (CIDR or 'dhcp'), gw, nameserver, bridge"
    )
    mac_address: Mac = Field(default=None, description="MAC; absent: derived from the vmid")
    user_config: UserConfig | None = Field(
        default=None, description="username and ssh_authorized_keys for cloud-init"
    )
    start_at_boot: StrictBool = Field(default=False, description="Start when the host boots")
    boot_order: StrictInt = Field(default=0, ge=0, le=100_000, description="Start order")
    boot_delay: StrictInt = Field(
        default=0, ge=0, le=86_400, description="Seconds to wait after starting this VM"
    )
    features: list[RecipeName] = Field(
        default_factory=list, description="Recipes run inside the VM through its guest agent"
    )
    snapshots: LifecycleSnapshots = Field(
        default_factory=LifecycleSnapshots, description="pre_features, post_features"
    )
    count: StrictInt = Field(default=1, description="VMs from this entry (only 1)")
    qm_options: list[StrictStr] = Field(
        default_factory=list,
        description="Extra 'qm set' options, '--option value' each (Proxmox only; checked "
        "against its API schema)",
    )
    volumes: list[VmVolume] = Field(
        default_factory=list, description="NFS exports mounted in the VM"
    )
    docker_stacks: list[DockerStack] = Field(
        default_factory=list,
        description="Compose stacks deployed in the VM (needs feature docker)",
    )
    firewall: FirewallConfig = Field(default_factory=FirewallConfig, description="As containers")
    dependencies: list[Ctid] = Field(
        default_factory=list, description="Guests (LXC or VM) to create and start first"
    )
    health_check: HealthCheck | None = Field(
        default=None, description="command run through the guest agent, retries, interval"
    )
    portainer_role: Literal["primary", "server", "agent", "none"] = Field(
        default="none", description="Role in Portainer (informational)"
    )
    portainer_environment_name: StrictStr | None = Field(default=None, description="Informational")
    trigger_sync_on_completion: StrictBool = Field(default=False, description="Informational")
    traefik_service: TraefikService | None = Field(default=None, description="Informational")
    dns_records: list[DnsRecord] = Field(default_factory=list, description="Informational")

    @field_validator("count")
    @classmethod
    def _one_vm(cls, value: int) -> int:
        if value != 1:
            raise ValueError(
                f"count {value}: write one entry per VM (each needs its own vmid, name and IP)"
            )
        return value

    @property
    def bridge(self) -> str | None:
        """The NIC's bridge: network_config.bridge, else network_bridge (defaults applied)."""
        if self.network_config is not None and self.network_config.bridge:
            return self.network_config.bridge
        return self.network_bridge

    @property
    def mac(self) -> str:
        """The NIC's MAC: given, else derived from the vmid in QEMU's local range, so a VM
        keeps its address (and its DHCP lease and cloud-init match) across rebuilds."""
        if self.mac_address:
            return self.mac_address
        n = self.vmid
        return "52:54:00:" + ":".join(f"{(n >> s) & 0xFF:02X}" for s in (16, 8, 0))

    @property
    def is_clone_source(self) -> bool:
        return self.is_template or self.template_snapshot_name is not None


class VmDefaults(Model):
    """`vm_defaults`: keys every VM gets unless it sets its own."""

    template: StrictStr | None = Field(default=None, min_length=1)
    cores: StrictInt | None = Field(default=None, ge=1, le=8192)
    memory_mb: StrictInt | None = Field(default=None, ge=64, le=16_777_216)
    disk_size_gb: StrictInt | None = Field(default=None, ge=1, le=1_048_576)
    storage_pool: StorageId | None = None
    network_bridge: IfName | None = None
    start_at_boot: StrictBool | None = None
    user_config: UserConfig | None = None


class VmFile(Model):
    """`phoenix_vm_configs.json`, as exported for editors (`phoenix schema --file vm`);
    the loader validates `vm_defaults` and each entry on its own (with defaults applied)."""

    schema_: StrictStr | None = Field(default=None, alias="$schema")
    vm_defaults: VmDefaults = Field(default_factory=VmDefaults)
    vms: list[VmGuest] = Field(default_factory=list)


def with_defaults(entry: Any, defaults: dict[str, Any]) -> Any:
    """`entry` with the `vm_defaults` keys it does not set itself."""
    if not isinstance(entry, dict):
        return entry
    return {**{k: v for k, v in defaults.items() if k in DEFAULTABLE}, **entry}
