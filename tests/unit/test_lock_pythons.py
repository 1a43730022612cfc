"""Which PyPI lock a host gets: the one of its python3, or the conda part's Python."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gymlab.envs import profiles
from gymlab.envs.profiles import ENVS_DIR, get
from gymlab.lab.errors import LabError

FIXTURE_ENVS = ENVS_DIR.parent / "tests" / "fixtures" / "conda_envs"
REFUSAL = (
    "profile modern has no lock for Python 3.9 (the host's python3); it is locked for "
    "3.10, 3.11, 3.12, 3.13"
)


@pytest.fixture
def envs(tmp_path) -> Path:
    for name in ("modern", "legacy-cuda9"):
        shutil.copytree(ENVS_DIR / name, tmp_path / name)
    shutil.copytree(FIXTURE_ENVS / "conda-fixture", tmp_path / "conda-fixture")
    (tmp_path / "conda-fixture" / "conda-lock.yml").write_text("version: 1\n")
    return tmp_path


def set_pythons(envs: Path, name: str, pythons: str) -> None:
    path = envs / name / "profile.yml"
    text = re.sub(r"^pythons:.*\n", "", path.read_text(), flags=re.M)
    path.write_text(text + f"pythons: {pythons}\n")


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.12", "3.13"])
def test_a_listed_host_python_gets_its_own_lock(envs, python):
    described = get("modern", envs).describe(python)
    lock = envs / "modern" / f"requirements-py{python}.lock"
    assert described["python"] == python
    assert described["requirements_lock"] == str(lock)
    assert described["pypi_folder"] == f"modern/py{python}"
    assert (
        described["kernel_display_name"] == f"modern (Python {python}, TensorFlow 2, Gymnasium 1)"
    )
    pip = re.search(r"^pip==.*?(?=^\S)", lock.read_text(), re.M | re.S)
    assert pip and described["pip_requirement"] == pip.group(0)


def test_the_install_id_follows_the_chosen_lock(envs):
    modern = get("modern", envs)
    ids = {modern.describe(p)["lock_sha256"] for p in modern.pythons()}
    assert len(ids) == 4, "each Python's lock is its own install"
    before = modern.describe("3.12")["lock_sha256"]
    lock = modern.requirements_lock_for("3.12")
    lock.write_text(lock.read_text() + "\n")
    assert modern.describe("3.12")["lock_sha256"] != before


def test_a_host_python_the_profile_lacks_is_refused_in_one_line(envs, capsys):
    with pytest.raises(LabError) as caught:
        get("modern", envs).describe("3.9")
    assert str(caught.value) == REFUSAL
    argv = ["--envs-dir", str(envs), "--python", "3.9", "modern"]
    assert profiles.main(argv) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"gymlab: {REFUSAL}\n")


def test_a_profile_without_pythons_is_locked_for_its_pin_only(envs, capsys):
    legacy = get("legacy-cuda9", envs)
    assert legacy.describe("3.6")["python"] == legacy.describe()["python"] == "3.6"
    assert profiles.main(["--envs-dir", str(envs), "--python", "3.10", "legacy-cuda9"]) == 1
    assert capsys.readouterr().err == (
        "gymlab: profile legacy-cuda9 has no lock for Python 3.10 (the host's python3); "
        "it is locked for 3.6\n"
    )


def test_a_profile_of_several_pythons_needs_the_hosts(envs):
    with pytest.raises(LabError, match=r"name the host's with --python X\.Y"):
        get("modern", envs).describe()


@pytest.mark.parametrize("host", [None, "3.6", "3.11", "3.13"])
def test_a_conda_part_brings_its_python_whatever_the_hosts(envs, host):
    described = get("conda-fixture", envs).describe(host)
    assert described["python"] == "3.11"
    lock = envs / "conda-fixture" / "requirements-py3.11.lock"
    assert described["requirements_lock"] == str(lock)
    assert described["pypi_folder"] == "conda-fixture/py3.11"
    assert described["conda_folder"] == "conda-fixture/conda"


def test_pythons_is_refused_with_a_conda_part(envs):
    set_pythons(envs, "conda-fixture", '["3.11", "3.12"]')
    with pytest.raises(LabError, match=r"pythons is for profiles without a conda part"):
        get("conda-fixture", envs).describe("3.11")


@pytest.mark.parametrize("value", ["[3.10, 3.11]", "[]", '"3.11"', '["3"]'])
def test_pythons_must_be_quoted_versions(envs, value):
    set_pythons(envs, "modern", value)
    with pytest.raises(LabError, match=r"expected a non-empty list of quoted X\.Y versions"):
        get("modern", envs).pythons()


def test_pythons_are_ordered_by_version_not_text(envs):
    set_pythons(envs, "modern", '["3.13", "3.9", "3.10", "3.13"]')
    assert get("modern", envs).pythons() == ("3.9", "3.10", "3.13")
