"""Clients for gymlab remotes.

* :mod:`gymlab.client.vnc` -- asyncio VNC (RFB) connection: pixels and input;
* :mod:`gymlab.client.remotes` -- ``vnc://host:5900+15900,...?password=X`` parsing;
* :mod:`gymlab.client.vector` -- :class:`RemoteVectorEnv`, Gymnasium's ``VectorEnv`` API over
  many remotes (loaded on first use: it imports Gymnasium);
* :mod:`gymlab.client.single` -- :class:`RemoteEnv`, a ``gymnasium.Env`` over one remote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gymlab.client.remotes import Remote, RemotesSpec, parse_remotes
from gymlab.client.vnc import (
    VNCAuthenticationError,
    VNCConnection,
    VNCConnectionError,
    VNCError,
    VNCProtocolError,
    VNCTimeoutError,
)

if TYPE_CHECKING:
    from gymlab.client.session import RemoteConnectError, RemoteError, RemoteResetTimeout
    from gymlab.client.single import RemoteEnv
    from gymlab.client.universe import configure, make
    from gymlab.client.vector import NotConfiguredError, RemoteVectorEnv

_LAZY = {
    "RemoteEnv": "gymlab.client.single",
    "RemoteVectorEnv": "gymlab.client.vector",
    "NotConfiguredError": "gymlab.client.vector",
    "RemoteError": "gymlab.client.session",
    "RemoteConnectError": "gymlab.client.session",
    "RemoteResetTimeout": "gymlab.client.session",
    "make": "gymlab.client.universe",
    "configure": "gymlab.client.universe",
}

__all__ = [
    "NotConfiguredError",
    "Remote",
    "RemoteConnectError",
    "RemoteEnv",
    "RemoteError",
    "RemoteResetTimeout",
    "RemoteVectorEnv",
    "RemotesSpec",
    "VNCAuthenticationError",
    "VNCConnection",
    "VNCConnectionError",
    "VNCError",
    "VNCProtocolError",
    "VNCTimeoutError",
    "configure",
    "make",
    "parse_remotes",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(module), name)
