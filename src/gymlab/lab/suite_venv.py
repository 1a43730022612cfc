"""Venvs of their own for test suites whose dependencies the project venv must not carry.

The Stable-Baselines3 suite needs PyTorch (over a gigabyte even as the CPU build): it gets a
venv under ``~/.cache/gymlab`` built from its requirements file, constrained by the project's
``requirements.lock`` (so gymnasium, numpy, websockets... are the project venv's versions),
kept between runs and rebuilt only when either file or the Python changes. gymlab itself is
not installed there: the suite runs with ``PYTHONPATH`` pointing at the checkout's ``src``.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
import venv
from pathlib import Path

from gymlab.lab import proc

CACHE = Path.home() / ".cache" / "gymlab"


def recipe_hash(
    requirements: Path, constraints: Path | None = None, python: str = sys.version
) -> str:
    """What the venv is built from: the requirements, the constraints and the Python version."""
    recipe = requirements.read_bytes() + (constraints.read_bytes() if constraints else b"")
    return hashlib.sha256(recipe + python.encode()).hexdigest()[:16]


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def ensure(name: str, requirements: Path, constraints: Path | None = None) -> Path:
    """The venv ``~/.cache/gymlab/<name>-venv`` for ``requirements``; its python's path.

    ``constraints`` (a pip constraints file such as requirements.lock) pins the versions of
    whatever the requirements pull in that it names.
    """
    root = CACHE / f"{name}-venv"
    stamp = root / ".gymlab-recipe"
    wanted = recipe_hash(requirements, constraints)
    python = root / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    print(f"building the {name} venv {root} (recipe {wanted})", flush=True)
    start = time.monotonic()
    shutil.rmtree(root, ignore_errors=True)
    venv.create(root, with_pip=True)
    argv = [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)]
    proc.run(
        [*argv, *(["-c", str(constraints)] if constraints else [])],
        what=f"building the {name} venv from {requirements}",
        timeout=1800,
    )
    stamp.write_text(wanted + "\n")  # last: an interrupted build is rebuilt next time
    elapsed = time.monotonic() - start
    print(f"{name} venv built in {elapsed:.0f}s: {_size(root) / 2**20:.0f} MiB", flush=True)
    return python
