"""The runtime: Xvnc + a Gymnasium env drawn into it + the rewarder, in one process tree.

Everything runs on one asyncio loop in one thread: env steps, X drawing
and X input are quick for the environments this serves, and a single
thread keeps the ordering simple (a reply is only queued after its frame is
in Xvnc's framebuffer, and pushes leave in the order they were made).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import shutil
import signal
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gymlab.rewarder import protocol as p
from gymlab.rewarder.server import (
    RequestRejected,
    ResetOutcome,
    RewarderServer,
    StepOutcome,
)
from gymlab.rewarder.spaces import action_from_json, space_to_json
from gymlab.runtime.keymaps import KeyMap, UnknownKeyMap, keymap_for
from gymlab.runtime.xvnc import (
    XvncError,
    XvncOptions,
    XvncProcess,
    vnc_password_file_bytes,
    xauthority_bytes,
)

if TYPE_CHECKING:
    import gymnasium
    import numpy as np

    from gymlab.runtime.xwindow import FrameWindow

log = logging.getLogger("gymlab.runtime")

Mode = Literal["realtime", "lockstep"]
#: Observations up to this many numbers are pushed as v0.env.observation.
MAX_PUSHED_OBSERVATION_SIZE = 1024


class ConfigError(ValueError):
    """Bad runtime configuration (unknown env id, bad fps, ...)."""


@dataclass(frozen=True)
class RuntimeConfig:
    """Everything a runtime needs; ``vnc_port``/``rewarder_port`` 0 is not allowed for VNC."""

    env_id: str
    password: str
    vnc_port: int = 5900
    rewarder_port: int = 15900
    mode: Mode = "realtime"
    fps: float = 60.0
    bind: str = "127.0.0.1"
    display: int | None = None
    xvnc_executable: str = "Xvnc"

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values that cannot work."""
        if self.mode not in ("realtime", "lockstep"):
            raise ConfigError(f"unknown mode {self.mode!r} (realtime or lockstep)")
        if not (math.isfinite(self.fps) and 0 < self.fps <= 1000):
            raise ConfigError(f"fps must be in (0, 1000], got {self.fps}")
        if not self.password:
            raise ConfigError("the password is empty")
        for name in ("vnc_port", "rewarder_port"):
            port = getattr(self, name)
            if not 0 < port < 65536:
                raise ConfigError(f"{name} must be in 1..65535, got {port}")
        if self.display is not None and not 0 <= self.display < 65536:
            raise ConfigError(f"display must be in 0..65535, got {self.display}")
        check_env_id(self.env_id)
        if self.mode == "realtime":
            try:
                keymap_for(self.env_id)
            except UnknownKeyMap:
                raise ConfigError(
                    f"no key map for {self.env_id}: real-time mode needs one (use lockstep)"
                ) from None


def check_env_id(env_id: str) -> None:
    """Raise :class:`ConfigError` unless Gymnasium knows ``env_id``."""
    import gymnasium

    if env_id not in gymnasium.registry:
        raise ConfigError(f"unknown environment id {env_id!r}")


def _make_env(env_id: str) -> gymnasium.Env[Any, Any]:
    import gymnasium

    # rgb_array rendering needs no window system; without this SDL probes for one.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    return gymnasium.make(env_id, render_mode="rgb_array")


def _render(env: gymnasium.Env[Any, Any]) -> np.ndarray:
    import numpy as np

    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        raise RuntimeError("env.render() did not return an (H, W, 3) array")
    return np.ascontiguousarray(frame, dtype=np.uint8)


def _jsonable_info(info: dict[str, Any]) -> dict[str, Any]:
    """Keep the info entries that have a JSON form (Gymnasium infos may hold anything)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        with contextlib.suppress(TypeError):
            out[str(key)] = p.to_jsonable(value)
    return out


class EnvHost:
    """The env, its display window and its clocks; the rewarder's backend."""

    def __init__(
        self,
        config: RuntimeConfig,
        env: gymnasium.Env[Any, Any],
        first_frame: np.ndarray,
        window: FrameWindow,
    ) -> None:
        self.config = config
        self.env_id = config.env_id
        self.env = env
        self.window = window
        self.fps = config.fps
        self.keymap: KeyMap | None = self._keymap(config.env_id)
        self.frame = 0
        self.episode = p.EpisodeCounter()
        self.server: RewarderServer | None = None
        self._tick = 0
        self.episode.begin_reset()
        self._show(first_frame)
        self.episode.finish_reset()

    @staticmethod
    def _keymap(env_id: str) -> KeyMap | None:
        try:
            return keymap_for(env_id)
        except UnknownKeyMap:
            return None

    # RewarderBackend

    @property
    def episode_id(self) -> int:
        """Current episode id."""
        return self.episode.episode_id

    def describe_body(self) -> dict[str, Any]:
        """Describe body with gymlab's action_space / frame_shape / mode extras."""
        return {
            "env_id": self.env_id,
            "env_state": self.episode.state,
            "fps": self.fps,
            "action_space": space_to_json(self.env.action_space),
            "frame_shape": [self.window.height, self.window.width, 3],
            "mode": self.config.mode,
            "frame": self.frame,
        }

    async def reset(self, request: p.ResetRequest) -> ResetOutcome:
        """Client reset; the reply goes out after the reset frame is drawn."""
        if request.fps is not None:
            self.fps = request.fps
        self._reset(
            env_id=request.env_id, seed=request.seed, hint=request.episode_id_hint, requested=True
        )
        return ResetOutcome(episode_id=self.episode_id, frame=self.frame)

    async def step(self, request: p.StepRequest) -> StepOutcome:
        """Lockstep: one step per request."""
        try:
            action = action_from_json(self.env.action_space, request.action)
        except ValueError as exc:
            raise RequestRejected(str(exc)) from None
        return self._advance(action, request.action)

    # internals

    def _show(self, frame: np.ndarray) -> None:
        self.window.draw(frame)
        self.frame += 1

    def _push_describe(self) -> None:
        if self.server is not None:
            self.server.push_describe()

    def _switch_env(self, env_id: str, seed: int | None) -> np.ndarray:
        """Build ``env_id``, reset it, and adopt it if its frames fit the display."""
        try:
            check_env_id(env_id)
        except ConfigError as exc:
            raise RequestRejected(str(exc)) from None
        keymap = self._keymap(env_id)
        if self.config.mode == "realtime" and keymap is None:
            raise RequestRejected(f"no key map for {env_id} (real-time mode needs one)")
        env = _make_env(env_id)
        env.reset(seed=seed)
        frame = _render(env)
        if frame.shape[:2] != (self.window.height, self.window.width):
            env.close()
            h, w = frame.shape[:2]
            raise RequestRejected(
                f"{env_id} renders {w}x{h}, this display is {self.window.width}x"
                f"{self.window.height}; start a runtime for it instead"
            )
        self.env.close()
        self.env, self.env_id, self.keymap = env, env_id, keymap
        log.info("switched environment to %s", env_id)
        return frame

    def _reset(
        self,
        env_id: str | None = None,
        seed: int | None = None,
        hint: int | None = None,
        *,
        requested: bool = False,
    ) -> None:
        frame = None
        if env_id is not None and env_id != self.env_id:
            frame = self._switch_env(env_id, seed)
        self.episode.begin_reset(hint)
        self._push_describe()
        if frame is None:
            self.env.reset(seed=seed)
            frame = _render(self.env)
        self._show(frame)
        self.episode.finish_reset()
        self._push_describe()
        # Auto-resets happen many times a second in real time: keep them out of INFO.
        level = logging.INFO if requested else logging.DEBUG
        log.log(level, "episode %d started (frame %d)", self.episode_id, self.frame)
        if env_id is not None and self.server is not None:
            self.server.push_text(f"environment is {self.env_id}")

    def _advance(self, action: Any, action_json: Any) -> StepOutcome:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._show(_render(self.env))
        old_episode, step_frame = self.episode_id, self.frame
        info = _jsonable_info(info)
        info["action"] = action_json
        if self.server is not None:
            self.server.push_reward(
                reward=float(reward),
                terminated=bool(terminated),
                truncated=bool(truncated),
                info=info,
                frame=step_frame,
                episode_id=old_episode,
            )
            if getattr(obs, "size", MAX_PUSHED_OBSERVATION_SIZE + 1) <= MAX_PUSHED_OBSERVATION_SIZE:
                self.server.push_observation(obs, old_episode)
        if terminated or truncated:
            # Auto-reset: the observation (frame on screen) belongs to the new episode.
            info = {**info, "terminal_frame": step_frame, "terminal_episode_id": old_episode}
            self._reset()
        return StepOutcome(
            frame=self.frame,
            reward=float(reward),
            terminated=bool(terminated),
            truncated=bool(truncated),
            info=info,
            episode_id=self.episode_id,
        )

    def tick(self) -> None:
        """Real-time: one step with the action of the keys held now."""
        assert self.keymap is not None
        self.window.poll_events()
        action_json = self.keymap.action_for(
            self.window.held_keys, self.window.pointer, width=self.window.width, tick=self._tick
        )
        self._tick += 1
        self._advance(action_from_json(self.env.action_space, action_json), action_json)

    async def run_realtime(self) -> None:
        """Tick at ``fps`` until cancelled; a late tick moves the schedule instead of bursting."""
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            self.tick()
            period = 1.0 / self.fps
            deadline += period
            delay = deadline - loop.time()
            if delay < -period:
                deadline = loop.time()
                delay = 0.0
            await asyncio.sleep(max(0.0, delay))


class Runtime:
    """One runtime: ``await Runtime(config).run()`` until :meth:`stop` (or Xvnc dies).

    ``run`` returns the process exit code: 0 after a requested stop, 1 when
    Xvnc or the X connection died.
    """

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.ready = asyncio.Event()
        self.display: int | None = None
        self.rewarder_port: int | None = None
        self.host: EnvHost | None = None
        self._stop = asyncio.Event()
        self._failure: str | None = None

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason  # logged once run() has seen whether Xvnc died
        self._stop.set()

    def _on_x_readable(self, window: FrameWindow, fd: int) -> None:
        try:
            window.poll_events()
        except Exception as exc:  # the X connection broke: Xvnc is gone or dying
            # python-xlib may have closed the socket already: use the fd we registered.
            asyncio.get_running_loop().remove_reader(fd)
            self._fail(f"lost the X connection ({type(exc).__name__})")

    def stop(self) -> None:
        """Ask ``run`` to shut down gracefully."""
        self._stop.set()

    async def run(self) -> int:
        """Start everything, serve until stopped, clean up; returns an exit code."""
        config = self.config
        config.validate()
        workdir = Path(tempfile.mkdtemp(prefix="gymlab-runtime-"))
        xvnc: XvncProcess | None = None
        window: FrameWindow | None = None
        server: RewarderServer | None = None
        tasks: list[asyncio.Task[Any]] = []
        x_fd: int | None = None
        env = _make_env(config.env_id)
        try:
            env.reset()
            first = _render(env)
            height, width = first.shape[:2]
            passwd = workdir / "vncpasswd"
            passwd.touch(mode=0o600)
            passwd.write_bytes(vnc_password_file_bytes(config.password))
            xauth = workdir / "Xauthority"
            xauth.touch(mode=0o600)
            xauth.write_bytes(xauthority_bytes(secrets.token_bytes(16)))
            if len(config.password) > 8:
                log.warning("VNC uses only the first 8 characters of the password")
            xvnc = XvncProcess(
                XvncOptions(
                    width=width,
                    height=height,
                    vnc_port=config.vnc_port,
                    password_file=passwd,
                    bind=config.bind,
                    display=config.display,
                    executable=config.xvnc_executable,
                    xauthority=xauth,
                )
            )
            await xvnc.start()
            self.display = xvnc.display
            from gymlab.runtime.xwindow import FrameWindow

            window = FrameWindow(xvnc.display_name, width, height, xauth)
            host = self.host = EnvHost(config, env, first, window)
            server = RewarderServer(
                host,
                password=config.password,
                host=config.bind,
                port=config.rewarder_port,
                lockstep=config.mode == "lockstep",
            )
            await server.start()
            host.server = server
            self.rewarder_port = server.port
            loop = asyncio.get_running_loop()
            x_fd = window.fileno()
            loop.add_reader(x_fd, self._on_x_readable, window, x_fd)
            log.info(
                "runtime ready: %s (%s, %g fps) on display :%s, VNC %s:%d, rewarder %s:%d",
                config.env_id,
                config.mode,
                config.fps,
                xvnc.display,
                config.bind,
                config.vnc_port,
                config.bind,
                server.port,
            )
            self.ready.set()
            xvnc_exit = asyncio.create_task(xvnc.wait())
            stop = asyncio.create_task(self._stop.wait())
            tasks = [xvnc_exit, stop]
            if config.mode == "realtime":
                tasks.append(asyncio.create_task(host.run_realtime()))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task not in (stop, xvnc_exit) and task.exception() is not None:
                    self._fail(f"runtime failed: {task.exception()!r}")
            if xvnc_exit in done or self._failure is not None:
                # A dead Xvnc is the usual cause of X errors: give it a moment to show.
                await asyncio.wait([xvnc_exit], timeout=1.0)
                if xvnc_exit.done():
                    log.error("Xvnc exited unexpectedly (code %s); stopping", xvnc_exit.result())
                else:
                    log.error("%s; stopping", self._failure)
                return 1
            log.info("stopping")
            return 0
        except XvncError as exc:
            log.error("%s", exc)
            return 1
        finally:
            for task in tasks:
                task.cancel()
            if x_fd is not None:
                asyncio.get_running_loop().remove_reader(x_fd)
            if server is not None:
                await server.close("runtime stopping")
            if window is not None:
                window.close()
            if xvnc is not None:
                await xvnc.stop()
            env.close()
            if self.host is not None and self.host.env is not env:
                self.host.env.close()
            shutil.rmtree(workdir, ignore_errors=True)


def run_runtime(config: RuntimeConfig) -> int:
    """Run a runtime in this process until SIGTERM/SIGINT; returns the exit code."""

    async def main() -> int:
        runtime = Runtime(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stop)
        return await runtime.run()

    return asyncio.run(main())


def with_password_file(config: RuntimeConfig, path: str | os.PathLike[str]) -> RuntimeConfig:
    """``config`` with the password read from ``path`` (first line, whitespace stripped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read password file {path}: {exc.strerror}") from None
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise ConfigError(f"password file {path} is empty")
    return replace(config, password=password)
