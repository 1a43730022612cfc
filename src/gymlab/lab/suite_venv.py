"""Venvs of their own for test suites whose dependencies the project venv must not carry.

The Stable-Baselines3 suite needs PyTorch (over a gigabyte even as the CPU build): it gets a
venv under ``~/.cache/gymlab`` built from its requirements file, kept between runs and rebuilt
only when that file or the Python changes. gymlab itself is not installed there: the suite
runs with ``PYTHONPATH`` pointing at the checkout's ``src``.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import venv
from pathlib import Path

from gymlab.lab import proc

CACHE = Path.home() / ".cache" / "gymlab"


def recipe_hash(requirements: Path, python: str = sys.version) -> str:
    """What the venv is built from: the requirements file and the Python version."""
    return hashlib.sha256(requirements.read_bytes() + python.encode()).hexdigest()[:16]


def ensure(name: str, requirements: Path) -> Path:
    """The venv ``~/.cache/gymlab/<name>-venv`` for ``requirements``; its python's path."""
    root = CACHE / f"{name}-venv"
    stamp = root / ".gymlab-recipe"
    wanted = recipe_hash(requirements)
    python = root / "bin" / "python"
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return python
    shutil.rmtree(root, ignore_errors=True)
    venv.create(root, with_pip=True)
    proc.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
        what=f"building the {name} venv from {requirements}",
        timeout=1800,
    )
    stamp.write_text(wanted + "\n")  # last: an interrupted build is rebuilt next time
    return python
