"""Profile specs and the PyPI lock's staleness check (no network: uv is never run here)."""

from __future__ import annotations

import re
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
    assert names["legacy-cuda9"].pythons() == ("3.6",), "no pythons key: environment.yml's pin"
    assert names["legacy-cuda9"].virtual_packages()["__cuda"] == "9.0"
    assert names["modern"].pythons() == ("3.10", "3.11", "3.12", "3.13")


def test_committed_locks_are_current_and_hash_every_pin():
    with_pypi = [p for p in all_profiles() if "pypi" in p.parts()]
    assert {"legacy-cuda9", "modern"} <= {p.name for p in with_pypi}
    for profile in with_pypi:
        assert not profile.stray_locks()
        for python in profile.pythons():
            lock = profile.requirements_lock_for(python)
            assert pypi.is_current(profile, python), (
                f"{lock}: run `invoke lock --env {profile.name}`"
            )
            text = lock.read_text()
            assert f"# python {python}, " in text.splitlines()[1]
            pins = [line for line in text.splitlines() if "==" in line]
            assert pins and text.count("--hash=sha256:") >= len(pins)


@pytest.fixture
def copy_of_modern(tmp_path) -> Path:
    shutil.copytree(ENVS_DIR / "modern", tmp_path / "modern")
    return tmp_path


def check(envs: Path, capsys) -> tuple[int, list[str]]:
    """``invoke lock --check`` on ``envs``: its exit code and its stale lines."""
    code = locking.main(["--envs-dir", str(envs), "--check"])
    return code, [line for line in capsys.readouterr().out.splitlines() if line.startswith("stale")]


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("requirements.in", lambda t: t + "pyyaml\n"),
        ("virtual-packages.yml", lambda t: t.replace('"2.35"', '"2.28"')),
        ("profile.yml", lambda t: t.replace("pypi_sdists: []", "pypi_sdists: [gym]")),
    ],
)
def test_check_fails_when_a_spec_changed_without_relocking(copy_of_modern, capsys, name, edit):
    assert check(copy_of_modern, capsys) == (0, [])
    path = copy_of_modern / "modern" / name
    path.write_text(edit(path.read_text()))
    code, stale = check(copy_of_modern, capsys)
    # every Python's lock is stale, each named with the command that relocks it
    assert code == 1 and len(stale) == 4
    for line, python in zip(stale, ("3.10", "3.11", "3.12", "3.13"), strict=True):
        assert line.startswith(f"stale: modern: requirements-py{python}.lock does not match")
        assert line.endswith("run `invoke lock --env modern`")


def test_check_names_the_one_stale_lock(copy_of_modern, capsys):
    lock = copy_of_modern / "modern" / "requirements-py3.12.lock"
    lock.write_text(lock.read_text().replace("# spec-sha256: ", "# spec-sha256: 0", 1))
    assert check(copy_of_modern, capsys) == (
        1,
        [
            "stale: modern: requirements-py3.12.lock does not match requirements.in/"
            "environment.yml/virtual-packages.yml/profile.yml; run `invoke lock --env modern`"
        ],
    )


def test_the_python_pin_matters_where_there_is_no_pythons_key(tmp_path, capsys):
    shutil.copytree(ENVS_DIR / "legacy-cuda9", tmp_path / "legacy-cuda9")
    assert check(tmp_path, capsys) == (0, [])
    env = tmp_path / "legacy-cuda9" / "environment.yml"
    env.write_text(env.read_text().replace("python=3.6", "python=3.7"))
    code, stale = check(tmp_path, capsys)
    assert code == 1
    assert stale[0] == (
        "stale: profile legacy-cuda9: requirements-py3.6.lock is the lock for Python 3.6, not "
        "one of the profile's (environment.yml's python pin: 3.7); remove requirements-py3.6.lock"
    )
    assert stale[1].startswith("stale: legacy-cuda9: requirements-py3.7.lock is missing")


def test_check_fails_when_a_listed_pythons_lock_is_missing(copy_of_modern, capsys):
    profile = copy_of_modern / "modern" / "profile.yml"
    profile.write_text(profile.read_text().replace('"3.13"]', '"3.13", "3.14"]'))
    assert check(copy_of_modern, capsys) == (
        1,
        [
            "stale: modern: requirements-py3.14.lock is missing (profile.yml pythons lists 3.14); "
            "run `invoke lock --env modern`"
        ],
    )
    assert not pypi.is_current(get("modern", copy_of_modern), "3.14")


@pytest.mark.parametrize(
    ("stray", "message"),
    [
        (
            "requirements-py3.9.lock",
            "stale: profile modern: requirements-py3.9.lock is the lock for Python 3.9, not one of "
            "the profile's (profile.yml pythons: 3.10, 3.11, 3.12, 3.13); remove "
            "requirements-py3.9.lock",
        ),
        (
            "requirements.lock",
            "stale: profile modern: requirements.lock is no lock of a Python (those are "
            "requirements-pyX.Y.lock); remove requirements.lock",
        ),
    ],
)
def test_check_flags_a_lock_of_a_python_the_profile_does_not_list(
    copy_of_modern, capsys, stray, message
):
    shutil.copy(
        copy_of_modern / "modern" / "requirements-py3.11.lock", copy_of_modern / "modern" / stray
    )
    assert check(copy_of_modern, capsys) == (1, [message])
    with pytest.raises(LabError, match=re.escape(message.removeprefix("stale: "))):
        get("modern", copy_of_modern).describe("3.11")


def test_lock_writes_every_python_and_removes_the_unlisted(copy_of_modern, monkeypatch):
    written = []

    def fake_write_lock(profile, python, index=None):
        written.append(python)
        return profile.requirements_lock_for(python)

    monkeypatch.setattr(pypi, "write_lock", fake_write_lock)
    modern = copy_of_modern / "modern"
    (modern / "requirements-py3.9.lock").write_text("# a Python the profile no longer lists\n")
    lines = locking.lock(get("modern", copy_of_modern), channels=[])
    assert written == ["3.10", "3.11", "3.12", "3.13"]
    assert lines == [
        "modern: wrote requirements-py3.10.lock",
        "modern: wrote requirements-py3.11.lock",
        "modern: wrote requirements-py3.12.lock",
        "modern: wrote requirements-py3.13.lock",
        "modern: removed requirements-py3.9.lock (Python 3.9 is not one of the profile's: "
        "3.10, 3.11, 3.12, 3.13)",
    ]
    assert not (modern / "requirements-py3.9.lock").exists()


def test_index_url_comes_from_pip_configuration(monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    assert pypi.index_url() == "http://127.0.0.1:9/simple"


def test_python_pin_is_required(copy_of_modern):
    env = copy_of_modern / "modern" / "environment.yml"
    env.write_text(env.read_text().replace("  - python=3.11\n", ""))
    with pytest.raises(LabError, match=r"python=X\.Y"):
        get("modern", copy_of_modern).python_version()
