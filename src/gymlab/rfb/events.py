"""Typed events produced by :class:`gymlab.rfb.RFBClient` and the RFB pixel format."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

# RFB encoding numbers (RFC 6143 section 7.7 and the community registry)
ENCODING_RAW = 0
ENCODING_COPYRECT = 1
ENCODING_ZRLE = 16
ENCODING_DESKTOP_SIZE = -223
ENCODING_EXTENDED_DESKTOP_SIZE = -308

#: Encoding names accepted by ``set_encodings`` and the asyncio wrapper.
ENCODINGS: dict[str, int] = {
    "raw": ENCODING_RAW,
    "copyrect": ENCODING_COPYRECT,
    "zrle": ENCODING_ZRLE,
    "desktopsize": ENCODING_DESKTOP_SIZE,
    "extendeddesktopsize": ENCODING_EXTENDED_DESKTOP_SIZE,
}
ENCODING_NAMES: dict[int, str] = {v: k for k, v in ENCODINGS.items()}

_PIXEL_FORMAT = struct.Struct(">BBBBHHHBBB3x")


@dataclass(frozen=True)
class PixelFormat:
    """The 16-byte PIXEL_FORMAT structure of RFC 6143 section 7.4."""

    bits_per_pixel: int
    depth: int
    big_endian: bool
    true_colour: bool
    red_max: int
    green_max: int
    blue_max: int
    red_shift: int
    green_shift: int
    blue_shift: int

    def pack(self) -> bytes:
        """Serialise to the 16 wire bytes."""
        return _PIXEL_FORMAT.pack(
            self.bits_per_pixel,
            self.depth,
            int(self.big_endian),
            int(self.true_colour),
            self.red_max,
            self.green_max,
            self.blue_max,
            self.red_shift,
            self.green_shift,
            self.blue_shift,
        )

    @classmethod
    def unpack(cls, data: bytes) -> PixelFormat:
        """Parse the 16 wire bytes."""
        f = _PIXEL_FORMAT.unpack(data)
        return cls(f[0], f[1], bool(f[2]), bool(f[3]), *f[4:])


#: What the client always asks for: 32-bit little-endian true colour, pixel bytes B, G, R, X.
#: Its colour fits in the low three bytes, so ZRLE's compact pixel is the three bytes B, G, R.
CLIENT_PIXEL_FORMAT = PixelFormat(32, 24, False, True, 255, 255, 255, 16, 8, 0)


@dataclass(frozen=True)
class Rect:
    """One rectangle of a framebuffer update, as announced by its header."""

    x: int
    y: int
    width: int
    height: int
    encoding: int


class Event:
    """Base class of everything :meth:`RFBClient.receive_data` returns."""


@dataclass(frozen=True)
class ServerInit(Event):
    """The handshake finished: the server's desktop size, native pixel format and name."""

    width: int
    height: int
    pixel_format: PixelFormat
    name: str


@dataclass(frozen=True)
class FramebufferUpdateComplete(Event):
    """A whole FramebufferUpdate message was decoded into ``RFBClient.framebuffer``.

    ``number`` counts completed updates on this connection, starting at 1.
    """

    rects: list[Rect] = field(default_factory=list)
    number: int = 0


@dataclass(frozen=True)
class DesktopResized(Event):
    """The server changed the desktop size; the framebuffer was reallocated (zero-filled)."""

    width: int
    height: int


@dataclass(frozen=True)
class Bell(Event):
    """The server rang the bell."""


@dataclass(frozen=True)
class ServerCutText(Event):
    """The server's clipboard changed (ISO 8859-1 text, per RFC 6143)."""

    text: str


@dataclass(frozen=True)
class ConnectionFailed(Event):
    """The server refused the connection (bad password, no usable security type, ...).

    ``reason`` is the server's own reason string when it sent one.
    """

    reason: str


@dataclass(frozen=True)
class ProtocolViolation(Event):
    """The server sent something malformed or out of bounds; the connection is unusable."""

    reason: str


@dataclass(frozen=True)
class ConnectionClosed(Event):
    """The peer closed the connection (``receive_data(b"")``)."""
