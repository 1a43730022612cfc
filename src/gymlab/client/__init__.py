"""Clients for gymlab remotes: VNC pixels and input (:mod:`gymlab.client.vnc`)."""

from __future__ import annotations

from gymlab.client.vnc import (
    VNCAuthenticationError,
    VNCConnection,
    VNCConnectionError,
    VNCError,
    VNCProtocolError,
    VNCTimeoutError,
)

__all__ = [
    "VNCAuthenticationError",
    "VNCConnection",
    "VNCConnectionError",
    "VNCError",
    "VNCProtocolError",
    "VNCTimeoutError",
]
