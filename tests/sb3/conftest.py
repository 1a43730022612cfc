"""tests/sb3 runs in its own venv (PyTorch, Stable-Baselines3): ``invoke test --sb3``.

Collected from a venv without Stable-Baselines3 (``pytest tests`` from the project venv), the
suite is left out, and the header says so, instead of failing on its imports.
"""

from __future__ import annotations

import importlib.util

HAVE_SB3 = importlib.util.find_spec("stable_baselines3") is not None

collect_ignore_glob = [] if HAVE_SB3 else ["test_*.py"]


def pytest_report_header() -> str | None:
    if HAVE_SB3:
        return None
    return "tests/sb3: left out, stable-baselines3 is not installed here (invoke test --sb3)"
