"""Profile specs and the PyPI lock's staleness check (no network: uv is never run here)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gymlab.envs import locking, pypi
from gymlab.envs.profiles import ENVS_DIR, all_profiles, get
from gymlab.lab.errors import LabError


@pytest.mark.parametrize(
    ("glibc", "platform"),
    [
        ("2.27", "x86_64-manylinux_2_17"),  # Ubuntu 18.04: below 2.28, manylinux2014 only
        ("2.31", "x86_64-manylinux_2_31"),
        ("2.36", "x86_64-manylinux_2_36"),  # Debian 12
        ("2.99", "x86_64-manylinux_2_40"),
    ],
)
def test_manylinux_platform_never_exceeds_the_hosts_glibc(glibc, platform):
    assert pypi.manylinux_platform(glibc) == platform


def test_manylinux_platform_refuses_a_glibc_older_than_manylinux():
    with pytest.raises(LabError, match=r"2\.17"):
        pypi.manylinux_platform("2.12")


def test_committed_profiles_read_their_specs():
    names = {p.name: p for p in all_profiles()}
    assert {"legacy-cuda9", "legacy-cuda9-conda", "modern"} <= set(names)
    assert names["legacy-cuda9-conda"].parts() == ("conda",)
    assert names["legacy-cuda9-conda"].virtual_packages()["__cuda"] == "9.0"
    assert names["legacy-cuda9"].python_version() == "3.6"
    assert names["legacy-cuda9"].virtual_packages()["__cuda"] == "9.0"
    assert names["modern"].python_version() == "3.11"


def test_committed_locks_are_current_and_hash_every_pin():
    with_pypi = [p for p in all_profiles() if "pypi" in p.parts()]
    assert {"legacy-cuda9", "modern"} <= {p.name for p in with_pypi}
    for profile in with_pypi:
        assert pypi.is_current(profile), f"{profile.name}: run `invoke lock --env {profile.name}`"
        pins = [line for line in profile.requirements_lock.read_text().splitlines() if "==" in line]
        text = profile.requirements_lock.read_text()
        assert pins and text.count("--hash=sha256:") >= len(pins)


@pytest.fixture
def copy_of_modern(tmp_path) -> Path:
    shutil.copytree(ENVS_DIR / "modern", tmp_path / "modern")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("requirements.in", lambda t: t + "pyyaml\n"),
        ("environment.yml", lambda t: t.replace("python=3.11", "python=3.12")),
        ("virtual-packages.yml", lambda t: t.replace('"2.36"', '"2.28"')),
        ("profile.yml", lambda t: t.replace("pypi_sdists: []", "pypi_sdists: [gym]")),
    ],
)
def test_check_fails_when_a_spec_changed_without_relocking(copy_of_modern, name, edit):
    envs = str(copy_of_modern)
    assert locking.main(["--envs-dir", envs, "--check"]) == 0
    path = copy_of_modern / "modern" / name
    path.write_text(edit(path.read_text()))
    assert locking.main(["--envs-dir", envs, "--check"]) == 1


def test_check_fails_when_the_lock_is_missing(copy_of_modern):
    (copy_of_modern / "modern" / "requirements.lock").unlink()
    assert not pypi.is_current(get("modern", copy_of_modern))


def test_index_url_comes_from_pip_configuration(monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    assert pypi.index_url() == "http://127.0.0.1:9/simple"


def test_python_pin_is_required(copy_of_modern):
    env = copy_of_modern / "modern" / "environment.yml"
    env.write_text(env.read_text().replace("  - python=3.11\n", ""))
    with pytest.raises(LabError, match=r"python=X\.Y"):
        get("modern", copy_of_modern).python_version()
