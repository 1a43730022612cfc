"""End-to-end: RemoteVectorEnv against real runtimes (Xvnc + env + rewarder) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from _support_runtime import PASSWORD, RuntimeProcess, free_port, pid_alive, running_runtime
from _support_vnc import running_xvnc

import gymlab
from gymlab.client import RemoteConnectError, RemoteResetTimeout, RemoteVectorEnv
from gymlab.runtime import Runtime, RuntimeConfig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"),
]

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def remotes_of(*runtimes: RuntimeProcess) -> str:
    return "vnc://" + ",".join(f"127.0.0.1:{r.vnc_port}+{r.rewarder_port}" for r in runtimes)


@pytest.fixture(scope="module")
def lockstep_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with contextlib.ExitStack() as stack:
        runtimes = [
            stack.enter_context(running_runtime(tmp_path_factory.mktemp(f"ls{i}"), mode="lockstep"))
            for i in range(2)
        ]
        yield remotes_of(*runtimes)


@contextlib.contextmanager
def closing(env: Any) -> Iterator[Any]:
    try:
        yield env
    finally:
        env.close()


def test_lockstep_pixels_rewards_and_autoreset(lockstep_pair: str) -> None:
    with closing(RemoteVectorEnv(lockstep_pair, PASSWORD)) as env:
        assert env.mode == "lockstep" and env.num_envs == 2
        assert env.single_observation_space == gymnasium.spaces.Box(0, 255, (400, 600, 3), np.uint8)
        assert env.single_action_space == gymnasium.spaces.Discrete(2)
        refs = [gymnasium.make("CartPole-v1", render_mode="rgb_array") for _ in range(2)]
        obs, infos = env.reset(seed=11)
        states = [ref.reset(seed=11 + i)[0] for i, ref in enumerate(refs)]
        assert obs.shape == (2, 400, 600, 3) and obs.dtype == np.uint8
        assert env.observation_space.contains(obs)
        for i, ref in enumerate(refs):
            assert np.array_equal(obs[i], ref.render())
        # a balancing policy keeps both episodes going; every frame must match the reference
        for _ in range(40):
            actions = np.array([int(s[2] + 0.5 * s[3] > 0) for s in states])
            obs, rewards, terms, truncs, infos = env.step(actions)
            assert env.observation_space.contains(obs)
            assert rewards.tolist() == [1.0, 1.0]
            assert not terms.any() and not truncs.any()
            for i, ref in enumerate(refs):
                states[i] = ref.step(int(actions[i]))[0]
                assert np.array_equal(obs[i], ref.render()), f"remote {i} pixels differ"
        # remotes on loopback are asked for Raw, the cheapest to encode and decode
        stats = env.sessions[0].vnc.stats
        assert stats.rects_by_encoding.get("raw", 0) > 40, stats
        assert "zrle" not in stats.rects_by_encoding, stats
        # always pushing left ends remote 0's episode (NEXT_STEP, the default: the terminal
        # frame comes with terminated, the next step resets that remote)
        episode = int(infos["episode_id"][0])
        for _ in range(200):
            obs, rewards, terms, truncs, infos = env.step(np.array([0, int(states[1][2] > 0)]))
            states[1] = refs[1].step(int(states[1][2] > 0))[0]
            assert rewards[0] == 1.0
            if terms[0]:
                break
        else:
            raise AssertionError("pushing left never ended the episode")
        assert "final_info" not in infos and infos["episode_id"][0] == episode
        obs, rewards, terms, _, infos = env.step(np.array([1, int(states[1][2] > 0)]))
        states[1] = refs[1].step(int(states[1][2] > 0))[0]
        assert rewards[0] == 0.0 and not terms[0] and infos["episode_id"][0] == episode + 1
        # the next step is an ordinary step of the new episode
        obs, rewards, terms, _, infos = env.step(np.array([1, 1]))
        assert rewards[0] == 1.0 and infos["episode_id"][0] == episode + 1
        with pytest.raises(ValueError, match="not in Discrete"):
            env.step(np.array([0, 5]))
        for ref in refs:
            ref.close()


def test_lockstep_pixels_over_zrle_equal_in_process_frames(lockstep_pair: str) -> None:
    """What a remote across a network gets by default, asked for here over loopback."""
    with closing(RemoteVectorEnv(lockstep_pair, PASSWORD, encodings=("zrle",))) as env:
        ref = gymnasium.make("CartPole-v1", render_mode="rgb_array")
        obs, _ = env.reset(seed=5)
        ref.reset(seed=5)
        assert np.array_equal(obs[0], ref.render())
        for step in range(20):
            obs, *_ = env.step(np.array([step % 2, 0]))
            ref.step(step % 2)
            assert np.array_equal(obs[0], ref.render()), f"step {step}: pixels differ"
        assert env.sessions[0].vnc.stats.rects_by_encoding.get("zrle", 0) >= 20
        ref.close()


def test_gymlab_make_configure_and_env_switch(lockstep_pair: str) -> None:
    # Universe style: make first, configure later (remotes, password via the query string)
    env = gymlab.make("CartPole-v1")
    with closing(env):
        with pytest.raises(gymlab.client.NotConfiguredError):
            env.reset()
        env.configure(remotes=f"{lockstep_pair}?password={PASSWORD}")
        obs, _ = env.reset(seed=1)
        assert obs.shape == (2, 400, 600, 3)
    # gymlab.configure sets defaults for make; make switches the runtimes' environment
    gymlab.configure(remotes=lockstep_pair, password=PASSWORD)
    try:
        with closing(gymlab.make("MountainCar-v0")) as env:
            assert env.single_action_space == gymnasium.spaces.Discrete(3)
            env.reset(seed=2)
            _, rewards, _, _, infos = env.step(np.array([2, 0]))
            assert rewards.tolist() == [-1.0, -1.0]  # MountainCar's per-step cost
            assert infos["action"].tolist() == [2, 0]
        with closing(gymlab.make("CartPole-v1")) as env:  # and back for the other tests
            assert env.single_action_space == gymnasium.spaces.Discrete(2)
    finally:
        gymlab.configure(remotes=None, password=None)


def test_wrong_password_is_a_clear_error(lockstep_pair: str) -> None:
    with pytest.raises(
        RemoteConnectError, match=r"remote 0 \(127\.0\.0\.1:\d+\+\d+\): invalid password"
    ):
        RemoteVectorEnv(lockstep_pair, "wrong-pw")


def test_realtime_two_remotes(tmp_path: Path) -> None:
    workdirs = [tmp_path / "rt0", tmp_path / "rt1"]
    for workdir in workdirs:
        workdir.mkdir()
    with contextlib.ExitStack() as stack:
        runtimes = [
            stack.enter_context(running_runtime(workdir, mode="realtime", fps=30))
            for workdir in workdirs
        ]
        env = stack.enter_context(closing(RemoteVectorEnv(remotes_of(*runtimes), PASSWORD)))
        assert env.mode == "realtime" and env.fps == 30
        assert env.single_action_space == gymnasium.spaces.Discrete(2)
        obs, _ = env.reset(seed=3)
        assert env.observation_space.contains(obs) and obs.std() > 0
        totals, counts, ended = np.zeros(2), np.zeros(2), np.zeros(2, bool)
        applied = set()
        deadline = time.monotonic() + 20
        # hold Right on remote 0 and Left on remote 1: both poles fall, episodes end
        while not ended.all() and time.monotonic() < deadline:
            obs, rewards, terms, truncs, infos = env.step(np.array([1, 0]))
            assert "_error" not in infos
            totals += rewards
            counts += infos["stats.reward.count"]
            ended |= terms | truncs
            if "_action" in infos and infos["_action"].all():
                applied.add(tuple(infos["action"].tolist()))
        assert ended.all(), "holding one key should end CartPole episodes"
        assert (1, 0) in applied  # the runtimes applied the keys we hold
        assert (totals > 0).all() and np.array_equal(totals, counts)  # 1.0 per runtime tick
        # Universe-style event lists work too
        _, _, _, _, infos = env.step([[("KeyEvent", "Left", True)], []])
        with pytest.raises(ValueError):
            env.step([[("KeyEvent", "NoSuchKey", True)], []])


@contextlib.contextmanager
def in_process_runtime(vnc_port: int, rewarder_port: int) -> Iterator[None]:
    """A lockstep runtime on given ports, in a thread (the programmatic API)."""
    config = RuntimeConfig(
        env_id="CartPole-v1",
        password=PASSWORD,
        vnc_port=vnc_port,
        rewarder_port=rewarder_port,
        mode="lockstep",
    )
    runtime = Runtime(config)
    loop = asyncio.new_event_loop()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(loop.run_until_complete(runtime.run())), daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 40
        while not runtime.ready.is_set():
            assert thread.is_alive() and time.monotonic() < deadline, "runtime did not start"
            time.sleep(0.05)
        yield
    finally:
        loop.call_soon_threadsafe(runtime.stop)
        thread.join(30)
        assert not thread.is_alive()
        loop.close()


def test_killed_runtime_is_reported_and_reconnected(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running_runtime(tmp_path / "a", mode="lockstep") as healthy,
        running_runtime(tmp_path / "b", mode="lockstep") as victim,
        closing(
            RemoteVectorEnv(
                remotes_of(healthy, victim),
                PASSWORD,
                reconnect_backoff=(0.1, 0.5),
                step_timeout=5,
                connect_timeout=3,
            )
        ) as env,
    ):
        env.reset(seed=0)
        for _ in range(3):
            assert env.step(np.array([0, 1]))[1].tolist() == [1.0, 1.0]
        xvnc = victim.xvnc_pids()
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(10)
        # its Xvnc dies with it (parent-death signal): the VNC port must come free
        deadline = time.monotonic() + 5
        while any(pid_alive(pid) for pid in xvnc):
            assert time.monotonic() < deadline, "the killed runtime's Xvnc lives on"
            time.sleep(0.02)
        obs, rewards, terms, truncs, infos = env.step(np.array([1, 0]))
        assert not terms.any()  # a fault truncates, it is no MDP terminal state
        assert infos["_error"].tolist() == [False, True]
        assert "remote 1" in infos["error"][1]
        assert truncs[1] and not truncs[0] and rewards[0] == 1.0
        assert obs[1].max() == 0  # no pixels from a dead remote
        for _ in range(3):  # still down: the healthy remote keeps stepping
            obs, rewards, _, truncs, infos = env.step(np.array([1, 0]))
            assert rewards[0] == 1.0 and infos["_error"][1] and truncs[1]
        assert env.errors[1] is not None and env.errors[0] is None
        with in_process_runtime(victim.vnc_port, victim.rewarder_port):
            deadline = time.monotonic() + 30
            while True:
                assert time.monotonic() < deadline, f"never reconnected: {env.errors}"
                obs, _, _, truncs, infos = env.step(np.array([0, 0]))
                if "_reconnected" in infos and infos["_reconnected"][1]:
                    break
                time.sleep(0.1)
            assert obs[1].std() > 0 and not truncs[1] and "_error" not in infos
            obs, rewards, _, truncs, infos = env.step(np.array([0, 1]))
            assert rewards.tolist() == [1.0, 1.0] and "_error" not in infos


class SilentRewarder:
    """A websocket server that accepts connections and never answers a request.

    With ``describe`` it first sends a v0.env.describe like a lockstep runtime would.
    """

    def __init__(self, describe: dict[str, Any] | None) -> None:
        from websockets.asyncio.server import serve

        self.loop = asyncio.new_event_loop()
        self.describe = describe

        async def handler(ws: Any) -> None:
            if self.describe is not None:
                headers = {"message_id": 1, "sent_at": time.time(), "episode_id": "1"}
                message = {"method": "v0.env.describe", "headers": headers, "body": describe}
                await ws.send(json.dumps(message))
            await ws.wait_closed()

        async def start() -> Any:
            return await serve(handler, "127.0.0.1", 0)

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]

    def close(self) -> None:
        async def stop() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_reset_that_never_finishes_raises_naming_the_remote(tmp_path: Path) -> None:
    describe = {
        "env_id": "CartPole-v1",
        "env_state": "running",
        "fps": 60,
        "action_space": {"type": "Discrete", "n": 2, "start": 0},
        "frame_shape": [240, 320, 3],
        "mode": "lockstep",
    }
    with running_xvnc(tmp_path, password=PASSWORD) as xvnc:
        silent = SilentRewarder(describe)
        try:
            remotes = f"127.0.0.1:{xvnc.port}+{silent.port}"
            with closing(RemoteVectorEnv(remotes, PASSWORD, reset_timeout=1.0)) as env:
                started = time.monotonic()
                with pytest.raises(
                    RemoteResetTimeout,
                    match=rf"remote 0 \(127\.0\.0\.1:{xvnc.port}\+{silent.port}\) did not "
                    r"finish resetting within 1\.0 s",
                ):
                    env.reset()
                assert time.monotonic() - started < 10
        finally:
            silent.close()
        mute = SilentRewarder(None)  # not even a describe: connecting fails, bounded
        try:
            remotes = f"127.0.0.1:{xvnc.port}+{mute.port}"
            with pytest.raises(RemoteConnectError, match=r"remote 0 .*describe"):
                RemoteVectorEnv(remotes, PASSWORD, connect_timeout=1.0)
        finally:
            mute.close()


def test_unreachable_remote_is_named() -> None:
    port = free_port()
    with pytest.raises(RemoteConnectError, match=rf"remote 0 \(127\.0\.0\.1:{port}\+"):
        RemoteVectorEnv(f"127.0.0.1:{port}+{free_port()}", PASSWORD, connect_timeout=2)


def test_random_agent_example_prints_episode_returns() -> None:
    example = Path(__file__).resolve().parents[2] / "examples" / "random_agent.py"
    result = subprocess.run(
        [sys.executable, str(example), "--local", "1", "--steps", "80"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    returns = re.findall(r"env 0: episode return (\d+)\.0 in (\d+) steps", result.stdout)
    assert returns, result.stdout
    assert all(r == n for r, n in returns)  # CartPole: 1.0 per step
