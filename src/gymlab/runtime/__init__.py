"""The gymlab runtime: one remote environment (Xvnc + Gymnasium env + rewarder).

``RuntimeConfig``, ``Runtime`` and ``run_runtime`` are loaded on first use so
that ``gymlab --help`` does not import Gymnasium or python-xlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gymlab.runtime.core import ConfigError, Runtime, RuntimeConfig, run_runtime

__all__ = ["ConfigError", "Runtime", "RuntimeConfig", "run_runtime"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from gymlab.runtime import core

        return getattr(core, name)
    raise AttributeError(name)
