"""End-to-end: `gymlab runtime serve` as a real process tree (Xvnc + env + rewarder).

The peers are not ours: the `websockets` library's client speaking hand-built
v0 JSON, and vncdotool's CLI for VNC.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _support_runtime import (
    PASSWORD,
    RuntimeProcess,
    auth_headers,
    free_port,
    pid_alive,
    running_runtime,
    start_runtime,
    v0,
    vncdo,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"),
]


@pytest.fixture(scope="module")
def lockstep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    with running_runtime(tmp_path_factory.mktemp("lockstep"), mode="lockstep") as rt:
        yield rt


def run(coro: Any, timeout: float = 60.0) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def recv_json(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_method(ws: ClientConnection, method: str, timeout: float = 10.0) -> dict[str, Any]:
    """Skip pushes until a message with ``method`` arrives (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await recv_json(ws, max(0.01, deadline - time.monotonic()))
        if msg["method"] == method:
            return msg


async def expect_refusal(ws: ClientConnection, words: str) -> None:
    """First message is v0.connection.close mentioning ``words``, then close code 1000."""
    first = await recv_json(ws)
    assert first["method"] == "v0.connection.close", first
    assert words in first["body"]["message"]
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), 10)
    assert ws.close_code == 1000


def test_raw_websocket_client_holds_a_v0_conversation(lockstep: RuntimeProcess) -> None:
    async def main() -> None:
        async with connect(lockstep.url, additional_headers=auth_headers(PASSWORD)) as ws:
            describe = await recv_json(ws)
            assert describe["method"] == "v0.env.describe"
            body = describe["body"]
            assert (body["env_id"], body["env_state"], body["mode"]) == (
                "CartPole-v1",
                "running",
                "lockstep",
            )
            assert body["action_space"] == {"type": "Discrete", "n": 2, "start": 0}
            assert body["frame_shape"] == [400, 600, 3]
            start_episode = int(describe["headers"]["episode_id"])

            await ws.send(v0("v0.control.ping", 1))
            ping = await recv_method(ws, "v0.reply.control.ping")
            assert ping["headers"]["parent_message_id"] == 1

            await ws.send(v0("v0.env.reset", 2, {"env_id": None, "seed": 0, "fps": None}))
            states = []
            while True:
                msg = await recv_json(ws)
                if msg["method"] == "v0.env.describe":
                    states.append(msg["body"]["env_state"])
                if msg["method"] == "v0.reply.env.reset":
                    break
            assert states == ["resetting", "running"]
            assert msg["headers"]["parent_message_id"] == 2
            assert int(msg["headers"]["episode_id"]) == start_episode + 1

            # the episode id hint: new id = max(hint + 1, current + 1)
            await ws.send(v0("v0.env.reset", 3, {}, episode_id="100"))
            reply = await recv_method(ws, "v0.reply.env.reset")
            assert reply["headers"]["episode_id"] == "101"

    run(main())


def test_wrong_password_is_refused(lockstep: RuntimeProcess) -> None:
    async def main() -> None:
        async with connect(lockstep.url, additional_headers=auth_headers("wrong")) as ws:
            await expect_refusal(ws, "password")
        async with connect(lockstep.url) as ws:  # no Authorization header at all
            await expect_refusal(ws, "no password given")

    run(main())
    assert "refused 127.0.0.1: wrong password" in lockstep.log
    assert "refused 127.0.0.1: no password given" in lockstep.log


def test_second_controller_refused_observer_receives_pushes(lockstep: RuntimeProcess) -> None:
    async def main() -> None:
        async with connect(lockstep.url, additional_headers=auth_headers(PASSWORD)) as ctl:
            await recv_json(ctl)
            async with connect(lockstep.url, additional_headers=auth_headers(PASSWORD)) as second:
                await expect_refusal(second, "controlling client")
            observer_headers = auth_headers(PASSWORD, observer=True)
            async with connect(lockstep.url, additional_headers=observer_headers) as obs:
                assert (await recv_json(obs))["method"] == "v0.env.describe"
                await ctl.send(v0("v0.env.step", 1, {"action": 1}))
                reply = await recv_method(ctl, "v0.reply.env.step")
                pushed = await recv_method(obs, "v0.env.reward")
                assert pushed["body"]["reward"] == reply["body"]["reward"] == 1.0
                assert pushed["body"]["frame"] == reply["body"]["frame"]
                assert {"terminated", "truncated", "done", "info"} <= set(pushed["body"])
                # observers cannot control
                await obs.send(v0("v0.env.step", 1, {"action": 1}))
                err = await recv_method(obs, "v0.reply.error")
                assert "observers" in err["body"]["message"]

    run(main())


def test_malformed_json_keeps_connection_oversized_closes(lockstep: RuntimeProcess) -> None:
    async def main() -> None:
        async with connect(lockstep.url, additional_headers=auth_headers(PASSWORD)) as ws:
            await recv_json(ws)
            await ws.send("{this is not json")
            err = await recv_method(ws, "v0.reply.error")
            assert "malformed JSON" in err["body"]["message"]
            await ws.send(v0("v0.env.step", 7, {"action": 5}))
            err = await recv_method(ws, "v0.reply.error")
            assert err["headers"]["parent_message_id"] == 7
            assert "not in Discrete(2)" in err["body"]["message"]
            await ws.send(v0("v0.control.ping", 8))
            assert (await recv_method(ws, "v0.reply.control.ping"))["headers"][
                "parent_message_id"
            ] == 8
            await ws.send(v0("v0.control.ping", 9, {"pad": "x" * 70_000}))
            with pytest.raises(ConnectionClosed):
                await recv_method(ws, "never")
            assert ws.close_code == 1009

    run(main())


def test_lockstep_frames_and_vnc_capture_match_env_render(
    lockstep: RuntimeProcess, tmp_path: Path
) -> None:
    import gymnasium
    from PIL import Image

    seed, actions = 7, [1, 1, 0, 1, 1]

    async def main() -> list[int]:
        async with connect(lockstep.url, additional_headers=auth_headers(PASSWORD)) as ws:
            await recv_json(ws)
            await ws.send(v0("v0.env.reset", 1, {"seed": seed}))
            reset = await recv_method(ws, "v0.reply.env.reset")
            frames = [reset["body"]["frame"]]
            for i, action in enumerate(actions):
                await ws.send(v0("v0.env.step", 2 + i, {"action": action}))
                reply = await recv_method(ws, "v0.reply.env.step")
                assert not reply["body"]["terminated"]
                frames.append(reply["body"]["frame"])
            return frames

    frames = run(main())
    assert frames == list(range(frames[0], frames[0] + len(actions) + 1))

    png = tmp_path / "capture.png"
    vncdo(lockstep, "capture", str(png))
    captured = np.asarray(Image.open(png).convert("RGB")).astype(int)

    env = gymnasium.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=seed)
    first = env.render().astype(int)
    for action in actions:
        env.step(action)
    expected = env.render().astype(int)
    env.close()

    assert captured.shape == expected.shape == (400, 600, 3)
    assert len(np.unique(captured.reshape(-1, 3), axis=0)) > 3  # not one flat colour
    assert np.abs(captured - expected).mean() < 0.5
    assert np.abs(captured - first).mean() > 10 * max(np.abs(captured - expected).mean(), 0.01)


def test_reset_switches_env_and_rejects_other_frame_sizes(lockstep: RuntimeProcess) -> None:
    async def main() -> None:
        async with connect(lockstep.url, additional_headers=auth_headers(PASSWORD)) as ws:
            await recv_json(ws)
            await ws.send(v0("v0.env.reset", 1, {"env_id": "Acrobot-v1"}))
            err = await recv_method(ws, "v0.reply.error")
            assert "500x500" in err["body"]["message"]
            await ws.send(v0("v0.env.reset", 2, {"env_id": "MountainCar-v0", "seed": 1}))
            describe = await recv_method(ws, "v0.env.describe")
            assert describe["body"]["env_id"] == "MountainCar-v0"
            await recv_method(ws, "v0.reply.env.reset")
            await ws.send(v0("v0.env.step", 3, {"action": 2}))
            step = await recv_method(ws, "v0.reply.env.step")
            assert step["body"]["reward"] == -1.0
            await ws.send(v0("v0.env.reset", 4, {"env_id": "CartPole-v1"}))
            await recv_method(ws, "v0.reply.env.reset")

    run(main())


def test_realtime_key_held_over_vnc_pushes_the_cart_right(tmp_path: Path) -> None:
    with running_runtime(tmp_path, mode="realtime", fps=30) as rt:
        frames: list[int] = []
        started = time.monotonic()

        async def main() -> list[tuple[Any, list[float], int]]:
            steps: list[tuple[Any, list[float], int]] = []
            headers = auth_headers(PASSWORD, observer=True)
            async with connect(rt.url, additional_headers=headers) as ws:
                await recv_json(ws)
                vnc = await asyncio.create_subprocess_exec(
                    str(Path(sys.executable).with_name("vncdo")),
                    *("-s", f"127.0.0.1::{rt.vnc_port}", "-p", PASSWORD),
                    *("keydown", "right", "pause", "3", "keyup", "right"),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                action = None
                while vnc.returncode is None:
                    try:
                        msg = await recv_json(ws, 0.5)
                    except asyncio.TimeoutError:
                        continue
                    if msg["method"] == "v0.env.reward":
                        action = msg["body"]["info"]["action"]
                        frames.append(msg["body"]["frame"])
                    elif msg["method"] == "v0.env.observation" and action is not None:
                        eid = int(msg["headers"]["episode_id"])
                        steps.append((action, msg["body"]["observation"], eid))
                assert await asyncio.wait_for(vnc.wait(), 30) == 0
            return steps

        steps = run(main())
        elapsed = time.monotonic() - started
    # the clock ticks at about fps, and frame numbers only go up
    assert 0.6 * 30 * elapsed < len(frames) < 1.1 * 30 * elapsed, (len(frames), elapsed)
    assert all(b > a for a, b in itertools.pairwise(frames))
    pushed_right = [s for s in steps if s[0] == 1]
    pushed_left = [s for s in steps if s[0] == 0]
    # Idle alternates 0/1; the held key makes 1 dominate for ~3 s at 30 fps.
    assert len(pushed_right) > len(pushed_left) + 40, (len(pushed_right), len(pushed_left))
    # While Right is held the cart accelerates right: cart velocity (obs[1]) rises step to step.
    rising = total = 0
    for (a_prev, obs_prev, ep_prev), (a, obs, ep) in itertools.pairwise(steps):
        if a_prev == a == 1 and ep_prev == ep:
            total += 1
            rising += obs[1] > obs_prev[1]
    assert total > 20 and rising / total > 0.9, (rising, total)


def test_sigterm_stops_whole_tree_and_tells_clients(tmp_path: Path) -> None:
    rt = start_runtime(tmp_path)
    xvnc = rt.xvnc_pids()
    assert len(xvnc) == 1

    async def main() -> dict[str, Any]:
        async with connect(rt.url, additional_headers=auth_headers(PASSWORD)) as ws:
            await recv_json(ws)
            rt.proc.send_signal(signal.SIGTERM)
            close = await recv_method(ws, "v0.connection.close", timeout=20)
            with pytest.raises(ConnectionClosed):
                await recv_method(ws, "never", timeout=20)
            assert ws.close_code == 1000
            return close

    try:
        close = run(main())
        assert "stopping" in close["body"]["message"]
        assert rt.terminate() == 0
        deadline = time.monotonic() + 10
        while pid_alive(xvnc[0]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not pid_alive(xvnc[0]), "Xvnc left behind"
        assert not Path(f"/tmp/.X11-unix/X{rt.display}").exists()
    finally:
        rt.terminate()
        for pid in xvnc:
            with contextlib.suppress(ProcessLookupError):  # it may go between check and kill
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_xvnc_death_exits_nonzero_with_a_clear_line(tmp_path: Path) -> None:
    rt = start_runtime(tmp_path, mode="realtime")
    try:
        (xvnc,) = rt.xvnc_pids()
        os.kill(xvnc, signal.SIGKILL)
        code = rt.proc.wait(20)
        assert code != 0
        assert "Xvnc exited unexpectedly" in rt.log or "lost the X connection" in rt.log
        assert "Traceback" not in rt.log, rt.log
    finally:
        rt.terminate()


def test_memory_of_runtime_and_xvnc(lockstep: RuntimeProcess) -> None:
    def rss_kib(pid: int) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError(f"no VmRSS for {pid}")

    total_mib = (rss_kib(lockstep.proc.pid) + sum(map(rss_kib, lockstep.xvnc_pids()))) / 1024
    print(f"runtime + Xvnc RSS: {total_mib:.0f} MiB")
    assert total_mib <= 200


def test_vnc_password_file_matches_vncpasswd() -> None:
    from gymlab.runtime.xvnc import vnc_password_file_bytes

    tool = shutil.which("vncpasswd")
    if tool is None:
        pytest.skip("vncpasswd (tigervnc-tools) is not installed")
    for password in ("pa55word", "short", "longer-than-eight"):
        done = subprocess.run(
            [tool, "-f"], input=f"{password}\n".encode(), capture_output=True, timeout=10
        )
        assert done.stdout == vnc_password_file_bytes(password), password


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env-id", "NoSuchEnv-v0"], "cannot make 'NoSuchEnv-v0'"),
        (["--password-file", "/nonexistent/pw"], "cannot read password file"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    base = {"--env-id": "CartPole-v1", "--password-file": str(pw)}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    cmd = [sys.executable, "-m", "gymlab.cli", "runtime", "serve"]
    cmd += ["--vnc-port", str(free_port()), "--rewarder-port", str(free_port())]
    for key, value in base.items():
        cmd += [key, value]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr


def test_display_refuses_x_clients_without_the_cookie(
    lockstep: RuntimeProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from Xlib import display as xdisplay
    from Xlib import error as xerror

    empty = tmp_path / "Xauthority"
    empty.write_bytes(b"")
    monkeypatch.setenv("XAUTHORITY", str(empty))
    with pytest.raises(xerror.DisplayConnectionError, match=r"[Aa]uthoriz"):
        xdisplay.Display(f":{lockstep.display}")
