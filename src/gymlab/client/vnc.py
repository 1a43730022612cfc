"""asyncio VNC client built on the sans-I/O :class:`gymlab.rfb.RFBClient`.

Two ways to get pixels:

* **Request/response** -- :meth:`VNCConnection.update` sends one FramebufferUpdateRequest and
  waits for the first FramebufferUpdate whose header is parsed after the request went out,
  then returns a copy of the framebuffer. Xvnc answers an *incremental* request only once
  something in the region changed, so if nothing changes ``update(incremental=True)`` raises
  :class:`VNCTimeoutError` (the connection stays usable, but the request remains pending at
  the server and will be answered by the next change). ``update(incremental=False)`` is
  always answered promptly, at the cost of resending the whole region.
  For lockstep stepping: once the runtime replies that frame N is drawn (it syncs with the
  X server first), :meth:`VNCConnection.sync` brings the framebuffer to frame N, changed or
  not, with both requests in one write: TigerVNC answers the messages of one read with one
  update.
* **Streaming** -- :meth:`VNCConnection.start_streaming` keeps one incremental request
  outstanding and re-requests as soon as each update completes. :meth:`latest_frame`
  returns ``(update_count, copy)`` without waiting; :meth:`wait_for_update` waits until
  ``update_count`` exceeds a value you saw. ``update_count`` only ever increases.

Any broken, closed or misbehaving connection raises :class:`VNCConnectionError` (or a
subclass) from every later call, so a vector env can treat the remote as dead and reconnect.

All remotes of a vector env share one event loop, so a connection never holds the loop for
long: received data is parsed a few bounded steps at a time (see :mod:`gymlab.rfb.client`)
and the loop gets a turn every :data:`SLICE_SECONDS`, however hostile the stream. Hence
every ``timeout`` holds to within a few milliseconds. The desktop is capped (``max_size``),
so a server cannot make the client allocate more than the caller agreed to.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from types import TracebackType

import numpy as np

from gymlab.rfb import (
    ConnectionClosed,
    ConnectionFailed,
    Event,
    FramebufferUpdateComplete,
    ProtocolViolation,
    RFBClient,
    RFBStats,
    State,
)

_READ_SIZE = 1 << 20
#: Longest stretch of parsing before the event loop gets a turn.
SLICE_SECONDS = 0.005
# parser steps between clock reads: each is bounded (about a millisecond at worst)
_STEPS = 4
# ExtendedDesktopSize is left out: TigerVNC answers it with an extra, pixel-less update
_PSEUDO_ENCODINGS = ("desktopsize",)


class VNCError(Exception):
    """Base class of every error raised by :class:`VNCConnection`."""


class VNCConnectionError(VNCError, ConnectionError):
    """The connection is closed, broken or could not be made; reconnect to continue."""


class VNCAuthenticationError(VNCConnectionError):
    """The server refused the handshake (wrong password, ...); carries its reason."""


class VNCProtocolError(VNCConnectionError):
    """The server sent malformed or out-of-bounds data; the connection was closed."""


class VNCTimeoutError(VNCError, TimeoutError):
    """An operation did not finish in time. From :meth:`VNCConnection.connect` the connection
    was abandoned; from :meth:`VNCConnection.update` it is still usable."""


class VNCConnection:
    """One client connection to a VNC server; create it with :meth:`connect`."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        rfb: RFBClient,
        host: str,
        port: int,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._rfb = rfb
        self.host = host
        self.port = port
        self._error: VNCConnectionError | None = None
        # (update number, needs pixels, snapshot, future); a snapshot waiter gets the frame as
        # it was when its update completed, before parsing of the next update goes on
        self._waiters: list[tuple[int, bool, bool, asyncio.Future[np.ndarray | None]]] = []
        self._streaming = False
        self._task: asyncio.Task[None] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the server, as used in error messages."""
        return f"{self.host}:{self.port}"

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        password: str | None,
        *,
        timeout: float = 10.0,
        encodings: Iterable[str | int] = ("zrle", "copyrect", "raw"),
        shared: bool = True,
        max_size: tuple[int, int] | None = None,
    ) -> VNCConnection:
        """Connect, authenticate (VncAuth if ``password`` is given, else None) and initialise.

        ``encodings`` are in order of preference; the DesktopSize pseudo-encoding is added
        unless already listed. The framebuffer is black until the first :meth:`update`.
        ``max_size`` is the largest (width, height) desktop accepted, at connect time and
        on every later resize (pass the frame shape you expect); ``None`` means
        :data:`gymlab.rfb.DEFAULT_MAX_SIZE`. A larger desktop is a :class:`VNCProtocolError`.

        Raises:
            VNCAuthenticationError: the server refused us (its reason is in the message).
            VNCConnectionError: refused, reset or closed during the handshake.
            VNCProtocolError: the server is not speaking RFB 3.8 correctly, or its desktop
                exceeds ``max_size``.
            VNCTimeoutError: the whole handshake took longer than ``timeout`` seconds.
        """
        encodings = list(encodings)
        encodings += [p for p in _PSEUDO_ENCODINGS if p not in encodings]
        rfb = RFBClient(password, encodings=encodings, shared=shared, max_size=max_size)
        address = f"{host}:{port}"
        writer: asyncio.StreamWriter | None = None

        async def handshake() -> VNCConnection:
            nonlocal writer
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                raise VNCConnectionError(f"VNC {address}: cannot connect: {exc}") from exc
            conn = cls(reader, writer, rfb, host, port)
            while rfb.state is State.HANDSHAKE:
                data = await conn._read()
                # whatever follows ServerInit is left pending for the read loop
                await conn._feed(data, conn._raise_for, lambda: rfb.state is not State.HANDSHAKE)
                await conn._flush()
            return conn

        try:
            conn = await asyncio.wait_for(handshake(), timeout)
        except asyncio.TimeoutError:
            if writer is not None:
                writer.close()
            raise VNCTimeoutError(
                f"VNC {address}: handshake not finished within {timeout} s"
            ) from None
        except BaseException:
            if writer is not None:
                writer.close()
            raise
        conn._task = asyncio.get_running_loop().create_task(conn._read_loop())
        return conn

    # ----- properties ----------------------------------------------------------------------

    @property
    def width(self) -> int:
        """Current desktop width in pixels."""
        return self._rfb.width

    @property
    def height(self) -> int:
        """Current desktop height in pixels."""
        return self._rfb.height

    @property
    def name(self) -> str:
        """Desktop name from ServerInit."""
        return self._rfb.name

    @property
    def framebuffer(self) -> np.ndarray:
        """The live (height, width, 3) uint8 RGB framebuffer; changes as updates arrive."""
        return self._rfb.framebuffer

    @property
    def update_count(self) -> int:
        """Number of completed framebuffer updates; only ever increases."""
        return self._rfb.stats.updates

    @property
    def stats(self) -> RFBStats:
        """Snapshot of the byte/rect/update counters (see :class:`gymlab.rfb.RFBStats`)."""
        return self._rfb.stats.copy()

    @property
    def closed(self) -> bool:
        """True once the connection is closed or broken."""
        return self._error is not None

    # ----- I/O -----------------------------------------------------------------------------

    async def _read(self) -> bytes:
        try:
            return await self._reader.read(_READ_SIZE)
        except OSError as exc:
            raise VNCConnectionError(f"VNC {self.address}: {exc}") from exc

    async def _flush(self) -> None:
        data = self._rfb.data_to_send()
        if not data:
            return
        try:
            self._writer.write(data)
            await self._writer.drain()
        except OSError as exc:
            error = VNCConnectionError(f"VNC {self.address}: send failed: {exc}")
            self._set_error(error)
            raise error from exc

    def _raise_for(self, event: Event) -> None:
        """Turn a fatal event into the matching exception (used during the handshake)."""
        if isinstance(event, ConnectionFailed):
            raise VNCAuthenticationError(f"VNC {self.address} refused: {event.reason}")
        if isinstance(event, ProtocolViolation):
            raise VNCProtocolError(f"VNC {self.address}: protocol error: {event.reason}")
        if isinstance(event, ConnectionClosed):
            raise VNCConnectionError(f"VNC {self.address}: closed during the handshake")

    async def _feed(
        self, data: bytes | None, handle: Callable[[Event], None], stop: Callable[[], bool]
    ) -> None:
        """Parse ``data`` (``None``: only what is pending), handing each event to ``handle``.

        Stops early once ``stop()`` is true. Yields to the loop every :data:`SLICE_SECONDS`
        (flushing replies first), so one connection cannot starve the others.
        """
        rfb = self._rfb
        if data is None:
            events = rfb.resume(max_steps=_STEPS)
        else:
            events = rfb.receive_data(data, max_steps=_STEPS)
        started = time.perf_counter()
        while True:
            for event in events:
                handle(event)
            if not rfb.pending or stop():
                return
            if time.perf_counter() - started >= SLICE_SECONDS:
                await self._flush()
                await asyncio.sleep(0)
                started = time.perf_counter()
                if stop():
                    return
            events = rfb.resume(max_steps=_STEPS)

    async def _read_loop(self) -> None:
        def stop() -> bool:
            return self._error is not None

        try:
            # data that arrived with ServerInit
            await self._feed(None, self._handle, stop)
            while self._error is None:
                data = await self._read()
                await self._feed(data, self._handle, stop)
                if self._error is None:
                    await self._flush()
        except VNCConnectionError as exc:
            self._set_error(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must not leave waiters hanging forever
            self._set_error(VNCConnectionError(f"VNC {self.address}: client failure: {exc!r}"))

    def _handle(self, event: Event) -> None:
        if isinstance(event, FramebufferUpdateComplete):
            if self._streaming:
                self._rfb.request_update(incremental=True)
            self._wake(event.number, any(r.encoding >= 0 for r in event.rects))
        elif isinstance(event, (ConnectionFailed, ProtocolViolation, ConnectionClosed)):
            try:
                self._raise_for(event)
            except VNCConnectionError as exc:
                self._set_error(exc)
        # DesktopResized needs nothing: width, height and framebuffer already follow it

    def _wake(self, count: int, has_pixels: bool) -> None:
        keep = []
        for waiter in self._waiters:
            target, need_pixels, snapshot, fut = waiter
            if target <= count and (has_pixels or not need_pixels):
                if not fut.done():
                    fut.set_result(self._rfb.framebuffer.copy() if snapshot else None)
            else:
                keep.append(waiter)
        self._waiters = keep

    def _set_error(self, error: VNCConnectionError) -> None:
        if self._error is None:
            self._error = error
            self._writer.close()
        for *_, fut in self._waiters:
            if not fut.done():
                fut.set_exception(self._error)
        self._waiters = []

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    async def _wait_count(
        self,
        target: int,
        timeout: float,
        what: str,
        need_pixels: bool = False,
        snapshot: bool = False,
    ) -> np.ndarray | None:
        """Wait for update number >= ``target`` (one with a pixel rect if ``need_pixels``).

        Returns the framebuffer copy taken when that update completed if ``snapshot``.
        """
        self._check()
        if self.update_count >= target and not need_pixels:
            return None
        fut: asyncio.Future[np.ndarray | None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, need_pixels, snapshot, fut))
        try:
            return await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise VNCTimeoutError(
                f"VNC {self.address}: no framebuffer update within {timeout} s ({what})"
            ) from None

    # ----- public operations ---------------------------------------------------------------

    async def update(
        self,
        incremental: bool = True,
        timeout: float = 5.0,
        region: tuple[int, int, int, int] | None = None,
    ) -> np.ndarray:
        """Request an update of ``region`` (x, y, w, h; default everything) and wait for it.

        Returns a copy of the whole framebuffer once the first update that starts arriving
        after the request and carries pixel data (not only pseudo-encodings such as a
        resize notice) is completely decoded. See the module docstring for what happens
        when nothing changed (incremental requests wait for a change; then a timeout).
        """
        what = "incremental: nothing changed?" if incremental else "full"
        frame = await self._request([(incremental, region)], timeout, what, snapshot=True)
        assert frame is not None
        return frame

    async def sync(self, timeout: float = 5.0) -> None:
        """Bring :attr:`framebuffer` up to what the server shows now; read it once this returns.

        One write carries an incremental request for the whole screen (the changes) and a
        non-incremental one for a single pixel, which the server answers at once even when
        nothing changed, and with the changes; returns once that answer is decoded. No copy
        is made (a 600x400 copy is a good part of a lockstep step): for callers that know no
        other update can arrive meanwhile (lockstep, no streaming).
        """
        await self._request([(True, None), (False, (0, 0, 1, 1))], timeout, "forced")

    async def _request(
        self,
        requests: list[tuple[bool, tuple[int, int, int, int] | None]],
        timeout: float,
        what: str,
        snapshot: bool = False,
    ) -> np.ndarray | None:
        """Send ``(incremental, region)`` requests in one write and wait for the first update
        with pixels that starts after them (a region of None is the whole screen)."""
        self._check()
        target = self._rfb.updates_started + 1
        for incremental, region in requests:
            self._rfb.request_update(incremental, *(region or ()))
        await self._flush()
        return await self._wait_count(target, timeout, what, need_pixels=True, snapshot=snapshot)

    async def wait_for_update(self, after: int, timeout: float = 5.0) -> int:
        """Wait until :attr:`update_count` exceeds ``after``; returns the new count."""
        await self._wait_count(after + 1, timeout, f"waiting past update {after}")
        return self.update_count

    async def start_streaming(self, full_first: bool = True) -> None:
        """Keep one incremental update request outstanding from now on (see module doc).

        With ``full_first`` the first request is non-incremental so the whole screen arrives.
        """
        self._check()
        if not self._streaming:
            self._streaming = True
            self._rfb.request_update(incremental=not full_first)
            await self._flush()

    def stop_streaming(self) -> None:
        """Stop re-requesting; at most one already-sent request may still be answered."""
        self._streaming = False

    def latest_frame(self) -> tuple[int, np.ndarray]:
        """``(update_count, copy of the framebuffer)`` as of the last completed update."""
        self._check()
        return self.update_count, self._rfb.framebuffer.copy()

    async def key_event(self, key: str | int, down: bool) -> None:
        """Press (``down=True``) or release a key: a keysym or a :mod:`gymlab.rfb.keysyms` name."""
        self._check()
        self._rfb.key_event(key, down)
        await self._flush()

    async def pointer_event(self, x: int, y: int, button_mask: int = 0) -> None:
        """Move the pointer to (x, y) with the given button mask (bit 0 = left button)."""
        self._check()
        self._rfb.pointer_event(x, y, button_mask)
        await self._flush()

    async def set_encodings(self, encodings: Iterable[str | int]) -> None:
        """Change the encodings (names or numbers, most preferred first) on the fly."""
        self._check()
        self._rfb.set_encodings(encodings)
        await self._flush()

    async def close(self) -> None:
        """Close the connection; idempotent. Later calls raise :class:`VNCConnectionError`."""
        self._streaming = False
        self._set_error(VNCConnectionError(f"VNC {self.address}: connection closed by client"))
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(OSError, asyncio.TimeoutError):
            await asyncio.wait_for(self._writer.wait_closed(), 2.0)

    async def __aenter__(self) -> VNCConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


__all__ = [
    "VNCAuthenticationError",
    "VNCConnection",
    "VNCConnectionError",
    "VNCError",
    "VNCProtocolError",
    "VNCTimeoutError",
]
