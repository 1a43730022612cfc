"""Universe-style front door: ``gymlab.make(env_id, remotes=...)`` and ``gymlab.configure``.

Universe's examples read ``env = gym.make(id); env.configure(remotes=...)``; here
``gymlab.make(id)`` without remotes returns an unconfigured :class:`RemoteVectorEnv` whose
:meth:`~RemoteVectorEnv.configure` connects it, and ``gymlab.make(id, remotes=...)`` does both.
``gymlab.configure(**defaults)`` sets defaults (remotes, password, mode, timeouts) that later
``make`` calls use.
"""

from __future__ import annotations

from typing import Any

from gymlab.client.vector import RemoteVectorEnv

_DEFAULTS: dict[str, Any] = {}


def configure(**defaults: Any) -> None:
    """Set defaults for :func:`make` (e.g. ``remotes=``, ``password=``, ``mode=``).

    Passing ``None`` for a key removes its default.
    """
    for key, value in defaults.items():
        if value is None:
            _DEFAULTS.pop(key, None)
        else:
            _DEFAULTS[key] = value


def make(env_id: str, remotes: Any = None, **kwargs: Any) -> RemoteVectorEnv:
    """A :class:`RemoteVectorEnv` running ``env_id`` on ``remotes``.

    The remotes are asked to run ``env_id`` (their runtimes switch environments if needed)
    before the spaces are read. Without remotes (here or from :func:`configure`) the env is
    returned unconfigured: call ``env.configure(remotes="vnc://...")``.
    """
    options = {**_DEFAULTS, **kwargs}
    remotes = remotes if remotes is not None else options.pop("remotes", None)
    options.pop("remotes", None)
    password = options.pop("password", None)
    return RemoteVectorEnv(remotes, password, env_id=env_id, **options)
