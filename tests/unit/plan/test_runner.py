"""Bundle packing and applied-markers."""

from __future__ import annotations

import io
import json
import tarfile

from phoenix.recipes.bundle import Bundle
from phoenix.recipes.runner import (
    MARKER_DIR,
    is_applied,
    marker_name,
    pack,
    parse_markers,
)


def test_pack_contains_script_files_and_entry() -> None:
    bundle = Bundle("application", "app.sh", b"#!/bin/sh\n", {"conf/x.conf": b"x"}, {"ctid": 5})
    with tarfile.open(fileobj=io.BytesIO(pack(bundle)), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"app.sh", "conf/x.conf", "guest.json"}
        assert members["app.sh"].mode == 0o755
        entry = tar.extractfile("guest.json")
        assert entry is not None and json.loads(entry.read()) == {"ctid": 5}
    assert pack(bundle) == pack(bundle), "packing is deterministic"


def test_parse_markers_ignores_noise() -> None:
    out = (
        f"{MARKER_DIR}/feature-base_setup:abc\n"
        f"{MARKER_DIR}/application:def\n"
        f"{MARKER_DIR}/application.tmp:zzz\n"
        "/elsewhere/x:1\n"
        "garbage\n"
    )
    assert parse_markers(out) == {"feature-base_setup": "abc", "application": "def"}


def test_marker_names_are_safe_and_applied_compares_digest() -> None:
    assert marker_name("../evil name") == ".._evil_name"
    bundle = Bundle("feature-x", "x.sh", b"a")
    assert is_applied({"feature-x": bundle.digest}, bundle)
    assert not is_applied({"feature-x": "old"}, bundle)
