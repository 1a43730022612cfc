"""The closing summary of `invoke test`: counts from JUnit files and failed phases."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gymlab.lab.report import (
    Counts,
    Phase,
    SuiteRun,
    cases_table,
    check_name,
    junit_cases,
    junit_counts,
)


def junit_of_pytest_run(directory: Path, name: str, source: str) -> Path:
    """Run a real pytest on ``source`` (saved as ``name``); return its JUnit XML file."""
    (directory / name).write_text(source)
    xml = directory / "out.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
         str(directory / name)],
        capture_output=True,
        check=False,
    )  # fmt: skip
    return xml


def test_junit_counts_of_a_real_pytest_run(tmp_path: Path):
    xml = junit_of_pytest_run(
        tmp_path,
        "test_sample.py",
        "import pytest\n"
        "def test_a(): pass\n"
        "def test_b(): pass\n"
        "def test_c(): assert 1 == 2\n"
        "@pytest.mark.skip(reason='x')\n"
        "def test_d(): pass\n",
    )
    assert junit_counts(xml) == Counts(passed=2, failed=1, skipped=1)


def test_missing_junit_file_counts_nothing(tmp_path: Path):
    assert junit_counts(tmp_path / "absent.xml") == Counts()


def test_summary_counts_failed_phases_without_tests():
    run = SuiteRun(
        [
            Phase("lint: ruff", ok=True, seconds=1.0),
            Phase("pytest", ok=True, seconds=20.0, counts=Counts(10, 0, 2)),
            Phase("molecule default", ok=False, seconds=90.0),  # converge failed, no verify
        ]
    )
    assert not run.ok
    assert run.totals() == Counts(passed=11, failed=1, skipped=2)
    assert run.summary().splitlines()[-1] == "11 passed, 1 failed, 2 skipped"
    assert "molecule default  FAILED" in run.summary()


def test_cases_table_lists_each_check_with_its_outcome(tmp_path: Path):
    xml = junit_of_pytest_run(
        tmp_path,
        "test_host.py",
        "import pytest\n"
        "def test_up(): pass\n"
        "def test_down(): assert False, 'display :99 does not answer'\n"
        "def test_gpu(): pytest.skip('no NVIDIA device')\n",
    )
    cases = junit_cases(xml)
    assert [(c.name, c.outcome) for c in cases] == [
        ("test_host::test_up", "passed"),
        ("test_host::test_down", "failed"),
        ("test_host::test_gpu", "skipped"),
    ]
    table = cases_table("verify gpu01", cases)
    assert "display :99 does not answer" in table
    assert "no NVIDIA device" in table
    assert table.splitlines()[-1] == "1 passed, 1 failed, 1 skipped"


def test_check_names_keep_their_parameters_without_the_host():
    assert check_name("test_x[ansible://sandbox]", ["sandbox"]) == "test_x"
    assert check_name("test_x[ansible://gymlab-lab-rt1-modern]", ["gymlab-lab-rt1"]) == (
        "test_x[modern]"
    )
    assert check_name("test_x[ansible://gpu01-legacy-cuda9]") == "test_x[legacy-cuda9]"
    assert check_name("test_x[3-7]") == "test_x[3-7]"
    assert check_name("test_plain") == "test_plain"


def test_junit_cases_name_each_parameter_and_keep_a_failures_message(tmp_path: Path):
    xml = junit_of_pytest_run(
        tmp_path,
        "test_envs.py",
        "import pytest\n"
        "@pytest.fixture(params=['ansible://gpu-01'])\n"
        "def host(request): return request.param\n"
        "@pytest.mark.parametrize('profile', ['modern', 'legacy-cuda9'])\n"
        "def test_lock(host, profile):\n"
        "    if profile == 'modern': pytest.skip('modern is not installed here')\n"
        "    assert profile == 'modern', 'the legacy env differs from its lock'\n",
    )
    cases = junit_cases(xml, hosts=["gpu-01"])
    assert [(c.name, c.outcome) for c in cases] == [
        ("test_envs::test_lock[modern]", "skipped"),
        ("test_envs::test_lock[legacy-cuda9]", "failed"),
    ]
    assert cases[0].detail == "modern is not installed here"
    assert "the legacy env differs from its lock" in cases[1].message
    assert "test_envs.py:7" in cases[1].message
