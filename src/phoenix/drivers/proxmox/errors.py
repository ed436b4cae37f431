"""Turning a failed `pct`/`pvesh` run into a CommandFailed an operator can act on.

pct and pvesh die with one-line Perl messages (`CT 101 is locked (backup)`,
`container '101' not running!`, `storage 'x' does not exist`, `CT 101 already exists on node
'pve'`). They exit 255 for all of them, so the message text is what tells them apart. Every
message produced here names the guest, the command and what to do next.
"""

from __future__ import annotations

import re

from phoenix.drivers.proxmox import files
from phoenix.errors import CommandFailed
from phoenix.runners.base import CommandResult

_MISSING_CONFIG = re.compile(
    r"Configuration file '[^']*/(lxc|qemu-server)/[0-9]+\.conf' does not exist"
)

_RULES: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"\bis locked \((?P<lock>[\w-]+)\)"),
        "guest {ctid} is locked ({lock}) by another task on the node. Wait for that task to "
        "finish; if it crashed, check `pct config {ctid}` and run `pct unlock {ctid}`",
    ),
    (
        re.compile(r"can't lock file '(?P<file>[^']+)' - got timeout"),
        "guest {ctid}'s config lock is held by another task ({file}); retry when it is done",
    ),
    (
        re.compile(r"(container '?[0-9]+'? not running|CT [0-9]+ not running|is not running)"),
        "guest {ctid} is not running and the command needs it running; start it first "
        "(`phoenix start {ctid}`)",
    ),
    (
        re.compile(r"storage '(?P<storage>[^']+)' does not exist"),
        "storage '{storage}' does not exist on the node. Fix storage_pool of guest {ctid} or "
        "add the storage (`pvesm status` lists the node's storages; `phoenix doctor` checks "
        "them)",
    ),
    (
        re.compile(r"(CT|VM) (?P<other>[0-9]+) already exists"),
        "guest {other} already exists in the cluster (pct refuses to overwrite it): on "
        "another node it is not Phoenix's to remove (`pvesh get /cluster/resources` shows "
        "where it is; migrate it back or renumber the guest); on this node, remove it with "
        "`phoenix delete {other}` or rebuild it with `phoenix converge --recreate`",
    ),
    (
        re.compile(
            r"volume '(?P<volume>[^']+)' does not exist|"
            r"(?P<path>/\S+): No such file or directory"
        ),
        "a file or volume the command needs is missing ({volume}{path}); for a template, "
        "download it first (`pveam download <storage> <template>`) or fix `template` of "
        "guest {ctid}",
    ),
    (
        re.compile(r"unable to shrink disk size"),
        "guest {ctid}'s disk cannot shrink: Proxmox only grows volumes. Recreate the guest "
        "(--recreate) to get a smaller disk",
    ),
    (
        re.compile(
            r"snapshot '(?P<snap>[^']+)' does not exist|no such snapshot '(?P<snap2>[^']+)'"
        ),
        "guest {ctid} has no snapshot '{snap}{snap2}'; it is created when the source guest is "
        "converged (`phoenix converge` of the source first)",
    ),
    (
        re.compile(r"used in HA resources|used by replication job|replication job"),
        "guest {ctid} is HA-managed or replicated, and pct destroy refuses such a guest "
        "without --purge (it does not keep it in those jobs). `phoenix delete {ctid} "
        "--force` takes it out of HA first (`ha-manager remove ct:{ctid}`); a replication "
        "job is the administrator's to remove (`pvesr list`, `pvesr delete <job>`)",
    ),
    (
        re.compile(r"snapshot feature is not available"),
        "guest {ctid} cannot be snapshotted: Proxmox needs every mount point (the root disk "
        "and each mpN) on storage that snapshots (ZFS, LVM-thin, Ceph RBD or BTRFS; not dir, "
        "NFS, CIFS or LVM), and a host-path bind mount never can. Move the disks "
        "(storage_pool, the volume's pool), replace bind mounts by volumes, or leave "
        "template_snapshot_name and enable_lifecycle_snapshots out (`phoenix validate` and "
        "`phoenix doctor` check this)",
    ),
    (
        re.compile(r"unable to clone mountpoint '(?P<mp>mp[0-9]+)' \(type (?P<kind>\w+)\)"),
        "guest {ctid}'s clone source has a {kind} mount ({mp}), which Proxmox cannot clone: "
        "replace it by a volume on the source, or create the guest from a template instead",
    ),
    (
        re.compile(r"protection mode enabled"),
        "guest {ctid} has Proxmox's protection enabled (`protection: 1`): Proxmox refuses to "
        "destroy it or remove its disks. If you mean to delete it, `phoenix delete {ctid} "
        "--force` clears it first (`pct set {ctid} --protection 0`)",
    ),
    (
        re.compile(r"snapshot name '(?P<snap>[^']+)' already used"),
        "guest {ctid} already has a snapshot '{snap}'",
    ),
    (
        re.compile(r"command not found|No such file or directory.*(pct|pvesh)"),
        "pct/pvesh are not available where the command ran: this is not a Proxmox VE node "
        "(`phoenix doctor` checks it; use --driver lxc elsewhere)",
    ),
]


def is_missing_guest(result: CommandResult) -> bool:
    """pvesh's answer for a guest that does not exist (its config file is missing)."""
    return not result.ok and bool(_MISSING_CONFIG.search(result.stderr + result.stdout))


def explain(ctid: int, result: CommandResult) -> CommandFailed:
    """The one error for a failed command (as the LXC driver raises): CommandFailed with the
    argv (the writer program shown by name), exit code and output, and as its context what
    happened to which guest and what to do."""
    text = (result.stderr or result.stdout).strip()
    if _MISSING_CONFIG.search(text):
        message = f"guest {ctid} does not exist on the node"
    else:
        message = ""
        for pattern, template in _RULES:
            match = pattern.search(text)
            if match:
                values = {k: (v or "") for k, v in match.groupdict().items()}
                message = template.format(ctid=ctid, **values)
                break
        if not message:
            message = f"guest {ctid}: the command failed"
    return CommandFailed(
        files.display(result.argv), result.returncode, result.stdout, result.stderr, message
    )


def check(ctid: int, result: CommandResult) -> CommandResult:
    """Return the result if it succeeded, else raise the explained CommandFailed."""
    if not result.ok:
        raise explain(ctid, result)
    return result
