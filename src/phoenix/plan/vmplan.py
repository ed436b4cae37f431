"""A VM's steps, planned in the same graph as the containers (a guest of either kind may
need one of the other; boot order spans both). Per VM:

    destroy (a create the previous run left half-done, or --recreate)
    create from the base image or `template_image` | clone (linked from a template, a
        copy of a VM at its `template_snapshot_name`)
    configure                 cores, memory, NIC, cloud-init login, firewall
    resize                    grow the disk (a template keeps its image's size)
    start                     until the guest agent answers and cloud-init is done
    snapshot pre_features     when recipes will run
    feature <name>...         through the guest agent, as in containers
    volumes                   NFS mounts inside the VM (recipes.vmvolumes)
    stack <name>...           docker_stacks brought up with compose (recipes.stacks)
    health check
    snapshot post_features / <template_snapshot_name>
    mark template             `is_template`: cloud-init cleaned, shut down, read-only

Features that need what a VM lacks (a GPU handed to a container) are refused here, when
planning, never half-way through a run.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from phoenix.drivers.base import ClusterPlacement, GuestSettings, ObservedGuest
from phoenix.errors import PlanError
from phoenix.inventory.models import VmGuest
from phoenix.plan.desired import vm_settings
from phoenix.plan.model import (
    Change,
    CheckHealth,
    Clone,
    Configure,
    Create,
    Feature,
    GuestPlan,
    MarkTemplate,
    Resize,
    Snapshot,
    Start,
    Step,
    Unrunnable,
)
from phoenix.plan.placement import ha_steps, ha_wanted, placement_steps
from phoenix.recipes.bundle import Bundle
from phoenix.recipes.runner import is_applied, read_markers
from phoenix.recipes.stacks import stack_bundle
from phoenix.recipes.vmvolumes import volumes_bundle

if TYPE_CHECKING:
    from phoenix.plan.planner import Planner

# Built-in features that need what only a container on this host gets (a GPU's device
# nodes bound in); a VM would need the GPU passed through (`hostpci`) first.
CONTAINER_ONLY = {
    "nvidia": "installs the NVIDIA driver for a GPU bound into a container",
    "vllm": "needs the nvidia feature's GPU",
    "ollama": "is set up for a container's GPU",
}
# What a feature's bundle sees of a VM: what the software inside uses. Placement (name,
# address, sizes) stays out, so a clone inherits its template's markers; volumes and stacks
# are bundles of their own (a changed stack re-deploys the stack, not docker).
IN_GUEST_KEYS = ("features",)
BASE_IMAGE = ""


def vm_label(vmid: int, vm: VmGuest) -> str:
    return f"VM {vmid} ({vm.name})"


def vm_entry(vm: VmGuest) -> dict[str, Any]:
    entry = vm.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return {k: v for k, v in entry.items() if k in IN_GUEST_KEYS}


def refuse_container_features(vmid: int, vm: VmGuest) -> None:
    refused = [f"{f!r} {CONTAINER_ONLY[f]}" for f in vm.features if f in CONTAINER_ONLY]
    if refused:
        raise PlanError(
            f"{vm_label(vmid, vm)}: feature {'; '.join(refused)}: VMs run base_setup, "
            "trusted_ca, docker and your own feature scripts"
        )


def vm_bundles(planner: Planner, vm: VmGuest) -> list[tuple[str, Bundle | None, str | None]]:
    """(label, bundle, error) for every recipe of the VM, in order: its features, its NFS
    volumes, its docker stacks (which may keep their data on those volumes)."""
    out = planner.feature_bundles(vm.features, vm_entry(vm))
    volumes = volumes_bundle(vm.volumes)
    if volumes is not None:
        where = ", ".join(v.mount_point for v in vm.volumes)
        out.append((f"volumes {where}", volumes, None))
    for stack in vm.docker_stacks:
        bundle, why = stack_bundle(planner.inventory.config_dir, stack)
        out.append((f"stack {stack.name} ({stack.environment})", bundle, why))
    return out


def _make_step(planner: Planner, vmid: int, vm: VmGuest, desired: GuestSettings) -> Step:
    src = vm.clone_from_vmid
    if src is None and vm.template_image is None and planner.driver.name == "proxmox":
        return Unrunnable(
            vmid,
            "create from Phoenix's Debian base image",
            "create",
            "on Proxmox a VM is made from a cloud image on the node: set template_image "
            "(an absolute path on the node, or a volume id such as "
            "'local:import/debian-12-genericcloud-amd64.qcow2')",
        )
    if src is None:
        image = _image(planner, vm.template_image)
        shown = vm.template_image or "Phoenix's Debian base image"
        return Create(vmid, f"create from {shown}", image, desired)
    source = planner.inventory.vms.get(src)
    if source is None:
        raise PlanError(f"{vm_label(vmid, vm)}: clone source {src} is not a VM")
    if source.is_template:
        how = "full clone" if vm.full_clone else "linked clone"
        return Clone(vmid, f"{how} of template {src}", src, None, desired)
    snap = source.template_snapshot_name
    if snap is None:
        raise PlanError(
            f"{vm_label(vmid, vm)}: clone source {src} has no template_snapshot_name "
            "and is not a template"
        )
    return Clone(vmid, f"copy of {src} at snapshot {snap}", src, snap, desired)


def _image(planner: Planner, name: str | None) -> str:
    """The image a VM is created from: "" for the base image, a URL as written, a file
    named alone from the config dir's `images/`."""
    if name is None:
        return BASE_IMAGE
    if "://" in name or name.startswith("/"):
        return name
    return str(planner.inventory.config_dir / "images" / name)


def _settings_steps(
    vmid: int,
    vm: VmGuest,
    desired: GuestSettings,
    observed: GuestSettings,
    diff: dict[str, tuple[object, object]],
) -> list[Step]:
    steps: list[Step] = []
    changes = tuple(
        Change(name, old, new)
        for name, (old, new) in diff.items()
        if name not in ("disk_gb", "storage", "unprivileged")
    )
    if changes:
        detail = "configure " + "; ".join(c.describe() for c in changes)
        steps.append(Configure(vmid, detail, changes, desired))
    if "disk_gb" in diff:
        old_gb, new_gb = observed.disk_gb, desired.disk_gb
        if new_gb < old_gb:
            raise PlanError(
                f"{vm_label(vmid, vm)}: disk_size_gb {old_gb} -> {new_gb} would shrink the "
                f"disk; Phoenix only grows disks (set it back to at least {old_gb})"
            )
        change = Change("disk_gb", old_gb, new_gb)
        steps.append(Resize(vmid, f"resize disk {old_gb} -> {new_gb} GB", new_gb, (change,)))
    return steps


def plan_vm(planner: Planner, vmid: int, needs: tuple[int, ...] = ()) -> GuestPlan:
    vm = planner.inventory.vms[vmid]
    refuse_container_features(vmid, vm)
    desired = vm_settings(vm)
    if planner.driver.name != "proxmox":
        desired = replace(desired, qm_options=())  # Proxmox only: the CLI says so
    wanted = planner.placement.get(vmid)
    ha = ha_wanted(planner.inventory, vmid)  # HA's node is accepted: no placement to keep
    if isinstance(planner.driver, ClusterPlacement):
        why = planner.driver.held(vmid, wanted)
        if why is not None:
            state = planner.driver.observe(vmid).state
            return GuestPlan(
                vmid, vm.name, state, (), vm.boot_order, needs, kind="vm", node=wanted, held=why
            )
    observed = planner.driver.observe(vmid)
    diff = desired.diff(observed.settings) if observed.settings is not None else {}
    if vm.is_template or (observed.settings is not None and desired.disk_gb == 0):
        diff.pop("disk_gb", None)  # a template keeps its image's size
    kept = None if ha is not None else wanted
    steps, drift = placement_steps(planner.driver, vmid, kept, observed, planner.options.migrate)
    fresh = planner.rebuild_steps(vmid, vm.name, observed, diff, steps)
    if fresh:
        make = _make_step(planner, vmid, vm, desired)
        if observed.leftover:
            make = replace(make, detail=f"{make.detail} (after removing {observed.leftover})")
        steps.append(make)
    else:
        assert observed.settings is not None
        steps += _settings_steps(vmid, vm, desired, observed.settings, diff)
    if vmid not in planner.options.create_only and not (observed.is_template and not fresh):
        steps += _run_steps(planner, vmid, vm, observed, fresh)
    steps += ha_steps(planner.driver, vmid, ha)
    node = observed.node or wanted
    return GuestPlan(
        vmid,
        vm.name,
        observed.state,
        tuple(steps),
        vm.boot_order,
        needs,
        kind="vm",
        node=node,
        drift=drift,
        placed_by_ha=ha is not None,
    )


def _run_steps(
    planner: Planner, vmid: int, vm: VmGuest, observed: ObservedGuest, fresh: bool
) -> list[Step]:
    running = observed.running and not fresh
    if vm.is_template and not vm.features and vm.health_check is None and not running:
        # nothing to run inside: the image becomes the template without a boot
        return [] if observed.is_template else [MarkTemplate(vmid, "mark as template")]
    snapshots = set() if fresh else set(observed.snapshots)
    markers = read_markers(planner.driver, vmid) if running else None
    steps: list[Step] = []
    if not running:
        steps.append(Start(vmid, "start (until the guest agent answers and cloud-init is done)"))
    recipes: list[Step] = []
    for label, bundle, why in vm_bundles(planner, vm):
        if bundle is not None and markers is not None and is_applied(markers, bundle):
            continue
        if bundle is None or why is not None:
            recipes.append(Unrunnable(vmid, label, "feature", why or "no bundle"))
            continue
        recipes.append(Feature(vmid, label, bundle, conditional=markers is None))
    unhealthy = None
    if running and not recipes and vm.health_check is not None:
        unhealthy = planner.probe(vmid, vm.health_check)
    pre, post = vm.snapshots.pre_features, vm.snapshots.post_features
    wanted = [] if vm.is_template else [s for s in (post, vm.template_snapshot_name) if s]
    if pre and not vm.is_template and recipes and pre not in snapshots:
        steps.append(Snapshot(vmid, f"snapshot {pre}", pre))
        snapshots.add(pre)
    steps += recipes
    check = vm.health_check
    if check is not None and (steps or fresh or unhealthy is not None):
        why = f" (it failed: {unhealthy})" if unhealthy else ""
        steps.append(CheckHealth(vmid, f"health check: {check.command}{why}", check))
    for name in wanted:
        if name not in snapshots:
            steps.append(Snapshot(vmid, f"snapshot {name}", name))
            snapshots.add(name)
    if vm.is_template and not observed.is_template:
        steps.append(MarkTemplate(vmid, "mark as template (cloud-init cleaned, shut down)"))
    return steps
