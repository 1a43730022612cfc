"""The runtime hosts' wheelhouse (gymlab.lab.wheelhouse) and the env families' lock.

The pure parts run without a network; the two build tests run real pip against pip's own
configured index (as the gym_runtime role does on the control machine).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gymlab.lab import wheelhouse

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "requirement",
    ["ale-py==0.12.1", "Box2D==2.3.10", "gymnasium[box2d]==1.4.0", " minigrid==3.2.0 "],
)
def test_pinned_accepts_one_exact_version(requirement):
    assert wheelhouse.pinned(requirement) == requirement.strip()


@pytest.mark.parametrize(
    "requirement",
    ["ale-py", "ale-py>=0.12", "ale-py==0.12.*", "ale-py===0.12.1", "ale-py==0.12.1,<1",
     "ale-py @ file:///x.whl", "", "ale-py==0.12.1 --hash=sha256:00"],
)  # fmt: skip
def test_pinned_refuses_anything_else_in_one_line_naming_it(requirement):
    with pytest.raises(ValueError) as caught:
        wheelhouse.pinned(requirement)
    message = str(caught.value)
    assert "\n" not in message
    assert repr(requirement) in message and "expected name==version" in message


def test_main_reports_an_unpinned_extra_in_one_line(tmp_path, capsys):
    code = wheelhouse.main(
        ["--out", str(tmp_path), "--python", "3.11", "--glibc", "2.36", "--extra", "ale-py>=0.12"]
    )
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "'ale-py>=0.12' is not pinned" in err
    assert not list(tmp_path.iterdir()), "nothing may be downloaded for a bad request"


@pytest.mark.parametrize("name", ["missing.whl", "notes.txt"])
def test_artifact_that_is_no_wheel_or_sdist_is_refused(tmp_path, name):
    if name.endswith(".txt"):
        (tmp_path / name).write_text("x")
    with pytest.raises(ValueError, match=r"expected a wheel \(\.whl\) or an sdist"):
        wheelhouse.artifact_wheel(tmp_path / name, tmp_path)


def test_committed_envs_lock_hashes_every_pin_and_names_no_index():
    text = (REPO / "runtime-envs.lock").read_text()
    lock = wheelhouse.read_lock(REPO / "runtime-envs.lock")
    assert lock["ale-py"][0] == "0.12.1"
    assert lock["minigrid"][0] == "3.2.0"
    assert lock["box2d"][0] == "2.3.10"
    assert all(hashes for _, hashes in lock.values())
    assert not re.search(r"--(extra-)?index-url|https?://", text)


def test_committed_envs_lock_has_every_pin_of_its_input_and_agrees_with_requirements_lock():
    lock = wheelhouse.read_lock(REPO / "runtime-envs.lock")
    for line in (REPO / "runtime-envs.in").read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            name, version = spec.split("==")
            assert lock[wheelhouse.canonical(name)][0] == version, spec
    project = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split(";")[0].split("==")
            project[wheelhouse.canonical(name)] = version.split()[0]
    for name, (version, _) in lock.items():
        if name in project:
            assert project[name] == version, f"{name}: {version} here, {project[name]} there"


def test_roles_browser_packages_are_the_browser_extra_at_the_locked_versions():
    """gym_runtime_browser_packages (what a host serving a web task gets) names exactly the
    packages of pyproject's browser extra, each at the version runtime-envs.lock hashes."""
    tomllib = pytest.importorskip("tomllib")
    import yaml

    defaults = yaml.safe_load((REPO / "roles/gym_runtime/defaults/main.yml").read_text())
    pins = dict(p.split("==") for p in defaults["gym_runtime_browser_packages"])
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {
        re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]
        for r in extra["optional-dependencies"]["browser"]
    }
    assert {wheelhouse.canonical(n) for n in pins} == {wheelhouse.canonical(n) for n in wanted}
    lock = wheelhouse.read_lock(REPO / "runtime-envs.lock")
    for name, version in pins.items():
        assert lock[wheelhouse.canonical(name)][0] == version, f"{name}=={version}"


def test_read_lock_refuses_an_unhashed_or_unpinned_entry(tmp_path):
    lock = tmp_path / "x.lock"
    lock.write_text("numpy==2.4.6\n")
    with pytest.raises(ValueError, match="has no --hash"):
        wheelhouse.read_lock(lock)
    lock.write_text("numpy>=2 \\\n    --hash=sha256:00\n")
    with pytest.raises(ValueError, match="is not pinned"):
        wheelhouse.read_lock(lock)


def _fake_wheel(directory: Path, name: str, version: str, payload: bytes) -> Path:
    path = directory / f"{name}-{version}-py3-none-any.whl"
    path.write_bytes(payload)
    return path


def test_verify_accepts_locked_hashes_and_refuses_a_changed_file(tmp_path):
    good = _fake_wheel(tmp_path, "ale_py", "0.12.1", b"the real one")
    lock = {"ale-py": ("0.12.1", frozenset({hashlib.sha256(b"the real one").hexdigest()}))}
    wheelhouse.verify([good], lock, "x.lock")
    other = _fake_wheel(tmp_path, "unlocked", "1.0", b"anything")
    wheelhouse.verify([other], lock, "x.lock")  # the lock says nothing about it
    good.write_bytes(b"tampered")
    with pytest.raises(ValueError, match=r"ale_py-0\.12\.1.*is not the ale-py==0\.12\.1"):
        wheelhouse.verify([good], lock, "x.lock")
    older = _fake_wheel(tmp_path, "ale_py", "0.11.0", b"the real one")
    with pytest.raises(ValueError, match=r"is not the ale-py==0\.12\.1"):
        wheelhouse.verify([older], lock, "x.lock")


def test_sync_leaves_exactly_the_new_set_and_a_hash_per_wheel(tmp_path):
    out, new = tmp_path / "out", tmp_path / "new"
    out.mkdir()
    new.mkdir()
    _fake_wheel(out, "stale", "1.0", b"old")
    kept = _fake_wheel(out, "Kept_Pkg", "2.0", b"same")
    kept_mtime = kept.stat().st_mtime_ns
    _fake_wheel(new, "Kept_Pkg", "2.0", b"same")
    _fake_wheel(new, "fresh", "3.0", b"new")
    wheelhouse._sync(new, out)
    assert sorted(p.name for p in out.glob("*.whl")) == [
        "Kept_Pkg-2.0-py3-none-any.whl",
        "fresh-3.0-py3-none-any.whl",
    ]
    assert kept.stat().st_mtime_ns == kept_mtime, "an unchanged wheel was rewritten"
    sha = hashlib.sha256
    assert (out / "requirements.txt").read_text() == (
        f"fresh==3.0 --hash=sha256:{sha(b'new').hexdigest()}\n"
        f"kept-pkg==2.0 --hash=sha256:{sha(b'same').hexdigest()}\n"
    )


@pytest.mark.parametrize(
    ("glibc", "newest", "count"), [("2.36", "manylinux_2_36_x86_64", 23), ("2.17", None, 4)]
)
def test_platforms_never_exceed_the_hosts_glibc(glibc, newest, count):
    tags = wheelhouse.platforms(glibc)
    assert len(tags) == count and tags[-3:] == [
        f"manylinux{a}_x86_64" for a in ("2014", "2010", "1")
    ]
    assert tags[0] == (newest or "manylinux_2_17_x86_64")
    with pytest.raises(ValueError, match=r"2\.17 or newer"):
        wheelhouse.platforms("2.12")


def _gym_foo_sdist(tmp_path: Path) -> Path:
    """A lab's own env package in the gym-foo pattern, as an sdist built here."""
    src = tmp_path / "gym-foo"
    (src / "gym_foo").mkdir(parents=True)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            """\
            [build-system]
            requires = ["setuptools>=77"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "gym_foo"
            version = "0.1.0"
            dependencies = ["gymnasium>=1.0"]
            """
        )
    )
    (src / "gym_foo" / "__init__.py").write_text("FOO = 1\n")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(dist), str(src)],
        check=True,
        capture_output=True,
    )
    (sdist,) = dist.glob("*.tar.gz")
    return sdist


def test_build_resolves_gymlab_extras_and_an_sdist_together_and_is_idempotent(tmp_path):
    sdist = _gym_foo_sdist(tmp_path)
    out = tmp_path / "wheelhouse"
    assert wheelhouse.build(out, "3.11", "2.36", extras=["box2d==2.3.10"], artifacts=[sdist])
    requirements = (out / "requirements.txt").read_text().splitlines()
    names = {line.split("==")[0] for line in requirements}
    assert {"gymlab", "gym-foo", "box2d", "gymnasium", "numpy", "python-xlib"} <= names
    wheels = sorted(out.glob("*.whl"))
    assert len(requirements) == len(wheels)
    for wheel in wheels:
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        assert any(line.endswith(f"--hash=sha256:{sha}") for line in requirements), wheel.name
    # the sdist became a byte-stable wheel: the same request changes nothing
    assert not wheelhouse.build(out, "3.11", "2.36", extras=["box2d==2.3.10"], artifacts=[sdist])
    # dropping the extras drops their wheels
    assert wheelhouse.build(out, "3.11", "2.36")
    assert not list(out.glob("gym_foo-*.whl")) and not list(out.glob("[Bb]ox2[Dd]-*.whl"))
    assert "gym-foo" not in (out / "requirements.txt").read_text()


def test_build_refuses_a_version_the_envs_lock_does_not_pin(tmp_path):
    with pytest.raises(subprocess.CalledProcessError):
        wheelhouse.build(tmp_path / "w", "3.11", "2.36", extras=["box2d==2.3.9"])
    assert not list((tmp_path / "w").glob("*.whl"))


def test_the_host_wheel_leaves_the_control_machine_tooling_out(tmp_path):
    """Hosts get gymlab without gymlab.lab and gymlab.envs, byte for byte the same each build."""
    import zipfile

    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = wheelhouse.build_host_wheel(repo, tmp_path / "a")
    second = wheelhouse.build_host_wheel(repo, tmp_path / "b")
    assert first.read_bytes() == second.read_bytes()
    packages = {n.split("/")[1] for n in zipfile.ZipFile(first).namelist() if n.count("/") > 1}
    assert {"runtime", "client", "rewarder", "rfb"} <= packages
    assert not packages & {"lab", "envs"}, packages


def test_a_build_from_the_same_inputs_runs_no_pip_and_a_changed_input_builds_again(
    tmp_path, monkeypatch
):
    """Re-converging a host asks no index: the inputs are recorded beside the folder."""
    repo = Path(__file__).resolve().parents[2]
    project = tmp_path / "project"
    shutil.copytree(repo / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "requirements.lock"):
        shutil.copy2(repo / name, project / name)
    out = tmp_path / "wheelhouse"
    assert wheelhouse.build(out, "3.11", "2.36", project=project)
    assert (tmp_path / "wheelhouse.inputs").is_file() and not (out / "wheelhouse.inputs").exists()

    real_run = subprocess.run
    calls = []

    def counting_run(argv, *args, **kwargs):
        calls.append(argv)
        return real_run(argv, *args, **kwargs)

    monkeypatch.setattr(wheelhouse.subprocess, "run", counting_run)
    assert not wheelhouse.build(out, "3.11", "2.36", project=project)
    assert calls == []
    # a controller-only module is no input of the hosts' wheel
    (project / "src/gymlab/lab/scratch.py").write_text("X = 1\n")
    assert not wheelhouse.build(out, "3.11", "2.36", project=project)
    assert calls == []
    # a changed source of the hosts' wheel is built again (and the wheel differs)
    (project / "src/gymlab/runtime/scratch.py").write_text("X = 1\n")
    assert wheelhouse.build(out, "3.11", "2.36", project=project)
    assert calls
    # a folder that lost a wheel since is built again, even from the same inputs
    calls.clear()
    next(out.glob("six-*.whl")).unlink()
    assert wheelhouse.build(out, "3.11", "2.36", project=project)
    assert calls and list(out.glob("six-*.whl"))
