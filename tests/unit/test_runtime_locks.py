"""The runtime hosts' locks (gymlab.lab.runtime_locks): one per host Python, current, hashed.

No network: uv is faked where a lock is compiled.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from gymlab.lab import runtime_locks, wheelhouse

REPO = Path(__file__).resolve().parents[2]
REFUSAL = "no runtime lock for Python {}; runtime locks cover 3.10, 3.11, 3.12, 3.13"


def _project(tmp_path: Path) -> Path:
    """What the runtime locks are resolved from, and the locks, in a scratch copy."""
    root = tmp_path / "project"
    root.mkdir()
    for name in ("pyproject.toml", runtime_locks.FAMILIES):
        shutil.copy2(REPO / name, root / name)
    shutil.copytree(REPO / runtime_locks.LOCKS_DIR, root / runtime_locks.LOCKS_DIR)
    return root


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
def test_each_python_maps_to_its_own_lock(python):
    assert runtime_locks.lock_path(python, Path("/x")) == Path(f"/x/runtime-envs/py{python}.lock")


@pytest.mark.parametrize("python", ["3.9", "3.14", "3.1", "3.10.12", "", "2.7"])
def test_a_python_without_a_lock_is_refused_in_one_line_naming_those_with_one(python):
    with pytest.raises(ValueError) as caught:
        runtime_locks.lock_path(python)
    assert str(caught.value) == REFUSAL.format(python)


@pytest.mark.parametrize("python", runtime_locks.PYTHONS)
def test_committed_lock_is_current_hashed_and_names_no_index(python):
    path = runtime_locks.lock_path(python)
    assert runtime_locks.problem(python) is None
    lock = wheelhouse.read_lock(path)  # refuses an unhashed or unpinned entry
    assert all(hashes for _, hashes in lock.values())
    assert not re.search(r"--(extra-)?index-url|https?://|/work/|/tmp/", path.read_text())


@pytest.mark.parametrize("python", runtime_locks.PYTHONS)
def test_committed_lock_pins_the_families_and_gymlabs_runtime_dependencies(python):
    """Every line of runtime-envs.in whose marker holds for this Python, at its version, and
    every dependency of gymlab[runtime] (numpy, gymnasium[classic-control], websockets, ...)."""
    lock = wheelhouse.read_lock(runtime_locks.lock_path(python))
    target = {"python_version": python, "python_full_version": f"{python}.0"}
    families = [
        Requirement(line) for line in runtime_locks._requirement_lines(REPO / "runtime-envs.in")
    ]
    applicable = [r for r in families if r.marker is None or r.marker.evaluate(target)]
    assert {wheelhouse.canonical(r.name) for r in applicable} == {
        wheelhouse.canonical(r.name) for r in families
    }, f"Python {python}: a family has no release for it"
    for req in applicable:
        (spec,) = req.specifier
        assert lock[wheelhouse.canonical(req.name)][0] == spec.version, f"{python}: {req}"
    for name in ("numpy", "gymnasium", "websockets", "pycryptodome", "python-xlib", "pygame-ce"):
        assert name in lock, f"{python}: {name}"


def test_python_310_gets_the_last_minigrid_that_supports_it():
    pins = {py: wheelhouse.read_lock(runtime_locks.lock_path(py))["minigrid"][0] for py in
            runtime_locks.PYTHONS}  # fmt: skip
    assert pins == {"3.10": "3.1.0", "3.11": "3.2.0", "3.12": "3.2.0", "3.13": "3.2.0"}


def test_roles_browser_packages_are_the_browser_extra_at_every_locked_version():
    """gym_runtime_browser_packages (what a host serving a web task gets) names exactly the
    packages of pyproject's browser extra, each at the version every runtime lock hashes."""
    tomllib = pytest.importorskip("tomllib")
    import yaml

    defaults = yaml.safe_load((REPO / "roles/gym_runtime/defaults/main.yml").read_text())
    pins = dict(p.split("==") for p in defaults["gym_runtime_browser_packages"])
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {Requirement(r).name for r in extra["optional-dependencies"]["browser"]}
    assert {wheelhouse.canonical(n) for n in pins} == {wheelhouse.canonical(n) for n in wanted}
    for python in runtime_locks.PYTHONS:
        lock = wheelhouse.read_lock(runtime_locks.lock_path(python))
        for name, version in pins.items():
            assert lock[wheelhouse.canonical(name)][0] == version, f"{python}: {name}=={version}"


def test_a_changed_input_makes_every_lock_stale_and_a_comment_does_not(tmp_path):
    root = _project(tmp_path)
    assert [runtime_locks.problem(py, root) for py in runtime_locks.PYTHONS] == [None] * 4
    families = root / "runtime-envs.in"
    families.write_text("# a note\n" + families.read_text().replace("#", "## "))
    assert runtime_locks.problem("3.12", root) is None, "comments are not resolved from"
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "0.1.0"', 'version = "0.2.0"'))
    assert runtime_locks.problem("3.12", root) is None, "the version is not resolved from"

    families.write_text(families.read_text().replace("selenium==4.51.0", "selenium==4.50.0"))
    for python in runtime_locks.PYTHONS:
        assert runtime_locks.problem(python, root) == (
            f"runtime lock runtime-envs/py{python}.lock does not match pyproject.toml's "
            "dependencies and runtime extra and runtime-envs.in; run `invoke lock --runtime`"
        )
    shutil.copy2(REPO / "runtime-envs.in", families)
    pyproject.write_text(
        pyproject.read_text().replace('"python-xlib>=0.33"', '"python-xlib>=0.34"')
    )
    assert "does not match" in (runtime_locks.problem("3.10", root) or "")


def test_check_reports_a_stale_and_a_missing_lock_with_the_command_to_fix_it(tmp_path, capsys):
    root = _project(tmp_path)
    assert runtime_locks.main(["--check", "--root", str(root)]) == 0
    assert capsys.readouterr().out == "runtime locks current: 3.10, 3.11, 3.12, 3.13\n"
    (root / "runtime-envs/py3.13.lock").unlink()
    lock = root / "runtime-envs/py3.10.lock"
    lock.write_text(lock.read_text().replace("# spec-sha256: ", "# spec-sha256: 0"))
    assert runtime_locks.main(["--check", "--root", str(root)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "stale: runtime lock runtime-envs/py3.10.lock does not match pyproject.toml's "
        "dependencies and runtime extra and runtime-envs.in; run `invoke lock --runtime`",
        "stale: runtime lock runtime-envs/py3.13.lock is missing; run `invoke lock --runtime`",
    ]


def test_compile_resolves_for_the_target_python_keeps_pins_and_stamps_the_inputs(
    tmp_path, monkeypatch
):
    root = _project(tmp_path)
    monkeypatch.setenv("PIP_INDEX_URL", "http://index.invalid/simple")
    calls = []

    def fake_uv(argv, **kwargs):
        out = Path(argv[argv.index("--output-file") + 1])
        calls.append((argv, kwargs, out.read_text() if out.is_file() else None))
        out.write_text("numpy==2.2.6 \\\n    --hash=sha256:00\n")
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(runtime_locks.subprocess, "run", fake_uv)
    old = (root / "runtime-envs/py3.10.lock").read_text()
    assert runtime_locks.main(["--python", "3.10", "--root", str(root)]) == 0
    ((argv, kwargs, given),) = calls
    assert argv[argv.index("--python-version") + 1] == "3.10"
    assert argv[argv.index("--python-platform") + 1] == "x86_64-manylinux_2_28"
    assert {"--generate-hashes", "pyproject.toml", "runtime-envs.in"} <= set(argv)
    assert argv[argv.index("--only-binary") + 1] == ":all:"
    assert argv[argv.index("--extra") + 1] == "runtime"
    assert kwargs["cwd"] == root, "relative inputs: no path of this machine in the lock"
    assert given == old, "uv gets the existing lock, so it keeps the pins that still fit"
    text = (root / "runtime-envs/py3.10.lock").read_text()
    assert text.endswith("numpy==2.2.6 \\\n    --hash=sha256:00\n")
    assert f"# spec-sha256: {runtime_locks.spec_digest('3.10', root)}\n" in text
    assert runtime_locks.problem("3.10", root) is None
    assert "http://index.invalid" not in text
