"""A real headless Chromium driven over the DevTools protocol, for pages that load slowly.

Chromium's own ``--screenshot`` shoots as soon as the page has loaded, before a noVNC viewer
has finished its VNC handshake; this waits (bounded) for a condition in the page first.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websockets

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)  # fmt: skip


def chromium() -> str | None:
    return shutil.which("chromium")


async def _shoot(ws_url: str, url: str, ready_js: str, timeout: float) -> bytes:
    ids = itertools.count(1)
    async with websockets.connect(ws_url, max_size=None) as ws:

        async def call(method: str, **params):
            message_id = next(ids)
            await ws.send(json.dumps({"id": message_id, "method": method, "params": params}))
            while True:
                reply = json.loads(await ws.recv())
                if reply.get("id") == message_id:
                    return reply.get("result", {})

        await call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = await call("Runtime.evaluate", expression=ready_js, returnByValue=True)
            if result.get("result", {}).get("value") is True:
                break
            await asyncio.sleep(0.25)
        else:
            raise TimeoutError(f"{url}: page not ready after {timeout:.0f}s ({ready_js})")
        await asyncio.sleep(1.0)  # one more frame after the condition holds
        shot = await call("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])


def screenshot(url: str, *, ready_js: str, size=(700, 500), timeout: float = 30.0) -> bytes:
    """PNG bytes of ``url`` once ``ready_js`` evaluates to true in the page."""
    binary = chromium()
    if binary is None:
        raise FileNotFoundError("chromium is not installed")
    profile = tempfile.mkdtemp(prefix="gymlab-chromium-")
    proc = subprocess.Popen(
        [binary, *FLAGS, f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
         "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group: the helpers go down with it
    )  # fmt: skip
    try:
        port = _debug_port(proc, Path(profile), timeout)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json", timeout=10) as reply:
            pages = [t for t in json.load(reply) if t.get("type") == "page"]
        return asyncio.run(_shoot(pages[0]["webSocketDebuggerUrl"], url, ready_js, timeout))
    finally:
        _stop(proc)
        _remove_profile(Path(profile))


def _stop(proc: subprocess.Popen) -> None:
    """Stop Chromium and every helper process it started (renderers, utilities, crashpad)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def _remove_profile(profile: Path) -> None:
    # A helper that left the process group may still be flushing into the profile for a
    # moment: a few bounded tries, then whatever is left stays in /tmp rather than failing.
    for _ in range(10):
        shutil.rmtree(profile, ignore_errors=True)
        if not profile.exists():
            return
        time.sleep(0.2)


def _debug_port(proc: subprocess.Popen, profile: Path, timeout: float) -> int:
    # Chromium writes the port it picked to DevToolsActivePort in the profile.
    deadline = time.monotonic() + timeout
    marker = profile / "DevToolsActivePort"
    while time.monotonic() < deadline:
        if marker.is_file() and re.match(r"\d+", marker.read_text()):
            return int(marker.read_text().split()[0])
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited {proc.returncode}: {proc.stderr.read()[-500:]}")
        time.sleep(0.1)
    raise TimeoutError("chromium did not open its DevTools port")
