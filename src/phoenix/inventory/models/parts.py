"""The blocks a container is built from, each its own object in the guest's entry: the
health check, volumes and bind mounts, id map ranges, the vLLM engine config."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from phoenix.digits import is_digits
from phoenix.inventory.models.fields import (
    CommandWords,
    GuestPath,
    HostPath,
    Model,
    ModelName,
    StorageId,
)


class HealthCheck(Model):
    """A command run inside the guest (split like a shell would, but never run by one)."""

    command: CommandWords = Field(min_length=1)
    retries: StrictInt = Field(default=3, ge=1, le=1000)
    interval: StrictInt = Field(default=5, ge=0, le=3600)


class Volume(Model):
    """A dedicated storage volume mounted into the guest (Proxmox `mpN`)."""

    name: StrictStr = Field(min_length=1)
    pool: StorageId  # Proxmox `mpN: POOL:SIZE`: a storage id, never more options
    size_gb: StrictInt = Field(ge=1, le=1_048_576)
    mount_point: GuestPath


class MountPoint(Model):
    """A host path bind-mounted into the guest (Proxmox `mpN: HOST,mp=CONTAINER`), written
    as the original tool did (`container_path`); `guest_path` is accepted too."""

    host_path: HostPath
    container_path: GuestPath = Field(validation_alias=AliasChoices("container_path", "guest_path"))
    read_only: StrictBool = False
    owner_uid: StrictInt | None = Field(default=None, ge=0, le=4_294_967_294)
    owner_gid: StrictInt | None = Field(default=None, ge=0, le=4_294_967_294)


def _idmap_from_string(value: Any) -> Any:
    """`"u 0 100000 65536"` (an `lxc.idmap` value) is accepted as well as the object form."""
    if isinstance(value, str):
        parts = value.split()
        if len(parts) == 4 and all(is_digits(p) for p in parts[1:]):
            return {"type": parts[0], "container_id": int(parts[1]),
                    "host_id": int(parts[2]), "count": int(parts[3])}  # fmt: skip
        raise ValueError("write 'u|g|b CONTAINER_ID HOST_ID COUNT' or an object")
    return value


class IdMap(Model):
    """One id range of an unprivileged guest (`lxc.idmap`): `count` ids from `container_id`
    inside the guest are host ids from `host_id`; `b` maps uids and gids alike.

    Written as the original tool did (`"type": "uid"|"gid"`, `size`), an entry is a
    pass-through: that range is excepted from the default map (guest 0..65535 -> host
    100000..) and the rest of the guest's ids keep it."""

    type: Literal["u", "g", "b", "uid", "gid"] = Field(
        validation_alias=AliasChoices("type", "kind")
    )
    container_id: StrictInt = Field(
        ge=0,
        le=4_294_967_294,
        validation_alias=AliasChoices("container_id", "container_start", "guest_id"),
    )
    host_id: StrictInt = Field(
        ge=0, le=4_294_967_294, validation_alias=AliasChoices("host_id", "host_start")
    )
    count: StrictInt = Field(
        ge=1, le=4_294_967_295, validation_alias=AliasChoices("count", "range", "size")
    )

    @property
    def passthrough(self) -> bool:
        """The original tool's form: an exception composed with the default map."""
        return self.type in ("uid", "gid")

    @property
    def kinds(self) -> tuple[Literal["u", "g"], ...]:
        """The `lxc.idmap` kinds this entry maps (`b` is both)."""
        if self.type == "b":
            return ("u", "g")
        return ("u",) if self.type in ("u", "uid") else ("g",)


IdMapEntry = Annotated[IdMap, BeforeValidator(_idmap_from_string)]


class VllmServerConfig(Model):
    host: StrictStr = "0.0.0.0"
    port: StrictInt = Field(default=8000, ge=1, le=65535)
    served_model_name: ModelName | None = None


class VllmEngineConfig(Model):
    """vLLM's engine arguments grouped as the original tool wrote them; only ServerConfig
    matters to Phoenix (it says which model is served where). Other keys pass through."""

    ModelConfig: dict[str, Any] = Field(default_factory=dict)
    CacheConfig: dict[str, Any] = Field(default_factory=dict)
    ParallelConfig: dict[str, Any] = Field(default_factory=dict)
    ServerConfig: VllmServerConfig = Field(default_factory=VllmServerConfig)

    # vLLM has hundreds of engine options: extras here are not worth a warning.
    model_config = ConfigDict(extra="allow")
