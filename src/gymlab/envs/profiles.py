"""Environment profiles: the folders under ``envs/`` and what their spec files say.

A profile folder holds
- ``environment.yml``: the conda-lock input (the conda part: CPython and pip);
- ``virtual-packages.yml``: the ``__cuda``/``__glibc`` the hosts have (conda-lock's format);
- ``requirements.in``: the PyPI part, locked into ``requirements.lock`` (sha256 per artifact);
- ``profile.yml``: what gymlab needs beyond that (kernel name, allowed sdists, test image);
- ``conda-lock.yml``: the conda part's lock, present once a lab with a conda channel ran
  ``invoke lock --env NAME --channel URL``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from gymlab.lab.errors import LabError

ENVS_DIR = Path(__file__).resolve().parents[3] / "envs"
PLATFORM = "linux-64"


@dataclass(frozen=True)
class Profile:
    name: str
    root: Path

    @property
    def environment_yml(self) -> Path:
        return self.root / "environment.yml"

    @property
    def virtual_packages_yml(self) -> Path:
        return self.root / "virtual-packages.yml"

    @property
    def requirements_in(self) -> Path:
        return self.root / "requirements.in"

    @property
    def requirements_lock(self) -> Path:
        return self.root / "requirements.lock"

    @property
    def conda_lock(self) -> Path:
        return self.root / "conda-lock.yml"

    def _yaml(self, name: str) -> dict:
        path = self.root / name
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise LabError(f"profile {self.name}: {path} is missing") from None
        if not isinstance(data, dict):
            raise LabError(f"profile {self.name}: {path} is not a YAML mapping")
        return data

    @property
    def settings(self) -> dict:
        return self._yaml("profile.yml")

    def python_version(self) -> str:
        """The ``X.Y`` of the ``python=X.Y`` pin in environment.yml."""
        for dep in self._yaml("environment.yml").get("dependencies", []):
            if isinstance(dep, str):
                found = re.fullmatch(r"python\s*=+\s*(\d+\.\d+)(\.\*)?", dep.strip())
                if found:
                    return found.group(1)
        raise LabError(f"profile {self.name}: environment.yml must pin python=X.Y")

    def virtual_packages(self) -> dict[str, str]:
        subdirs = self._yaml("virtual-packages.yml").get("subdirs", {})
        packages = (subdirs.get(PLATFORM) or {}).get("packages") or {}
        return {str(k): str(v) for k, v in packages.items()}

    def glibc(self) -> str:
        glibc = self.virtual_packages().get("__glibc")
        if not glibc:
            raise LabError(f"profile {self.name}: virtual-packages.yml must pin __glibc")
        return glibc

    def pypi_sdists(self) -> list[str]:
        return sorted(self.settings.get("pypi_sdists") or [])

    def pip_requirement(self) -> str:
        """pip's own pinned entry of requirements.lock (hosts upgrade pip with it first)."""
        block: list[str] = []
        for line in self.requirements_lock.read_text().splitlines():
            if block and not line.startswith(" "):
                break
            if block or line.startswith("pip=="):
                block.append(line)
        if not block:
            raise LabError(f"profile {self.name}: requirements.lock pins no pip")
        return "\n".join(block) + "\n"

    def describe(self) -> dict:
        """What the python_envs role needs to know about the profile."""
        lock = self.requirements_lock.read_bytes()
        return {
            "name": self.name,
            "python": self.python_version(),
            "kernel_display_name": self.settings.get("kernel_display_name", self.name),
            "gymlab_client": bool(self.settings.get("gymlab_client", False)),
            "requirements_lock": str(self.requirements_lock),
            "lock_sha256": hashlib.sha256(lock).hexdigest(),
            "pip_requirement": self.pip_requirement(),
            "conda_lock": str(self.conda_lock) if self.conda_lock.exists() else None,
        }


def all_profiles(envs_dir: Path = ENVS_DIR) -> list[Profile]:
    return [
        Profile(p.name, p) for p in sorted(envs_dir.iterdir()) if (p / "environment.yml").is_file()
    ]


def get(name: str, envs_dir: Path = ENVS_DIR) -> Profile:
    profiles = {p.name: p for p in all_profiles(envs_dir)}
    if name not in profiles:
        raise LabError(f"unknown profile '{name}'; expected one of: {', '.join(profiles)}")
    return profiles[name]


def main(argv: list[str] | None = None) -> int:
    """``python -m gymlab.envs.profiles [--envs-dir D] NAME...``: the profiles as JSON."""
    parser = argparse.ArgumentParser(prog="python -m gymlab.envs.profiles")
    parser.add_argument("--envs-dir", type=Path, default=ENVS_DIR)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    try:
        print(json.dumps([get(n, args.envs_dir).describe() for n in args.names]))
    except LabError as exc:
        print(f"gymlab: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
