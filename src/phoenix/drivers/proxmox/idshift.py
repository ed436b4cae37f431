"""A guest's files owned through its own id map from the first boot, on Proxmox.

`pct create` unpacks the template under the map the new config has, and a config made by
`pct create` cannot carry raw `lxc.idmap` keys (pve-container `src/PVE/LXC/Create.pm`,
`restore_archive`: `parse_id_maps($conf)`, then `lxc-usernsexec` with it): every guest is
unpacked under the default map (guest 0..65535 -> host 100000..165535). Phoenix writes the
guest's `lxc.idmap` lines right after, so for any other map the guest's files would be
owned by ids its map does not give them (a root that is not its root, `nobody` files).
pve-container has no shift of its own, so before the guest first starts Phoenix re-owns
its root disk on the node: `pct mount`, a fixed program over the mounted tree, `pct
unmount`. A clone is re-owned the same way from its source's map to its own.

The program re-owns every inode of the root disk (one file system, hard links once) from
the old map to the new, id by id: host id -> guest id through the old map -> host id
through the new one (an id the old map lacks becomes the guest's nobody, 65534, as the
kernel shows it). chown clears setuid/setgid bits and file capabilities, so the mode is
set again and a `security.capability` is written back, its v3 root id (the host uid of the
namespace root it was made for) moved to the new map's root. POSIX ACL entries keep the
ids they had. Nothing from the inventory is part of a shell string: the program text is
constant, the path and the maps are argv elements of digits and colons.

A crash between `pct mount` and `pct unmount` leaves `lock: mounted`; the run journal
marks the create unfinished, so the next run destroys the half-made guest (`unmount_cmd`
first) and makes it again from the template.
"""

from __future__ import annotations

from phoenix.drivers import idmaps
from phoenix.drivers.idmaps import IdRange
from phoenix.errors import DriverError

SHIFTER_NAME = "phoenix-reown"
MOUNT_LOCK = "mounted"  # the lock `pct mount` holds until `pct unmount`

SHIFTER = (
    "import os,stat,struct,sys\n"
    "root,src,dst=sys.argv[1:4]\n"
    "def parse(t):\n"
    " return [(k,int(g),int(h),int(n)) for k,g,h,n in (x.split(':') for x in t.split(','))]\n"
    "S,D=parse(src),parse(dst)\n"
    "def look(m,k,i,a,b):\n"
    " for r in m:\n"
    "  if r[0]==k and r[a]<=i<r[a]+r[3]:\n"
    "   return r[b]+i-r[a]\n"
    "def move(k,i):\n"
    " g=look(S,k,i,2,1)\n"
    " h=look(D,k,65534 if g is None else g,1,2)\n"
    " if h is None:\n"
    "  sys.exit('the new id map has no host id for guest %sid %s' % (k,g))\n"
    " return h\n"
    "CAP='security.capability'\n"
    "seen=set()\n"
    "def one(p):\n"
    " st=os.lstat(p)\n"
    " if st.st_nlink>1 and not stat.S_ISDIR(st.st_mode):\n"
    "  if (st.st_dev,st.st_ino) in seen:\n"
    "   return\n"
    "  seen.add((st.st_dev,st.st_ino))\n"
    " u,g=move('u',st.st_uid),move('g',st.st_gid)\n"
    " link=stat.S_ISLNK(st.st_mode)\n"
    " cap=None\n"
    " if not link:\n"
    "  try:\n"
    "   cap=os.getxattr(p,CAP,follow_symlinks=False)\n"
    "  except OSError:\n"
    "   pass\n"
    " if (u,g)==(st.st_uid,st.st_gid):\n"
    "  return\n"
    " os.lchown(p,u,g)\n"
    " if link:\n"
    "  return\n"
    " os.chmod(p,stat.S_IMODE(st.st_mode))\n"
    " if cap:\n"
    "  if len(cap)==24 and cap[3]==3:\n"
    "   cap=cap[:20]+struct.pack('<I',move('u',struct.unpack('<I',cap[20:])[0]))\n"
    "  os.setxattr(p,CAP,cap,follow_symlinks=False)\n"
    "dev=os.lstat(root).st_dev\n"
    "one(root)\n"
    "for d,ds,fs in os.walk(root):\n"
    " ds[:]=[x for x in ds if os.lstat(os.path.join(d,x)).st_dev==dev]\n"
    " for x in ds+fs:\n"
    "  one(os.path.join(d,x))\n"
)


def rootfs_path(ctid: int) -> str:
    """Where `pct mount` mounts a guest's file systems (pve-container `src/PVE/LXC.pm`,
    `mount_all`)."""
    return f"/var/lib/lxc/{ctid}/rootfs"


def _plain(ranges: tuple[IdRange, ...]) -> bool:
    """Whether the map gives every guest id 0..65535 the host id the default map does."""
    mapped = idmaps.effective(ranges)
    for kind in ("u", "g"):
        mine = sorted((r for r in mapped if r.kind == kind), key=lambda r: r.guest)
        cursor = 0
        for r in mine:
            if r.guest != cursor or r.host - r.guest != idmaps.DEFAULT_BASE:
                return False
            cursor += r.count
        if cursor != idmaps.DEFAULT_COUNT:
            return False
    return True


def needed(src: tuple[IdRange, ...], dst: tuple[IdRange, ...]) -> bool:
    """Whether files made under map `src` must be re-owned for map `dst` (() is the default
    map both ways)."""
    if _plain(src) and _plain(dst):
        return False
    return idmaps.effective(src) != idmaps.effective(dst)


def check(ctid: int, dst: tuple[IdRange, ...]) -> None:
    """Refuse, before anything is made, a map the re-owning cannot honour: a file whose owner
    the map lacks becomes the guest's nobody (65534), which the map must then have."""
    for kind in ("u", "g"):
        if idmaps.to_host(dst, kind, 65534) is None:
            name = "uid" if kind == "u" else "gid"
            raise DriverError(
                f"guest {ctid}: its id_maps give no host id to {name} 65534 (nobody), which "
                "the template's files whose owner the map lacks would get: map the guest's "
                f"{name}s 0..65535 (Proxmox unpacks the template under that range)"
            )


def _text(ranges: tuple[IdRange, ...]) -> str:
    return ",".join(f"{r.kind}:{r.guest}:{r.host}:{r.count}" for r in idmaps.effective(ranges))


def mount_cmd(ctid: int) -> list[str]:
    return ["pct", "mount", str(ctid)]


def unmount_cmd(ctid: int) -> list[str]:
    return ["pct", "unmount", str(ctid)]


def reown_cmd(ctid: int, src: tuple[IdRange, ...], dst: tuple[IdRange, ...]) -> list[str]:
    """The program over the mounted root disk, from map `src` to map `dst`."""
    return ["python3", "-c", SHIFTER, rootfs_path(ctid), _text(src), _text(dst)]


def commands(ctid: int, src: tuple[IdRange, ...], dst: tuple[IdRange, ...]) -> list[list[str]]:
    """Mount, re-own, unmount; [] when the maps agree."""
    if not needed(src, dst):
        return []
    return [mount_cmd(ctid), reown_cmd(ctid, src, dst), unmount_cmd(ctid)]


def display(argv: tuple[str, ...] | list[str]) -> list[str]:
    """The argv for people: the constant program shown by name, not in full."""
    return [f"<{SHIFTER_NAME}>" if part == SHIFTER else part for part in argv]
