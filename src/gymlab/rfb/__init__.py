"""Sans-I/O RFB 3.8 (VNC, RFC 6143) client: feed bytes in, get typed events out.

See :class:`RFBClient`. The asyncio wrapper lives in :mod:`gymlab.client.vnc`.
"""

from __future__ import annotations

from gymlab.protocol_errors import LocalProtocolError, RemoteProtocolError
from gymlab.rfb.client import (
    DEFAULT_ENCODINGS,
    DEFAULT_MAX_SIZE,
    RFBClient,
    RFBStats,
    State,
    encoding_number,
    vnc_auth_response,
)
from gymlab.rfb.events import (
    CLIENT_PIXEL_FORMAT,
    ENCODINGS,
    Bell,
    ConnectionClosed,
    ConnectionFailed,
    DesktopResized,
    Event,
    FramebufferUpdateComplete,
    PixelFormat,
    ProtocolViolation,
    Rect,
    ServerCutText,
    ServerInit,
)
from gymlab.rfb.keysyms import KEYSYMS, keysym

__all__ = [
    "CLIENT_PIXEL_FORMAT",
    "DEFAULT_ENCODINGS",
    "DEFAULT_MAX_SIZE",
    "ENCODINGS",
    "KEYSYMS",
    "Bell",
    "ConnectionClosed",
    "ConnectionFailed",
    "DesktopResized",
    "Event",
    "FramebufferUpdateComplete",
    "LocalProtocolError",
    "PixelFormat",
    "ProtocolViolation",
    "RFBClient",
    "RFBStats",
    "Rect",
    "RemoteProtocolError",
    "ServerCutText",
    "ServerInit",
    "State",
    "encoding_number",
    "keysym",
    "vnc_auth_response",
]
