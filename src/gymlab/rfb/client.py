"""Sans-I/O RFB 3.8 (RFC 6143) client state machine.

Feed it what the socket gave you with :meth:`RFBClient.receive_data`, act on the events it
returns, and write :meth:`RFBClient.data_to_send` to the socket. It never touches a socket or a
clock, so the same object drives the asyncio wrapper, tests and benchmarks.

Parsing is a generator that yields how many bytes it needs next; the driver hands it exactly
that many once they are buffered. Hence feeding byte by byte or all at once gives the same
events, and nothing is allocated from a length field before that length was checked.

Every parser step is bounded, so a driver can interleave other work with a hostile stream:
a step reads at most :data:`MAX_READ` bytes, moves at most one CopyRect band, produces at most
:data:`INFLATE_STEP` bytes of zlib output or decodes a few KiB of ZRLE tiles (about a
millisecond at worst). A step that reads nothing yields 0: a pause point. ``max_steps`` of
:meth:`RFBClient.receive_data` and :meth:`RFBClient.resume` caps the steps per call; what is
left stays buffered (:attr:`RFBClient.pending`) until the next call.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field

import numpy as np
from Crypto.Cipher import DES

from gymlab.protocol_errors import LocalProtocolError, RemoteProtocolError
from gymlab.rfb import zrle
from gymlab.rfb.events import (
    CLIENT_PIXEL_FORMAT,
    ENCODING_COPYRECT,
    ENCODING_DESKTOP_SIZE,
    ENCODING_EXTENDED_DESKTOP_SIZE,
    ENCODING_NAMES,
    ENCODING_RAW,
    ENCODING_ZRLE,
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
from gymlab.rfb.keysyms import keysym as _keysym
from gymlab.rfb.pixels import copy_bgr, copy_rect_bands

SECURITY_NONE = 1
SECURITY_VNC_AUTH = 2

#: Default encodings: compressed first, pseudo-encodings so resizes are announced.
DEFAULT_ENCODINGS: tuple[str, ...] = (
    "zrle",
    "copyrect",
    "raw",
    "extendeddesktopsize",
    "desktopsize",
)

#: Largest desktop (width, height) accepted when the caller names no cap: a 4096x4096 RGB
#: framebuffer is 48 MiB, affordable per remote; the RFB maximum (65535x65535) is 12 GiB.
DEFAULT_MAX_SIZE: tuple[int, int] = (4096, 4096)

#: Most bytes the parser asks for in one step (raw rects and ZRLE data come in pieces).
MAX_READ = 1 << 18
#: Most zlib output produced in one step.
INFLATE_STEP = 1 << 18
# ZRLE data is inflated as it arrives, in pieces this small, so a bomb is caught early
_ZRLE_READ = 1 << 14
# ZRLE tile data decoded between pause points (worst case: 4 bytes per one-pixel run)
_DECODE_STEP = 1 << 12
# the buffer's consumed head is dropped once this long (or when all of it is consumed)
_COMPACT = 1 << 20

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_RECT_HEADER = struct.Struct(">HHHHi")
_SERVER_INIT = struct.Struct(">HH16sI")

_Parser = Generator[int, bytes, None]


class State(enum.Enum):
    """Where the connection stands."""

    HANDSHAKE = "handshake"  # version, security and init exchange in progress
    READY = "ready"  # ServerInit received: normal operation
    FAILED = "failed"  # ConnectionFailed or ProtocolViolation was returned
    CLOSED = "closed"  # the peer closed the connection


_DONE = (State.FAILED, State.CLOSED)


class _Refused(Exception):
    """Internal: the server refused us; turned into a ConnectionFailed event."""


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """Answer a 16-byte VncAuth challenge: DES-ECB with the password as key.

    The key is the first 8 password bytes (zero padded), each byte bit-reversed: a quirk of
    the original VNC implementation that every server expects.
    """
    raw = password.encode("latin-1", errors="replace")[:8].ljust(8, b"\0")
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in raw)
    return DES.new(key, DES.MODE_ECB).encrypt(challenge)


def encoding_number(encoding: str | int) -> int:
    """Map an encoding name ("zrle", "raw", ...) or number to its RFB number."""
    if isinstance(encoding, int):
        return encoding
    try:
        return ENCODINGS[encoding.lower()]
    except KeyError:
        raise ValueError(f"unknown encoding {encoding!r}; known: {sorted(ENCODINGS)}") from None


@dataclass
class RFBStats:
    """Counters for benchmarking; ``bytes_by_encoding`` counts rect headers plus payload."""

    bytes_received: int = 0
    bytes_by_encoding: dict[str, int] = field(default_factory=dict)
    rects_by_encoding: dict[str, int] = field(default_factory=dict)
    rects: int = 0
    updates: int = 0
    zrle_decompressed_bytes: int = 0

    def copy(self) -> RFBStats:
        """A snapshot that later traffic does not change."""
        return RFBStats(
            self.bytes_received,
            dict(self.bytes_by_encoding),
            dict(self.rects_by_encoding),
            self.rects,
            self.updates,
            self.zrle_decompressed_bytes,
        )


class RFBClient:
    """RFB 3.8 client protocol state; see the module docstring for the feeding pattern.

    Args:
        password: used for VncAuth (security type 2). ``None`` means only security type
            None (1) is acceptable.
        encodings: names or numbers sent in SetEncodings right after ServerInit, in order of
            preference.
        shared: ClientInit shared flag (False asks the server to disconnect other clients).
        max_size: largest (width, height) desktop accepted, in ServerInit and in every
            resize; ``None`` means :data:`DEFAULT_MAX_SIZE`. A larger one is a protocol
            error, raised before anything is allocated for it.
        max_text_length: cap on name, cut-text and reason strings.
    """

    def __init__(
        self,
        password: str | None = None,
        *,
        encodings: Iterable[str | int] = DEFAULT_ENCODINGS,
        shared: bool = True,
        max_size: tuple[int, int] | None = None,
        max_text_length: int = 1 << 20,
    ) -> None:
        self.password = password
        self.encodings = [encoding_number(e) for e in encodings]
        self.shared = shared
        self.max_size = DEFAULT_MAX_SIZE if max_size is None else max_size
        self.max_text_length = max_text_length
        self.state = State.HANDSHAKE
        self.width = 0
        self.height = 0
        self.name = ""
        #: RGB framebuffer, shape (height, width, 3), updated in place by each rect.
        self.framebuffer = np.zeros((0, 0, 3), dtype=np.uint8)
        self.stats = RFBStats()
        #: Number of FramebufferUpdate messages whose header has been parsed.
        self.updates_started = 0
        self._zlib = zlib.decompressobj()
        self._out = bytearray()
        self._buf = bytearray()
        self._pos = 0  # bytes of _buf already handed to the parser
        self._events: list[Event] = []
        self._parser = self._run()
        self._need = next(self._parser)

    # ----- driving -------------------------------------------------------------------------

    def receive_data(self, data: bytes, *, max_steps: int | None = None) -> list[Event]:
        """Feed bytes from the server; ``b""`` means end of stream. Returns new events.

        With ``max_steps`` at most that many parser steps run (at least one); the rest of
        the data stays buffered for :meth:`resume`. End of stream drops whatever is still
        buffered, so drain :attr:`pending` first.
        """
        if self.state in (State.FAILED, State.CLOSED):
            return []
        if not data:
            self.state = State.CLOSED
            self._buf.clear()
            self._pos = 0
            return [ConnectionClosed()]
        self.stats.bytes_received += len(data)
        self._buf += data
        return self.resume(max_steps=max_steps)

    @property
    def pending(self) -> bool:
        """True when buffered data lets the parser go on: call :meth:`resume`."""
        alive = self.state not in (State.FAILED, State.CLOSED)
        return alive and len(self._buf) - self._pos >= self._need

    def resume(self, *, max_steps: int | None = None) -> list[Event]:
        """Parse buffered data (at most ``max_steps`` steps, at least one); returns new events."""
        steps = 0
        pos = self._pos
        try:
            while len(self._buf) - pos >= self._need and self.state not in _DONE:
                need = self._need
                with memoryview(self._buf) as view:
                    chunk = bytes(view[pos : pos + need])
                pos += need
                self._need = self._parser.send(chunk)
                steps += 1
                if max_steps is not None and steps >= max_steps:
                    break
        except RemoteProtocolError as exc:
            self._fail(ProtocolViolation(str(exc)))
        except _Refused as exc:
            self._fail(ConnectionFailed(str(exc)))
        if pos >= len(self._buf):
            self._buf.clear()
            pos = 0
        elif pos >= _COMPACT:  # amortised: a few steps per call must not move the rest each time
            del self._buf[:pos]
            pos = 0
        self._pos = pos
        events = self._events.copy()
        self._events.clear()
        return events

    def data_to_send(self) -> bytes:
        """Bytes queued for the server (handshake replies and client messages); clears the queue."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def _fail(self, event: Event) -> None:
        self.state = State.FAILED
        self._buf.clear()
        self._events.append(event)

    # ----- client messages -----------------------------------------------------------------

    def _require_ready(self) -> None:
        if self.state is not State.READY:
            raise LocalProtocolError(f"cannot send client messages in state {self.state.value}")

    def set_pixel_format(self) -> None:
        """Queue SetPixelFormat for :data:`CLIENT_PIXEL_FORMAT` (the only format decoded).

        Sent automatically after ServerInit; public for servers that need a reminder.
        """
        self._require_ready()
        self._out += b"\x00\x00\x00\x00" + CLIENT_PIXEL_FORMAT.pack()

    def set_encodings(self, encodings: Iterable[str | int]) -> None:
        """Queue SetEncodings (names or numbers, most preferred first)."""
        self._require_ready()
        nums = [encoding_number(e) for e in encodings]
        self.encodings = nums
        self._out += struct.pack(f">BxH{len(nums)}i", 2, len(nums), *nums)

    def request_update(
        self,
        incremental: bool = True,
        x: int = 0,
        y: int = 0,
        width: int | None = None,
        height: int | None = None,
    ) -> None:
        """Queue a FramebufferUpdateRequest (default: the whole framebuffer)."""
        self._require_ready()
        w = self.width - x if width is None else width
        h = self.height - y if height is None else height
        if min(x, y, w, h) < 0 or x + w > self.width or y + h > self.height:
            raise ValueError(
                f"region {w}x{h}+{x}+{y} outside the {self.width}x{self.height} desktop"
            )
        self._out += struct.pack(">BBHHHH", 3, int(incremental), x, y, w, h)

    def key_event(self, key: str | int, down: bool) -> None:
        """Queue a KeyEvent; ``key`` is an X keysym or a name from :mod:`gymlab.rfb.keysyms`."""
        self._require_ready()
        self._out += struct.pack(">BBxxI", 4, int(down), _keysym(key))

    def pointer_event(self, x: int, y: int, button_mask: int = 0) -> None:
        """Queue a PointerEvent (bit 0 = left button, 1 = middle, 2 = right, 3/4 = wheel)."""
        self._require_ready()
        self._out += struct.pack(">BBHH", 5, button_mask, x, y)

    def client_cut_text(self, text: str) -> None:
        """Queue ClientCutText (ISO 8859-1; other characters become '?')."""
        self._require_ready()
        data = text.encode("latin-1", errors="replace")
        self._out += struct.pack(">BxxxI", 6, len(data)) + data

    # ----- parsing -------------------------------------------------------------------------

    def _read_text(self) -> Generator[int, bytes, str]:
        (length,) = _U32.unpack((yield 4))
        if length > self.max_text_length:
            raise RemoteProtocolError(
                f"string of {length} bytes exceeds the {self.max_text_length} cap"
            )
        return (yield length).decode("latin-1")

    def _check_size(self, width: int, height: int) -> None:
        max_w, max_h = self.max_size
        if width > max_w or height > max_h:
            raise RemoteProtocolError(
                f"server desktop {width}x{height} exceeds the {max_w}x{max_h} cap"
            )

    def _resize(self, width: int, height: int) -> None:
        self._check_size(width, height)
        self.width, self.height = width, height
        self.framebuffer = np.zeros((height, width, 3), dtype=np.uint8)

    def _run(self) -> _Parser:
        yield from self._handshake()
        while True:
            (msg_type,) = _U8.unpack((yield 1))
            if msg_type == 0:
                yield from self._framebuffer_update()
            elif msg_type == 1:  # SetColourMapEntries: irrelevant in true colour, skip it
                _, _first, count = struct.unpack(">BHH", (yield 5))
                yield count * 6
            elif msg_type == 2:
                self._events.append(Bell())
            elif msg_type == 3:
                yield 3
                text = yield from self._read_text()
                self._events.append(ServerCutText(text))
            else:
                raise RemoteProtocolError(f"unknown server message type {msg_type}")

    def _handshake(self) -> _Parser:
        version = yield 12
        if not (version.startswith(b"RFB ") and version[7:8] == b"." and version[11:] == b"\n"):
            raise RemoteProtocolError(f"not an RFB server (greeting {version!r})")
        try:
            server = (int(version[4:7]), int(version[8:11]))
        except ValueError:
            raise RemoteProtocolError(f"bad RFB version {version!r}") from None
        if server < (3, 8):
            raise _Refused(f"server speaks RFB {server[0]}.{server[1]}; 3.8 is required")
        self._out += b"RFB 003.008\n"

        (count,) = _U8.unpack((yield 1))
        if count == 0:
            raise _Refused((yield from self._read_text()))
        offered = set((yield count))
        if self.password is not None and SECURITY_VNC_AUTH in offered:
            chosen = SECURITY_VNC_AUTH
        elif SECURITY_NONE in offered:
            chosen = SECURITY_NONE
        elif SECURITY_VNC_AUTH in offered:
            raise _Refused("server requires VncAuth but no password was given")
        else:
            raise _Refused(f"no supported security type among {sorted(offered)}")
        self._out += _U8.pack(chosen)
        if chosen == SECURITY_VNC_AUTH:
            assert self.password is not None
            self._out += vnc_auth_response(self.password, (yield 16))
        (result,) = _U32.unpack((yield 4))
        if result != 0:
            raise _Refused((yield from self._read_text()) or "authentication failed")

        self._out += _U8.pack(int(self.shared))
        width, height, fmt, name_length = _SERVER_INIT.unpack((yield 24))
        self._check_size(width, height)
        if name_length > self.max_text_length:
            raise RemoteProtocolError(f"desktop name of {name_length} bytes exceeds the cap")
        name = (yield name_length).decode("utf-8", errors="replace")
        self._resize(width, height)
        self.name = name
        self.state = State.READY
        self._events.append(ServerInit(width, height, PixelFormat.unpack(fmt), name))
        self.set_pixel_format()
        self.set_encodings(self.encodings)

    def _count(self, encoding: int, nbytes: int) -> None:
        name = ENCODING_NAMES.get(encoding, str(encoding))
        stats = self.stats
        stats.bytes_by_encoding[name] = stats.bytes_by_encoding.get(name, 0) + nbytes
        stats.rects_by_encoding[name] = stats.rects_by_encoding.get(name, 0) + 1
        stats.rects += 1

    def _framebuffer_update(self) -> _Parser:
        (count,) = struct.unpack(">xH", (yield 3))
        self.updates_started += 1
        rects: list[Rect] = []
        for _ in range(count):
            rect = Rect(*_RECT_HEADER.unpack((yield 12)))
            rects.append(rect)
            yield from self._rect(rect)
        self.stats.updates += 1
        self._events.append(FramebufferUpdateComplete(rects, self.stats.updates))

    def _rect(self, r: Rect) -> _Parser:
        enc = r.encoding
        if enc == ENCODING_DESKTOP_SIZE:
            self._count(enc, 12)
            self._resize(r.width, r.height)
            self._events.append(DesktopResized(r.width, r.height))
            return
        if enc == ENCODING_EXTENDED_DESKTOP_SIZE:
            (screens,) = struct.unpack(">B3x", (yield 4))
            yield screens * 16  # screen layout: not needed for decoding
            self._count(enc, 16 + screens * 16)
            # y carries the status; non-zero answers a failed SetDesktopSize: no change
            if r.y == 0 and (r.width, r.height) != (self.width, self.height):
                self._resize(r.width, r.height)
                self._events.append(DesktopResized(r.width, r.height))
            return
        if r.x + r.width > self.width or r.y + r.height > self.height:
            raise RemoteProtocolError(
                f"rect {r.width}x{r.height}+{r.x}+{r.y} outside the "
                f"{self.width}x{self.height} framebuffer"
            )
        target = self.framebuffer[r.y : r.y + r.height, r.x : r.x + r.width]
        if enc == ENCODING_RAW:
            yield from self._raw(r, target)
        elif enc == ENCODING_COPYRECT:
            sx, sy = struct.unpack(">HH", (yield 4))
            if sx + r.width > self.width or sy + r.height > self.height:
                raise RemoteProtocolError("CopyRect source outside the framebuffer")
            # in place, band by band: a full-size temporary would double the framebuffer
            for _ in copy_rect_bands(self.framebuffer, sx, sy, r.x, r.y, r.width, r.height):
                yield 0
            self._count(enc, 16)
        elif enc == ENCODING_ZRLE:
            yield from self._zrle(r, target)
        else:
            raise RemoteProtocolError(f"encoding {enc} was not requested")

    def _raw(self, r: Rect, target: np.ndarray) -> _Parser:
        row_bytes = r.width * 4
        rows = max(1, MAX_READ // max(row_bytes, 1))
        for top in range(0, r.height, rows):
            n = min(rows, r.height - top)
            data = yield n * row_bytes
            # wire pixels are B, G, R, X
            band = np.frombuffer(data, dtype=np.uint8).reshape(n, r.width, 4)
            copy_bgr(target[top : top + n], band)
        self._count(ENCODING_RAW, 12 + row_bytes * r.height)

    def _zrle(self, r: Rect, target: np.ndarray) -> _Parser:
        (length,) = _U32.unpack((yield 4))
        bound = zrle.max_decompressed_size(r.width, r.height)
        # deflate never expands by more than a few bytes per 16 KiB block
        if length > bound + bound // 8 + 1024:
            raise RemoteProtocolError(
                f"ZRLE length {length} too large for a {r.width}x{r.height} rect"
            )
        # Inflate piece by piece, never past the bound: a bomb is stopped after at most
        # bound + 1 bytes of output, however much its compressed data would expand to.
        raw = bytearray()
        left = length
        while left:
            data = yield min(left, _ZRLE_READ)
            left -= len(data)
            while True:
                limit = min(bound - len(raw) + 1, INFLATE_STEP)
                try:
                    out = self._zlib.decompress(data, limit)
                except zlib.error as exc:
                    raise RemoteProtocolError(f"ZRLE zlib stream: {exc}") from None
                raw += out
                if len(raw) > bound:
                    raise RemoteProtocolError(
                        f"ZRLE data of a {r.width}x{r.height} rect decompresses to more than "
                        f"the {bound} bytes the rect can hold"
                    )
                data = self._zlib.unconsumed_tail
                # a full output buffer may leave output pending even with all input taken
                if not data and len(out) < limit:
                    break
                yield 0
        mark = 0
        try:
            for off in zrle.iter_decode(raw, target):
                if off - mark >= _DECODE_STEP:
                    mark = off
                    yield 0
        except zrle.ZRLEError as exc:
            raise RemoteProtocolError(f"ZRLE: {exc}") from None
        self.stats.zrle_decompressed_bytes += len(raw)
        self._count(ENCODING_ZRLE, 16 + length)
