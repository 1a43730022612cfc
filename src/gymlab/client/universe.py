"""Universe-style front door: ``gymlab.make(env_id, remotes=...)`` and ``gymlab.configure``.

Universe's examples read ``env = gym.make(id); env.configure(remotes=...)``; here
``gymlab.make(id)`` without remotes returns an unconfigured :class:`RemoteVectorEnv` whose
:meth:`~RemoteVectorEnv.configure` connects it, and ``gymlab.make(id, remotes=...)`` does both.
``gymlab.configure(**defaults)`` sets defaults (remotes, password, mode, timeouts) that later
``make`` calls use.

``remotes`` is a remotes string (``vnc://host:5900+15900,...?password=X``), a list of entries,
or -- Universe's ``env.configure(remotes=1)`` -- a number ``N``: the env then starts N local
runtimes of ``env_id`` itself (:class:`gymlab.client.local_remotes.LocalRemotes`, lockstep
unless ``mode=`` says otherwise), prints for each the ``gymlab runtime serve`` command that runs
the same thing by hand, and stops them when it is closed (or at interpreter exit).
"""

from __future__ import annotations

from typing import Any

from gymlab.client.vector import RemoteVectorEnv

_DEFAULTS: dict[str, Any] = {}


def configure(**defaults: Any) -> None:
    """Set defaults for :func:`make` (e.g. ``remotes=``, ``password=``, ``mode=``).

    Passing ``None`` for a key removes its default. A number as ``remotes`` makes every later
    ``make`` start that many local runtimes of its own.
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

    ``remotes=N`` (an int, 1..32) is passed through unchanged: the env starts N local runtimes
    of ``env_id`` and stops them on ``close()``::

        envs = gymlab.make("CartPole-v1", remotes=2)  # lockstep, on loopback

    A bad number (0, a bool, 33) raises :class:`ValueError` naming it.
    """
    options = {**_DEFAULTS, **kwargs}
    remotes = remotes if remotes is not None else options.pop("remotes", None)
    options.pop("remotes", None)
    password = options.pop("password", None)
    return RemoteVectorEnv(remotes, password, env_id=env_id, **options)
