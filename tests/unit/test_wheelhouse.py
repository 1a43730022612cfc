"""The runtime hosts' wheelhouse (gymlab.lab.wheelhouse), resolved under the runtime lock of the
host's Python (the locks themselves: test_runtime_locks.py).

The pure parts run without a network, and so do the builds whose pip is faked; the others run
real pip against pip's own configured index (as the gym_runtime role does on the control
machine).
"""

from __future__ import annotations

import hashlib
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


def test_build_refuses_a_version_the_runtime_lock_does_not_pin_in_one_line(tmp_path):
    with pytest.raises(ValueError) as caught:
        wheelhouse.build(tmp_path / "w", "3.10", "2.35", extras=["minigrid==3.2.0"])
    assert str(caught.value) == (
        "extra package minigrid==3.2.0 is not the minigrid==3.1.0 that "
        "runtime-envs/py3.10.lock pins"
    )
    wheelhouse.check_extras(["minigrid==3.2.0", "unlocked==1.0"], wheelhouse.read_lock(
        REPO / "runtime-envs/py3.11.lock"), "x")  # fmt: skip
    assert not (tmp_path / "w").exists()


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
    for name in ("pyproject.toml", "README.md", "runtime-envs.in"):
        shutil.copy2(repo / name, project / name)
    shutil.copytree(repo / "runtime-envs", project / "runtime-envs")
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


def test_main_refuses_a_python_without_a_runtime_lock_in_one_line(tmp_path, capsys):
    code = wheelhouse.main(["--out", str(tmp_path / "w"), "--python", "3.9", "--glibc", "2.31"])
    assert code == 1
    assert capsys.readouterr().err == (
        "gymlab wheelhouse: no runtime lock for Python 3.9; "
        "runtime locks cover 3.10, 3.11, 3.12, 3.13\n"
    )
    assert not list(tmp_path.iterdir())


def _scratch_project(tmp_path: Path) -> Path:
    """What a build reads (gymlab's sources, the runtime locks and their inputs), copied."""
    project = tmp_path / "project"
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "runtime-envs.in"):
        shutil.copy2(REPO / name, project / name)
    shutil.copytree(REPO / "runtime-envs", project / "runtime-envs")
    return project


class FakePip:
    """subprocess.run for pip: ``wheel`` leaves a gymlab wheel, ``download`` records its
    arguments and the constraints it was given, and leaves ``self.fetch`` (name -> bytes)."""

    def __init__(self) -> None:
        self.downloads: list[list[str]] = []
        self.constraints: list[str] = []
        self.fetch: dict[str, bytes] = {}

    def __call__(self, argv, *args, **kwargs):
        argv = [str(a) for a in argv]
        if "wheel" in argv:
            Path(argv[argv.index("-w") + 1], "gymlab-0.1.0-py3-none-any.whl").write_bytes(b"g")
        elif "download" in argv:
            self.downloads.append(argv)
            self.constraints += [
                Path(argv[i + 1]).read_text() for i, a in enumerate(argv) if a == "-c"
            ]
            dest = Path(argv[argv.index("-d") + 1])
            dest.mkdir(parents=True, exist_ok=True)
            for name, payload in self.fetch.items():
                (dest / name).write_bytes(payload)
        return subprocess.CompletedProcess(argv, 0, "", "")


@pytest.fixture
def fake_pip(monkeypatch) -> FakePip:
    fake = FakePip()
    monkeypatch.setattr(wheelhouse.subprocess, "run", fake)
    return fake


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
def test_pip_is_constrained_by_the_runtime_lock_of_the_target_python_only(
    tmp_path, fake_pip, python
):
    assert wheelhouse.build(tmp_path / "w", python, "2.35", extras=["ale-py==0.12.1"])
    (argv,) = fake_pip.downloads
    assert argv[argv.index("--python-version") + 1] == python
    assert not any(a.endswith("requirements.lock") for a in argv)
    lock = wheelhouse.read_lock(REPO / f"runtime-envs/py{python}.lock")
    assert fake_pip.constraints == ["".join(f"{n}=={v}\n" for n, (v, _) in sorted(lock.items()))]
    numpy = {"3.10": "2.2.6", "3.11": "2.4.6", "3.12": "2.5.5", "3.13": "2.5.5"}[python]
    assert f"\nnumpy=={numpy}\n" in fake_pip.constraints[0]


def test_a_fetched_wheel_is_checked_against_the_target_pythons_lock(tmp_path, fake_pip):
    ((version, hashes),) = [
        wheelhouse.read_lock(REPO / "runtime-envs/py3.10.lock")["numpy"]
    ]  # fmt: skip
    assert hashlib.sha256(b"not numpy").hexdigest() not in hashes
    fake_pip.fetch = {f"numpy-{version}-cp310-cp310-manylinux_2_28_x86_64.whl": b"not numpy"}
    with pytest.raises(ValueError, match=rf"is not the numpy=={version} that runtime-envs/py3\.10"):
        wheelhouse.build(tmp_path / "w", "3.10", "2.35")
    assert not list((tmp_path / "w").glob("*.whl"))


def test_a_changed_runtime_lock_builds_again_and_a_stale_one_is_refused(tmp_path, fake_pip):
    project = _scratch_project(tmp_path)
    out = tmp_path / "w"
    assert wheelhouse.build(out, "3.12", "2.39", project=project)
    assert not wheelhouse.build(out, "3.12", "2.39", project=project)
    assert len(fake_pip.downloads) == 1, "the same inputs ask no index"
    # another Python's lock is no input of this folder
    (project / "runtime-envs/py3.13.lock").write_text("")
    assert not wheelhouse.build(out, "3.12", "2.39", project=project)
    lock = project / "runtime-envs/py3.12.lock"
    lock.write_text(lock.read_text().replace("\\\n", "\\\n", 1) + "# relocked\n")
    wheelhouse.build(out, "3.12", "2.39", project=project)
    assert len(fake_pip.downloads) == 2, "a changed lock is a changed input"

    families = project / "runtime-envs.in"
    families.write_text(families.read_text().replace("ale-py==0.12.1", "ale-py==0.11.2"))
    with pytest.raises(
        ValueError, match=r"^runtime lock runtime-envs/py3\.12\.lock does not match"
    ):
        wheelhouse.build(out, "3.12", "2.39", project=project)
    lock.unlink()
    with pytest.raises(ValueError, match=r"py3\.12\.lock is missing; run `invoke lock --runtime`$"):
        wheelhouse.build(out, "3.12", "2.39", project=project)
    assert len(fake_pip.downloads) == 2
