"""Which environment a runtime serves: env ids the Gymnasium way, imports and make kwargs.

An env id is anything ``gymnasium.make`` takes: a registered id (``CartPole-v1``), one of
an installed plugin family (``ALE/Pong-v5`` from ale-py, ``MiniGrid-Empty-5x5-v0``), or
Gymnasium's ``module:EnvId`` form, which imports ``module`` first (the gym-foo package
pattern: its ``__init__`` calls ``gymnasium.register``). ``imports`` names more modules
that register envs on import. Everything is imported once, when the runtime starts; a
client's reset may later switch to any id that is registered by then, or to a family's
id (a fixed table of module names), but never makes the runtime import a module a client
named.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gymlab.runtime.config import ConfigError

if TYPE_CHECKING:
    import gymnasium

log = logging.getLogger("gymlab.runtime")

#: Plugin families whose ids carry no module prefix: id prefix -> the module that registers them.
FAMILIES: dict[str, str] = {
    "ALE/": "ale_py",
    "MiniGrid-": "minigrid",
    "BabyAI-": "minigrid",
    "miniwob/": "miniwob",
}

#: The entry-point group plugin packages may declare their registration functions in.
ENTRY_POINT_GROUP = "gymnasium.envs"


def split_env_id(env_id: str) -> tuple[str | None, str]:
    """``"gym_foo:Foo-v0"`` -> ``("gym_foo", "Foo-v0")``; a plain id has no module."""
    module, sep, name = env_id.rpartition(":")
    return (module, name) if sep and module else (None, env_id)


def parse_imports(values: Iterable[str]) -> tuple[str, ...]:
    """Module names from repeatable, comma-separated ``--import`` values (empty ones dropped)."""
    modules = [m.strip() for value in values for m in value.split(",")]
    for module in modules:
        if module and not all(part.isidentifier() for part in module.split(".")):
            raise ConfigError(f"--import {module!r} is not a module name (e.g. gym_foo.envs)")
    return tuple(dict.fromkeys(m for m in modules if m))


def parse_env_kwargs(text: str | None) -> dict[str, Any]:
    """The ``--env-kwargs`` JSON object (empty text: none)."""
    if not text or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--env-kwargs is not JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"--env-kwargs must be a JSON object of make() arguments, got {text!r}")
    if "render_mode" in value:
        raise ConfigError("--env-kwargs: render_mode is the runtime's (rgb_array); leave it out")
    return value


def _family_module(name: str) -> str | None:
    return next((m for prefix, m in FAMILIES.items() if name.startswith(prefix)), None)


def _import(module: str) -> str | None:
    """Import ``module``; the reason it failed, or None."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return f"cannot import {module} ({exc})"
    except Exception as exc:  # a package whose import itself fails: still one line
        return f"importing {module} failed ({type(exc).__name__}: {exc})"
    return None


def _load_entry_points() -> list[str]:
    """Register the envs of plugin packages that declare a registration function (once).

    Importing such a package often registers its envs already (now, or earlier in this
    process); the function then registers the same specs again, which is harmless but makes
    Gymnasium warn once per env, so those warnings are dropped. Returns the modules loaded.
    """
    import warnings

    loaded = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            register = entry.load()
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*Overriding environment")
                register()
            loaded.append(entry.module)
        except Exception as exc:
            log.warning("plugin %s (%s) failed to register: %s", entry.name, entry.value, exc)
    return loaded


@dataclass
class EnvCatalog:
    """The modules a runtime imported at start, and what a later reset may switch to."""

    imported: list[str] = field(default_factory=list)
    _plugins_loaded: bool = False

    def load(self, env_id: str, imports: Iterable[str] = ()) -> None:
        """Import what ``env_id`` and ``imports`` need, then check Gymnasium knows the id.

        Raises :class:`ConfigError` naming the id, the modules imported and Gymnasium's
        reason.
        """
        module, name = split_env_id(env_id)
        wanted = [*imports, *([module] if module else [])]
        family = _family_module(name)
        if family and family not in sys.modules:
            wanted.append(family)
        for mod in dict.fromkeys(wanted):
            reason = _import(mod)
            if reason is not None:
                raise ConfigError(f"cannot make {env_id!r}: {reason}")
            if mod not in self.imported:
                self.imported.append(mod)
        self._check_registered(env_id, name)

    def allowed(self, env_id: str) -> None:
        """Raise :class:`ConfigError` unless a client's reset may switch to ``env_id``."""
        module, name = split_env_id(env_id)
        if module is not None and module not in self.imported:
            started = ", ".join(self.imported) or "none"
            raise ConfigError(
                f"cannot switch to {env_id!r}: this runtime imports no module {module!r} "
                f"(it imported: {started}); serve it from a runtime started with it"
            )
        family = _family_module(name)
        if family and family not in sys.modules:
            reason = _import(family)
            if reason is not None:
                raise ConfigError(f"cannot make {env_id!r}: {reason}")
            self.imported.append(family)
        self._check_registered(env_id, name)

    def _check_registered(self, env_id: str, name: str) -> None:
        import gymnasium

        if name in gymnasium.registry:
            return
        if not self._plugins_loaded:
            self._plugins_loaded = True
            self.imported.extend(_load_entry_points())
            if name in gymnasium.registry:
                return
        try:
            gymnasium.spec(name)  # raises with Gymnasium's own reason (and its suggestion)
        except gymnasium.error.Error as exc:
            modules = ", ".join(self.imported) or "none"
            raise ConfigError(
                f"cannot make {env_id!r} (modules imported: {modules}): {exc}"
            ) from None


def make_env(env_id: str, kwargs: Mapping[str, Any] | None = None) -> gymnasium.Env[Any, Any]:
    """``gymnasium.make`` with rgb_array rendering; :class:`ConfigError` when make refuses."""
    import gymnasium

    # rgb_array rendering needs no window system; without this SDL probes for one.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    _, name = split_env_id(env_id)
    kwargs = dict(kwargs or {})
    try:
        return gymnasium.make(name, render_mode="rgb_array", **kwargs)
    except Exception as exc:  # the env's own constructor may raise anything: one line
        given = f" with {json.dumps(kwargs)}" if kwargs else ""
        raise ConfigError(f"cannot make {env_id!r}{given}: {type(exc).__name__}: {exc}") from None
