"""Build the wheelhouse a host installs gymlab from, on the control machine.

Hosts get gymlab and its runtime dependencies as wheels copied from here, so they need no
route to a package index: pip downloads with its own configured index (or PIP_INDEX_URL),
pinned by the repository's requirements.lock, for the host's Python version and glibc.

    python -m gymlab.lab.wheelhouse --out DIR --python 3.11 --glibc 2.36

prints ``changed`` or ``unchanged`` last, for Ansible's ``changed_when``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
# Wheels are zip files stamped with build times; a fixed epoch makes the gymlab wheel byte-stable,
# so re-running the role does not see a "new" wheel when the source did not change.
REPRODUCIBLE_EPOCH = "315532800"


def runtime_requirements() -> list[str]:
    """The installed package's dependencies: core plus the ``runtime`` extra."""
    wanted = []
    for requirement in importlib.metadata.requires("gymlab") or []:
        spec, _, marker = requirement.partition(";")
        if not marker or 'extra == "runtime"' in marker.replace("'", '"'):
            wanted.append(spec.strip())
    return wanted


def platforms(glibc: str, machine: str = "x86_64") -> list[str]:
    """manylinux tags a host with this glibc accepts, newest first."""
    major, minor = (int(p) for p in glibc.split(".")[:2])
    if major != 2 or minor < 17:
        raise ValueError(f"glibc {glibc}: manylinux wheels need glibc 2.17 or newer")
    tags = [f"manylinux_2_{m}_{machine}" for m in range(minor, 16, -1)]
    return [*tags, f"manylinux2014_{machine}"]


def digest(directory: Path) -> str:
    """A hash of the wheel names and contents in ``directory``."""
    h = hashlib.sha256()
    for wheel in sorted(directory.glob("*.whl")):
        h.update(wheel.name.encode())
        h.update(hashlib.sha256(wheel.read_bytes()).digest())
    return h.hexdigest()


def build(
    out: Path, python: str, glibc: str, machine: str = "x86_64", project: Path = REPO
) -> bool:
    """Fill ``out`` with gymlab's wheel and its dependencies; True when the content changed."""
    out.mkdir(parents=True, exist_ok=True)
    before = digest(out)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    platform_args = [arg for tag in platforms(glibc, machine) for arg in ("--platform", tag)]
    subprocess.run(
        [*pip, "download", "--only-binary=:all:", "--python-version", python,
         "--implementation", "cp", *platform_args, "-c", str(project / "requirements.lock"),
         "-d", str(out), *runtime_requirements()],
        check=True,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SOURCE_DATE_EPOCH": REPRODUCIBLE_EPOCH}
        subprocess.run([*pip, "wheel", "--no-deps", "-w", tmp, str(project)], check=True, env=env)
        for wheel in Path(tmp).glob("gymlab-*.whl"):
            target = out / wheel.name
            if not target.exists() or target.read_bytes() != wheel.read_bytes():
                target.write_bytes(wheel.read_bytes())
    return digest(out) != before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="wheelhouse directory")
    parser.add_argument("--python", required=True, help="host Python version, e.g. 3.11")
    parser.add_argument("--glibc", required=True, help="host glibc version, e.g. 2.36")
    parser.add_argument("--machine", default="x86_64", help="host machine (uname -m)")
    args = parser.parse_args(argv)
    try:
        changed = build(args.out, args.python, args.glibc, args.machine)
    except (subprocess.CalledProcessError, ValueError) as exc:
        print(f"gymlab wheelhouse: {exc}", file=sys.stderr)
        return 1
    print("changed" if changed else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
