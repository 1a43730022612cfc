"""The runtime hosts' locks: one hashed lock per host Python, for the gym_runtime wheelhouse.

A runtime host gets gymlab's runtime dependencies (pyproject.toml's ``dependencies`` and its
``runtime`` extra) and the env families of ``runtime-envs.in`` from a wheelhouse built on the
control machine (gymlab.lab.wheelhouse). What that wheelhouse may hold is pinned, with hashes,
by ``runtime-envs/py<X.Y>.lock``: uv resolves the two inputs for that CPython on
``x86_64-manylinux_2_28``, wheels only. Each lock starts with the sha256 of what it was resolved
from, so a lock that no longer matches its inputs is found without asking an index.

    python -m gymlab.lab.runtime_locks [--python 3.12 ...] [--check]

(``invoke lock --runtime`` writes them; ``invoke lock --check`` checks them too.) A lock that
exists is re-resolved keeping its pins where they still fit; delete it for a fresh resolution.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # a Python 3.10 control machine: pytest brings tomli there
    import tomli as tomllib

from gymlab.envs import pypi
from gymlab.lab.errors import LabError, one_line_exit

REPO = Path(__file__).resolve().parents[3]
#: Host Pythons (X.Y) that get a runtime lock: Ubuntu 22.04's 3.10 to Debian 13's 3.13.
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
# ale-py's wheels need glibc >= 2.27; uv's nearest manylinux tag not below that is 2_28.
LOCK_GLIBC = "2.28"
FAMILIES = "runtime-envs.in"
LOCKS_DIR = "runtime-envs"
FIX = "run `invoke lock --runtime`"


def lock_path(python: str, root: Path = REPO) -> Path:
    """The runtime lock of hosts with this Python (``X.Y``); ValueError, in one line naming the
    Pythons that have one, for any other."""
    if python not in PYTHONS:
        raise ValueError(
            f"no runtime lock for Python {python}; runtime locks cover {', '.join(PYTHONS)}"
        )
    return root / LOCKS_DIR / f"py{python}.lock"


def _requirement_lines(path: Path) -> list[str]:
    """The requirement lines of a requirements file, comments and blank lines left out."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def spec_digest(python: str, root: Path = REPO) -> str:
    """A hash of what the lock of ``python`` is resolved from; a change means it is stale."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    spec = {
        "python": python,
        "glibc": LOCK_GLIBC,
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "runtime": project.get("optional-dependencies", {}).get("runtime", []),
        "families": _requirement_lines(root / FAMILIES),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def problem(python: str, root: Path = REPO) -> str | None:
    """Why the lock of ``python`` cannot be used as it is (missing, stale), or None."""
    path = lock_path(python, root)
    name = path.relative_to(root)
    if not path.is_file():
        return f"runtime lock {name} is missing; {FIX}"
    if pypi.recorded_digest(path) != spec_digest(python, root):
        return (
            f"runtime lock {name} does not match pyproject.toml's dependencies and runtime "
            f"extra and {FAMILIES}; {FIX}"
        )
    return None


def compile_lock(python: str, root: Path = REPO) -> str:
    """Resolve the runtime lock of ``python``; the lock file's text."""
    path = lock_path(python, root)
    platform = pypi.manylinux_platform(LOCK_GLIBC)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp, path.name)
        if path.is_file():
            # uv prefers the pins of an existing output file: a relock moves only what must move
            shutil.copyfile(path, out)
        argv = [
            pypi.uv(),
            "pip",
            "compile",
            "pyproject.toml",
            FAMILIES,
            "--extra",
            "runtime",
            "--python-version",
            python,
            "--python-platform",
            platform,
            "--generate-hashes",
            "--only-binary",
            ":all:",  # hosts build nothing
            "--no-header",
            "--quiet",
            "--index-url",
            pypi.index_url(),
            "--output-file",
            str(out),
        ]
        # relative inputs, so the lock's "via" comments name no path of this machine
        done = subprocess.run(
            argv, cwd=root, capture_output=True, text=True, env=pypi.uv_env(), check=False
        )
        if done.returncode != 0:
            raise LabError(
                f"runtime lock for Python {python}: uv could not resolve:\n{done.stderr}"
            )
        body = out.read_text()
    header = (
        f"# Runtime lock of gymlab's hosts with CPython {python} ({platform} and newer, wheels\n"
        f"# only): generated by `invoke lock --runtime` from pyproject.toml (dependencies,\n"
        f"# runtime extra) and {FAMILIES}; do not edit.\n"
        f"{pypi.STAMP}{spec_digest(python, root)}\n"
    )
    return header + body


def write_lock(python: str, root: Path = REPO) -> Path:
    path = lock_path(python, root)
    text = compile_lock(python, root)
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


@one_line_exit
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gymlab.lab.runtime_locks")
    parser.add_argument(
        "--python", action="append", choices=PYTHONS, help="this Python's lock only (repeatable)"
    )
    parser.add_argument("--check", action="store_true", help="change nothing; fail when stale")
    parser.add_argument("--root", type=Path, default=REPO, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    pythons = args.python or list(PYTHONS)
    if args.check:
        problems = [p for p in (problem(py, args.root) for py in pythons) if p]
        for line in problems:
            print(f"stale: {line}")
        if not problems:
            print(f"runtime locks current: {', '.join(pythons)}")
        return 1 if problems else 0
    for python in pythons:
        path = write_lock(python, args.root)
        print(f"runtime: wrote {path.relative_to(args.root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
