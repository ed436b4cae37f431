"""What `phoenix import` reads of an LXC host beyond `observe`: which guests exist under the
driver's LXC path, and where a clone came from (the guest record keeps `source@snapshot`)."""

from __future__ import annotations

from phoenix.digits import is_digits
from phoenix.drivers.lxc.definition import META_FILE
from phoenix.drivers.lxc.driver import LxcDriver


def guest_ids(driver: LxcDriver) -> list[int]:
    """The guests under the LXC path: numbered folders holding a `config` (a guest exists
    exactly when its config does; a create or delete that stopped half-way has none)."""
    if not driver.lxc_path.is_dir():
        return []
    found = [
        int(entry.name)
        for entry in driver.lxc_path.iterdir()
        if is_digits(entry.name) and (entry / "config").is_file()
    ]
    return sorted(found)


def clone_source(driver: LxcDriver, ctid: int) -> tuple[int, str | None] | None:
    """(source CTID, snapshot or None) of a guest Phoenix cloned; None for one it created."""
    source, _, snapshot = driver.defs.meta(ctid).template_source.partition("@")
    if not is_digits(source):
        return None
    return int(source), snapshot or None


def unmanaged(driver: LxcDriver, ctid: int) -> list[str]:
    """What the host holds of the guest that its settings do not say (one line each)."""
    if not (driver.ctx.dir(ctid) / META_FILE).is_file():
        return [
            f"no {META_FILE} (not made by Phoenix): storage, disk size and swap are "
            "Phoenix's defaults, not read from the guest"
        ]
    return []
