"""The subuid/subgid lines Phoenix adds are removed with the last lab using them; an
operator's own lines are never touched."""

from __future__ import annotations

import json
from pathlib import Path

from phoenix.drivers.lxc.hostprep.subids import LINE, IdRanges, SubIds, without_line


def make(tmp_path: Path, subuid: str = "", subgid: str = "") -> SubIds:
    (tmp_path / "subuid").write_text(subuid)
    (tmp_path / "subgid").write_text(subgid)
    return SubIds((tmp_path / "subuid", tmp_path / "subgid"), tmp_path / "phoenix" / "subids.json")


def texts(tmp_path: Path) -> tuple[str, str]:
    return (tmp_path / "subuid").read_text(), (tmp_path / "subgid").read_text()


def test_added_lines_go_with_the_last_lab_and_the_ledger_with_them(tmp_path: Path) -> None:
    ids = make(tmp_path, "alice:200000:65536\n", "alice:200000:65536")
    assert ids.add(Path("/lab/a")) == [
        f"{tmp_path / 'subuid'}: {LINE}",
        f"{tmp_path / 'subgid'}: {LINE}",
    ]
    ids.enlist(Path("/lab/b"))
    assert ids.missing() == []
    assert ids.release(Path("/lab/a")) == []  # lab b still needs them
    assert texts(tmp_path) == (f"alice:200000:65536\n{LINE}\n", f"alice:200000:65536\n{LINE}\n")
    assert len(ids.release(Path("/lab/b"))) == 2
    assert texts(tmp_path) == ("alice:200000:65536\n", "alice:200000:65536\n")
    assert not (tmp_path / "phoenix").exists()


def test_an_operators_line_is_never_removed(tmp_path: Path) -> None:
    ids = make(tmp_path, f"{LINE}\n", "")
    ids.add(Path("/lab/a"))
    assert texts(tmp_path) == (f"{LINE}\n", f"{LINE}\n")
    ids.release(Path("/lab/a"))
    assert texts(tmp_path) == (f"{LINE}\n", "")


def test_release_without_a_ledger_changes_nothing(tmp_path: Path) -> None:
    ids = make(tmp_path, f"{LINE}\n", f"{LINE}\n")
    ids.enlist(Path("/lab/a"))  # nothing of Phoenix's to share
    assert ids.release(Path("/lab/a")) == []
    assert texts(tmp_path) == (f"{LINE}\n", f"{LINE}\n")


def test_an_older_phoenix_record_is_adopted(tmp_path: Path) -> None:
    ids = make(tmp_path, f"{LINE}\n", f"{LINE}\n")
    ids.adopt(Path("/lab/a"), [f"{tmp_path / 'subuid'}:{LINE}"])
    assert ids.release(Path("/lab/a")) == [f"{tmp_path / 'subuid'}: {LINE}"]
    assert texts(tmp_path) == ("", f"{LINE}\n")


def test_without_line_removes_one_exact_line() -> None:
    assert without_line(f"a\n{LINE}\nb\n{LINE}\n", LINE) == f"a\nb\n{LINE}\n"
    assert without_line(f"{LINE}0\n", LINE) == f"{LINE}0\n"


def test_pass_through_ranges_are_added_beside_the_default_and_go_with_it(tmp_path: Path) -> None:
    ids = make(tmp_path, f"{LINE}\n", f"alice:33:1\n{LINE}\n")
    ranges: IdRanges = (("u", 100000, 65536), ("g", 100000, 33), ("g", 33, 1), ("g", 100034, 65502))
    assert ids.missing(ranges) == [(tmp_path / "subgid", "root:33:1")]  # alice's is not root's
    assert ids.add(Path("/lab/a"), ranges) == [f"{tmp_path / 'subgid'}: root:33:1"]
    assert ids.missing(ranges) == []
    assert ids.add(Path("/lab/a"), ranges) == []  # idempotent
    assert texts(tmp_path)[1] == f"alice:33:1\n{LINE}\nroot:33:1\n"
    assert ids.release(Path("/lab/a")) == [f"{tmp_path / 'subgid'}: root:33:1"]
    assert texts(tmp_path) == (f"{LINE}\n", f"alice:33:1\n{LINE}\n")


def test_a_bare_host_gets_the_default_line_before_the_pass_through(tmp_path: Path) -> None:
    ids = make(tmp_path)
    ranges: IdRanges = (("g", 100000, 33), ("g", 33, 1), ("g", 100034, 65502))
    assert ids.missing(ranges) == [
        (tmp_path / "subuid", LINE),
        (tmp_path / "subgid", LINE),
        (tmp_path / "subgid", "root:33:1"),
    ]
    ids.add(Path("/lab/a"), ranges)
    assert texts(tmp_path) == (f"{LINE}\n", f"{LINE}\nroot:33:1\n")
    assert len(ids.release(Path("/lab/a"))) == 3
    assert texts(tmp_path) == ("", "")


def test_a_ledger_of_one_line_per_file_still_loads(tmp_path: Path) -> None:
    ids = make(tmp_path, f"{LINE}\n", "")
    ledger = tmp_path / "phoenix" / "subids.json"
    ledger.parent.mkdir()
    ledger.write_text(json.dumps({"added": {str(tmp_path / "subuid"): LINE}, "users": ["/lab/a"]}))
    assert ids.release(Path("/lab/a")) == [f"{tmp_path / 'subuid'}: {LINE}"]
