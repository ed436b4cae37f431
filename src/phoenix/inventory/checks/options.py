"""A guest's own options: raw AppArmor settings that disagree, keys read but not applied."""

from __future__ import annotations

from phoenix.digits import is_digits
from phoenix.inventory.core import LXC_FILE
from phoenix.inventory.models import LxcGuest
from phoenix.inventory.problems import Problem, lxc_at


def apparmor_problems(ctid: int, guest: LxcGuest) -> list[Problem]:
    raw = [v for k, v in guest.lxc_option_pairs if k == "lxc.apparmor.profile"]
    out: list[Problem] = []
    if len(set(raw)) > 1:
        out.append(
            Problem(
                LXC_FILE,
                lxc_at(ctid, "lxc_options"),
                f"lxc.apparmor.profile is set more than once ({', '.join(raw)}); "
                f"the last, {raw[-1]!r}, wins",
                "warning",
            )
        )
    if raw and guest.apparmor_profile is not None and raw[-1] != guest.apparmor_profile:
        out.append(
            Problem(
                LXC_FILE,
                lxc_at(ctid, "apparmor_profile"),
                f"apparmor_profile {guest.apparmor_profile!r} conflicts with raw "
                f"'lxc.apparmor.profile: {raw[-1]}'; {guest.apparmor_profile!r} wins",
                "warning",
            )
        )
    return out


def unapplied_keys(guest: LxcGuest) -> list[tuple[str, str]]:
    """(key, what the guest lacks) for the keys Phoenix reads but does not act on yet."""
    # GPUs, mount points and volumes are applied by both drivers now; the machinery stays
    # for the next key Phoenix reads before it acts on it.
    del guest
    return []


def not_applied_problems(ctid: int, guest: LxcGuest) -> list[Problem]:
    """Say so rather than converge silently to a guest without its GPU or storage."""
    return [
        Problem(
            LXC_FILE,
            lxc_at(ctid, key),
            f"not applied by Phoenix yet: {effect} (see the README, 'Not done yet')",
            "warning",
        )
        for key, effect in unapplied_keys(guest)
    ]


def raw_option_problems(ctid: int, guest: LxcGuest) -> list[Problem]:
    """The id-map and hook rules applied to raw `lxc_options` too: a raw `lxc.idmap` that
    maps a guest id range onto host root makes the guest's root the host's; `lxc.hook.*`
    and `lxc.include` run or read host files as root, which Phoenix neither ships nor checks."""
    out: list[Problem] = []
    for index, (key, value) in enumerate(guest.lxc_option_pairs):
        where = lxc_at(ctid, "lxc_options", index)
        if key == "lxc.idmap":
            fields = value.split()
            ok = len(fields) == 4 and all(is_digits(f) for f in fields[1:])
            if ok and int(fields[2]) <= 0 < int(fields[2]) + int(fields[3]):
                out.append(
                    Problem(
                        LXC_FILE,
                        where,
                        f"lxc.idmap {value!r} maps onto host root (host id 0): the guest "
                        "would hold root on the host; map onto a subordinate range",
                    )
                )
        elif key.startswith("lxc.hook.") or key == "lxc.include":
            out.append(
                Problem(
                    LXC_FILE,
                    where,
                    f"{key} runs or reads {value!r} on the host as root when the guest starts; "
                    "Phoenix neither ships nor checks it: make sure it is yours",
                    "warning",
                )
            )
    return out
