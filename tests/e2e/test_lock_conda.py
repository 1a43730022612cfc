"""The conda-lock path end to end, against a conda channel served on loopback.

The channel is the TEST FIXTURE in tests/fixtures/conda_channel.py (real .conda archives with
fixture content). The locking and installing code is the production code `invoke lock` and
the python_envs role run: conda-lock solving through gymlab.envs.rattler_conda, py-rattler
installing from the lock.

This machine has no NVIDIA driver: the installs set CONDA_OVERRIDE_CUDA (conda's own way of
saying which CUDA a host's driver runs) to the CUDA the lock was made for, and the refusal
tests set it lower or empty (no driver).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

import conda_channel

from gymlab.envs import conda, install, locking, wheelhouse
from gymlab.envs.profiles import get
from gymlab.lab.errors import LabError

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing answers there

ENVIRONMENT = """\
channels: [defaults]
platforms: [linux-64]
dependencies:
  - python=3.11
  - pip
  - gymlab-fixture-pylib
  - gymlab-fixture-cuda
  - gymlab-fixture-data<2
"""


def virtual_packages(cuda: str) -> str:
    return f'subdirs:\n  linux-64:\n    packages:\n      __cuda: "{cuda}"\n      __glibc: "2.27"\n'


@pytest.fixture(autouse=True)
def driver_runs_cuda_9(monkeypatch):
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "9.0")


@pytest.fixture(scope="module")
def channel(tmp_path_factory):
    root = conda_channel.build(tmp_path_factory.mktemp("fixture") / "channel")
    with conda_channel.serve(root) as url:
        yield root, url


def make_profile(envs: Path, cuda: str = "9.0"):
    root = envs / "fixture"
    root.mkdir(parents=True, exist_ok=True)
    (root / "environment.yml").write_text(ENVIRONMENT)
    (root / "virtual-packages.yml").write_text(virtual_packages(cuda))
    (root / "profile.yml").write_text("parts: [conda]\n")
    return get("fixture", envs)


@pytest.fixture(scope="module")
def locked(channel, tmp_path_factory):
    _, url = channel
    profile = make_profile(tmp_path_factory.mktemp("envs"))
    assert locking.main(["--envs-dir", str(profile.root.parent), "--channel", url]) == 0
    return profile


def lock_packages(lock: Path) -> dict[str, dict]:
    data = yaml.safe_load(lock.read_text())
    return {p["name"]: p for p in data["package"]}


def test_lock_pins_every_artifact_by_sha256(channel, locked):
    root, url = channel
    packages = lock_packages(locked.conda_lock)
    assert set(packages) == {
        "python",
        "pip",
        "gymlab-fixture-pylib",
        "gymlab-fixture-cuda",
        "gymlab-fixture-data",
    }
    assert packages["gymlab-fixture-data"]["version"] == "1.0.0", "spec says <2"
    for pkg in packages.values():
        assert pkg["url"].startswith(url)
        archive = root / pkg["url"][len(url) :].lstrip("/")
        assert pkg["hash"]["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()


def test_install_from_lock_matches_lock(locked, tmp_path):
    prefix = tmp_path / "env"
    assert install.main([str(locked.conda_lock), str(prefix), "--cache", str(tmp_path)]) == 0
    assert install.verify(locked.conda_lock, prefix) == []
    assert (prefix / "share/gymlab-fixture/data.txt").read_text() == "fixture data 1.0.0\n"
    module = prefix / "lib/python3.11/site-packages/gymlab_fixture_pylib/__init__.py"
    assert module.read_text() == 'ANSWER = "fixture"\n'


def test_verify_reports_a_prefix_that_differs(locked, tmp_path):
    prefix = tmp_path / "env"
    install.install(locked.conda_lock, prefix, tmp_path / "cache")
    next((prefix / "conda-meta").glob("gymlab-fixture-data-*.json")).unlink()
    assert install.verify(locked.conda_lock, prefix) == [
        "missing ('gymlab-fixture-data', '1.0.0', 'gymlab_fixture_0', "
        f"'{lock_packages(locked.conda_lock)['gymlab-fixture-data']['hash']['sha256']}')"
    ]


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_tampered_sha256_is_refused_and_changes_nothing(locked, tmp_path, cache):
    cache_dir = tmp_path / "cache"
    if cache == "warm":  # the genuine archive is already in the package cache
        install.install(locked.conda_lock, tmp_path / "genuine", cache_dir)
    prefix = tmp_path / "env"
    prefix.mkdir()
    (prefix / "keep").write_text("the previous environment")
    good = lock_packages(locked.conda_lock)["gymlab-fixture-data"]["hash"]["sha256"]
    tampered = tmp_path / "conda-lock.yml"
    tampered.write_text(locked.conda_lock.read_text().replace(good, "0" * 64))
    assert install.main([str(tampered), str(prefix), "--cache", str(cache_dir)]) == 1
    assert sorted(p.name for p in prefix.iterdir()) == ["keep"]
    assert not prefix.with_name("env.staging").exists()


def test_check_fails_when_the_spec_changed(locked):
    envs = str(locked.root.parent)
    assert locking.main(["--envs-dir", envs, "--check"]) == 0
    original = locked.environment_yml.read_text()
    try:
        locked.environment_yml.write_text(
            original.replace("gymlab-fixture-data<2", "gymlab-fixture-data")
        )
        assert locking.main(["--envs-dir", envs, "--check"]) == 1
    finally:
        locked.environment_yml.write_text(original)
    assert conda.is_current(locked)


def test_virtual_packages_decide_what_can_be_locked(channel, tmp_path):
    """gymlab-fixture-cuda needs __cuda >= 9.0: a profile pinned to CUDA 8 cannot lock it."""
    _, url = channel
    profile = make_profile(tmp_path, cuda="8.0")
    with pytest.raises(LabError, match="__cuda"):
        conda.lock(profile, [url])
    assert not profile.conda_lock.exists()


def run_install(capsys, *argv) -> tuple[int, dict]:
    code = install.main([str(a) for a in argv])
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    return code, json.loads(out[0])


@pytest.mark.parametrize(
    ("override", "host_has"),
    [("8.0", "this host has __cuda 8.0"), ("", "this host has no __cuda (no NVIDIA driver found)")],
)
def test_a_host_whose_driver_cannot_run_the_locked_cuda_is_refused(
    locked, tmp_path, monkeypatch, capsys, override, host_has
):
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", override)
    prefix = tmp_path / "env"
    code, answer = run_install(capsys, locked.conda_lock, prefix, "--cache", tmp_path / "c")
    assert code == 1
    assert answer["error"] == f"gymlab-fixture-cuda 9.0.0 needs __cuda >=9.0; {host_has}"
    assert not prefix.exists() and not (tmp_path / "c").exists(), "refused before any download"


def test_a_newer_driver_runs_the_locked_cuda(locked, tmp_path, monkeypatch):
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "12.2")
    install.install(locked.conda_lock, tmp_path / "env", tmp_path / "cache")
    assert install.verify(locked.conda_lock, tmp_path / "env") == []


def moved_lock(locked, tmp_path, url: str) -> Path:
    """The lock as if made against a channel at UNREACHABLE (hashes untouched)."""
    moved = tmp_path / "conda-lock.yml"
    moved.write_text(locked.conda_lock.read_text().replace(url, UNREACHABLE))
    return moved


def test_a_mirror_of_the_locked_channel_is_used(channel, locked, tmp_path, capsys):
    _, url = channel
    lock = moved_lock(locked, tmp_path, url)
    code, _ = run_install(capsys, lock, tmp_path / "a", "--cache", tmp_path / "c1")
    assert code == 1, "the locked URL does not answer: without the mirror nothing installs"
    mirror = f"{UNREACHABLE}={url.replace('127.0.0.1', 'localhost')}"
    code, answer = run_install(
        capsys, lock, tmp_path / "b", "--cache", tmp_path / "c2", "--mirror", mirror
    )
    assert (code, answer) == (0, {"ok": True, "problems": []})


def test_a_mirror_is_given_as_locked_url_equals_mirror_url(capsys):
    with pytest.raises(SystemExit):
        install.main(["lock.yml", "prefix", "--mirror", "conda.lab.example"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'conda.lab.example': expected LOCKED_CHANNEL_URL=MIRROR_URL" in err


def test_archives_fetched_on_the_controller_install_without_a_channel(
    channel, locked, tmp_path, capsys
):
    _, url = channel
    out = tmp_path / "wheels"
    envs = locked.root.parent
    assert wheelhouse.fetch_conda("fixture", out, envs) is True
    assert wheelhouse.fetch_conda("fixture", out, envs) is False, "a second fetch is a no-op"
    archives = out / "fixture" / "conda"
    assert len(list(archives.glob("*.conda"))) == len(lock_packages(locked.conda_lock))
    lock = moved_lock(locked, tmp_path, url)  # the host has no route to any channel
    code, answer = run_install(
        capsys, lock, tmp_path / "env", "--cache", tmp_path / "c", "--archives", archives
    )
    assert (code, answer) == (0, {"ok": True, "problems": []})
    shutil.rmtree(tmp_path / "env")
    # a genuine archive, but not the locked one: the other version's bytes under its name
    other = channel[0] / "noarch" / "gymlab-fixture-data-2.0.0-gymlab_fixture_0.conda"
    shutil.copyfile(other, next(archives.glob("gymlab-fixture-data-*")))
    code, answer = run_install(
        capsys, lock, tmp_path / "env", "--cache", tmp_path / "c2", "--archives", archives
    )
    assert code == 1 and "hash mismatch" in answer["error"]
    assert not (tmp_path / "env").exists()


def test_the_controller_refuses_an_archive_whose_sha256_is_not_the_locks(locked, tmp_path):
    envs = tmp_path / "envs"
    shutil.copytree(locked.root, envs / "fixture")
    lock = envs / "fixture" / "conda-lock.yml"
    good = lock_packages(lock)["gymlab-fixture-data"]["hash"]["sha256"]
    lock.write_text(lock.read_text().replace(good, "0" * 64))
    with pytest.raises(LabError, match=f"has sha256 {good}, but conda-lock.yml says {'0' * 64}"):
        wheelhouse.fetch_conda("fixture", tmp_path / "wheels", envs)
    assert not list((tmp_path / "wheels" / "fixture" / "conda").glob("gymlab-fixture-data*"))


@pytest.mark.skipif(
    conda_channel.host_python_version() is None,
    reason=f"the fixture python borrows {conda_channel.HOST_PYTHON}, absent here",
)
def test_the_prefix_python_runs_the_linked_packages_and_pip(locked, tmp_path):
    import subprocess

    prefix = tmp_path / "env"
    install.install(locked.conda_lock, prefix, tmp_path / "cache")
    done = subprocess.run(
        [prefix / "bin" / "python", "-c",
         "import sys, pip, gymlab_fixture_pylib as m; print(sys.prefix, m.ANSWER)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.split() == [str(prefix), "fixture"]


@pytest.mark.parametrize(
    ("reported", "code", "error"),
    [
        # what `micromamba info --json` lists as "virtual packages"
        (["__unix=0=0", "__glibc=2.27=0", "__cuda=12.2=0"], 0, None),
        (["__unix=0=0", "__glibc=2.27=0", "__cuda=8.0=0"], 1, "this host has __cuda 8.0"),
        (["__unix=0=0", "__glibc=2.27=0"], 1, "this host has no __cuda"),
    ],
)
def test_micromamba_hosts_are_checked_with_what_micromamba_reports(
    locked, capsys, reported, code, error
):
    argv = [locked.conda_lock, "-", "--check-host-only"]
    got, answer = run_install(capsys, *argv, *(f"--host-virtual={v}" for v in reported))
    assert got == code
    if error:
        assert answer["error"].startswith("gymlab-fixture-cuda 9.0.0 needs __cuda >=9.0; " + error)


def test_a_bad_virtual_package_is_named(locked, capsys):
    with pytest.raises(SystemExit):
        install.main([str(locked.conda_lock), "-", "--check-host-only", "--host-virtual", "cuda"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'cuda': expected a virtual package as __NAME=VERSION" in err
