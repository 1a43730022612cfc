"""A runtime's configuration: what to serve, where, and how; checked before anything starts.

A leaf of the runtime: it knows no backend. Each backend checks what only it can judge
(an env that cannot be made, a web task given a key map) when the runtime prepares it.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gymlab.deployment import DEFAULT_FPS, DEFAULT_MODE
from gymlab.rewarder.protocol import MAX_FPS, MIN_FPS, Mode


class ConfigError(ValueError):
    """Bad runtime configuration (unknown env id, bad fps, a port in use, ...)."""


@dataclass(frozen=True)
class RuntimeConfig:
    """Everything a runtime needs.

    ``env_id`` is anything ``gymnasium.make`` takes, ``module:EnvId`` included
    (:mod:`gymlab.runtime.envs`), or a web task's id (:mod:`gymlab.runtime.browser`);
    ``imports`` are modules to import first (packages that register envs on import),
    ``env_kwargs`` go to ``gymnasium.make``, ``keymap_file`` is a user key map (JSON/YAML,
    :meth:`gymlab.keymap.KeyMap.from_json`) for real time. ``mode`` accepts :class:`Mode`
    or its string (``"realtime"``, ``"lockstep"``) and is normalised to :class:`Mode`; an
    unknown string is left for :meth:`validate`.
    """

    env_id: str
    password: str
    vnc_port: int = 5900
    rewarder_port: int = 15900
    mode: Mode | str = DEFAULT_MODE
    fps: float = DEFAULT_FPS
    bind: str = "127.0.0.1"
    display: int | None = None
    xvnc_executable: str = "Xvnc"
    imports: tuple[str, ...] = ()
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    keymap_file: str | None = None

    def __post_init__(self) -> None:
        with contextlib.suppress(ValueError):
            object.__setattr__(self, "mode", Mode(self.mode))  # frozen: set it the hard way

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values that cannot work, whatever the env."""
        if not isinstance(self.mode, Mode):
            raise ConfigError(f"unknown mode {self.mode!r} (realtime or lockstep)")
        if not (math.isfinite(self.fps) and MIN_FPS <= self.fps <= MAX_FPS):
            raise ConfigError(f"fps must be in {MIN_FPS:g}..{MAX_FPS:g}, got {self.fps:g}")
        if not self.password:
            raise ConfigError("the password is empty")
        for name in ("vnc_port", "rewarder_port"):
            port = getattr(self, name)
            if not 0 < port < 65536:
                raise ConfigError(f"{name} must be in 1..65535, got {port}")
        if self.vnc_port == self.rewarder_port:
            raise ConfigError(f"the VNC and rewarder ports are the same ({self.vnc_port})")
        if self.display is not None and not 0 <= self.display < 65536:
            raise ConfigError(f"display must be in 0..65535, got {self.display}")


def with_password_file(config: RuntimeConfig, path: str | os.PathLike[str]) -> RuntimeConfig:
    """``config`` with the password read from ``path`` (first line, whitespace stripped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read password file {path}: {exc.strerror}") from None
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise ConfigError(f"password file {path} is empty")
    return replace(config, password=password)
