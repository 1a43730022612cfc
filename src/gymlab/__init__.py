"""gymlab: reproducible RL lab hosts and remote Gymnasium environments over VNC.

``gymlab.make(env_id, remotes="vnc://host:5900+15900?password=X")`` returns a
:class:`gymlab.client.RemoteVectorEnv`; ``gymlab.RemoteEnv(remote, password)`` is one remote
as a ``gymnasium.Env``; ``gymlab.configure(remotes=...)`` sets defaults for ``make``. They
load on first use, so ``import gymlab`` stays cheap.
"""

from __future__ import annotations

import importlib.metadata
from typing import TYPE_CHECKING, Any

try:  # pyproject.toml's version, the one place it is written
    __version__ = importlib.metadata.version("gymlab")
except importlib.metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
    __version__ = "unknown"

if TYPE_CHECKING:
    from gymlab.client.single import RemoteEnv
    from gymlab.client.universe import configure, make
    from gymlab.client.vector import RemoteVectorEnv

__all__ = ["RemoteEnv", "RemoteVectorEnv", "__version__", "configure", "make"]


def __getattr__(name: str) -> Any:
    if name in ("make", "configure"):
        from gymlab.client import universe

        return getattr(universe, name)
    if name in ("RemoteEnv", "RemoteVectorEnv"):
        from gymlab import client

        return getattr(client, name)
    raise AttributeError(name)
