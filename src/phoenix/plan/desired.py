"""Desired state: an inventory entry turned into the `GuestSettings` a driver applies.

This is the only place that knows how inventory keys map to guest settings, so the planner
and every driver agree on what "converged" means.
"""

from __future__ import annotations

from dataclasses import replace

from phoenix.drivers.base import (
    FirewallRule,
    GuestSettings,
    MountSettings,
    NetSettings,
    VmConfig,
)
from phoenix.inventory.idcompose import compose
from phoenix.inventory.loader import Inventory
from phoenix.inventory.models import GatewayConfig, LxcGuest, VmGuest
from phoenix.inventory.qm_schema import parse_qm_options


def guest_settings(guest: LxcGuest) -> GuestSettings:
    """Normalised settings of one inventory entry (AppArmor: `apparmor_profile` wins over a
    raw `lxc.apparmor.profile`, as `phoenix validate` warns)."""
    net = None
    if guest.network_config is not None:
        nc = guest.network_config
        net = NetSettings(nc.name, nc.bridge, nc.ip, nc.gw, guest.mac_address)
    pairs = guest.lxc_option_pairs
    raw_profiles = [v for k, v in pairs if k == "lxc.apparmor.profile"]
    apparmor = guest.apparmor_profile or (raw_profiles[-1] if raw_profiles else None)
    # Inventory order, repeats kept (lxc.idmap, lxc.mount.entry...), exact duplicates dropped.
    raw = tuple(
        dict.fromkeys(idmap_lines(guest) + [p for p in pairs if p[0] != "lxc.apparmor.profile"])
    )
    rules = tuple(
        FirewallRule(r.type, r.action, r.source, r.dest, r.proto, r.port, r.comment)
        for r in guest.firewall.rules
    )
    rules += _gateway_openings(guest)
    return GuestSettings(
        hostname=guest.name,
        memory_mb=guest.memory_mb,
        swap_mb=guest.swap_mb,
        cores=guest.cores,
        disk_gb=guest.storage_size_gb,
        storage=guest.storage_pool,
        unprivileged=guest.unprivileged,
        net=net,
        features=tuple(sorted(guest.pct_features.items())),
        raw_lxc=raw,
        apparmor_profile=apparmor,
        onboot=guest.start_at_boot,
        boot_order=guest.boot_order,
        boot_delay=guest.boot_delay,
        firewall_enabled=guest.firewall.enabled,
        firewall_rules=rules if guest.firewall.enabled else (),
        mounts=guest_mounts(guest),
        gpus=tuple(sorted(set(guest.gpus))),
    )


def idmap_lines(guest: LxcGuest) -> list[tuple[str, str]]:
    """The inventory's `id_maps` as `lxc.idmap` raw lines: a whole map as written (`b` as a
    `u` and a `g` line: LXC and Proxmox read only those), pass-throughs composed with the
    default map; the drivers read the map back from them."""
    return [("lxc.idmap", r.line) for r in compose(guest.id_maps)]


def guest_mounts(guest: LxcGuest) -> tuple[MountSettings, ...]:
    """Bind mounts and volumes (`zfs_volumes` and `volumes` alike), sorted by target; the
    loader refuses two mounts on one target, so the target identifies a mount."""
    mounts = [
        MountSettings(
            target=_target(m.container_path),
            host_path=m.host_path,
            read_only=m.read_only,
            owner_uid=m.owner_uid,
            owner_gid=m.owner_gid,
        )
        for m in guest.mount_points
    ]
    mounts += [
        MountSettings(target=_target(v.mount_point), pool=v.pool, size_gb=v.size_gb, name=v.name)
        for v in [*guest.zfs_volumes, *guest.volumes]
    ]
    return tuple(sorted(mounts, key=lambda m: m.target))


def _gateway_openings(guest: LxcGuest) -> tuple[FirewallRule, ...]:
    """A gateway exists to be reached: with its firewall on, its HTTP(S) ports are open to
    all (the seed's 101 enables the firewall with no rules, which would close it)."""
    if not guest.runs_gateway:
        return ()
    config = guest.gateway or GatewayConfig()
    ports = [config.http_port] + (
        [config.https_port] if config.tls or any(h.tls for h in config.host_routes) else []
    )
    port = ",".join(str(p) for p in dict.fromkeys(ports))
    return (FirewallRule("in", "ACCEPT", proto="tcp", port=port),)


def vm_settings(vm: VmGuest) -> GuestSettings:
    """A VM's settings: its NIC with the MAC derived from the vmid (never churns), the
    cloud-init login and resolvers in `vm`. A template's `disk_gb` is 0: it keeps its
    image's size (its clones grow from it)."""
    net = None
    if vm.network_config is not None and vm.bridge is not None:
        nc = vm.network_config
        net = NetSettings(nc.name, vm.bridge, nc.ip, nc.gw, vm.mac)
    user = vm.user_config
    config = VmConfig(
        username=user.username if user else None,
        ssh_keys=tuple(user.ssh_authorized_keys) if user else (),
        nameservers=tuple(vm.network_config.nameservers) if vm.network_config else (),
        full_clone=vm.full_clone,
    )
    rules = tuple(
        FirewallRule(r.type, r.action, r.source, r.dest, r.proto, r.port, r.comment)
        for r in vm.firewall.rules
    )
    return GuestSettings(
        hostname=vm.name,
        memory_mb=vm.memory_mb,
        swap_mb=0,
        cores=vm.cores,
        disk_gb=0 if vm.is_template else vm.disk_size_gb,
        storage=vm.storage_pool,
        unprivileged=False,
        net=net,
        onboot=vm.start_at_boot,
        boot_order=vm.boot_order,
        boot_delay=vm.boot_delay,
        firewall_enabled=vm.firewall.enabled,
        firewall_rules=rules if vm.firewall.enabled else (),
        vm=config,
        qm_options=_qm_options(vm.qm_options),
    )


def _qm_options(texts: list[str]) -> tuple[tuple[str, str], ...]:
    """The `--option value` pairs of `qm_options` (validation refuses what does not parse),
    the last of an option repeated winning, as `qm set` does."""
    pairs: dict[str, str] = {}
    for text in texts:
        try:
            pairs.update(parse_qm_options(text))
        except ValueError:
            continue
    return tuple(pairs.items())


def desired_settings(inventory: Inventory, ctid: int) -> GuestSettings:
    """The guest's settings in its inventory: a clone's disk is at least its source's."""
    if ctid in inventory.vms:
        return vm_settings(inventory.vms[ctid])
    settings = guest_settings(inventory.guests[ctid])
    disk_gb = inventory.root_disk_gb(ctid)
    return settings if disk_gb == settings.disk_gb else replace(settings, disk_gb=disk_gb)


def _target(path: str) -> str:
    return path.rstrip("/") or "/"
