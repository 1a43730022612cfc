"""``gymlab bench``: how fast and how fresh remote environments are, next to in-process Gymnasium.

Sections (CartPole-v1 throughout, runtimes started here on loopback):

a. in-process Gymnasium with ``render()`` (rgb_array) every step: the baseline steps/s;
b. one lockstep remote through :class:`RemoteVectorEnv`, pixels over VNC;
c. four lockstep remotes through one :class:`RemoteVectorEnv` (aggregate env steps/s), next
   to what a researcher would use instead: Gymnasium's ``AsyncVectorEnv`` over four envs with
   pixel observations (``AddRenderObservation``), in the same run;
d. four real-time remotes at 60 fps: runtime ticks/s, the ticks whose picture changed (an
   unchanged picture draws nothing, so Xvnc has no update to send), client VNC updates/s and
   agent steps/s per remote; observation lag and reward lag (see :class:`LagProbe`);
e. per VNC encoding (ZRLE, what a remote across a network gets; Raw, what one on loopback
   gets): bytes per lockstep step, steps/s and CPU milliseconds per step of each process;
f. resident memory of one runtime (runtime process + its Xvnc) and of the client per remote;
p. the profile of a lockstep step: in-process env step and ``render()`` times from (a), and
   for (b) and (c) the CPU milliseconds per env step of the runtime processes (env step,
   render, drawing into X, rewarder), their Xvnc servers (framebuffer, encoding) and this
   client process (decoding, protocol), from /proc, next to the wall time per env step;
h. client capacity: how many remotes at 60 fps one client process can decode. A real Xvnc
   streams CartPole frames (scaled to 600x400 and to 1024x768) drawn at 60 fps for a few
   seconds; the recorded server bytes are then replayed from memory into fresh sans-I/O
   RFB clients, so only decoding is timed (Universe's design goal was 20 remotes at 60 fps);
g. a web task (MiniWoB++ ``click-test-2``, when the browser runtime's parts are installed):
   episodes/s and steps/s of one browser runtime in lockstep and in real time (clicks as VNC
   pointer events), next to MiniWoB++'s own in-process Selenium loop (headless Chromium).

The output is measured values and ratios only: what counts as good enough is for whoever
reads it to say.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gymlab.deployment import DEFAULT_FPS
from gymlab.procfs import cpu_seconds, rss_bytes
from gymlab.rewarder.protocol import Mode
from gymlab.supervisor import LocalRuntime, local_runtimes, remotes_string

ENV_ID = "CartPole-v1"
READY_TIMEOUT = 60.0


# ----- local runtimes -----------------------------------------------------------------------
# Started, watched and stopped by gymlab.supervisor, the one local supervisor.


def _remotes(runtimes: list[LocalRuntime]) -> str:
    return remotes_string(runtimes, with_password=False)  # the sections pass it separately


# ----- sections -----------------------------------------------------------------------------


def bench_inprocess(seconds: float) -> dict[str, Any]:
    """(a) in-process CartPole, ``render()`` every step, random actions."""
    import gymnasium

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gymnasium.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    env.action_space.seed(0)
    steps, stepping, rendering = 0, 0.0, 0.0
    start = now = time.perf_counter()
    while now - start < seconds:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        stepped = time.perf_counter()
        env.render()
        steps += 1
        if terminated or truncated:
            env.reset()
            env.render()
        stepping += stepped - now
        now = time.perf_counter()
        rendering += now - stepped
    elapsed = now - start
    env.close()
    return {
        "steps": steps,
        "seconds": elapsed,
        "steps_per_s": steps / elapsed,
        "step_ms": 1000 * stepping / steps,
        "render_ms": 1000 * rendering / steps,
    }


def bench_async_vector(seconds: float, n: int = 4) -> dict[str, Any]:
    """(c) the local baseline: ``AsyncVectorEnv`` of ``n`` envs, rendered frames as observations."""
    import gymnasium
    from gymnasium.wrappers import AddRenderObservation

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # inherited by the worker processes
    env = gymnasium.make_vec(
        ENV_ID,
        num_envs=n,
        vectorization_mode="async",
        render_mode="rgb_array",
        wrappers=[AddRenderObservation],
    )
    try:
        return _run_vector(env, seconds)
    finally:
        env.close()


def _run_vector(env: Any, seconds: float) -> dict[str, Any]:
    env.reset(seed=0)
    env.action_space.seed(0)
    steps = errors = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, _, _, infos = env.step(env.action_space.sample())
        steps += 1
        errors += int(np.sum(infos.get("_error", 0)))
    elapsed = time.perf_counter() - start
    return {
        "vector_steps": steps,
        "env_steps": steps * env.num_envs,
        "seconds": elapsed,
        "steps_per_s": steps * env.num_envs / elapsed,
        "errors": errors,
    }


def bench_lockstep(runtimes: list[LocalRuntime], password: str, seconds: float) -> dict[str, Any]:
    """(b)/(c) lockstep through RemoteVectorEnv; also the client's memory per remote."""
    from gymlab.client.vector import RemoteVectorEnv

    before = rss_bytes(os.getpid())
    env = RemoteVectorEnv(_remotes(runtimes), password, mode=Mode.LOCKSTEP)
    try:
        env.reset(seed=0)  # connected before the CPU clocks start
        cpu = CpuClocks(runtimes)
        result = _run_vector(env, seconds)
        result["cpu_ms_per_step"] = cpu.ms_per_step(result["env_steps"])
        result["client_rss_per_remote"] = (rss_bytes(os.getpid()) - before) / len(runtimes)
        result["runtime_rss"] = max(rt.rss() for rt in runtimes)
    finally:
        env.close()
    return result


class CpuClocks:
    """CPU time used by the runtime processes, their Xvnc servers and this client since start."""

    def __init__(self, runtimes: list[LocalRuntime]) -> None:
        self.runtimes = [rt.proc.pid for rt in runtimes]
        self.xvncs = [pid for rt in runtimes for pid in rt.xvnc_pids()]
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        return {
            "runtime": sum(cpu_seconds(pid) for pid in self.runtimes),
            "xvnc": sum(cpu_seconds(pid) for pid in self.xvncs),
            "client": time.process_time(),
        }

    def ms_per_step(self, steps: int) -> dict[str, float]:
        """Milliseconds of CPU per env step, per kind of process."""
        end = self._read()
        return {k: 1000 * (end[k] - self.start[k]) / max(1, steps) for k in end}


def bench_bytes(runtime: LocalRuntime, password: str, seconds: float) -> dict[str, Any]:
    """(e) per encoding: bytes received per lockstep step (one frame's changes), steps/s and
    CPU ms per step of the runtime, its Xvnc and this client."""
    from gymlab.client.vector import RemoteVectorEnv

    out: dict[str, Any] = {}
    for encoding in ("zrle", "raw"):
        env = RemoteVectorEnv(
            _remotes([runtime]), password, mode=Mode.LOCKSTEP, encodings=(encoding,)
        )
        try:
            env.reset(seed=0)
            vnc = env.sessions[0].vnc
            assert vnc is not None
            first = vnc.stats.bytes_received
            cpu = CpuClocks([runtime])
            result = _run_vector(env, seconds)
            vnc = env.sessions[0].vnc
            assert vnc is not None
            out[encoding] = (vnc.stats.bytes_received - first) / max(1, result["vector_steps"])
            out[f"{encoding}_steps_per_s"] = result["steps_per_s"]
            out[f"{encoding}_cpu_ms_per_step"] = cpu.ms_per_step(result["env_steps"])
        finally:
            env.close()
    return out


WEB_TASK = "miniwob/click-test-2-v1"


def _scalar(value: Any) -> float:
    return float(np.asarray(value, dtype=float).ravel()[0])


def click_target(utterance: str, elements: Any) -> tuple[float, float]:
    """Where click-test-2's scripted agent clicks: the centre of the button it names."""
    name = utterance.removeprefix("Click button ").rstrip(".").strip()
    for element in elements:
        if str(element["tag"]).upper() == "BUTTON" and element["text"] == name:
            return (
                _scalar(element["left"]) + _scalar(element["width"]) / 2,
                _scalar(element["top"]) + _scalar(element["height"]) / 2,
            )
    raise RuntimeError(f"no button for {utterance!r} on the page")


def web_task_missing() -> str | None:
    """Why section (g) cannot run here, or None."""
    import importlib.util
    import shutil

    from gymlab.runtime import browser

    for module in ("miniwob", "selenium"):
        if importlib.util.find_spec(module) is None:
            return f"the {module} package is not installed (pip install 'gymlab[browser]')"
    for exe in (browser.CHROMIUM, browser.CHROMEDRIVER):
        if shutil.which(exe) is None:
            return f"{exe} is not installed (Debian: chromium, chromium-driver)"
    return None


def bench_web_inprocess(seconds: float) -> dict[str, Any]:
    """(g) MiniWoB++'s own loop: its Gymnasium env drives headless Chromium with Selenium."""
    import gymnasium
    import miniwob
    from miniwob.action import ActionTypes

    from gymlab.runtime import browser

    os.environ.setdefault("MINIWOB_CHROME_BINARY", browser.CHROMIUM)
    os.environ.setdefault("MINIWOB_CHROMEDRIVER", browser.CHROMEDRIVER)
    gymnasium.register_envs(miniwob)
    env = gymnasium.make(WEB_TASK)
    try:
        unwrapped: Any = env.unwrapped

        def click(obs: Any) -> Any:
            x, y = click_target(obs["utterance"], obs["dom_elements"])
            return unwrapped.create_action(ActionTypes.CLICK_COORDS, coords=np.array([x, y]))

        noop = unwrapped.create_action(ActionTypes.NONE)
        return _web_loop(
            seconds,
            reset=lambda seed: env.reset(seed=seed)[0],
            solve=lambda obs: env.step(click(obs))[1],
            idle=lambda obs: env.step(noop)[0],
        )
    finally:
        env.close()


def _web_loop(seconds: float, reset: Any, solve: Any, idle: Any) -> dict[str, Any]:
    """Episodes solved by one click each for ``seconds``, then no-op steps for ``seconds``."""
    episodes = wins = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        wins += solve(reset(episodes)) > 0
        episodes += 1
    elapsed = time.perf_counter() - start
    obs, steps = reset(episodes), 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        obs = idle(obs)
        steps += 1
    return {
        "episodes_per_s": episodes / elapsed,
        "success": wins / max(1, episodes),
        "steps_per_s": steps / (time.perf_counter() - start),
    }


def bench_web_lockstep(runtime: LocalRuntime, seconds: float) -> dict[str, Any]:
    """(g) the same scripted agent against a lockstep browser runtime (rewarder only)."""
    from gymlab.rewarder.client import RewarderClient

    noop = {"action_type": 0, "coords": [0, 0], "ref": 0, "key": "", "text": ""}

    async def main() -> dict[str, Any]:
        async with await RewarderClient.connect(
            "127.0.0.1", runtime.rewarder_port, runtime.password
        ) as client:
            loop = asyncio.get_running_loop()

            def page() -> dict[str, Any]:
                assert client.last_observation is not None
                return client.last_observation.observation

            def run(coro: Any) -> Any:  # the loop helpers are sync; run them on this loop
                return asyncio.run_coroutine_threadsafe(coro, loop).result()

            async def reset(seed: int) -> dict[str, Any]:
                await client.reset(seed=seed)
                return page()

            async def solve(obs: dict[str, Any]) -> float:
                x, y = click_target(obs["utterance"], obs["elements"])
                return (await client.step({**noop, "action_type": 1, "coords": [x, y]})).reward

            async def idle(obs: dict[str, Any]) -> dict[str, Any]:
                await client.step(noop)
                return obs

            return await loop.run_in_executor(
                None,
                lambda: _web_loop(
                    seconds,
                    reset=lambda seed: run(reset(seed)),
                    solve=lambda obs: run(solve(obs)),
                    idle=lambda obs: run(idle(obs)),
                ),
            )

    return asyncio.run(main())


def bench_web_realtime(runtime: LocalRuntime, seconds: float) -> dict[str, Any]:
    """(g) real time: clicks as VNC pointer events; an episode ends when the page says so."""
    from gymlab.client.vnc import VNCConnection
    from gymlab.rewarder import protocol as p
    from gymlab.rewarder.client import RewarderClient

    async def main() -> dict[str, Any]:
        ends: asyncio.Queue[p.Reward] = asyncio.Queue()
        async with (
            await RewarderClient.connect(
                "127.0.0.1", runtime.rewarder_port, runtime.password
            ) as client,
            await VNCConnection.connect("127.0.0.1", runtime.vnc_port, runtime.password) as vnc,
        ):
            client.add_listener(
                lambda e: ends.put_nowait(e) if isinstance(e, p.Reward) and e.terminated else None
            )
            await client.reset(seed=0)
            episodes = wins = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                obs = client.last_observation
                assert obs is not None
                x, y = (int(v) for v in click_target(
                    obs.observation["utterance"], obs.observation["elements"]
                ))  # fmt: skip
                for mask in (0, 1, 0):
                    await vnc.pointer_event(x, y, mask)
                end = await asyncio.wait_for(ends.get(), 15)
                episodes, wins = episodes + 1, wins + (end.reward > 0)
                while True:  # the runtime begins the next episode itself
                    latest = client.last_observation
                    if latest is not None and (latest.episode_id or 0) > (end.episode_id or 0):
                        break
                    await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - start
        return {"episodes_per_s": episodes / elapsed, "success": wins / max(1, episodes)}

    return asyncio.run(main())


def bench_web(seconds: float, fps: float) -> dict[str, Any]:
    """(g) all three loops; ``{"skipped": reason}`` where the parts are missing."""
    missing = web_task_missing()
    if missing is not None:
        return {"skipped": missing}
    out: dict[str, Any] = {"inprocess": bench_web_inprocess(seconds)}
    with local_runtimes(1, WEB_TASK, mode=Mode.LOCKSTEP, ready_timeout=READY_TIMEOUT) as (rt,):
        out["lockstep"] = bench_web_lockstep(rt, seconds)
    with local_runtimes(1, WEB_TASK, mode=Mode.REALTIME, fps=fps, ready_timeout=READY_TIMEOUT) as (
        rt,
    ):
        out["realtime"] = bench_web_realtime(rt, seconds)
    return out


CAPACITY_SIZES = ((600, 400), (1024, 768))
CAPACITY_FPS = 60.0


async def record_stream(width: int, height: int, seconds: float) -> tuple[list[bytes], int, str]:
    """Server bytes of a VNC client streaming a display that shows CartPole at 60 fps.

    Returns the chunks as read, the number of framebuffer updates in them after the first
    (full) one, and the password the recording authenticated with (a replay answers the
    recorded challenge with it).
    """
    import secrets
    import tempfile

    import gymnasium

    from gymlab.procfs import free_port
    from gymlab.rfb.client import RFBClient, State
    from gymlab.rfb.events import FramebufferUpdateComplete
    from gymlab.runtime.xvnc import XvncOptions, XvncProcess, vnc_password_file_bytes
    from gymlab.runtime.xwindow import FrameWindow

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gymnasium.make(ENV_ID, render_mode="rgb_array")
    env.reset(seed=0)
    rows = np.arange(height) * 400 // height  # nearest-neighbour scaling of 600x400 frames
    cols = np.arange(width) * 600 // width
    password = secrets.token_hex(4)
    with tempfile.TemporaryDirectory() as tmp:
        pw_file = Path(tmp) / "passwd"
        pw_file.write_bytes(vnc_password_file_bytes(password))
        port = free_port()
        xvnc = XvncProcess(XvncOptions(width, height, port, pw_file))
        await xvnc.start()
        window = FrameWindow(xvnc.display_name, width, height)
        chunks: list[bytes] = []
        updates = 0
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            rfb = RFBClient(password, encodings=("zrle", "copyrect", "raw"))

            async def draw() -> None:
                while True:
                    _, _, term, trunc, _ = env.step(env.action_space.sample())
                    if term or trunc:
                        env.reset()
                    frame = np.asarray(env.render())
                    window.draw(frame[rows][:, cols])
                    await asyncio.sleep(1 / CAPACITY_FPS)

            def on(events: list[Any]) -> None:
                nonlocal updates
                for event in events:
                    if isinstance(event, FramebufferUpdateComplete):
                        updates += 1
                        rfb.request_update(incremental=True)

            drawing = asyncio.create_task(draw())
            loop = asyncio.get_running_loop()
            started: float | None = None
            while started is None or loop.time() - started < seconds:
                data = await asyncio.wait_for(reader.read(1 << 16), 10)
                if not data:
                    raise RuntimeError("Xvnc closed the recording connection")
                chunks.append(data)
                on(rfb.receive_data(data))
                while rfb.pending:
                    on(rfb.resume())
                if started is None and rfb.state is State.READY:
                    rfb.request_update(incremental=False)
                    started = loop.time()
                writer.write(rfb.data_to_send())
            drawing.cancel()
            writer.close()
        finally:
            window.close()
            await xvnc.stop()
            env.close()
    return chunks, updates, password


def replay_decode(chunks: list[bytes], password: str, copies: int) -> float:
    """Seconds to decode ``copies`` replays of a recorded stream, one fresh client each."""
    from gymlab.rfb.client import RFBClient

    start = time.perf_counter()
    for _ in range(copies):
        rfb = RFBClient(password, encodings=("zrle", "copyrect", "raw"))
        for data in chunks:
            rfb.receive_data(data)
            while rfb.pending:
                rfb.resume()
            rfb.data_to_send()
    return time.perf_counter() - start


def bench_capacity(seconds: float) -> dict[str, Any]:
    """(h) remotes at 60 fps one process can decode, per frame size."""
    out: dict[str, Any] = {}
    for width, height in CAPACITY_SIZES:
        chunks, updates, password = asyncio.run(record_stream(width, height, seconds))
        decode = replay_decode(chunks, password, copies=3)
        per_second = 3 * updates / decode
        out[f"{width}x{height}"] = {
            "updates": updates,
            "bytes": sum(map(len, chunks)),
            "decoded_updates_per_s": per_second,
            "remotes_at_60fps": per_second / CAPACITY_FPS,
        }
    return out


class LagProbe:
    """Observation and reward lag in real-time mode, measured without trusting the client.

    * The runtime's draw times: an *observer* connection to each rewarder (a second
      client, which receives the same pushes) records every ``v0.env.reward``'s ``frame``
      and ``sent_at`` header -- the runtime stamps it right after the frame is in Xvnc's
      framebuffer -- and the ``v0.env.observation`` (CartPole's state) that follows it.
    * The client side: the vector env's ``on_update`` hook records the decode time and a
      CRC of every VNC update's framebuffer; ``on_reward`` records when the controlling
      connection got each reward.
    * Afterwards each observed state is rendered with a local CartPole and hashed; an update
      whose CRC equals frame N's image was drawn at N's ``sent_at`` (the earliest of a run of
      identical frames: Xvnc sends nothing for an unchanged frame). Observation lag = decode
      time - draw time; reward lag = controller's receive time - ``sent_at``. Updates that
      match no frame (e.g. caught mid-draw) are counted, not guessed.
    """

    def __init__(self, n: int) -> None:
        self.updates: list[list[tuple[float, int]]] = [[] for _ in range(n)]
        self.rewards_seen: list[dict[int, float]] = [{} for _ in range(n)]
        self.frames: list[list[tuple[int, float, Any]]] = [[] for _ in range(n)]
        self._pending: list[tuple[int, float] | None] = [None] * n
        self._clients: list[Any] = []

    def on_update(self, index: int, when: float, framebuffer: np.ndarray) -> None:
        """``RemoteVectorEnv`` hook: one decoded update."""
        self.updates[index].append((when, zlib.crc32(np.ascontiguousarray(framebuffer).tobytes())))

    def on_reward(self, index: int, when: float, event: Any) -> None:
        """``RemoteVectorEnv`` hook: the controller received a reward."""
        if event.frame is not None:
            self.rewards_seen[index][event.frame] = when

    async def observe(self, index: int, host: str, port: int, password: str) -> None:
        """Observer connection: record (frame, sent_at, state) until closed."""
        from gymlab.rewarder import protocol as p
        from gymlab.rewarder.client import RewarderClient

        def record(event: p.Event) -> None:
            if isinstance(event, p.Reward) and event.frame is not None:
                assert event.sent_at is not None  # the runtime always stamps it
                self._pending[index] = (event.frame, event.sent_at)
            elif isinstance(event, p.Observation) and self._pending[index] is not None:
                frame, sent_at = self._pending[index]  # type: ignore[misc]
                self.frames[index].append((frame, sent_at, event.observation))
                self._pending[index] = None

        client = await RewarderClient.connect(host, port, password, observer=True)
        client.add_listener(record)
        self._clients.append(client)

    async def close(self) -> None:
        """Close the observer connections (a runtime waits for its clients when it stops)."""
        await asyncio.gather(*(c.close() for c in self._clients), return_exceptions=True)

    def analyse(self) -> dict[str, Any]:
        """Match updates to frames; returns lag percentiles and match counts."""
        import gymnasium

        env = gymnasium.make(ENV_ID, render_mode="rgb_array")
        env.reset(seed=0)
        obs_lags: list[float] = []
        reward_lags: list[float] = []
        matched = total = 0
        changed_frames: list[int] = []
        for index, frames in enumerate(self.frames):
            crc_of: dict[int, int] = {}
            sent: dict[int, float] = {}
            by_crc: dict[int, list[int]] = {}
            for frame, sent_at, state in frames:
                env.unwrapped.state = np.asarray(state, dtype=np.float64)  # type: ignore[attr-defined]
                crc = zlib.crc32(np.ascontiguousarray(env.render()).tobytes())
                crc_of[frame], sent[frame] = crc, sent_at
                by_crc.setdefault(crc, []).append(frame)
            # a tick whose picture equals the previous one draws nothing: Xvnc has no update
            changed_frames.append(sum(crc_of.get(f - 1) != crc for f, crc in crc_of.items()))
            for when, crc in self.updates[index]:
                total += 1
                candidates = [f for f in by_crc.get(crc, []) if sent[f] <= when]
                if not candidates:
                    continue
                frame = max(candidates)
                while crc_of.get(frame - 1) == crc:
                    frame -= 1
                matched += 1
                obs_lags.append(when - sent[frame])
            for frame, when in self.rewards_seen[index].items():
                if frame in sent:
                    reward_lags.append(when - sent[frame])
        env.close()

        def pct(values: list[float], q: float) -> float | None:
            return float(np.percentile(values, q)) * 1000 if values else None

        return {
            "obs_lag_ms_p50": pct(obs_lags, 50),
            "obs_lag_ms_p95": pct(obs_lags, 95),
            "updates_matched": matched,
            "updates_total": total,
            "changed_frames": changed_frames,
            "reward_lag_ms_p50": pct(reward_lags, 50),
            "reward_lag_ms_p95": pct(reward_lags, 95),
        }


def bench_realtime(
    runtimes: list[LocalRuntime], password: str, seconds: float, fps: float
) -> dict[str, Any]:
    """(d) real-time remotes: rates per remote and lags."""
    from gymlab.client.loop import LoopThread
    from gymlab.client.vector import RemoteVectorEnv

    probe = LagProbe(len(runtimes))
    observers = LoopThread("gymlab-bench-observers")
    tasks = [
        asyncio.run_coroutine_threadsafe(
            probe.observe(i, "127.0.0.1", rt.rewarder_port, password), observers.loop
        )
        for i, rt in enumerate(runtimes)
    ]
    env = RemoteVectorEnv(
        _remotes(runtimes),
        password,
        mode=Mode.REALTIME,
        fps=fps,
        on_update=probe.on_update,
        on_reward=probe.on_reward,
    )
    try:
        env.reset(seed=0)
        for i in range(len(runtimes)):
            probe.updates[i].clear()
            probe.frames[i].clear()
        env.action_space.seed(0)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            env.step(env.action_space.sample())
            steps += 1
        elapsed = time.perf_counter() - start
        # what arrives after this (while closing) is outside the measured window
        cut = [(len(u), len(f)) for u, f in zip(probe.updates, probe.frames, strict=True)]
        runtime_rss = max(rt.rss() for rt in runtimes)
    finally:
        env.close()
        with contextlib.suppress(Exception):
            observers.run(probe.close(), 10)
        for task in tasks:
            task.cancel()
        observers.stop()
    for (n_updates, n_frames), updates, frames in zip(
        cut, probe.updates, probe.frames, strict=True
    ):
        del updates[n_updates:], frames[n_frames:]
    result = probe.analyse()
    result.update(
        {
            "agent_steps_per_s": steps / elapsed,
            "runtime_fps": [len(f) / elapsed for f in probe.frames],
            "client_updates_per_s": [len(u) / elapsed for u in probe.updates],
            "changed_frames_per_s": [n / elapsed for n in result["changed_frames"]],
            "runtime_rss": runtime_rss,
        }
    )
    return result


# ----- report -------------------------------------------------------------------------------


@dataclass
class Row:
    """One table row."""

    key: str
    metric: str
    value: str


def _mb(value: float) -> str:
    return f"{value / 2**20:.0f} MB"


def build_rows(r: dict[str, Any]) -> list[Row]:
    """The printed table from the results dict."""
    a, b, c, d, e = r["a"], r["b"], r["c"], r["d"], r["e"]
    ratio_b = b["steps_per_s"] / a["steps_per_s"]
    ratio_c = c["steps_per_s"] / b["steps_per_s"]
    p95 = d["obs_lag_ms_p95"]
    rt_rss = max(c["runtime_rss"], d["runtime_rss"])

    def ms(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    def rates(values: list[float]) -> str:
        return " ".join(f"{v:.1f}" for v in values)

    return [
        Row("a", "in-process CartPole + render()", f"{a['steps_per_s']:.0f} steps/s"),
        Row(
            "b",
            "1 remote, lockstep, pixels over VNC",
            f"{b['steps_per_s']:.0f} steps/s = {ratio_b:.2f}x (a)",
        ),
        Row(
            "c",
            "4 remotes, lockstep, RemoteVectorEnv",
            f"{c['steps_per_s']:.0f} steps/s = {ratio_c:.2f}x (b)",
        ),
        *async_rows(r),
        *profile_rows(r),
        Row("d", "4 remotes realtime: runtime ticks/s", rates(d["runtime_fps"])),
        Row("d", "  frames that changed the picture /s", rates(d["changed_frames_per_s"])),
        Row("d", "  client VNC updates/s per remote", rates(d["client_updates_per_s"])),
        Row("d", "  agent steps/s (one tick per step)", f"{d['agent_steps_per_s']:.1f}"),
        Row(
            "d",
            "  observation lag p50 / p95 (ms)",
            f"{ms(d['obs_lag_ms_p50'])} / {ms(p95)} "
            f"({d['updates_matched']}/{d['updates_total']} updates matched)",
        ),
        Row(
            "d",
            "  reward lag p50 / p95 (ms)",
            f"{ms(d['reward_lag_ms_p50'])} / {ms(d['reward_lag_ms_p95'])}",
        ),
        Row("e", "bytes per lockstep step, ZRLE", f"{e['zrle']:.0f} B"),
        Row("e", "bytes per lockstep step, Raw", f"{e['raw']:.0f} B ({e['raw'] / e['zrle']:.0f}x)"),
        *encoding_rows(e),
        Row("f", "RSS of one runtime (process + Xvnc)", _mb(rt_rss)),
        Row("f", "client RSS growth per remote", _mb(c["client_rss_per_remote"])),
        *capacity_rows(r.get("h")),
        *web_rows(r.get("g")),
    ]


def encoding_rows(e: dict[str, Any]) -> list[Row]:
    """(e) what each encoding costs a lockstep step: its rate and the CPU of every process."""
    rows = []
    for encoding, label in (("zrle", "ZRLE"), ("raw", "Raw")):
        cpu = e[f"{encoding}_cpu_ms_per_step"]
        rows.append(
            Row(
                "e",
                f"  {label}: steps/s; CPU ms per step runtime / Xvnc / client",
                f"{e[f'{encoding}_steps_per_s']:.0f}; "
                f"{cpu['runtime']:.2f} / {cpu['xvnc']:.2f} / {cpu['client']:.2f}",
            )
        )
    return rows


def async_rows(r: dict[str, Any]) -> list[Row]:
    """The AsyncVectorEnv baseline and the 4 remotes as a ratio of it."""
    if "c_async" not in r:
        return []
    base, remotes = r["c_async"]["steps_per_s"], r["c"]["steps_per_s"]
    return [
        Row("c", "Gymnasium AsyncVectorEnv(4), pixel observations", f"{base:.0f} steps/s"),
        Row("c", "  4 lockstep remotes as a ratio of it", f"{remotes / base:.2f}x"),
    ]


def profile_rows(r: dict[str, Any]) -> list[Row]:
    """Where a lockstep step's time goes: CPU per process per env step, next to the wall time."""
    a, rows = r["a"], []
    if "step_ms" in a:
        split = f"{a['step_ms']:.2f} / {a['render_ms']:.2f} ms"
        rows.append(Row("p", "in-process: env step / render()", split))
    for key, label in (("b", "1 remote"), ("c", "4 remotes")):
        cpu = r[key].get("cpu_ms_per_step")
        if cpu is None:
            continue
        wall = 1000 / r[key]["steps_per_s"]
        rows.append(
            Row(
                "p",
                f"{label}, CPU ms per env step: runtime / Xvnc / client",
                f"{cpu['runtime']:.2f} / {cpu['xvnc']:.2f} / {cpu['client']:.2f} "
                f"(wall {wall:.2f} ms per env step)",
            )
        )
    return rows


def capacity_rows(h: dict[str, Any] | None) -> list[Row]:
    """Section (h): decode capacity of one client process per frame size."""
    if h is None:
        return []
    return [
        Row(
            "h",
            f"client decode capacity, {size} CartPole stream",
            f"{v['decoded_updates_per_s']:.0f} updates/s = {v['remotes_at_60fps']:.1f} remotes "
            f"at 60 fps ({v['bytes'] / max(1, v['updates']):.0f} B/update)",
        )
        for size, v in h.items()
    ]


def web_rows(g: dict[str, Any] | None) -> list[Row]:
    """Section (g)'s rows: the browser runtime's loops as ratios of MiniWoB++'s own."""
    if g is None:
        return []
    if "skipped" in g:
        return [Row("g", f"{WEB_TASK}: skipped", g["skipped"])]
    base = g["inprocess"]

    def against(result: dict[str, Any], key: str) -> str:
        ratio = result[key] / base[key] if base[key] else float("nan")
        return f"{result[key]:.1f}/s = {ratio:.2f}x in-process"

    def ok(result: dict[str, Any]) -> str:
        return f", {result['success']:.0%} solved"

    return [
        Row("g", f"{WEB_TASK}, MiniWoB++ in-process (Selenium)",
            f"{base['episodes_per_s']:.1f} episodes/s{ok(base)}, "
            f"{base['steps_per_s']:.1f} no-op steps/s"),
        Row("g", "  browser runtime, lockstep: episodes",
            against(g["lockstep"], "episodes_per_s") + ok(g["lockstep"])),
        Row("g", "  browser runtime, lockstep: no-op steps", against(g["lockstep"], "steps_per_s")),
        Row("g", "  browser runtime, real time (VNC clicks): episodes",
            against(g["realtime"], "episodes_per_s") + ok(g["realtime"])),
    ]  # fmt: skip


def format_table(rows: list[Row]) -> str:
    """Rows as a fixed-width text table."""
    head = Row("", "measurement", "result")
    widths = [max(len(getattr(x, f)) for x in [head, *rows]) for f in Row.__dataclass_fields__]
    lines = []
    for row in [head, *rows]:
        cells = [
            getattr(row, f).ljust(w) for f, w in zip(Row.__dataclass_fields__, widths, strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def run_bench(
    quick: bool = False, seconds: float | None = None, fps: float = DEFAULT_FPS
) -> dict[str, Any]:
    """Run every section; returns the results dict (also what ``--json`` writes)."""
    span = seconds if seconds is not None else (2.0 if quick else 10.0)
    results: dict[str, Any] = {
        "quick": quick,
        "seconds_per_section": span,
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
    }
    start = time.monotonic()
    print(f"(a) in-process baseline, {span:.0f} s ...", file=sys.stderr)
    results["a"] = bench_inprocess(span)
    with local_runtimes(4, ENV_ID, mode=Mode.LOCKSTEP, ready_timeout=READY_TIMEOUT) as runtimes:
        password = runtimes[0].password
        print(f"(b) 1 lockstep remote, {span:.0f} s ...", file=sys.stderr)
        results["b"] = bench_lockstep(runtimes[:1], password, span)
        print(f"(c) 4 lockstep remotes, {span:.0f} s ...", file=sys.stderr)
        results["c"] = bench_lockstep(runtimes, password, span)
        print(f"(c) AsyncVectorEnv(4) with pixel observations, {span:.0f} s ...", file=sys.stderr)
        results["c_async"] = bench_async_vector(span)
        print("(e) bytes per frame per encoding ...", file=sys.stderr)
        results["e"] = bench_bytes(runtimes[0], password, max(1.0, span / 2))
    with local_runtimes(
        4, ENV_ID, mode=Mode.REALTIME, fps=fps, ready_timeout=READY_TIMEOUT
    ) as runtimes:
        password = runtimes[0].password
        print(f"(d) 4 realtime remotes at {fps:g} fps, {span:.0f} s ...", file=sys.stderr)
        results["d"] = bench_realtime(runtimes, password, span, fps)
    print(f"(h) client decode capacity, {len(CAPACITY_SIZES)} streams of {span:.0f} s ...",
          file=sys.stderr)  # fmt: skip
    results["h"] = bench_capacity(span)
    print(f"(g) web task {WEB_TASK}, 3 loops of {span:.0f} s ...", file=sys.stderr)
    results["g"] = bench_web(span, fps)
    results["loadavg_after"] = os.getloadavg()
    results["wall_seconds"] = time.monotonic() - start
    return results


# ----- CLI ----------------------------------------------------------------------------------


def add_parser(subparsers: Any) -> None:
    """Register ``gymlab bench``."""
    parser = subparsers.add_parser(
        "bench",
        help="benchmark remote envs against in-process Gymnasium",
        description=__doc__.split("\n\n", maxsplit=1)[0] if __doc__ else None,
    )
    parser.add_argument("--quick", action="store_true", help="short sections (< 60 s in all)")
    parser.add_argument("--seconds", type=float, help="seconds per section (default 10, quick 2)")
    parser.add_argument(
        "--fps", type=float, default=DEFAULT_FPS, help=f"real-time fps (default {DEFAULT_FPS:g})"
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.set_defaults(func=bench_command)


def bench_command(args: argparse.Namespace) -> int:
    """Entry point of ``gymlab bench``."""
    if args.seconds is not None and args.seconds <= 0:
        print("gymlab bench: error: --seconds must be positive", file=sys.stderr)
        return 2
    try:
        results = run_bench(quick=args.quick, seconds=args.seconds, fps=args.fps)
    except RuntimeError as exc:
        print(f"gymlab bench: error: {exc}", file=sys.stderr)
        return 1
    rows = build_rows(results)
    load = results["loadavg_before"]
    print(f"gymlab bench ({ENV_ID}, {results['cpus']} CPUs, load average {load[0]:.1f})")
    print(format_table(rows))
    if args.json:
        results["rows"] = [row.__dict__ for row in rows]
        Path(args.json).write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0
