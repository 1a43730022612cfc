"""A profile with a conda part, installed by python_envs (molecule scenario envs-conda).

The conda part comes from the TEST FIXTURE channel (tests/fixtures/conda_channel.py: its
python borrows the host's interpreter, its pip is the control machine's); the PyPI part
(ipykernel and its dependencies) is real. Expected values come from the profile's own locks
on the control machine (the envs dir the scenario locked), not from constants in this file.
Skips on hosts that were not given a profile with a conda part.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from conftest import role_fact

REPO = Path(__file__).resolve().parents[2]


def conda_profiles(host) -> list[tuple[str, Path]]:
    """(name, spec folder on the control machine) of each installed profile with a conda part,
    as python_envs recorded them (its fact)."""
    fact = role_fact(host, "python_envs")
    if fact is None:
        return []
    envs = Path(fact["specs_dir"])
    found = []
    for name in sorted(fact["profiles"]):
        settings = yaml.safe_load((envs / name / "profile.yml").read_text()) or {}
        if "conda" in settings.get("parts", ["pypi"]):
            found.append((name, envs / name))
    return found


@pytest.fixture
def profile(host) -> tuple[str, Path]:
    found = conda_profiles(host)
    if not found:
        pytest.skip("no profile with a conda part is requested for this host")
    return found[0]


@pytest.fixture
def env(host, profile) -> str:
    return role_fact(host, "python_envs")["profiles"][profile[0]]


def conda_packages(spec_dir: Path) -> dict[str, dict]:
    lock = yaml.safe_load((spec_dir / "conda-lock.yml").read_text())
    return {p["name"]: p for p in lock["package"]}


def pypi_pins(spec_dir: Path) -> dict[str, str]:
    """The PyPI lock's pins: a conda part's profile has one, for the prefix's Python."""
    (lock,) = spec_dir.glob("requirements-py*.lock")
    text = lock.read_text()
    return {
        re.sub(r"[-_.]+", "-", m.group(1)).lower(): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)
    }


def test_the_prefix_holds_exactly_the_conda_lock(host, env, profile):
    metas = host.check_output(f"ls {env}/conda-meta").split()
    have = {}
    for meta in (m for m in metas if m.endswith(".json")):
        record = json.loads(host.file(f"{env}/conda-meta/{meta}").content_string)
        have[record["name"]] = (record["version"], record["sha256"])
    wanted = {
        n: (str(p["version"]), p["hash"]["sha256"]) for n, p in conda_packages(profile[1]).items()
    }
    assert have == wanted


def test_the_pypi_part_is_installed_into_the_prefix_python(host, env, profile):
    listed = host.check_output(
        f"{env}/bin/python -m pip list --format=json --disable-pip-version-check"
    )
    have = {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in json.loads(listed)}
    for name, version in pypi_pins(profile[1]).items():
        assert have.get(name) == version, name
    # pip itself is the conda part's, not a PyPI pin
    assert have["pip"] == str(conda_packages(profile[1])["pip"]["version"])


def test_the_env_python_imports_the_conda_and_the_pypi_packages(host, env):
    code = (
        "import os, sys, json, gymlab_fixture_pylib, ipykernel; "
        "print(json.dumps([os.path.realpath(sys.prefix), gymlab_fixture_pylib.ANSWER, "
        "os.path.realpath(ipykernel.__file__)]))"
    )
    prefix, answer, ipykernel_file = json.loads(host.check_output(f'{env}/bin/python -c "{code}"'))
    resolved = host.check_output(f"readlink -f {env}")
    assert prefix == resolved, "the interpreter's prefix is the conda prefix"
    assert answer == "fixture"
    assert ipykernel_file.startswith(f"{resolved}/lib/python3.11/site-packages/")
    assert (
        host.file(f"{env}/share/gymlab-fixture/data.txt").content_string == "fixture data 1.0.0\n"
    )


def test_the_kernel_is_listed_by_jupyter_kernelspec(host, env, profile):
    specs = json.loads(host.check_output(f"{env}/bin/jupyter kernelspec list --json"))[
        "kernelspecs"
    ]
    spec = specs[f"gymlab-{profile[0]}"]["spec"]
    assert spec["argv"][0] == f"{env}/bin/python"
    # the kernel starts and answers (ipykernel from the PyPI part, in the conda prefix)
    out = host.check_output(
        f'timeout 120 {env}/bin/python -c "from jupyter_client.manager import start_new_kernel; '
        f"km, kc = start_new_kernel(kernel_name='gymlab-{profile[0]}'); "
        "kc.execute_interactive('import gymlab_fixture_pylib as m; print(m.ANSWER)', timeout=60); "
        'km.shutdown_kernel()"'
    )
    assert out.strip().splitlines()[-1] == "fixture"


def test_a_tampered_archive_sha256_stopped_the_role_and_changed_nothing(host, env, profile):
    outcome_file = host.file("/var/lib/gymlab-conda-tamper-outcome.json")
    if not outcome_file.exists:
        pytest.skip("the tamper side effect runs only in molecule scenario envs-conda")
    outcome = json.loads(outcome_file.content_string)
    assert outcome["refused"] is True
    assert "hash mismatch" in outcome["message"] and "0" * 64 in outcome["message"]
    assert "\n" not in outcome["message"]
    name = profile[0]
    link = host.file(env)
    assert link.is_symlink
    stamp = host.file(f"{env}/.gymlab-lock-sha256").content_string.strip()
    assert link.linked_to.endswith(f".{name}-{stamp[:12]}")
    siblings = host.check_output(f"ls -a {Path(env).parent}").split()
    assert [s for s in siblings if s.startswith(f".{name}-")] == [Path(link.linked_to).name]
    # what the tampered lock would have replaced still works
    assert host.run(f"{env}/bin/python -c 'import gymlab_fixture_pylib, ipykernel'").rc == 0


def test_a_host_without_the_locked_cuda_driver_is_refused_in_one_line(host, env, profile):
    outcome_file = host.file("/var/lib/gymlab-conda-cuda-outcome.json")
    if not outcome_file.exists:
        pytest.skip("the __cuda side effect runs only in molecule scenario envs-conda")
    outcome = json.loads(outcome_file.content_string)
    assert outcome["refused"] is True
    # this host container has no NVIDIA driver: rattler detects no __cuda on it
    wanted = "gymlab-fixture-cuda 9.0.0 needs __cuda >=9.0; this host has no __cuda"
    assert outcome["message"].endswith(f"{wanted} (no NVIDIA driver found)"), outcome["message"]
    assert "\n" not in outcome["message"]
    name = profile[0]
    stamp = host.file(f"{env}/.gymlab-lock-sha256").content_string.strip()
    assert host.file(env).linked_to.endswith(f".{name}-{stamp[:12]}"), "the env was left as it was"
    assert not host.file(f"{host.file(env).linked_to}/share/gymlab-fixture/cuda.txt").exists


def check_mode(host, pytestconfig, envs_dir: Path) -> str:
    """Converge the scenario's playbook with --check --diff; its output."""
    inventory = pytestconfig.getoption("ansible_inventory")
    if not inventory:
        pytest.skip("needs --ansible-inventory (molecule verify or `invoke verify` pass it)")
    playbook = REPO / "molecule" / "envs-conda" / "converge.yml"
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    done = subprocess.run(
        ["ansible-playbook", "-i", inventory, str(playbook), "--check", "--diff",
         "--limit", host.backend.host, "-e", f"python_envs_envs_dir={envs_dir}"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    return done.stdout


def changed_count(host, out: str) -> int:
    recap = re.search(rf"^{re.escape(host.backend.host)}\s*:.*changed=(\d+)", out, re.M)
    assert recap, out[-2000:]
    return int(recap.group(1))


def test_check_mode_reports_no_change_on_the_converged_host(host, profile, pytestconfig):
    out = check_mode(host, pytestconfig, profile[1].parent)
    changed = [line for line in out.splitlines() if line.startswith("changed:")]
    assert changed_count(host, out) == 0, f"check mode would change: {changed}"


def test_check_mode_reports_a_changed_lock_and_changes_nothing(host, env, profile, pytestconfig):
    before = host.file(env).linked_to
    with tempfile.TemporaryDirectory(prefix="gymlab-conda-check-") as tmp:
        copy = Path(tmp) / profile[0]
        shutil.copytree(profile[1], copy)
        lock = copy / "conda-lock.yml"
        lock.write_text(lock.read_text() + "# another lock\n")  # a new install id
        out = check_mode(host, pytestconfig, Path(tmp))
    assert changed_count(host, out) > 0
    assert "Install the conda part with py-rattler" in out
    assert host.file(env).linked_to == before
    siblings = host.check_output(f"ls -a {Path(env).parent}").split()
    assert [s for s in siblings if s.startswith(f".{profile[0]}-")] == [Path(before).name]
