"""The conda part of a profile: conda-lock turns environment.yml into ``conda-lock.yml``.

conda-lock needs a conda-compatible executable to solve. A real ``micromamba`` on PATH is used
when there is one; otherwise gymlab.envs.rattler_conda, a stand-in that answers conda-lock's
``create --dry-run --json`` with rattler's solver, is handed to conda-lock as ``--conda``.
Everything else (parsing the spec, virtual packages, content hashes, writing the lock) is
conda-lock's own code.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from gymlab.envs.profiles import PLATFORM, Profile
from gymlab.lab.errors import LabError

SRC = Path(__file__).resolve().parents[2]
# conda-lock maps PyPI names to conda names only for pip dependencies; our environment.yml
# files have none (the PyPI part is requirements.in), so an empty local table is enough and
# keeps conda-lock from fetching its default table from the network.
EMPTY_PYPI_MAPPING = "{}\n"


def _write_adapter(directory: Path) -> Path:
    """An executable that runs gymlab.envs.rattler_conda with this Python."""
    exe = directory / "gymlab-rattler-conda"
    exe.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"sys.path.insert(0, {str(SRC)!r})\n"
        "from gymlab.envs.rattler_conda import run\n"
        "run()\n"
    )
    exe.chmod(0o755)
    return exe


def solver(directory: Path) -> Path:
    found = shutil.which("micromamba")
    return Path(found) if found else _write_adapter(directory)


def _conda_lock() -> str:
    exe = shutil.which("conda-lock") or str(Path(sys.executable).parent / "conda-lock")
    if not Path(exe).exists():
        raise LabError("conda-lock is not installed in the project venv; run ./lab once")
    return exe


def lock(profile: Profile, channels: list[str]) -> Path:
    """Solve environment.yml against ``channels`` and write the profile's conda-lock.yml."""
    with tempfile.TemporaryDirectory(prefix="gymlab-lock-") as tmp:
        work = Path(tmp)
        # an existing lock turns conda-lock into a partial update; we always solve afresh,
        # and put the old lock back if the solve fails
        previous = work / "previous-conda-lock.yml"
        if profile.conda_lock.exists():
            profile.conda_lock.rename(previous)
        mapping = work / "pypi-to-conda.yml"
        mapping.write_text(EMPTY_PYPI_MAPPING)
        argv = [
            _conda_lock(),
            "lock",
            "--file",
            str(profile.environment_yml),
            "--virtual-package-spec",
            str(profile.virtual_packages_yml),
            "--platform",
            PLATFORM,
            "--kind",
            "lock",
            "--lockfile",
            str(profile.conda_lock),
            "--conda",
            str(solver(work)),
            "--pypi_to_conda_lookup_file",
            str(mapping),
            *(arg for url in channels for arg in ("--channel", url)),
        ]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=profile.root, check=False)
        if done.returncode != 0 and previous.exists():
            previous.replace(profile.conda_lock)
    if done.returncode != 0:
        # conda-lock prints the solver's verdict before its traceback: keep the verdict
        output = (done.stdout + done.stderr).split("Traceback (most recent call last)")[0]
        lines = output.strip().splitlines()[-25:] or done.stderr.strip().splitlines()[-5:]
        raise LabError(f"profile {profile.name}: conda-lock failed:\n" + "\n".join(lines))
    return profile.conda_lock


def locked_channels(profile: Profile) -> list[str]:
    data = yaml.safe_load(profile.conda_lock.read_text())
    return [c["url"] for c in data["metadata"]["channels"]]


def recorded_hash(profile: Profile) -> str | None:
    data = yaml.safe_load(profile.conda_lock.read_text())
    return (data.get("metadata", {}).get("content_hash") or {}).get(PLATFORM)


def spec_hash(profile: Profile, channels: list[str]) -> str:
    """conda-lock's own content hash of the spec, for the channels the lock was made with."""
    from conda_lock.content_hash import compute_content_hashes
    from conda_lock.src_parser import make_lock_spec
    from conda_lock.virtual_package import virtual_package_repo_from_specification

    with tempfile.TemporaryDirectory(prefix="gymlab-lock-") as tmp:
        mapping = Path(tmp) / "pypi-to-conda.yml"
        mapping.write_text(EMPTY_PYPI_MAPPING)
        spec = make_lock_spec(
            src_files=[profile.environment_yml],
            channel_overrides=channels,
            platform_overrides=[PLATFORM],
            mapping_url=str(mapping),
        )
        repo = virtual_package_repo_from_specification(profile.virtual_packages_yml)
        return compute_content_hashes(spec, repo)[PLATFORM]


def is_current(profile: Profile) -> bool:
    return recorded_hash(profile) == spec_hash(profile, locked_channels(profile))
