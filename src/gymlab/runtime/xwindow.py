"""A full-screen X window (python-xlib) that shows env frames and collects input.

Frames go out as the bounding box of what changed since the last frame, with
PutImage in row bands (python-xlib does not use BIG-REQUESTS, so one request
must fit the server's maximum request length), followed by a round trip so
that the pixels are in the X server's (Xvnc's) framebuffer before the caller
reports the step. Key and button events that VNC clients inject arrive at this
window because it holds the input focus.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from Xlib import X
from Xlib import display as xdisplay

from gymlab.keymap import PointerState

log = logging.getLogger("gymlab.runtime")

_PUT_IMAGE_HEADER_BYTES = 24
_EVENT_MASK = (
    X.KeyPressMask
    | X.KeyReleaseMask
    | X.ButtonPressMask
    | X.ButtonReleaseMask
    | X.PointerMotionMask
    | X.FocusChangeMask
)


def open_display(name: str, xauthority: Path | None) -> xdisplay.Display:
    """Connect with the cookie in ``xauthority`` (python-xlib reads $XAUTHORITY)."""
    if xauthority is None:
        return xdisplay.Display(name)
    saved = os.environ.get("XAUTHORITY")
    os.environ["XAUTHORITY"] = str(xauthority)
    try:
        return xdisplay.Display(name)
    finally:
        if saved is None:
            del os.environ["XAUTHORITY"]
        else:
            os.environ["XAUTHORITY"] = saved


class FrameWindow:
    """Draws RGB frames on an X display and tracks held keys and the pointer."""

    def __init__(
        self, display_name: str, width: int, height: int, xauthority: Path | None = None
    ) -> None:
        self.width = width
        self.height = height
        self.display = open_display(display_name, xauthority)
        screen = self.display.screen()
        self._depth = screen.root_depth
        self._channels = self._channel_bytes(screen)
        self.window = screen.root.create_window(
            0,
            0,
            width,
            height,
            0,
            self._depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=screen.black_pixel,
            override_redirect=True,  # no window manager on the display: place it ourselves
            event_mask=_EVENT_MASK,
        )
        self.window.set_wm_name("gymlab")
        self.gc = self.window.create_gc()
        self.window.map()
        self.window.set_input_focus(X.RevertToPointerRoot, X.CurrentTime)
        # Server-side autorepeat would turn a held key into press/release pairs.
        self.display.change_keyboard_control(auto_repeat_mode=X.AutoRepeatModeOff)
        self.display.sync()
        # python-xlib has no BIG-REQUESTS: each PutImage must fit the server's request limit.
        self._max_put_bytes = (
            self.display.display.info.max_request_length * 4 - _PUT_IMAGE_HEADER_BYTES
        )
        self._buffer = np.zeros((height, width, 4), dtype=np.uint8)
        self._shown: np.ndarray | None = None  # the last frame drawn, as RGB
        self._held: dict[int, None] = {}  # insertion order = press order
        self.pointer = PointerState(0, 0, 0)

    def _channel_bytes(self, screen: Any) -> tuple[int, int, int]:
        """Byte offsets of R, G, B inside a 32-bit pixel of this server."""
        formats = {f.depth: f.bits_per_pixel for f in self.display.display.info.pixmap_formats}
        if formats.get(self._depth) != 32:
            raise RuntimeError(f"unsupported X pixel format (depth {self._depth})")
        visual = next(
            v for d in screen.allowed_depths for v in d.visuals if v.visual_id == screen.root_visual
        )
        lsb_first = self.display.display.info.image_byte_order == X.LSBFirst
        offsets = []
        for mask in (visual.red_mask, visual.green_mask, visual.blue_mask):
            shift = {0xFF: 0, 0xFF00: 1, 0xFF0000: 2, 0xFF000000: 3}.get(mask)
            if shift is None:
                raise RuntimeError(f"unsupported X visual mask {mask:#x}")
            offsets.append(shift if lsb_first else 3 - shift)
        return offsets[0], offsets[1], offsets[2]

    def fileno(self) -> int:
        """The X connection's socket, for an event loop reader."""
        return int(self.display.fileno())

    def draw(self, frame: np.ndarray) -> None:
        """Put ``frame`` (H, W, 3 uint8 RGB) on screen and wait until the server has it.

        Only the bounding box of the pixels that differ from the last drawn frame is sent:
        Xvnc then encodes (and the client decodes) that box alone, and an unchanged frame
        costs no X request at all.
        """
        h, w = frame.shape[:2]
        if (h, w) != (self.height, self.width):
            raise ValueError(f"frame is {w}x{h}, window is {self.width}x{self.height}")
        box = self._changed_box(frame)
        if box is None:
            return
        top, bottom, left, right = box
        r, g, b = self._channels
        region = frame[top:bottom, left:right]
        buf = self._buffer[top:bottom, left:right]
        buf[..., r] = region[..., 0]
        buf[..., g] = region[..., 1]
        buf[..., b] = region[..., 2]
        self._shown[top:bottom, left:right] = region
        width = right - left
        band_rows = max(1, self._max_put_bytes // (width * 4))
        for band in range(0, bottom - top, band_rows):
            rows = min(band_rows, bottom - top - band)
            data = buf[band : band + rows].tobytes()
            self.window.put_image(
                self.gc, left, top + band, width, rows, X.ZPixmap, self._depth, 0, data
            )
        # A round trip: once it returns, Xvnc has applied every PutImage above.
        self.display.sync()

    def _changed_box(self, frame: np.ndarray) -> tuple[int, int, int, int] | None:
        """``(top, bottom, left, right)`` of what differs from the shown frame, or None."""
        if self._shown is None:
            self._shown = np.empty_like(frame)
            return 0, self.height, 0, self.width
        new = np.ascontiguousarray(frame).reshape(self.height, -1)
        shown = self._shown.reshape(self.height, -1)
        # Rows first, compared 8 bytes at a time where the row length allows; then the
        # columns of the changed rows only, byte by byte.
        word = next(n for n in (8, 4, 1) if new.shape[1] % n == 0)
        as_words = np.dtype(f"u{word}")
        rows = np.flatnonzero((new.view(as_words) != shown.view(as_words)).any(axis=1))
        if rows.size == 0:
            return None
        top, bottom = int(rows[0]), int(rows[-1]) + 1
        cols = np.flatnonzero((new[top:bottom] != shown[top:bottom]).any(axis=0))
        channels = frame.shape[2]
        return top, bottom, int(cols[0]) // channels, int(cols[-1]) // channels + 1

    def poll_events(self) -> None:
        """Consume queued X events and update held keys / pointer state."""
        while self.display.pending_events():
            self._handle(self.display.next_event())

    def _handle(self, event: Any) -> None:
        kind = event.type
        if kind == X.KeyPress:
            sym = self.display.keycode_to_keysym(event.detail, 0)
            if sym:
                self._held.pop(sym, None)
                self._held[sym] = None
        elif kind == X.KeyRelease:
            sym = self.display.keycode_to_keysym(event.detail, 0)
            self._held.pop(sym, None)
        elif kind in (X.ButtonPress, X.ButtonRelease, X.MotionNotify):
            mask = event.state >> 8 & 0x1F  # button state before this event
            if kind == X.ButtonPress:
                mask |= 1 << (event.detail - 1)
            elif kind == X.ButtonRelease:
                mask &= ~(1 << (event.detail - 1))
            self.pointer = PointerState(event.event_x, event.event_y, mask)
        elif kind == X.MappingNotify:
            # Xvnc adds keysyms to spare keycodes on the fly; refresh our table.
            self.display.refresh_keyboard_mapping(event)
        elif kind == X.FocusOut:
            self.window.set_input_focus(X.RevertToPointerRoot, X.CurrentTime)

    @property
    def held_keys(self) -> list[int]:
        """Keysyms currently held, oldest press first."""
        return list(self._held)

    def close(self) -> None:
        """Close the X connection (errors ignored: the server may be gone)."""
        try:
            self.display.close()
        except Exception as exc:  # the X server may already be gone
            log.debug("closing X display: %s", exc)
