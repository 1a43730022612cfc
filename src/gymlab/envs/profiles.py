"""Environment profiles: the folders under ``envs/`` and what their spec files say.

A profile folder holds
- ``environment.yml``: the conda-lock input (the conda part: CPython and pip);
- ``virtual-packages.yml``: the ``__cuda``/``__glibc`` the hosts have (conda-lock's format);
- ``requirements.in``: the PyPI part, locked into one ``requirements-pyX.Y.lock`` per Python
  (sha256 per artifact);
- ``profile.yml``: what gymlab needs beyond that (which parts the profile has, the Pythons its
  PyPI part is locked for, kernel name, allowed sdists, test image);
- ``conda-lock.yml``: the conda part's lock, present once a lab with a conda channel ran
  ``invoke lock --env NAME --channel URL``.

``parts`` in profile.yml says which parts a profile has: ``[pypi]`` (the default: the PyPI part
in a venv of the distribution's python3), ``[conda]``
(everything from the conda channel) or ``[conda, pypi]`` (the PyPI part installed into the
conda prefix's Python).

Which Python a PyPI lock is for (conda-lock's per-platform locks, applied to Python versions):
a ``[pypi]`` profile installs into a venv of the host's ``python3``, so profile.yml ``pythons``
lists the versions it is locked for and the host's version picks the lock; without that key
(and always with a conda part, whose prefix brings its own Python) it is the single Python of
environment.yml's ``python=X.Y`` pin.
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

from gymlab.lab.errors import LabError, one_line_exit

ENVS_DIR = Path(__file__).resolve().parents[3] / "envs"
PLATFORM = "linux-64"
PARTS = ("conda", "pypi")
# requirements-py3.12.lock: the PyPI part locked for CPython 3.12
PYPI_LOCK = re.compile(r"requirements-py(\d+\.\d+)\.lock")


def _version_key(python: str) -> tuple[int, ...]:
    return tuple(int(p) for p in python.split("."))


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

    def requirements_lock_for(self, python: str) -> Path:
        """The PyPI part's lock for CPython ``python`` (X.Y); every caller's path to it."""
        return self.root / f"requirements-py{python}.lock"

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
        """Locks of a part or a Python the profile does not have: never silently ignored."""
        parts = self.parts()
        stray = []
        if "conda" not in parts and self.conda_lock.exists():
            stray.append(self._stray("conda", self.conda_lock.name))
        pypi_locks = sorted(self.root.glob("requirements*.lock"))
        if "pypi" not in parts:
            return stray + [self._stray("pypi", path.name) for path in pypi_locks]
        for python, path in self.unlisted_locks().items():
            stray.append(
                f"profile {self.name}: {path.name} is the lock for Python {python}, not one of "
                f"the profile's ({self.pythons_source()}: {', '.join(self.pythons())}); "
                f"remove {path.name}"
            )
        for path in pypi_locks:
            if not PYPI_LOCK.fullmatch(path.name):
                stray.append(
                    f"profile {self.name}: {path.name} is no lock of a Python (those are "
                    f"requirements-pyX.Y.lock); remove {path.name}"
                )
        return stray

    def _stray(self, part: str, name: str) -> str:
        return (
            f"profile {self.name}: {name} is a {part} lock but profile.yml parts is "
            f"{list(self.parts())}; add {part} to parts or remove {name}"
        )

    def unlisted_locks(self) -> dict[str, Path]:
        """PyPI locks of Pythons the profile no longer lists, by Python (``invoke lock``
        removes them)."""
        if "pypi" not in self.parts():
            return {}
        listed = set(self.pythons())
        found = (PYPI_LOCK.fullmatch(p.name) for p in sorted(self.root.glob("requirements-py*")))
        return {m.group(1): self.root / m.group(0) for m in found if m and m.group(1) not in listed}

    def pythons(self) -> tuple[str, ...]:
        """The Pythons (X.Y, oldest first) the PyPI part is locked for, one lock each."""
        listed = self.settings.get("pythons")
        if listed is None:
            return (self.python_version(),)
        if "conda" in self.parts():
            raise LabError(
                f"profile {self.name}: profile.yml pythons is for profiles without a conda part; "
                f"the conda part brings Python {self.python_version()} (environment.yml)"
            )
        if (
            not isinstance(listed, list)
            or not listed
            or not all(isinstance(p, str) and re.fullmatch(r"\d+\.\d+", p) for p in listed)
        ):
            # a bare 3.10 is the YAML float 3.1: the versions must be quoted
            raise LabError(
                f"profile {self.name}: profile.yml pythons is {listed!r}; expected a non-empty "
                'list of quoted X.Y versions, e.g. ["3.11", "3.12"]'
            )
        return tuple(sorted(set(listed), key=_version_key))

    def pythons_source(self) -> str:
        """Where pythons() comes from, for messages."""
        if "pythons" in self.settings:
            return "profile.yml pythons"
        return "environment.yml's python pin"

    def lock_python(self, host_python: str | None) -> str:
        """The Python whose PyPI lock a host installs, given its ``python3``'s X.Y.

        A conda part brings its own Python, so the host's does not matter; a [pypi] profile
        makes a venv of the host's python3, which only that Python's lock fits.
        """
        pythons = self.pythons()
        if "conda" in self.parts() or (host_python is None and len(pythons) == 1):
            return pythons[0]
        listed = ", ".join(pythons)
        if host_python is None:
            raise LabError(
                f"profile {self.name} is locked for Pythons {listed}: name the host's with "
                "--python X.Y"
            )
        if host_python not in pythons:
            raise LabError(
                f"profile {self.name} has no lock for Python {host_python} (the host's python3); "
                f"it is locked for {listed}"
            )
        return host_python

    def wheelhouse_folder(self, python: str) -> str:
        """The wheelhouse folder (relative) of the PyPI lock for ``python``: one per Python,
        so a host's copy holds its own Python's wheels only."""
        return f"{self.name}/py{python}"

    @property
    def conda_folder(self) -> str:
        """The wheelhouse folder (relative) of the conda part's archives."""
        return f"{self.name}/conda"

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

    def pip_requirement(self, python: str) -> str:
        """pip's own pinned entry of the lock for ``python`` (hosts upgrade pip with it first)."""
        lock = self.requirements_lock_for(python)
        block: list[str] = []
        for line in lock.read_text().splitlines():
            if block and not line.startswith(" "):
                break
            if block or line.startswith("pip=="):
                block.append(line)
        if not block:
            raise LabError(f"profile {self.name}: {lock.name} pins no pip")
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

    def describe(self, host_python: str | None = None) -> dict:
        """What the python_envs role needs to know about the profile, for a host whose
        ``python3`` is ``host_python`` (X.Y)."""
        parts = self.parts()
        for problem in self.stray_locks():
            raise LabError(problem)
        python = self.lock_python(host_python)
        lock = self.requirements_lock_for(python)
        digest = hashlib.sha256()
        if "conda" in parts:
            # conda + pypi: the id covers both locks; pypi only: the PyPI lock alone, as before
            digest.update(self._lock_bytes(self.conda_lock, "conda"))
        if "pypi" in parts:
            digest.update(self._lock_bytes(lock, "pypi"))
        pip = None
        if "pypi" in parts and "conda" not in parts:
            # the distribution's venv pip can be too old: hosts upgrade it from this pin first
            pip = self.pip_requirement(python)
        kernel = str(self.settings.get("kernel_display_name", self.name))
        return {
            "name": self.name,
            "parts": list(parts),
            "python": python,
            "kernel_display_name": kernel.replace("{python}", python),
            "gymlab_client": bool(self.settings.get("gymlab_client", False)),
            "requirements_lock": str(lock) if "pypi" in parts else None,
            "conda_lock": str(self.conda_lock) if "conda" in parts else None,
            "lock_sha256": digest.hexdigest(),
            "pip_requirement": pip,
            "virtual_packages": self.virtual_packages(),
            "pypi_folder": self.wheelhouse_folder(python) if "pypi" in parts else None,
            "conda_folder": self.conda_folder if "conda" in parts else None,
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


@one_line_exit
def main(argv: list[str] | None = None) -> int:
    """``python -m gymlab.envs.profiles [--envs-dir D] [--python X.Y] NAME...``: the profiles
    as JSON, each with its lock for a host whose python3 is X.Y."""
    parser = argparse.ArgumentParser(prog="python -m gymlab.envs.profiles")
    parser.add_argument("--envs-dir", type=Path, default=ENVS_DIR)
    parser.add_argument("--python", metavar="X.Y", help="the host's python3 version")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    described = [get(n, args.envs_dir).describe(args.python) for n in args.names]
    print(json.dumps(described))
    return 0


if __name__ == "__main__":
    sys.exit(main())
