"""The conda-lock path end to end, against a conda channel served on loopback.

The channel is the TEST FIXTURE in tests/fixtures/conda_channel.py (real .conda archives with
fixture content). The locking and installing code is the production code `invoke lock` and
the python_envs role run: conda-lock solving through gymlab.envs.rattler_conda, py-rattler
installing from the lock.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))

import conda_channel

from gymlab.envs import conda, install, locking
from gymlab.envs.profiles import get
from gymlab.lab.errors import LabError

ENVIRONMENT = """\
channels: [defaults]
platforms: [linux-64]
dependencies:
  - python=3.11
  - gymlab-fixture-pylib
  - gymlab-fixture-cuda
  - gymlab-fixture-data<2
"""


def virtual_packages(cuda: str) -> str:
    return f'subdirs:\n  linux-64:\n    packages:\n      __cuda: "{cuda}"\n      __glibc: "2.27"\n'


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
    (root / "profile.yml").write_text("{}\n")
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
