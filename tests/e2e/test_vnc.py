"""End-to-end tests of the VNC client against a real TigerVNC Xvnc on loopback."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from _support_vnc import Xvnc, XWindow, free_port, pattern_image, running_xvnc
from PIL import Image
from Xlib import X

from gymlab.client.vnc import (
    VNCAuthenticationError,
    VNCConnection,
    VNCConnectionError,
    VNCTimeoutError,
)

pytestmark = pytest.mark.e2e

W, H = 320, 240


@pytest.fixture(scope="module")
def xvnc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Xvnc]:
    with running_xvnc(tmp_path_factory.mktemp("xvnc")) as server:
        yield server


@pytest.fixture
def own_xvnc(tmp_path: Path) -> Iterator[Xvnc]:
    """A private Xvnc for tests that resize or kill it."""
    with running_xvnc(tmp_path) as server:
        yield server


@pytest.fixture
def window(xvnc: Xvnc) -> Iterator[XWindow]:
    win = XWindow(xvnc.display, W, H)
    try:
        yield win
    finally:
        win.close()


async def _connect(server: Xvnc, **kwargs: object) -> VNCConnection:
    return await VNCConnection.connect(
        "127.0.0.1", server.port, server.password, timeout=10.0, **kwargs
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding", ["zrle", "raw"])
def test_drawn_pattern_is_decoded_exactly(xvnc: Xvnc, window: XWindow, encoding: str) -> None:
    expected = pattern_image(W, H)
    window.put_rgb(expected)

    async def body() -> None:
        async with await _connect(xvnc, encodings=(encoding,)) as conn:
            assert (conn.width, conn.height) == (W, H)
            frame = await conn.update(incremental=False)
            assert np.array_equal(frame, expected)
            assert set(conn.stats.rects_by_encoding) == {encoding}
            assert conn.stats.updates == conn.update_count >= 1

    asyncio.run(body())


def test_xsetroot_colour_shows_up(xvnc: Xvnc) -> None:
    subprocess.run(["xsetroot", "-solid", "#ff8000"], env=xvnc.env, check=True, timeout=10)

    async def body() -> np.ndarray:
        async with await _connect(xvnc) as conn:
            # xsetroot's requests reach Xvnc on another connection: allow it a moment
            deadline = time.monotonic() + 5
            frame = await conn.update(incremental=False)
            while not (frame == (255, 128, 0)).all() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
                frame = await conn.update(incremental=False)
            return frame

    frame = asyncio.run(body())
    assert (frame == (255, 128, 0)).all(), np.unique(frame.reshape(-1, 3), axis=0)[:5]


def test_incremental_updates_and_timeout(xvnc: Xvnc, window: XWindow) -> None:
    base = pattern_image(W, H, seed=1)
    window.put_rgb(base)

    async def body() -> None:
        async with await _connect(xvnc) as conn:
            assert np.array_equal(await conn.update(incremental=False), base)
            full_bytes = conn.stats.bytes_received
            patch = np.full((20, 30, 3), (12, 34, 56), np.uint8)
            window.put_rgb(patch, 100, 50)
            frame = await conn.update(incremental=True, timeout=5)
            expected = base.copy()
            expected[50:70, 100:130] = patch
            assert np.array_equal(frame, expected)
            assert conn.stats.bytes_received - full_bytes < full_bytes / 10

            # nothing changed: Xvnc holds the incremental request, we time out, still usable
            with pytest.raises(VNCTimeoutError, match=f"127.0.0.1:{xvnc.port}"):
                await conn.update(incremental=True, timeout=0.5)
            assert np.array_equal(await conn.update(incremental=False), expected)

    asyncio.run(body())


def test_copyrect_from_x_copy_area(xvnc: Xvnc, window: XWindow) -> None:
    base = pattern_image(W, H, seed=2)
    window.put_rgb(base)

    async def body() -> None:
        async with await _connect(xvnc, encodings=("copyrect", "zrle")) as conn:
            await conn.update(incremental=False)
            window.copy_area(160, 0, 80, 60, 10, 150)
            expected = base.copy()
            expected[150:210, 10:90] = base[0:60, 160:240]
            frame = await conn.update(incremental=True, timeout=5)
            assert np.array_equal(frame, expected)
            assert conn.stats.rects_by_encoding.get("copyrect", 0) >= 1

    asyncio.run(body())


def test_wrong_password_is_refused_with_server_message(xvnc: Xvnc) -> None:
    async def body() -> None:
        await VNCConnection.connect("127.0.0.1", xvnc.port, "not-the-password", timeout=10)

    with pytest.raises(VNCAuthenticationError) as info:
        asyncio.run(body())
    assert "Authentication failure" in str(info.value)  # TigerVNC's own reason string
    assert f"127.0.0.1:{xvnc.port}" in str(info.value)


def test_key_and_pointer_events_reach_an_x_window(xvnc: Xvnc, window: XWindow) -> None:
    async def body() -> None:
        async with await _connect(xvnc) as conn:
            await conn.pointer_event(40, 30, 0)
            await conn.key_event("a", True)
            await conn.key_event("a", False)
            await conn.key_event("ArrowUp", True)
            await conn.key_event("ArrowUp", False)
            await conn.pointer_event(70, 80, 1)
            await conn.pointer_event(70, 80, 0)
            await conn.update(incremental=False)  # a round trip: events were processed

    asyncio.run(body())
    presses = []
    for _ in range(2):
        event = window.wait_event(lambda e: e.type == X.KeyPress, 5)
        presses.append(window.keysym_of(event.detail))  # type: ignore[attr-defined]
    assert presses == [0x61, 0xFF52]
    button = window.wait_event(lambda e: e.type == X.ButtonPress, 5)
    assert (button.detail, button.event_x, button.event_y) == (1, 70, 80)  # type: ignore[attr-defined]


def test_vncdo_capture_sees_the_same_pixels(xvnc: Xvnc, window: XWindow, tmp_path: Path) -> None:
    window.put_rgb(pattern_image(W, H, seed=3))

    async def body() -> np.ndarray:
        async with await _connect(xvnc) as conn:
            return await conn.update(incremental=False)

    ours = asyncio.run(body())
    vncdo = Path(sys.executable).with_name("vncdo")
    png = tmp_path / "capture.png"
    subprocess.run(
        [str(vncdo), "-s", f"127.0.0.1::{xvnc.port}", "-p", xvnc.password, "capture", str(png)],
        check=True,
        timeout=60,
        capture_output=True,
    )
    theirs = np.asarray(Image.open(png).convert("RGB"))
    assert theirs.shape == ours.shape
    assert np.array_equal(theirs, ours)


def test_streaming_keeps_frames_coming(xvnc: Xvnc, window: XWindow) -> None:
    window.put_rgb(np.zeros((H, W, 3), np.uint8))

    async def body() -> None:
        async with await _connect(xvnc) as conn:
            await conn.start_streaming()
            seen = await conn.wait_for_update(0, timeout=5)
            for i in range(1, 6):
                colour = (40 * i, 255 - 40 * i, 7)
                window.put_rgb(np.full((H, W, 3), colour, np.uint8))
                deadline = time.monotonic() + 5
                count, frame = conn.latest_frame()
                while not (frame == colour).all():
                    assert time.monotonic() < deadline, f"colour {colour} never streamed"
                    new = await conn.wait_for_update(count, timeout=5)
                    assert new > count
                    count, frame = conn.latest_frame()
                assert count > seen
                seen = count
            conn.stop_streaming()

    asyncio.run(body())


@pytest.mark.skipif(shutil.which("xrandr") is None, reason="xrandr (x11-xserver-utils) missing")
def test_desktop_resize_is_followed(own_xvnc: Xvnc) -> None:
    async def body() -> None:
        async with await _connect(own_xvnc) as conn:
            await conn.update(incremental=False)
            await conn.start_streaming(full_first=False)
            subprocess.run(["xrandr", "-s", "640x480"], env=own_xvnc.env, check=True, timeout=10)
            deadline = time.monotonic() + 5
            while (conn.width, conn.height) != (640, 480):
                assert time.monotonic() < deadline, "no DesktopSize update"
                await conn.wait_for_update(conn.update_count, timeout=5)
            conn.stop_streaming()
            frame = await conn.update(incremental=False)
            assert frame.shape == (480, 640, 3)

    asyncio.run(body())


def test_dead_remote_raises_connection_error(own_xvnc: Xvnc) -> None:
    async def body() -> None:
        conn = await _connect(own_xvnc)
        await conn.update(incremental=False)
        own_xvnc.stop()
        with pytest.raises(VNCConnectionError):
            await conn.update(incremental=False, timeout=5)
        assert conn.closed
        with pytest.raises(VNCConnectionError):
            await conn.key_event("a", True)
        await conn.close()

    asyncio.run(body())


def test_connect_errors_name_the_address() -> None:
    port = free_port()

    async def refused() -> None:
        await VNCConnection.connect("127.0.0.1", port, "x", timeout=5)

    with pytest.raises(VNCConnectionError, match=f"127.0.0.1:{port}"):
        asyncio.run(refused())

    with socket.socket() as silent:  # accepts (via the backlog) but never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent_port = silent.getsockname()[1]

        async def mute() -> None:
            await VNCConnection.connect("127.0.0.1", silent_port, "x", timeout=0.5)

        with pytest.raises(VNCTimeoutError, match=f"127.0.0.1:{silent_port}"):
            asyncio.run(mute())


def test_frame_window_sends_only_what_changed(xvnc: Xvnc) -> None:
    """FrameWindow.draw puts the changed box alone; what VNC shows is still every frame exactly."""
    from gymlab.runtime.xwindow import FrameWindow

    rng = np.random.default_rng(3)
    first = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    second = first.copy()
    second[100:110, 200:203] = 255 - second[100:110, 200:203]  # a 3x10 box changes
    win = FrameWindow(xvnc.display, W, H)
    try:

        async def body() -> None:
            async with await _connect(xvnc, encodings=("raw",)) as conn:
                win.draw(first)
                assert np.array_equal(await conn.update(incremental=False), first)
                before = conn.stats.bytes_received
                win.draw(second)
                assert np.array_equal(await conn.update(incremental=True), second)
                # Raw: 4 bytes per pixel of what Xvnc was told changed, plus headers
                assert conn.stats.bytes_received - before < 3 * 10 * 4 + 100
                win.draw(second.copy())  # unchanged: nothing is drawn, nothing is sent
                with pytest.raises(VNCTimeoutError):
                    await conn.update(incremental=True, timeout=0.5)

        asyncio.run(body())
    finally:
        win.close()
