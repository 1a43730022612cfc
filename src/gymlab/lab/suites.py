"""The test suites behind `invoke test` and `invoke lint`: the linters, pytest on tests/unit and
tests/e2e, tests/sb3 in its own venv, the molecule scenarios on their base images, and the
README's tour as a new user runs it; each one a timed phase with its JUnit counts, then the
closing summary.

Two Ansibles: the project venv's (requirements.lock: ansible-core 2.16, the newest that manages
Ubuntu 18.04's Python 3.6) and the newest ansible-core, in a venv of its own built from
ansible-latest.lock. ansible-lint runs under both; the scenarios of today's releases
(:data:`gymlab.lab.scenarios.NEWEST_ANSIBLE`) converge under the newest.

Commands go through a runner, invoke's ``Context.run`` in tasks.py (a fake in the unit tests),
and name paths relative to the repository: the tasks run them from its root.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from gymlab.lab import collection as galaxy
from gymlab.lab import images, sandbox, scenarios, suite_venv
from gymlab.lab.ansible import REPO
from gymlab.lab.errors import LabError
from gymlab.lab.report import Counts, Phase, SuiteRun, junit_counts, phase

PY_SOURCES = "src tests tasks.py plugins examples"
ANSIBLE_LINT = "ansible-lint --profile production"
LINTERS = {
    "ruff": f"ruff check {PY_SOURCES} && ruff format --check {PY_SOURCES}",
    "yamllint": "yamllint -s .",
    "ansible-lint": ANSIBLE_LINT,
}
ANSIBLE_LATEST_LOCK = REPO / "ansible-latest.lock"
T = TypeVar("T")
# The README's tour, word for word: the sandbox converged with inventories/local as it is, then
# every check against it. A sandbox the tour created is removed afterwards; one that was there
# before is left converged.
TOUR_PROVISION = f"./lab provision --host {sandbox.HOST}"
TOUR_VERIFY = f"./lab verify --host {sandbox.HOST}"
TOUR_CLEANUP = "./lab sandbox down"


class Runner(Protocol):
    """Runs shell commands as invoke's ``Context.run`` does."""

    def __call__(self, command: str, **kwargs: Any) -> Any:
        """Run ``command`` (``warn=True, env={...}`` as ``Context.run`` takes them); the
        result's ``ok`` says whether it exited 0."""


def newest_ansible() -> dict[str, str]:
    """The environment that runs a command under the newest ansible-core: its venv's bin first
    on PATH (molecule starts ansible-playbook from PATH), gymlab from this checkout's src (the
    roles' controller steps and the checks import it). Builds the venv when stale (LabError)."""
    bin_dir = suite_venv.ensure("ansible-latest", ANSIBLE_LATEST_LOCK).parent
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO / "src"),
    }


def lint(runner: Runner) -> None:
    """Every linter in one phase, ansible-lint under both Ansibles; the first failing command
    raises (invoke: its exit code)."""
    with phase("lint"):
        for command in LINTERS.values():
            runner(command)
        runner(ANSIBLE_LINT, env=newest_ansible())


def run_suites(
    runner: Runner,
    reports: Path,
    *,
    unit: bool = False,
    e2e: bool = False,
    sb3: bool = False,
    molecule: bool = False,
    scenario: list[str] | None = None,
    tour: bool = False,
    collection: bool = False,
) -> SuiteRun:
    """Run the selected suites (none selected: lint, unit, e2e, sb3, collection, molecule,
    tour), JUnit
    files under ``reports``; print the summary and return the run. A failed phase does not stop
    the others; an unknown scenario (LabError) stops the run before any."""
    everything = not (unit or e2e or sb3 or molecule or tour or collection)
    selected = scenarios.select(scenario)
    reports.mkdir(parents=True, exist_ok=True)
    run = SuiteRun()

    def step(name: str, command: str, junit: Path | None = None, env: dict | None = None) -> None:
        with phase(name) as timed:
            if junit:
                junit.unlink(missing_ok=True)
            timed.ok = runner(command, warn=True, env=env or {}).ok
        counts = junit_counts(junit) if junit else Counts()
        run.phases.append(Phase(name, timed.ok, timed.seconds, counts))

    def venv_phase(name: str, build: Callable[[], T]) -> T | None:
        """A suite venv built (or found current) in a phase of its own: None, and that phase
        failed, when it cannot be built; the other suites still run."""
        with phase(f"{name} venv (~/.cache/gymlab/{name}-venv)") as timed:
            try:
                return build()
            except LabError as exc:
                print(f"gymlab: {exc}", flush=True)
                timed.ok = False
        run.phases.append(Phase(f"{name} venv", False, timed.seconds))
        return None

    if everything:
        for tool, command in LINTERS.items():
            step(f"lint: {tool}", command)
        latest = venv_phase("ansible-latest", newest_ansible)
        if latest is not None:
            step("lint: ansible-lint (newest ansible-core)", ANSIBLE_LINT, env=latest)
    if unit or e2e or everything:
        paths = [p for p, on in (("tests/unit", unit), ("tests/e2e", e2e)) if on or everything]
        xml = reports / "pytest.xml"
        step("pytest " + " ".join(paths), f"pytest {' '.join(paths)} -q --junitxml={xml}", xml)
    if sb3 or everything:
        requirements = REPO / "tests" / "sb3" / "requirements.txt"
        python = venv_phase(
            "sb3", lambda: suite_venv.ensure("sb3", requirements, REPO / "requirements.lock")
        )
        if python is not None:
            # Without Xvnc the remote tests skip with the reason, as tests/e2e do.
            xml = reports / "pytest-sb3.xml"
            command = f"{python} -m pytest tests/sb3 -q -p no:cacheprovider --junitxml={xml}"
            step("pytest tests/sb3", command, xml, {"PYTHONPATH": str(REPO / "src")})
    if collection or everything:
        collection_phases(step, venv_phase, run, reports)
    if molecule or everything:
        with phase("base images"):
            for recipe in images.resolve(sorted({i for s in selected.values() for i in s})):
                images.build(recipe)
        for name in selected:
            xml = reports / f"molecule-{name}.xml"
            # testinfra runs under pytest inside molecule verify: PYTEST_ADDOPTS reaches it.
            env = {"PYTEST_ADDOPTS": f"--junitxml={xml}"}
            title = f"molecule {name}"
            if name in scenarios.NEWEST_ANSIBLE:
                latest = venv_phase("ansible-latest", newest_ansible)
                if latest is None:
                    continue
                env |= latest
                title += " (newest ansible-core)"
            step(title, f"molecule test -s {name}", xml, env)
    if tour or everything:
        existed = sandbox.state() is not None
        step("tour: provision the sandbox", TOUR_PROVISION)
        xml = reports / f"verify-{sandbox.HOST}.xml"
        step("tour: verify the sandbox", f"{TOUR_VERIFY} --reports {reports}", xml)
        if not existed:
            step("tour: remove the sandbox it created", TOUR_CLEANUP)
    print(run.summary(), flush=True)
    return run


def collection_phases(step: Callable, venv_phase: Callable, run: SuiteRun, reports: Path) -> None:
    """The collection as Galaxy and ansible-test see it, all on one built tarball installed into
    a collections path outside the repository: ansible-test sanity (every test that runs
    without Docker) under the project venv's ansible-core and the newest, Galaxy's importer,
    CHANGELOG.md against changelogs/, and the consumer playbooks (tests/unit/test_collection.py)."""
    tools = venv_phase(
        "collection-tools", lambda: suite_venv.ensure("collection-tools", galaxy.TOOLS_LOCK)
    )
    latest = venv_phase("ansible-latest", newest_ansible)
    ansibles = {"ansible-core 2.16": Path(sys.executable).parent}
    if latest is not None:
        ansibles["newest ansible-core"] = Path(latest["PATH"].split(os.pathsep)[0])
    with tempfile.TemporaryDirectory(prefix="gymlab-collection-") as tmp:
        work = Path(tmp)
        with phase("collection: build and install the tarball") as timed:
            try:
                tarball = galaxy.build(work / "build")
                root = galaxy.install(tarball, work / "collections")
                for bin_dir in ansibles.values():
                    galaxy.install_get_pip_standin(galaxy.ansible_test_root(bin_dir))
            except LabError as exc:
                print(f"gymlab: {exc}", flush=True)
                timed.ok = False
        if not timed.ok:
            run.phases.append(Phase("collection: build and install", False, timed.seconds))
            return
        for name, bin_dir in ansibles.items():
            # only PATH: the sanity venvs must import gymlab from the install, not from src/
            step(f"collection: ansible-test sanity ({name})", galaxy.sanity_command(root, bin_dir),
                 env={"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})  # fmt: skip
        if tools is not None:
            step("collection: galaxy-importer", galaxy.importer_command(tarball, tools, work))
            step(
                "collection: CHANGELOG.md renders changelogs/",
                galaxy.changelog_command(tools, work),
            )
        xml = reports / "pytest-collection.xml"
        step("collection: consumer playbooks on the tarball",
             f"pytest tests/unit/test_collection.py -q -p no:cacheprovider --junitxml={xml}", xml,
             {"GYMLAB_COLLECTION_TARBALL": str(tarball)})  # fmt: skip
