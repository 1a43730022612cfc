"""gymlab: reproducible RL lab hosts and remote Gymnasium environments over VNC.

``gymlab.make(env_id, remotes="vnc://host:5900+15900?password=X")`` returns a
:class:`gymlab.client.RemoteVectorEnv`; ``gymlab.configure(remotes=...)`` sets defaults for
``make``. Both load on first use, so ``import gymlab`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from gymlab.client.universe import configure, make
    from gymlab.client.vector import RemoteVectorEnv

__all__ = ["RemoteVectorEnv", "__version__", "configure", "make"]


def __getattr__(name: str) -> Any:
    if name in ("make", "configure"):
        from gymlab.client import universe

        return getattr(universe, name)
    if name == "RemoteVectorEnv":
        from gymlab.client.vector import RemoteVectorEnv

        return RemoteVectorEnv
    raise AttributeError(name)
