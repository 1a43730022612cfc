"""Profile parts (profile.yml ``parts``): what the role is told, and what ``--check`` says."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from gymlab.envs import locking
from gymlab.envs.profiles import ENVS_DIR, get
from gymlab.lab.errors import LabError

REPO = ENVS_DIR.parent
FIXTURE_ENVS = REPO / "tests" / "fixtures" / "conda_envs"
RATTLER_LOCK = REPO / "roles" / "python_envs" / "files" / "py-rattler.lock"


@pytest.fixture
def envs(tmp_path) -> Path:
    for name in ("modern", "legacy-cuda9-conda"):
        shutil.copytree(ENVS_DIR / name, tmp_path / name)
    shutil.copytree(FIXTURE_ENVS / "conda-fixture", tmp_path / "conda-fixture")
    return tmp_path


def set_parts(envs: Path, name: str, parts: str) -> None:
    path = envs / name / "profile.yml"
    text = re.sub(r"^parts:.*\n", "", path.read_text(), flags=re.M)
    path.write_text(text + f"parts: {parts}\n")


def test_parts_default_to_pypi_and_are_ordered_conda_first(envs):
    assert get("modern", envs).parts() == ("pypi",)
    set_parts(envs, "modern", "[pypi, conda]")
    assert get("modern", envs).parts() == ("conda", "pypi")


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        (
            "[pypi, wheels]",
            "profile modern: profile.yml parts has 'wheels'; expected conda or pypi",
        ),
        ("[]", "profile modern: profile.yml parts is []; expected a non-empty list"),
        ("conda", "profile modern: profile.yml parts is 'conda'; expected a non-empty list"),
    ],
)
def test_a_bad_parts_value_is_named_in_one_line(envs, parts, message):
    set_parts(envs, "modern", parts)
    with pytest.raises(LabError) as caught:
        get("modern", envs).parts()
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_pypi_only_profile_is_described_as_before(envs):
    described = get("modern", envs).describe("3.11")
    assert described["parts"] == ["pypi"] and described["conda_lock"] is None
    assert described["conda_folder"] is None
    assert described["pip_requirement"].startswith("pip==")


def test_a_conda_part_without_its_lock_stops_the_role_with_the_command_to_run(envs):
    with pytest.raises(LabError, match=r"its conda part has no conda-lock.yml; run `invoke lock"):
        get("conda-fixture", envs).describe()


def test_a_profile_with_both_parts_hands_both_locks_and_no_pip_pin(envs):
    profile = get("conda-fixture", envs)
    profile.conda_lock.write_text("version: 1\n")
    described = profile.describe()
    assert described["parts"] == ["conda", "pypi"]
    assert described["conda_lock"] == str(profile.conda_lock)
    assert described["requirements_lock"] == str(profile.requirements_lock_for("3.11"))
    assert described["pip_requirement"] is None, "pip comes from the conda part"
    before = described["lock_sha256"]
    profile.conda_lock.write_text("version: 1\n# changed\n")
    assert profile.describe()["lock_sha256"] != before, "the install id covers the conda lock"


def test_a_lock_of_a_part_the_profile_lacks_is_refused_not_ignored(envs, capsys):
    (envs / "modern" / "conda-lock.yml").write_text("version: 1\n")
    with pytest.raises(LabError, match=r"conda-lock\.yml is a conda lock but profile\.yml parts"):
        get("modern", envs).describe("3.11")
    assert locking.main(["--envs-dir", str(envs), "--env", "modern", "--check"]) == 1
    assert "add conda to parts or remove conda-lock.yml" in capsys.readouterr().out


def test_check_covers_pypi_only_conda_only_and_both(envs, capsys):
    assert locking.main(["--envs-dir", str(envs), "--check"]) == 0
    out = capsys.readouterr().out
    assert "locks current: conda-fixture, legacy-cuda9-conda, modern" in out
    # the conda parts nobody can lock here are reported, not failed
    assert "not locked: conda-fixture: conda part not locked" in out
    assert "not locked: legacy-cuda9-conda: conda part not locked" in out
    assert "not locked: modern" not in out
    # a conda-only profile has no PyPI lock to be stale; a PyPI part does
    (envs / "legacy-cuda9-conda" / "requirements.lock").write_text("six==1\n")
    (envs / "conda-fixture" / "requirements.in").write_text("ipykernel\nsix\n")
    assert locking.main(["--envs-dir", str(envs), "--check"]) == 1
    out = capsys.readouterr().out
    assert "stale: profile legacy-cuda9-conda: requirements.lock is a pypi lock" in out
    assert "stale: conda-fixture: requirements-py3.11.lock does not match" in out


def test_locking_one_part_leaves_the_other_alone(envs, capsys):
    assert locking.main(["--envs-dir", str(envs), "--env", "modern", "--part", "conda"]) == 0
    assert capsys.readouterr().out.strip() == "modern: no conda part (profile.yml parts: ['pypi'])"


def test_the_hosts_py_rattler_is_the_controllers(tmp_path):
    """install.py is tested here with the controller's py-rattler: hosts must get that one."""
    controller = re.search(r"^py-rattler==(\S+)", (REPO / "requirements.lock").read_text(), re.M)
    host = re.search(
        r"^py-rattler==(\S+) \\\n\s+--hash=sha256:[0-9a-f]{64}", RATTLER_LOCK.read_text(), re.M
    )
    assert controller and host, "both pin py-rattler (the host's with its sha256)"
    assert host.group(1) == controller.group(1), f"update {RATTLER_LOCK.relative_to(REPO)}"
