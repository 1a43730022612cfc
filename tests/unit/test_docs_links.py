"""The repository's documentation stays self-contained and in step with the code.

* Every relative link of every tracked Markdown file, ``[text](path)`` or
  ``[text](path#anchor)`` (images and reference definitions too), names a file or folder
  that git tracks in this repository. Links with a scheme (``https:``, ``mailto:``, ...) and
  pure ``#anchor`` links are not checked; neither are links inside code.
* No tracked file points into a sibling checkout's shared folder (the pattern is built
  below from pieces, so this file does not match it itself).
* ``docs/protocol.md`` names every method the rewarder's protocol dispatches on, and every
  header and body field its rules check.

Failures name ``file:line`` and what is wrong.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest

from gymlab.rewarder import protocol as p
from gymlab.rewarder.protocol.events import EVENTS
from gymlab.rewarder.protocol.fields import HEADER_RULES

REPO = Path(__file__).resolve().parents[2]
PROTOCOL_DOC = REPO / "docs" / "protocol.md"

#: Folders never looked into (virtual environments, caches, build output).
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".pytest_cache",
        ".ruff_cache",
        ".mypy_cache",
        ".cache",
        "build",
        "dist",
        "reports",
    }
)

#: ``..`` + ``/shared``, as a word: what no tracked file may contain.
SHARED_REFERENCE = re.compile(r"\.\./" + "shared" + r"\b")

# [text](target "title") and ![alt](target); the text may hold one level of brackets.
_INLINE_LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(?P<target><[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)"
    r"(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)"
)
# [label]: target "title"  (a reference definition, at the start of a line)
_REFERENCE_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(?P<target><[^>]*>|\S+)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")


@dataclass(frozen=True)
class Problem:
    """One broken thing, at ``path:line``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


def _skipped(rel: str) -> bool:
    parts = rel.split("/")
    return any(part in SKIPPED_DIRS or part.endswith(".egg-info") for part in parts[:-1])


def tracked_files(root: Path = REPO) -> list[str]:
    """The repository's files (POSIX paths relative to ``root``), as git tracks them.

    Files deleted from the working tree are left out. Without git (an unpacked sdist), every
    file under ``root`` outside :data:`SKIPPED_DIRS` counts.
    """
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z"],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout.decode("utf-8", "surrogateescape")
    except (OSError, subprocess.SubprocessError):
        found = []
        for top, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info")]
            for name in files:
                found.append(Path(top, name).relative_to(root).as_posix())
        return sorted(found)
    names = (name for name in out.split("\0") if name)
    return sorted(n for n in names if not _skipped(n) and (root / n).is_file())


def _without_code(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` with fenced code blocks and code spans blanked out."""
    fence: str | None = None
    for number, line in enumerate(lines, start=1):
        match = _FENCE.match(line)
        if fence is not None:
            if match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence):
                fence = None
            continue
        if match:
            fence = match.group(1)
            continue
        yield number, _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)


def link_targets(text: str) -> Iterator[tuple[int, str]]:
    """Every link target of Markdown ``text`` outside code, with its line number."""
    for number, line in _without_code(text.splitlines()):
        targets = [m.group("target") for m in _INLINE_LINK.finditer(line)]
        definition = _REFERENCE_DEFINITION.match(line)
        if definition:
            targets.append(definition.group("target"))
        for target in targets:
            yield number, target.strip("<>").strip()


def broken_links(md_path: str, text: str, tracked: Iterable[str]) -> list[Problem]:
    """The relative links of ``text`` (the file ``md_path``) whose target git does not track."""
    files = set(tracked)
    folders = {parent.as_posix() for name in files for parent in Path(name).parents}
    base = Path(md_path).parent
    problems = []
    for number, target in link_targets(text):
        if not target or target.startswith("#") or _SCHEME.match(target):
            continue
        path = unquote(target.split("#", 1)[0].split("?", 1)[0])
        if not path:
            continue
        joined = path.lstrip("/") if path.startswith("/") else (base / path).as_posix()
        rel = os.path.normpath(joined).replace(os.sep, "/")
        if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
            problems.append(Problem(md_path, number, f"{target!r} points outside the repository"))
        elif rel not in files and rel not in folders:
            on_disk = (REPO / rel).exists()
            why = "exists but is not tracked by git" if on_disk else "does not exist"
            problems.append(Problem(md_path, number, f"link target {target!r} ({rel}) {why}"))
    return problems


def shared_references(path: str, data: bytes) -> list[Problem]:
    """The lines of one file that point into the shared folder (binary files have none)."""
    if b"\0" in data[:8192]:
        return []
    text = data.decode("utf-8", "replace")
    return [
        Problem(path, number, f"references the shared folder: {line.strip()[:120]}")
        for number, line in enumerate(text.splitlines(), start=1)
        if SHARED_REFERENCE.search(line)
    ]


# ----- the repository's own files ---------------------------------------------------------


@pytest.fixture(scope="module")
def tracked() -> list[str]:
    files = tracked_files()
    assert files, "found no files in the repository"
    return files


def test_relative_markdown_links_resolve(tracked: list[str]) -> None:
    markdown = [name for name in tracked if name.lower().endswith(".md")]
    assert "README.md" in markdown
    problems = [
        problem
        for name in markdown
        for problem in broken_links(name, (REPO / name).read_text(encoding="utf-8"), tracked)
    ]
    assert not problems, "broken links:\n" + "\n".join(map(str, problems))


def test_no_tracked_file_references_the_shared_folder(tracked: list[str]) -> None:
    problems = [
        problem
        for name in tracked
        for problem in shared_references(name, (REPO / name).read_bytes())
    ]
    assert not problems, "\n".join(map(str, problems))


def _protocol_doc() -> str:
    return PROTOCOL_DOC.read_text(encoding="utf-8")


def test_every_rewarder_method_is_documented() -> None:
    # the decoding table of Connection.receive, and every method name the module defines
    dispatched = set(EVENTS)
    constants = {v for v in vars(p).values() if isinstance(v, str) and v.startswith("v0.")}
    assert dispatched == constants, "protocol.py defines methods it does not dispatch on"
    doc = _protocol_doc()
    missing = sorted(name for name in dispatched if f"`{name}`" not in doc)
    assert not missing, f"docs/protocol.md does not name the methods {missing}"


def test_every_checked_wire_field_is_documented() -> None:
    doc = _protocol_doc()
    wanted = {f"headers.{name}" for name in HEADER_RULES}
    for cls in EVENTS.values():
        wanted |= {f"body.{name}" for name in cls.BODY}
        if cls.EPISODE is not None:
            wanted.add("headers.episode_id")
    wanted.add(p.OBSERVER_HEADER)
    missing = sorted(field for field in wanted if field not in doc)
    assert not missing, f"docs/protocol.md does not name the fields {missing}"


# ----- the checker itself -----------------------------------------------------------------


def test_the_checker_finds_a_broken_link_and_names_file_and_line() -> None:
    text = "\n".join(
        [
            "# Title",
            "See [the design](design.md), [a section](protocol.md#key-maps) and [top](#title).",
            "An [outside page](https://example.test/x.md), [mail](mailto:a@example.test).",
            "![a picture](missing.png) and [gone](../src/gymlab/nothing_here.py).",
            "```",
            "[inside a fence](not-checked.md)",
            "```",
            "Code: `[inside code](not-checked-either.md)`.",
            "[ref]: ../README.md",
            "[bad ref]: <no such file.md>",
            "[escape](../../outside.md)",
        ]
    )
    tracked = ["README.md", "docs/design.md", "docs/protocol.md", "src/gymlab/__init__.py"]
    problems = broken_links("docs/page.md", text, tracked)
    assert [(x.path, x.line) for x in problems] == [
        ("docs/page.md", 4),
        ("docs/page.md", 4),
        ("docs/page.md", 10),
        ("docs/page.md", 11),
    ]
    assert "'missing.png'" in str(problems[0])
    assert str(problems[1]).startswith(
        "docs/page.md:4: link target '../src/gymlab/nothing_here.py'"
    )
    assert "outside the repository" in problems[3].message
    # a folder that holds tracked files is a valid target
    assert broken_links("README.md", "[pkg](src/gymlab/)", tracked) == []


def test_the_checker_finds_a_reference_to_the_shared_folder() -> None:
    bad = ("see " + ".." + "/shared/notes.md\n").encode()
    assert [str(x) for x in shared_references("a.txt", b"fine\n" + bad)] == [
        "a.txt:2: references the shared folder: see " + ".." + "/shared/notes.md"
    ]
    assert shared_references("a.bin", b"\0" + bad) == []
    other = (".." + "/shared_other is another name\n").encode()
    assert shared_references("b.txt", other) == []
