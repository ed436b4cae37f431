"""`phoenix_hypervisor_config.json`: the host's settings and Phoenix's own `phoenix` block."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictInt, StrictStr, model_validator

from phoenix.inventory.models.cluster import (
    ClusterNode,
    NodeName,
    cluster_problem,
    default_node,
)
from phoenix.inventory.models.fields import (
    HostName,
    IfName,
    Model,
    Nameservers,
    SshHost,
    StorageId,
)
from phoenix.inventory.models.workdirs import WorkDir, overlapping
from phoenix.names import DriverName


class HostInterface(Model):
    name: IfName | None = None
    address: StrictStr | None = None
    gateway: StrictStr | None = None
    # A string in some of the original tool's versions, a list in others (its jq read both).
    dns_nameservers: Nameservers = None


class HostNetwork(Model):
    interfaces: HostInterface | None = None
    default_subnet: StrictStr | None = None
    external_registry_url: Any = None
    portainer_server_ip: Any = None
    portainer_server_port: Any = None
    portainer_agent_port: Any = None
    nfs_server: Any = None


class DriverSettings(Model):
    """Additive `phoenix` block of the hypervisor config: which driver and where."""

    driver: DriverName = "lxc"
    lxc_path: WorkDir = "/var/lib/phoenix/lxc"
    state_dir: WorkDir = "/var/lib/phoenix/state"
    template_cache: WorkDir = "/var/cache/phoenix/templates"
    vm_path: WorkDir = Field(
        default="/var/lib/phoenix/vms", description="lxc driver: where local VMs live"
    )
    vm_image_cache: WorkDir = Field(
        default="/var/cache/phoenix/vm-images",
        description="lxc driver: the VM base image built from Debian packages",
    )
    node: HostName | None = Field(default=None, description="Proxmox node name")
    ssh_host: SshHost | None = Field(
        default=None, description="host or user@host of the node (SSH)"
    )
    nodes: dict[NodeName, ClusterNode] = Field(
        default_factory=dict,
        description="Proxmox cluster: each node by name and how to reach it (absent: one "
        "node, `node`/`ssh_host`); guests name theirs with `node`",
    )
    shared_storages: list[StorageId] | None = Field(
        default=None,
        description="Storages every node of the cluster sees (Proxmox `shared 1`): a clone "
        "onto another node than its source's needs one (checked by validate when given)",
    )
    parallel: StrictInt = Field(default=4, ge=1, le=64)
    lxc_clone: Literal["linked", "full"] = Field(
        default="linked",
        description="lxc driver: `linked` clones are overlays on the source's snapshot "
        "(instant; the snapshot then cannot be deleted while they exist), `full` copies",
    )

    @model_validator(mode="after")
    def _own_folders(self) -> DriverSettings:
        dirs = {"lxc_path": self.lxc_path, "state_dir": self.state_dir}
        dirs["template_cache"] = self.template_cache
        dirs["vm_path"] = self.vm_path
        dirs["vm_image_cache"] = self.vm_image_cache
        why = overlapping(dirs) or cluster_problem(self.nodes, self.node, self.ssh_host)
        if why:
            raise ValueError(why)
        return self

    @property
    def is_cluster(self) -> bool:
        return bool(self.nodes)

    @property
    def default_node(self) -> str | None:
        """The node of a guest that names none (see `cluster.default_node`); without
        `nodes`, `node` (None: the node the runner reaches, as `localhost`)."""
        return default_node(self.nodes, self.node) if self.nodes else self.node

    def node_of(self, guest_node: str | None) -> str | None:
        """The node a guest lives on: its own `node`, else the default."""
        return guest_node or self.default_node


class HypervisorConfig(Model):
    """`phoenix_hypervisor_config.json`: what Phoenix uses of it is modelled; the rest of the
    original tool's host settings (ZFS, NFS, Samba, users…) are accepted as they are."""

    version: StrictStr | None = None
    timezone: StrictStr = "UTC"
    network: HostNetwork = Field(default_factory=HostNetwork)
    proxmox_storage_ids: dict[str, StrictStr] = Field(default_factory=dict)
    phoenix: DriverSettings = Field(default_factory=DriverSettings)

    author: Any = None
    users: Any = None
    core_paths: dict[str, Any] = Field(default_factory=dict)
    docker: Any = None
    nfs: Any = None
    samba: Any = None
    zfs: Any = None
    mount_point_base: Any = None
    proxmox_defaults: Any = None
    tests: Any = None
    nvidia_driver: Any = None
    behavior: Any = None
    shared_volumes: Any = None
    schema_: StrictStr | None = Field(default=None, alias="$schema")
