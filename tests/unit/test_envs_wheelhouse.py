"""The profiles' wheelhouse on the control machine: a folder per locked Python, each with its
stamp; the client wheel built once per source."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from gymlab.envs import wheelhouse
from gymlab.envs.profiles import ENVS_DIR

FIXTURE_ENVS = ENVS_DIR.parent / "tests" / "fixtures" / "conda_envs"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_client_wheel_is_built_once_per_source(tmp_path, monkeypatch):
    assert wheelhouse.build_client(tmp_path)
    (wheel,) = (tmp_path / "gymlab").glob("gymlab-*.whl")

    def no_build(*args, **kwargs):
        pytest.fail("the client wheel was built again from the same sources")

    monkeypatch.setattr(wheelhouse, "build_host_wheel", no_build)
    assert not wheelhouse.build_client(tmp_path)
    # a folder that lost its wheel is built again
    wheel.unlink()
    monkeypatch.undo()
    assert wheelhouse.build_client(tmp_path)
    assert wheel.is_file()


@pytest.fixture
def envs(tmp_path) -> Path:
    copy = tmp_path / "envs"
    shutil.copytree(ENVS_DIR / "modern", copy / "modern")
    shutil.copytree(FIXTURE_ENVS / "conda-fixture", copy / "conda-fixture")
    return copy


@pytest.fixture
def pip_downloads(monkeypatch) -> list[dict[str, str]]:
    """pip download replaced: it puts one fake wheel per lock into --dest; the calls made."""
    calls: list[dict[str, str]] = []
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")

    def fake_run(argv, check):
        options = {argv[i]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("-")}
        calls.append(options)
        Path(options["--dest"], f"fake-{options['--python-version']}.whl").write_text("")

    monkeypatch.setattr(wheelhouse.subprocess, "run", fake_run)
    return calls


def test_a_hosts_python_gets_a_folder_of_its_own_lock(envs, tmp_path, pip_downloads):
    out = tmp_path / "wheels"
    assert wheelhouse.fetch("modern", out, envs, ["3.12"])
    lock = envs / "modern" / "requirements-py3.12.lock"
    folder = out / "modern" / "py3.12"
    (call,) = pip_downloads
    assert (call["--python-version"], call["-r"], call["--dest"]) == (
        "3.12",
        str(lock),
        str(folder),
    )
    assert sorted(p.name for p in (out / "modern").iterdir()) == ["py3.12"]
    assert sorted(p.name for p in folder.iterdir()) == [".gymlab-lock-sha256", "fake-3.12.whl"]
    assert (folder / ".gymlab-lock-sha256").read_text() == sha256(lock.read_bytes()) + "\n"
    # the stamp makes a second run a no-op; another lock for that Python fetches again
    assert not wheelhouse.fetch("modern", out, envs, ["3.12"])
    lock.write_text(lock.read_text() + "\n")
    assert wheelhouse.fetch("modern", out, envs, ["3.12"]) and len(pip_downloads) == 2
    assert (folder / ".gymlab-lock-sha256").read_text() == sha256(lock.read_bytes()) + "\n"


def test_without_a_python_every_lock_is_fetched(envs, tmp_path, pip_downloads):
    out = tmp_path / "wheels"
    assert wheelhouse.main(["--env", "modern", "--out", str(out), "--envs-dir", str(envs)]) == 0
    assert [c["--python-version"] for c in pip_downloads] == ["3.10", "3.11", "3.12", "3.13"]
    for python in ("3.10", "3.11", "3.12", "3.13"):
        assert (out / "modern" / f"py{python}" / f"fake-{python}.whl").is_file()


def test_a_python_the_profile_lacks_is_refused_before_any_download(
    envs, tmp_path, pip_downloads, capsys
):
    argv = ["--env", "modern", "--out", str(tmp_path / "w"), "--envs-dir", str(envs)]
    assert wheelhouse.main([*argv, "--python", "3.9"]) == 1
    assert capsys.readouterr().err == (
        "gymlab: profile modern has no lock for Python 3.9 (the host's python3); "
        "it is locked for 3.10, 3.11, 3.12, 3.13\n"
    )
    assert pip_downloads == []


def test_a_conda_parts_pypi_lock_is_its_pythons_whatever_the_host(envs, tmp_path, pip_downloads):
    out = tmp_path / "wheels"
    assert wheelhouse.fetch("conda-fixture", out, envs, ["3.13"])
    assert [c["--python-version"] for c in pip_downloads] == ["3.11"]
    assert (out / "conda-fixture" / "py3.11" / "fake-3.11.whl").is_file()
