"""Environment profiles: the folders under ``envs/`` and what their spec files say.

A profile folder holds
- ``environment.yml``: the conda-lock input (the conda part: CPython and pip);
- ``virtual-packages.yml``: the ``__cuda``/``__glibc`` the hosts have (conda-lock's format);
- ``requirements.in``: the PyPI part, locked into ``requirements.lock`` (sha256 per artifact);
- ``profile.yml``: what gymlab needs beyond that (which parts the profile has, kernel name,
  allowed sdists, test image);
- ``conda-lock.yml``: the conda part's lock, present once a lab with a conda channel ran
  ``invoke lock --env NAME --channel URL``.

``parts`` in profile.yml says which parts a profile has: ``[pypi]`` (the default: the PyPI part
in a venv of the distribution's Python, environment.yml only names the Python), ``[conda]``
(everything from the conda channel) or ``[conda, pypi]`` (the PyPI part installed into the
conda prefix's Python).
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
PARTS = ("conda", "pypi")


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

    def parts(self) -> tuple[str, ...]:
        """The profile's parts, in install order (conda first)."""
        parts = self.settings.get("parts", ["pypi"])
        if not isinstance(parts, list) or not parts:
            raise LabError(
                f"profile {self.name}: profile.yml parts is {parts!r}; expected a non-empty list "
                "of conda and/or pypi"
            )
        for part in parts:
            if part not in PARTS:
                raise LabError(
                    f"profile {self.name}: profile.yml parts has {part!r}; expected conda or pypi"
                )
        return tuple(p for p in PARTS if p in parts)

    def stray_locks(self) -> list[str]:
        """Locks of a part the profile does not have: never silently ignored."""
        stray = []
        for part, path in (("conda", self.conda_lock), ("pypi", self.requirements_lock)):
            if part not in self.parts() and path.exists():
                stray.append(
                    f"profile {self.name}: {path.name} is a {part} lock but profile.yml parts is "
                    f"{list(self.parts())}; add {part} to parts or remove {path.name}"
                )
        return stray

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

    def _lock_bytes(self, path: Path, part: str) -> bytes:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            how = "--channel <conda channel URL>" if part == "conda" else ""
            raise LabError(
                f"profile {self.name}: its {part} part has no {path.name}; "
                f"run `invoke lock --env {self.name} {how}`".rstrip()
            ) from None

    def describe(self) -> dict:
        """What the python_envs role needs to know about the profile."""
        parts = self.parts()
        for problem in self.stray_locks():
            raise LabError(problem)
        digest = hashlib.sha256()
        if "conda" in parts:
            # conda + pypi: the id covers both locks; pypi only: the PyPI lock alone, as before
            digest.update(self._lock_bytes(self.conda_lock, "conda"))
        if "pypi" in parts:
            digest.update(self._lock_bytes(self.requirements_lock, "pypi"))
        pip = None
        if "pypi" in parts and "conda" not in parts:
            # the distribution's venv pip can be too old: hosts upgrade it from this pin first
            pip = self.pip_requirement()
        return {
            "name": self.name,
            "parts": list(parts),
            "python": self.python_version(),
            "kernel_display_name": self.settings.get("kernel_display_name", self.name),
            "gymlab_client": bool(self.settings.get("gymlab_client", False)),
            "requirements_lock": str(self.requirements_lock) if "pypi" in parts else None,
            "conda_lock": str(self.conda_lock) if "conda" in parts else None,
            "lock_sha256": digest.hexdigest(),
            "pip_requirement": pip,
            "virtual_packages": self.virtual_packages(),
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
