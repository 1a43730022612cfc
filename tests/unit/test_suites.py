"""`invoke test` and `invoke lint` without running a suite: which commands each selection runs,
with what environment, and how their results make the phases and the summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gymlab.lab import collection, images, sandbox, scenarios, suite_venv, suites
from gymlab.lab.errors import LabError
from gymlab.lab.report import Counts

SB3_PYTHON = Path("/cache/sb3-venv/bin/python")
JUNIT = """<testsuites><testsuite tests="4" failures="1" errors="0" skipped="1">
<testcase name="a"/><testcase name="b"/><testcase name="c"><failure message="x"/></testcase>
<testcase name="d"><skipped/></testcase></testsuite></testsuites>"""


@dataclass
class Result:
    ok: bool


class FakeRunner:
    """Records every command with its keyword arguments; fails those containing a word of
    ``failing``; writes ``junit`` to the command's --junitxml file when given one."""

    def __init__(self, failing: tuple[str, ...] = (), junit: str | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.failing = failing
        self.junit = junit

    def __call__(self, command: str, **kwargs: Any) -> Result:
        self.calls.append((command, kwargs))
        if self.junit and "--junitxml=" in command:
            Path(command.split("--junitxml=")[1].split()[0]).write_text(self.junit)
        return Result(not any(word in command for word in self.failing))

    @property
    def commands(self) -> list[str]:
        return [command for command, _ in self.calls]


@pytest.fixture(autouse=True)
def no_builds(monkeypatch) -> list[str]:
    """No venv and no image is ever built here: the names of the images asked for."""
    built: list[str] = []
    monkeypatch.setattr(suite_venv, "ensure", lambda *args, **kwargs: SB3_PYTHON)
    monkeypatch.setattr(images, "build", lambda recipe, **kwargs: built.append(recipe.name))
    # the collection phase's tarball: a name, nothing built, installed or copied
    monkeypatch.setattr(collection, "build", lambda out, **kwargs: out / TARBALL)
    monkeypatch.setattr(collection, "install", lambda tarball, path, **kwargs: path / "lab")
    monkeypatch.setattr(collection, "install_get_pip_standin", lambda root: root)
    monkeypatch.setattr(collection, "ansible_test_root", lambda bin_dir: bin_dir)
    return built


TARBALL = "gymlab-lab-0.1.0.tar.gz"
COLLECTION_PHASES = [
    "collection: ansible-test sanity (ansible-core 2.16)",
    "collection: ansible-test sanity (newest ansible-core)",
    "collection: galaxy-importer",
    "collection: CHANGELOG.md renders changelogs/",
    "collection: consumer playbooks on the tarball",
]


def test_the_collection_phase_checks_one_tarball_under_both_ansibles(tmp_path):
    runner = FakeRunner(failing=("sanity --local",))
    run = suites.run_suites(runner, tmp_path, collection=True)
    assert names(run) == COLLECTION_PHASES
    assert [p.name for p in run.phases if not p.ok] == COLLECTION_PHASES[:2]
    sanity = [c for c in runner.commands if "ansible-test sanity --local" in c]
    assert len(sanity) == 2 and len({c.split(" && ")[0] for c in sanity}) == 1
    assert {c.split(" && ")[1].split()[0] for c in sanity} == {
        f"{Path(suites.sys.executable).parent}/ansible-test",
        f"{SB3_PYTHON.parent}/ansible-test",
    }
    importer, consumer = runner.calls[2][0], runner.calls[4]
    tarball = importer.split()[-1]
    assert tarball.endswith(TARBALL)
    assert consumer[1]["env"] == {"GYMLAB_COLLECTION_TARBALL": tarball}


@pytest.fixture(autouse=True)
def sandbox_state(monkeypatch) -> dict[str, str | None]:
    """No Docker is asked: the sandbox container's state the tour sees (absent by default)."""
    seen: dict[str, str | None] = {"state": None}
    monkeypatch.setattr(sandbox, "state", lambda *args, **kwargs: seen["state"])
    return seen


def names(run) -> list[str]:
    return [p.name for p in run.phases]


@pytest.mark.parametrize(
    ("selection", "paths"),
    [
        ({"unit": True}, "tests/unit"),
        ({"e2e": True}, "tests/e2e"),
        ({"unit": True, "e2e": True}, "tests/unit tests/e2e"),
    ],
)
def test_pytest_selections_run_one_pytest_and_nothing_else(tmp_path, no_builds, selection, paths):
    runner = FakeRunner()
    run = suites.run_suites(runner, tmp_path, **selection)
    assert runner.calls == [
        (f"pytest {paths} -q --junitxml={tmp_path / 'pytest.xml'}", {"warn": True, "env": {}})
    ]
    assert names(run) == [f"pytest {paths}"]
    assert run.ok
    assert no_builds == []


def test_no_selection_runs_every_suite_in_order(tmp_path, no_builds):
    runner = FakeRunner()
    run = suites.run_suites(runner, tmp_path)
    known = scenarios.scenarios()
    assert runner.commands == [
        *suites.LINTERS.values(),
        suites.ANSIBLE_LINT,
        f"pytest tests/unit tests/e2e -q --junitxml={tmp_path / 'pytest.xml'}",
        f"{SB3_PYTHON} -m pytest tests/sb3 -q -p no:cacheprovider"
        f" --junitxml={tmp_path / 'pytest-sb3.xml'}",
        *runner.commands[6:11],  # the collection phase (its own test)
        *(f"molecule test -s {name}" for name in known),
        "./lab provision --host sandbox",
        f"./lab verify --host sandbox --reports {tmp_path}",
        "./lab sandbox down",
    ]
    assert names(run) == [
        *(f"lint: {tool}" for tool in suites.LINTERS),
        "lint: ansible-lint (newest ansible-core)",
        "pytest tests/unit tests/e2e",
        "pytest tests/sb3",
        *COLLECTION_PHASES,
        *(
            f"molecule {name}"
            + (" (newest ansible-core)" if name in scenarios.NEWEST_ANSIBLE else "")
            for name in known
        ),
        "tour: provision the sandbox",
        "tour: verify the sandbox",
        "tour: remove the sandbox it created",
    ]
    assert run.ok
    assert no_builds == sorted({image for used in known.values() for image in used})
    assert all(kwargs["warn"] is True for _, kwargs in runner.calls)


def test_scenarios_of_todays_releases_run_under_the_newest_ansible(tmp_path):
    runner = FakeRunner()
    [name] = sorted(scenarios.NEWEST_ANSIBLE)
    run = suites.run_suites(runner, tmp_path, molecule=True, scenario=[name, "default"])
    (latest, latest_kwargs), (default, default_kwargs) = runner.calls
    latest_env, default_env = latest_kwargs["env"], default_kwargs["env"]
    assert (latest, default) == (f"molecule test -s {name}", "molecule test -s default")
    # the newest Ansible's venv comes first on PATH; the 2.16 scenario keeps the caller's PATH
    assert latest_env["PATH"].startswith(f"{SB3_PYTHON.parent}:")
    assert latest_env["PYTHONPATH"] == str(suites.REPO / "src")
    assert "PATH" not in default_env
    assert names(run) == [f"molecule {name} (newest ansible-core)", "molecule default"]


def test_a_newest_ansible_venv_that_cannot_be_built_fails_its_phase_only(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise LabError("building the ansible-latest venv failed (exit 1)")

    monkeypatch.setattr(suite_venv, "ensure", broken)
    runner = FakeRunner()
    [name] = sorted(scenarios.NEWEST_ANSIBLE)
    run = suites.run_suites(runner, tmp_path, molecule=True, scenario=[name, "default"])
    assert runner.commands == ["molecule test -s default"]
    assert [(p.name, p.ok) for p in run.phases] == [
        ("ansible-latest venv", False),
        ("molecule default", True),
    ]
    assert not run.ok


def test_sb3_runs_with_the_checkout_on_pythonpath(tmp_path):
    runner = FakeRunner()
    run = suites.run_suites(runner, tmp_path, sb3=True)
    [(command, kwargs)] = runner.calls
    assert command.startswith(f"{SB3_PYTHON} -m pytest tests/sb3 ")
    assert kwargs["env"] == {"PYTHONPATH": str(suites.REPO / "src")}
    assert names(run) == ["pytest tests/sb3"]


def test_molecule_scenario_builds_its_images_and_reports_through_pytest_addopts(
    tmp_path, no_builds
):
    runner = FakeRunner()
    run = suites.run_suites(runner, tmp_path, molecule=True, scenario=["default"])
    xml = tmp_path / "molecule-default.xml"
    assert runner.calls == [
        ("molecule test -s default", {"warn": True, "env": {"PYTEST_ADDOPTS": f"--junitxml={xml}"}})
    ]
    assert names(run) == ["molecule default"]
    assert no_builds == list(scenarios.scenarios()["default"])


def test_an_unknown_scenario_runs_nothing(tmp_path):
    runner = FakeRunner()
    with pytest.raises(LabError, match="unknown scenario nope"):
        suites.run_suites(runner, tmp_path, molecule=True, scenario=["nope"])
    assert runner.calls == []


def test_a_failing_phase_fails_the_run_and_the_others_still_run(tmp_path, capsys):
    runner = FakeRunner(failing=("yamllint",))
    run = suites.run_suites(runner, tmp_path)
    assert not run.ok
    assert {p.name: p.ok for p in run.phases if not p.ok} == {"lint: yamllint": False}
    assert len(runner.commands) == len(run.phases)
    out = capsys.readouterr().out
    assert "==> lint: yamllint: FAILED in 0s" in out
    assert out.rstrip().endswith(run.summary())


def test_a_failed_sb3_venv_is_a_failed_phase_without_its_pytest(tmp_path, monkeypatch, capsys):
    def broken(*args: Any, **kwargs: Any) -> Path:
        raise LabError("building the sb3 venv failed")

    monkeypatch.setattr(suite_venv, "ensure", broken)
    runner = FakeRunner()
    run = suites.run_suites(runner, tmp_path, unit=True, sb3=True)
    assert names(run) == ["pytest tests/unit", "sb3 venv"]
    assert not run.ok
    assert not any("tests/sb3" in command for command in runner.commands)
    assert "gymlab: building the sb3 venv failed" in capsys.readouterr().out


def test_phases_carry_their_junit_counts(tmp_path):
    run = suites.run_suites(FakeRunner(junit=JUNIT), tmp_path, unit=True)
    [phase] = run.phases
    assert phase.counts == Counts(passed=2, failed=1, skipped=1)
    assert phase.seconds >= 0


def test_a_stale_junit_file_is_not_counted(tmp_path):
    (tmp_path / "pytest.xml").write_text(JUNIT)
    run = suites.run_suites(FakeRunner(failing=("pytest",)), tmp_path, unit=True)
    [phase] = run.phases
    assert not phase.ok
    assert phase.counts == Counts()
    assert not (tmp_path / "pytest.xml").exists()


def test_the_reports_directory_is_created(tmp_path):
    reports = tmp_path / "a" / "b"
    suites.run_suites(FakeRunner(), reports, unit=True)
    assert reports.is_dir()


def test_lint_runs_every_linter_in_one_phase(capsys):
    runner = FakeRunner()
    suites.lint(runner)
    assert runner.calls == [
        *((command, {}) for command in suites.LINTERS.values()),
        (suites.ANSIBLE_LINT, {"env": suites.newest_ansible()}),
    ]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "==> lint"
    assert out[-1].startswith("==> lint: done in ")


def test_lint_stops_at_the_first_linter_that_raises(capsys):
    commands: list[str] = []

    def runner(command: str, **kwargs: Any) -> Result:
        commands.append(command)
        raise RuntimeError("exit 1")  # invoke's UnexpectedExit, without warn=True

    with pytest.raises(RuntimeError):
        suites.lint(runner)
    assert commands == [suites.LINTERS["ruff"]]
    assert capsys.readouterr().out.splitlines()[-1].startswith("==> lint: FAILED in ")


def test_the_tour_runs_the_readmes_commands_and_counts_verify(tmp_path):
    runner = FakeRunner(junit=None)
    (tmp_path / "verify-sandbox.xml").write_text("stale")  # a former run's: never counted

    def verify_writes_junit(command: str, **kwargs: Any) -> Result:
        if command.startswith("./lab verify"):
            (tmp_path / "verify-sandbox.xml").write_text(JUNIT)
        return runner(command, **kwargs)

    run = suites.run_suites(verify_writes_junit, tmp_path, tour=True)
    assert runner.commands == [
        "./lab provision --host sandbox",
        f"./lab verify --host sandbox --reports {tmp_path}",
        "./lab sandbox down",
    ]
    assert run.phases[1].counts == Counts(passed=2, failed=1, skipped=1)


def test_the_tour_leaves_a_sandbox_that_was_there_before(tmp_path, sandbox_state):
    sandbox_state["state"] = "running"
    runner = FakeRunner()
    suites.run_suites(runner, tmp_path, tour=True)
    assert "./lab sandbox down" not in runner.commands
    assert runner.commands[0] == "./lab provision --host sandbox"


def test_a_failed_tour_verify_fails_the_run(tmp_path):
    run = suites.run_suites(FakeRunner(failing=("verify",)), tmp_path, tour=True)
    assert not run.ok
    assert [p.name for p in run.phases if not p.ok] == ["tour: verify the sandbox"]
