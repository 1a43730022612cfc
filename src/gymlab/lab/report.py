"""Progress and bookkeeping for the invoke tasks: timed phases, JUnit counts and the closing
summary of `invoke test`."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.passed + other.passed, self.failed + other.failed, self.skipped + other.skipped
        )


def junit_counts(path: Path) -> Counts:
    """Test-case counts of one JUnit XML file (pytest's format); zero when it does not exist."""
    if not path.is_file():
        return Counts()
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = Counts()
    for suite in suites:
        tests = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        total += Counts(tests - failed - skipped, failed, skipped)
    return total


@dataclass(frozen=True)
class Case:
    """One test case of a JUnit file."""

    name: str  # module::check[parameters], the host under test left out of the parameters
    outcome: str  # "passed" | "failed" | "skipped"
    detail: str = ""  # the first line of the failure's message or the skip's reason
    message: str = ""  # a failure's whole message (bounded) and the line where it failed


MESSAGE_LIMIT = 4000
HOST_ID = re.compile(r"[a-z]+://[^\]\-]*")  # testinfra's host parameter, e.g. ansible://sandbox


def check_name(name: str, hosts: Iterable[str] = ()) -> str:
    """``test_x[ansible://gpu-01-modern]`` -> ``test_x[modern]``: the parameters a reader needs
    to tell two runs of one check apart, without the host under test (every case has it).
    ``hosts`` are the host names testinfra was given (they may contain dashes)."""
    base, bracket, params = name.partition("[")
    if not bracket:
        return name
    params = params.removesuffix("]")
    for host in hosts:
        params = re.sub(rf"[a-z]+://{re.escape(host)}(?=-|$)", "", params)
    params = HOST_ID.sub("", params).strip("-").replace("--", "-")
    return f"{base}[{params}]" if params else base


def junit_cases(path: Path, hosts: Iterable[str] = ()) -> list[Case]:
    """The test cases of one JUnit XML file, in file order."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, detail, message = "passed", "", ""
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = "skipped" if tag == "skipped" else "failed"
                text = found.get("message") or ""
                detail = text.splitlines()[0][:100] if text else ""
                if outcome == "failed":
                    # pytest's message, then where it failed (the traceback's last line)
                    where = (found.text or "").strip().splitlines()[-1:]
                    message = "\n".join([text[:MESSAGE_LIMIT], *where]).strip()
                break
        name = check_name(case.get("name", "?"), hosts)
        module = case.get("classname", "").split(".")[-1]
        cases.append(Case(f"{module}::{name}", outcome, detail, message))
    return cases


def cases_table(title: str, cases: list[Case]) -> str:
    """A readable per-host report: one line per check with its outcome and first message line."""
    width = max((len(c.name) for c in cases), default=10)
    lines = [title, f"{'check':<{width}}  result   detail"]
    lines += [f"{c.name:<{width}}  {c.outcome:<7}  {c.detail}" for c in cases]
    counts = Counter(c.outcome for c in cases)
    lines.append(
        f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"
    )
    return "\n".join(lines)


class phase:  # a context manager, named like one
    """Print ``==> title`` now and ``==> title: done in 12s`` (or FAILED) when the block ends.

    The block may set ``ok = False`` for a failure that raised nothing (a failed command);
    ``seconds`` holds the duration afterwards.
    """

    def __init__(self, title: str) -> None:
        self.title = title
        self.ok = True
        self.seconds = 0.0

    def __enter__(self) -> phase:
        self._start = time.monotonic()
        print(f"==> {self.title}", flush=True)
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.seconds = time.monotonic() - self._start
        self.ok = self.ok and exc_type is None
        status = "done" if self.ok else "FAILED"
        print(f"==> {self.title}: {status} in {self.seconds:.0f}s", flush=True)


@dataclass
class Phase:
    """A finished phase of `invoke test`, for the summary."""

    name: str
    ok: bool
    seconds: float
    counts: Counts = field(default_factory=Counts)


@dataclass
class SuiteRun:
    """Phases of one `invoke test`, summarised the way CI reads it."""

    phases: list[Phase] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.phases)

    def totals(self) -> Counts:
        total = Counts()
        for phase in self.phases:
            counts = phase.counts
            # A phase that failed without reporting a failed test (lint, a converge) still fails.
            if not phase.ok and counts.failed == 0:
                counts = counts + Counts(failed=1)
            elif phase.ok and counts == Counts():
                counts = Counts(passed=1)
            total += counts
        return total

    def summary(self) -> str:
        width = max((len(p.name) for p in self.phases), default=5)
        lines = [f"{'phase':<{width}}  result  time   tests (passed/failed/skipped)"]
        for p in self.phases:
            c = p.counts
            tests = f"{c.passed}/{c.failed}/{c.skipped}" if c != Counts() else "-"
            lines.append(
                f"{p.name:<{width}}  {'ok' if p.ok else 'FAILED':<6}  {p.seconds:4.0f}s  {tests}"
            )
        t = self.totals()
        lines.append(f"{t.passed} passed, {t.failed} failed, {t.skipped} skipped")
        return "\n".join(lines)
