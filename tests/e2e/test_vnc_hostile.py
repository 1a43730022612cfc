"""End-to-end tests of the VNC client's bounds against a hostile server on loopback.

The server is the TEST FIXTURE in tests/fixtures/hostile_vnc.py. Each case runs gymlab's
client in a fresh subprocess (this file run as a script: :func:`_probe`), so the peak RSS
measured is the client's own; the server runs in this process. The probe reports what the
client raised, how long each call took against its timeout, the worst gap of a 10 ms
``asyncio.sleep`` ticker on the client's loop, and how an honest connection on the same loop
was served meanwhile.

Run with ``-rP`` to see the measured figures.
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
from hostile_vnc import HostileVNCServer

from gymlab.client.vnc import VNCConnection, VNCError

pytestmark = pytest.mark.e2e

RSS_LIMIT_MB = 400
SLACK_S = 1.0  # a call may overrun its timeout by this much
MAX_TICK_GAP_S = 0.2


# ----- the client side, run in a subprocess ---------------------------------------------------


async def _honest_client(port: int, stats: dict[str, Any], done: asyncio.Event) -> None:
    """Keep asking an honest server for full frames until ``done``; count them, track latency.

    Stopped by ``done``, not by cancelling: Python 3.11's ``wait_for`` can swallow a
    cancellation that races with a completed update, and these complete all the time.
    """
    try:
        async with await VNCConnection.connect("127.0.0.1", port, None, timeout=5) as conn:
            while not done.is_set():
                started = time.monotonic()
                await conn.update(incremental=False, timeout=2)
                stats["honest_updates"] += 1
                latency = time.monotonic() - started
                stats["honest_max_latency"] = max(stats["honest_max_latency"], latency)
    except VNCError as exc:
        stats["honest_error"] = f"{type(exc).__name__}: {exc}"


async def _probe(spec: dict[str, Any]) -> dict[str, Any]:
    """Connect to the hostile server, ask for one full update; report what happened."""
    out: dict[str, Any] = {"error": None, "message": "", "honest_updates": 0}
    out["honest_max_latency"] = 0.0
    gap = 0.0

    async def ticker() -> None:
        nonlocal gap
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gap = max(gap, now - last)
            last = now

    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    tick = loop.create_task(ticker())
    honest = None
    if spec.get("honest_port"):
        honest = loop.create_task(_honest_client(spec["honest_port"], out, done))
        await asyncio.sleep(0.3)  # the honest remote is up and streaming first
    max_size = tuple(spec["max_size"]) if spec.get("max_size") else None
    timeout = spec["timeout"]
    conn = None
    started = time.monotonic()
    try:
        conn = await VNCConnection.connect(
            "127.0.0.1", spec["port"], None, timeout=timeout, max_size=max_size
        )
        out["connect_s"] = time.monotonic() - started
        started = time.monotonic()
        try:
            frame = await conn.update(incremental=False, timeout=timeout)
            out["frame_shape"] = list(frame.shape)
        finally:
            out["update_s"] = time.monotonic() - started
    except VNCError as exc:
        out["error"] = type(exc).__name__
        out["message"] = str(exc)
        out.setdefault("connect_s", time.monotonic() - started)
    if conn is not None:
        out["rects"] = conn.stats.rects
        out["bytes_received"] = conn.stats.bytes_received
        await conn.close()
    await asyncio.sleep(0.2)  # a last look at the ticker and the honest remote
    done.set()
    if honest is not None:
        await asyncio.wait_for(honest, 5)
    tick.cancel()
    await asyncio.gather(tick, return_exceptions=True)
    out["max_tick_gap_s"] = gap
    out["peak_rss_mb"] = _peak_rss_mb()
    return out


def _peak_rss_mb() -> float:
    """This process's peak RSS: VmHWM, which starts afresh at exec (ru_maxrss does not on
    Linux: it keeps the forking parent's peak, here pytest's)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----- the server side and the assertions -----------------------------------------------------


def _run_probe(port: int, timeout: float, **spec: Any) -> dict[str, Any]:
    spec.update(port=port, timeout=timeout)
    proc = subprocess.run(
        [sys.executable, __file__, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(result))
    return result


@pytest.fixture
def honest() -> Iterator[HostileVNCServer]:
    with HostileVNCServer("honest", width=64, height=48) as server:
        yield server


def _assert_bounded(result: dict[str, Any], timeout: float) -> None:
    assert result["peak_rss_mb"] < RSS_LIMIT_MB, result
    assert result["connect_s"] < timeout + SLACK_S, result
    assert result.get("update_s", 0.0) < timeout + SLACK_S, result
    assert result["max_tick_gap_s"] < MAX_TICK_GAP_S, result


@pytest.mark.parametrize("max_size", [None, (600, 400)])
def test_huge_server_init_is_refused(max_size: tuple[int, int] | None) -> None:
    cap = "x".join(map(str, max_size or (4096, 4096)))
    with HostileVNCServer("huge-init") as server:
        result = _run_probe(server.port, 5.0, max_size=max_size)
    assert result["error"] == "VNCProtocolError", result
    assert f"server desktop 16384x16384 exceeds the {cap} cap" in result["message"]
    assert "\n" not in result["message"]
    _assert_bounded(result, 5.0)


@pytest.mark.parametrize("max_size", [None, (600, 400)])
def test_resize_to_a_huge_desktop_then_copyrect_is_refused(
    max_size: tuple[int, int] | None,
) -> None:
    cap = "x".join(map(str, max_size or (4096, 4096)))
    with HostileVNCServer("huge-resize") as server:
        result = _run_probe(server.port, 5.0, max_size=max_size)
    assert result["error"] == "VNCProtocolError", result
    assert f"server desktop 16384x16384 exceeds the {cap} cap" in result["message"]
    _assert_bounded(result, 5.0)


@pytest.mark.parametrize(
    ("size", "max_size", "problem"),
    [
        ((600, 400), (600, 400), "ZRLE data of a 600x400 rect decompresses to more than"),
        ((4096, 4096), None, "ZRLE data of a 4096x4096 rect decompresses to more than"),
        # the case reported: 805 MB of framebuffer that the 783 KB bomb then fills
        ((16384, 16384), None, "server desktop 16384x16384 exceeds the 4096x4096 cap"),
    ],
    ids=["600x400", "4096x4096", "16384x16384"],
)
def test_zrle_bomb_is_stopped_at_the_rect_bound(
    size: tuple[int, int],
    max_size: tuple[int, int] | None,
    problem: str,
    honest: HostileVNCServer,
) -> None:
    width, height = size
    with HostileVNCServer("zrle-bomb", width=width, height=height) as server:
        result = _run_probe(server.port, 5.0, max_size=max_size, honest_port=honest.port)
        print(f"bomb bytes sent before the client hung up: {server.bytes_sent}")
    assert result["error"] == "VNCProtocolError", result
    assert problem in result["message"]
    _assert_bounded(result, 5.0)
    assert result["honest_updates"] >= 5 and "honest_error" not in result, result


# each rect costs the client about a millisecond or more: no update completes within 2 s
@pytest.mark.parametrize(
    ("script", "size"),
    [("zrle-flood", (600, 400)), ("copyrect-flood", (1920, 1080))],
    ids=["zrle-flood", "copyrect-flood"],
)
def test_a_flood_of_costly_rects_does_not_block_the_loop(
    script: str, size: tuple[int, int], honest: HostileVNCServer
) -> None:
    timeout = 2.0
    with HostileVNCServer(script, width=size[0], height=size[1]) as server:
        result = _run_probe(server.port, timeout, honest_port=honest.port)
    # the flood is one endless update: the full update asked for never completes
    assert result["error"] == "VNCTimeoutError", result
    assert "no framebuffer update within 2.0 s" in result["message"]
    assert result["update_s"] >= timeout - 0.05, result
    _assert_bounded(result, timeout)
    assert result["rects"] >= 10, result  # the client was busy decoding all along
    assert "honest_error" not in result, result
    assert result["honest_updates"] >= 10, result
    assert result["honest_max_latency"] < 0.5, result


def test_slow_handshake_times_out_on_time() -> None:
    with HostileVNCServer("slow-handshake") as server:
        result = _run_probe(server.port, 1.0)
    assert result["error"] == "VNCTimeoutError", result
    assert "handshake not finished within 1.0 s" in result["message"]
    _assert_bounded(result, 1.0)


def test_slow_update_times_out_on_time() -> None:
    with HostileVNCServer("slow-update") as server:
        result = _run_probe(server.port, 1.0)
    assert result["error"] == "VNCTimeoutError", result
    assert result["update_s"] >= 0.95, result
    _assert_bounded(result, 1.0)


if __name__ == "__main__":  # the probe subprocess
    print(json.dumps(asyncio.run(_probe(json.loads(sys.argv[1])))))
