"""The README and the pages under docs/ say what is true: the inventory reference is the one
generated from the models, the quick start's commands exist, every test they name exists and
every relative link leads to a file and heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

from phoenix.inventory.reference import BEGIN, END, render_reference

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
INVENTORY_PAGE = DOCS / "inventory.md"
TESTING_PAGE = DOCS / "testing.md"


def documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def test_inventory_reference_is_in_sync() -> None:
    text = INVENTORY_PAGE.read_text()
    assert BEGIN in text and END in text, "docs/inventory.md lacks the generated reference markers"
    embedded = text.split(BEGIN, 1)[1].split(END, 1)[0].strip()
    assert embedded == render_reference().strip(), (
        "docs/inventory.md is stale: regenerate it with "
        "`python -m phoenix.inventory.reference` and paste it between the markers"
    )


def test_readme_quick_start_commands_exist() -> None:
    text = README.read_text()
    quick_start = text.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick_start.strip().splitlines()]
    assert commands == ["./demo", "./run-tests"]
    for command in commands:
        path = ROOT / command.removeprefix("./")
        assert path.is_file() and path.stat().st_mode & 0o111, f"{command} is not executable"
    assert "./run-tests" in (ROOT / ".ci" / "run").read_text()


def test_readme_says_what_is_tested_against_real_systems_and_links_the_details() -> None:
    text = README.read_text()
    section = text.split("## What is tested against real systems, and what is not", 1)[1]
    section = section.split("\n## ", 1)[0]
    assert "Proxmox" in section.split("**Not against a real system:**", 1)[1]
    assert "(docs/testing.md#what-is-tested-and-against-what)" in section


def test_readme_links_every_docs_page() -> None:
    linked = set(re.findall(r"\]\(docs/([\w.-]+\.md)", README.read_text()))
    assert linked == {p.name for p in DOCS.glob("*.md")}


def readme_test_references(text: str) -> set[str]:
    """Every test a document names in code spans: paths (or globs) under tests/, test files
    by name, and test functions by name."""
    found: set[str] = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        found |= set(re.findall(r"\btests/[\w/.*-]*[\w*]", span))
        found |= set(re.findall(r"(?<![\w/])test_\w+(?:\.py)?\b", span))
    return found


def missing_tests(references: set[str], root: Path) -> list[str]:
    tests = root / "tests"
    sources = "\n".join(p.read_text() for p in tests.rglob("*.py"))
    names = {p.name for p in tests.rglob("*")}
    missing = []
    for ref in sorted(references):
        if ref.startswith("tests/"):
            ok = next(root.glob(ref), None) is not None
        elif ref.endswith(".py"):
            ok = ref in names
        else:
            ok = re.search(rf"^\s*def {re.escape(ref)}\(", sources, re.M) is not None
        if not ok:
            missing.append(ref)
    return missing


def test_every_test_the_docs_name_exists() -> None:
    assert len(readme_test_references(TESTING_PAGE.read_text())) > 30  # it names its tests
    missing = [
        f"{doc.relative_to(ROOT)}: {ref}"
        for doc in documents()
        for ref in missing_tests(readme_test_references(doc.read_text()), ROOT)
    ]
    assert missing == []


def test_the_check_sees_a_test_the_docs_name_wrongly() -> None:
    text = (
        "`tests/unit/test_nope.py`, `test_gone.py`, `test_never_written`, `test_exec`, "
        "`tests/fixtures/phoenix-etc-*`, `tests/fixtures/nope-*`"
    )
    references = readme_test_references(text)
    assert references == {
        "tests/fixtures/phoenix-etc-*",
        "tests/fixtures/nope-*",
        "tests/unit/test_nope.py",
        "test_gone.py",
        "test_never_written",
        "test_exec",
    }
    assert missing_tests(references, ROOT) == [
        "test_gone.py",
        "test_never_written",
        "tests/fixtures/nope-*",
        "tests/unit/test_nope.py",
    ]


def heading_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (code blocks left out)."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        match = None if fenced else re.match(r"#{1,6} (.*)", line)
        if match is None:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(doc: Path) -> list[str]:
    """Relative links of a Markdown file whose file, or heading within it, does not exist."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        heading_missing = (
            linked.exists()
            and bool(anchor)
            and linked.suffix == ".md"
            and anchor not in heading_anchors(linked.read_text())
        )
        if not linked.exists() or heading_missing:
            broken.append(target)
    return broken


def test_every_relative_link_resolves() -> None:
    broken = [
        f"{doc.relative_to(ROOT)}: {link}" for doc in documents() for link in broken_links(doc)
    ]
    assert broken == []


def test_the_check_sees_links_to_missing_files_and_headings(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text(
        "# Other page\n\n## Part two, done\n```\n## not a heading\n```\n"
    )
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n[ok](other.md) [ok](other.md#part-two-done) [ok](#doc) [web](https://x.invalid/y)\n"
        "[gone](gone.md) [no heading](other.md#not-a-heading) [here](#nowhere)\n"
    )
    assert broken_links(doc) == ["gone.md", "other.md#not-a-heading", "#nowhere"]
