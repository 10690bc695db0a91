"""References in docstrings and comments resolve inside the repository.

``docs/reference.md`` holds what the code cites about the reference methods: one ``##`` heading per citable section
(cited as ``docs/reference.md §Heading``) and, under ``## Quirks``, a table that defines the quirk labels Q1, Q2, ...
These tests fail when a file points at material outside the repository, uses a quirk label the page does not define,
or cites a section the page does not have.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
SCANNED = ("dcseg", "baselines", "stages", "tests")
THIS = Path(__file__).resolve()

# Patterns are assembled from pieces so that this file never matches them; it is also left out of the scan.
OUTSIDE_PATH = "shared" + "/"
STALE_PHRASES = ("spec " + "section", "reference " + "spec")
QUIRK = re.compile(r"\bQ(\d+)\b")
SECTION = re.compile("\u00a7" + r"\s*([A-Za-z][\w-]*)")
HEADING = re.compile(r"^#{2,}\s+(.+?)\s*$", re.M)
QUIRK_ROW = re.compile(r"^\|\s*Q(\d+)\s*\|", re.M)


def _text_files() -> dict[str, str]:
    """Relative path -> text of every text file under the scanned folders, this file excluded."""
    files = {}
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*")):
            if not path.is_file() or "__pycache__" in path.parts or path.resolve() == THIS:
                continue
            try:
                files[path.relative_to(ROOT).as_posix()] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue  # binary data
    return files


@pytest.fixture(scope="module")
def files() -> dict[str, str]:
    return _text_files()


@pytest.fixture(scope="module")
def reference() -> str:
    assert REFERENCE.is_file(), "docs/reference.md is missing"
    return REFERENCE.read_text(encoding="utf-8")


def _headings(text: str) -> list[str]:
    return HEADING.findall(text)


def _quirk_section(text: str) -> str:
    start = re.search(r"^##\s+Quirks\s*$", text, re.M)
    assert start, "docs/reference.md has no '## Quirks' section"
    rest = text[start.end():]
    end = re.search(r"^##\s", rest, re.M)
    return rest[:end.start()] if end else rest


def _lines(text: str, pattern: re.Pattern, name: str) -> list[str]:
    return [f"{name}:{i}: {line.strip()}" for i, line in enumerate(text.splitlines(), 1) if pattern.search(line)]


def test_no_reference_outside_the_repository(files):
    pattern = re.compile(re.escape(OUTSIDE_PATH) + "|" + "|".join(re.escape(p) for p in STALE_PHRASES), re.I)
    hits = [hit for name, text in files.items() for hit in _lines(text, pattern, name)]
    assert not hits, ("these lines point outside the repository; cite a heading of docs/reference.md instead:\n"
                      + "\n".join(hits))


def test_headings_are_citable(reference):
    headings = _headings(reference)
    assert len(headings) == len(set(headings)), f"duplicate headings in docs/reference.md: {headings}"
    not_one_word = [h for h in headings if not re.fullmatch(r"[A-Za-z][\w-]*", h)]
    assert not not_one_word, f"headings must be one word so that a citation names them exactly: {not_one_word}"


def test_quirk_table_defines_a_contiguous_range(reference):
    numbers = [int(n) for n in QUIRK_ROW.findall(_quirk_section(reference))]
    assert numbers, "the Quirks section defines no Q<n> rows"
    assert numbers == list(range(1, len(numbers) + 1)), f"quirk rows out of order or missing: {numbers}"


def test_every_quirk_label_is_defined(files, reference):
    defined = {int(n) for n in QUIRK_ROW.findall(_quirk_section(reference))}
    undefined = [f"{name}: Q{n}" for name, text in files.items() for n in sorted({int(n) for n in QUIRK.findall(text)})
                 if n not in defined]
    assert not undefined, "quirk labels not defined in docs/reference.md §Quirks:\n" + "\n".join(undefined)


def test_files_with_quirk_labels_say_where_they_are_defined(files):
    silent = [name for name, text in files.items() if QUIRK.search(text) and "docs/reference.md" not in text]
    assert not silent, "these files use Q<n> labels but never name docs/reference.md: " + ", ".join(silent)


def test_every_section_citation_names_a_heading(files, reference):
    headings = set(_headings(reference))
    cited = dict(files)
    cited["README.md"] = (ROOT / "README.md").read_text(encoding="utf-8")
    cited["docs/reference.md"] = reference
    missing = [f"{name}: \u00a7{section}" for name, text in cited.items() for section in SECTION.findall(text)
               if section not in headings]
    assert not missing, (f"citations of sections docs/reference.md does not have (headings: {sorted(headings)}):\n"
                         + "\n".join(missing))


def test_quirk_table_names_existing_files(reference):
    paths = set()
    for row in _quirk_section(reference).splitlines():
        if QUIRK_ROW.match(row):
            where = row.rstrip(" |").rsplit("|", 1)[-1]
            paths.update(p for p in re.findall(r"`([^`]+)`", where) if "/" in p or p.endswith((".py", ".yaml")))
    assert paths, "the Quirks table names no files"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"files named in docs/reference.md §Quirks that do not exist: {missing}"
