"""Fixtures' helpers for the VNC end-to-end tests: a real TigerVNC Xvnc and X drawing."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from Xlib import X, display
from Xlib.xobject.drawable import Window

from gymlab.procfs import free_port  # a port free a moment ago: Xvnc start is retried


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` every 10 ms; raise TimeoutError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@dataclass
class Xvnc:
    """A running Xvnc: X display ``display`` (":N"), VNC on 127.0.0.1:``port``."""

    proc: subprocess.Popen[bytes]
    display: str
    port: int
    password: str
    log: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for X clients that should draw on this display."""
        return {**os.environ, "DISPLAY": self.display}

    def stop(self) -> None:
        """Terminate Xvnc (kill it if it does not exit within 5 s)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start_once(workdir: Path, passwd: Path, password: str, geometry: str) -> Xvnc:
    port = free_port()
    log = workdir / f"xvnc-{port}.log"
    read_fd, write_fd = os.pipe()
    args = [
        "Xvnc",
        "-displayfd",
        str(write_fd),
        "-rfbport",
        str(port),
        "-rfbauth",
        str(passwd),
        "-SecurityTypes",
        "VncAuth",
        "-localhost",
        "-geometry",
        geometry,
        "-depth",
        "24",
        "-nolisten",
        "tcp",
        "-BlacklistThreshold",
        "1000",
    ]
    try:
        with log.open("wb") as log_file:
            # -displayfd lets the X server pick a free display number itself (no race)
            proc = subprocess.Popen(
                args,
                pass_fds=(write_fd,),
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        os.close(write_fd)
        write_fd = -1
        number = b""
        deadline = time.monotonic() + 20
        while not number.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                break
            chunk = os.read(read_fd, 16)
            if not chunk:
                break
            number += chunk
    finally:
        os.close(read_fd)
        if write_fd >= 0:
            os.close(write_fd)
    server = Xvnc(proc, f":{number.decode().strip()}", port, password, log)
    try:
        if not number.strip():
            raise RuntimeError(f"Xvnc did not report a display: {log.read_text()[-2000:]}")
        wait_until(lambda: proc.poll() is not None or _port_open(port), 10, "Xvnc's VNC port")
        if proc.poll() is not None:
            raise RuntimeError(f"Xvnc exited: {log.read_text()[-2000:]}")
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running_xvnc(
    workdir: Path, password: str = "gymlab-pw", geometry: str = "320x240"
) -> Iterator[Xvnc]:
    """Start Xvnc with VncAuth on a free port and display; always stop it afterwards."""
    if shutil.which("Xvnc") is None or shutil.which("vncpasswd") is None:
        raise RuntimeError("Xvnc/vncpasswd missing: install tigervnc-standalone-server, -tools")
    passwd = workdir / "passwd"
    result = subprocess.run(
        ["vncpasswd", "-f"], input=f"{password}\n".encode(), capture_output=True, check=True
    )
    passwd.write_bytes(result.stdout)
    passwd.chmod(0o600)
    error: Exception | None = None
    for _ in range(3):  # a port taken between free_port() and Xvnc's bind: try another
        try:
            server = _start_once(workdir, passwd, password, geometry)
            break
        except RuntimeError as exc:
            error = exc
    else:
        raise RuntimeError(f"could not start Xvnc: {error}")
    try:
        yield server
    finally:
        server.stop()


class XWindow:
    """A python-xlib window at (0, 0) covering the screen, for drawing known pixels."""

    def __init__(self, display_name: str, width: int, height: int) -> None:
        self.d = display.Display(display_name)
        screen = self.d.screen()
        assert screen.root_depth == 24, screen.root_depth
        self.width, self.height = width, height
        self.window: Window = screen.root.create_window(
            0,
            0,
            width,
            height,
            0,
            screen.root_depth,
            background_pixel=screen.black_pixel,
            override_redirect=True,  # no window manager: place it exactly
            event_mask=X.ExposureMask
            | X.KeyPressMask
            | X.KeyReleaseMask
            | X.ButtonPressMask
            | X.StructureNotifyMask,
        )
        self.gc = self.window.create_gc()
        self.window.map()
        self.wait_event(lambda e: e.type == X.MapNotify, 5)
        self.window.set_input_focus(X.RevertToParent, X.CurrentTime)
        self.d.sync()

    def put_rgb(self, img: np.ndarray, x: int = 0, y: int = 0) -> None:
        """Draw an (h, w, 3) RGB array at (x, y) and wait until the server processed it."""
        h, w = img.shape[:2]
        bgrx = np.zeros((h, w, 4), np.uint8)
        bgrx[:, :, :3] = img[:, :, ::-1]
        rows = max(1, 60000 // (w * 4))  # stay under the core protocol's request size
        for top in range(0, h, rows):
            strip = bgrx[top : top + rows]
            self.window.put_image(
                self.gc, x, y + top, w, strip.shape[0], X.ZPixmap, 24, 0, strip.tobytes()
            )
        self.d.sync()

    def copy_area(self, sx: int, sy: int, w: int, h: int, dx: int, dy: int) -> None:
        """Copy a window region onto itself (Xvnc can send this as CopyRect)."""
        self.window.copy_area(self.gc, self.window, sx, sy, w, h, dx, dy)
        self.d.sync()

    def wait_event(self, match: Callable[[object], bool], timeout: float) -> object:
        """Return the first X event satisfying ``match``; TimeoutError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while self.d.pending_events():
                event = self.d.next_event()
                if match(event):
                    return event
            time.sleep(0.01)
        raise TimeoutError(f"no matching X event within {timeout} s")

    def keysym_of(self, keycode: int) -> int:
        """The unshifted keysym bound to ``keycode`` on this display."""
        return int(self.d.keycode_to_keysym(keycode, 0))

    def close(self) -> None:
        """Destroy the window and disconnect."""
        self.window.destroy()
        self.d.close()


def pattern_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A picture exercising every ZRLE tile type: solid, few-colour, runs and noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3), np.uint8)
    img[:, :] = (30, 60, 90)
    img[: height // 2, : width // 2] = (255, 0, 0)
    stripes = np.array([[0, 255, 0], [0, 0, 255], [255, 255, 0]], np.uint8)
    img[height // 2 :, : width // 2] = stripes[(np.arange(width // 2) // 3) % 3]
    noise_h, noise_w = height // 2, width // 4
    img[:noise_h, width // 2 : width // 2 + noise_w] = rng.integers(
        0, 256, (noise_h, noise_w, 3), dtype=np.uint8
    )
    ramp = np.linspace(0, 255, width - width // 2 - noise_w).astype(np.uint8)
    img[:noise_h, width // 2 + noise_w :, 1] = ramp
    return img
