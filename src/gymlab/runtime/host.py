"""The env host: a Gymnasium env drawn into the runtime's X display, and its clocks.

:class:`EnvHost` is the rewarder's backend. It owns the env, the window it is
drawn into and the episode counter; the process around it (Xvnc, the rewarder
server, signals) lives in :mod:`gymlab.runtime.core`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from gymlab.keymap import KeyMap, KeyMapError, UnknownKeyMap
from gymlab.rewarder import protocol as p
from gymlab.rewarder.server import RequestRejected, RewarderServer
from gymlab.rewarder.spaces import UnsupportedSpace, action_from_json, space_to_json
from gymlab.runtime.envs import ConfigError, EnvCatalog, make_env
from gymlab.runtime.keymaps import env_keymap, load_keymap_file

if TYPE_CHECKING:
    import gymnasium
    import numpy as np

    from gymlab.runtime.core import RuntimeConfig
    from gymlab.runtime.xwindow import FrameWindow

log = logging.getLogger("gymlab.runtime")
T = TypeVar("T")

#: Observations up to this many numbers are pushed as v0.env.observation.
MAX_PUSHED_OBSERVATION_SIZE = 1024


def resolve_keymap(
    config: RuntimeConfig, env_id: str, env: gymnasium.Env[Any, Any]
) -> KeyMap | None:
    """The user's key map file for the configured env, else a shipped or derived one.

    Raises :class:`ConfigError` for a bad key map file; None when no map fits.
    """
    if config.keymap_file and env_id == config.env_id:
        try:
            return load_keymap_file(config.keymap_file, env_id, env.action_space)
        except KeyMapError as exc:
            raise ConfigError(str(exc)) from None
    try:
        return env_keymap(env_id, env)
    except UnknownKeyMap:
        return None
    except KeyMapError as exc:  # a shipped map that does not fit this variant of the env
        log.warning("%s; serving it without a key map", exc)
        return None


def render(env: gymnasium.Env[Any, Any]) -> np.ndarray:
    import numpy as np

    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        raise RuntimeError("env.render() did not return an (H, W, 3) array")
    return np.ascontiguousarray(frame, dtype=np.uint8)


class Backend:
    """What every runtime backend shares: the clocks, the env thread, the lock, the server.

    The env's own work (``step``, ``reset``, ``render``, building a new env, driving a
    browser) runs on one worker thread, so a slow environment cannot stall pings and
    handshakes on the loop; drawing into X and every push stay on the loop, in order. One
    lock serialises the env's users (real-time ticks, client resets, lockstep steps).
    Subclasses give :meth:`describe`, :meth:`reset`, :meth:`step`, :meth:`tick`, :meth:`close`.
    """

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.mode = p.Mode(config.mode)
        self.env_id = config.env_id
        self.fps = config.fps
        self.frame = 0
        self.server: RewarderServer | None = None
        self._env_thread = ThreadPoolExecutor(1, thread_name_prefix="gymlab-env")
        self._env_lock = asyncio.Lock()
        self._clock_changed = asyncio.Event()

    async def start(self) -> None:
        """Called once the rewarder serves (its first pushes can go out)."""

    def close(self) -> None:
        """Stop the env thread."""
        self._env_thread.shutdown(wait=True, cancel_futures=True)

    async def _off_loop(self, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._env_thread, func, *args)

    @property
    def _server(self) -> RewarderServer:
        if self.server is None:
            raise RuntimeError("the env host serves no rewarder yet")
        return self.server

    def _take_fps(self, request: p.Reset) -> None:
        """A reset may change the real-time frame rate."""
        if request.fps is not None and request.fps != self.fps:
            self.fps = request.fps
            self._clock_changed.set()  # a sleeping real-time clock picks it up now

    async def tick(self) -> None:
        raise NotImplementedError

    async def run_realtime(self) -> None:
        """Tick at ``fps`` until cancelled.

        A late tick moves the schedule instead of bursting; a new ``fps`` (from a reset)
        wakes the clock at once and starts a new schedule.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            await self.tick()
            period = 1.0 / self.fps
            deadline += period
            delay = deadline - loop.time()
            if delay < -period:
                deadline, delay = loop.time(), 0.0
            self._clock_changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._clock_changed.wait(), max(0.0, delay))
            if self._clock_changed.is_set():
                deadline = loop.time()


class EnvHost(Backend):
    """A Gymnasium env drawn into the display window, with its key map for real time."""

    def __init__(
        self,
        config: RuntimeConfig,
        env: gymnasium.Env[Any, Any],
        first_frame: np.ndarray,
        window: FrameWindow,
        catalog: EnvCatalog,
        keymap: KeyMap | None,
    ) -> None:
        super().__init__(config)
        self.env = env
        self.window = window
        self.catalog = catalog
        self.keymap = keymap
        self._tick = 0
        #: the last episode ended on a step that asked the runtime not to reset
        self._ended = False
        self._show(first_frame)

    def close(self) -> None:
        """Stop the env thread and close the env."""
        super().close()
        self.env.close()

    # RewarderBackend

    def describe(self) -> p.Describe:
        """Describe with gymlab's action_space / frame_shape / mode extras."""
        return p.Describe(
            env_id=self.env_id,
            fps=self.fps,
            action_space=space_to_json(self.env.action_space),
            observation_space=self._observation_space,
            frame_shape=(self.window.height, self.window.width, 3),
            mode=self.mode,
            frame=self.frame,
            keys=self.keymap.to_json() if self.keymap else None,
        )

    async def reset(self, request: p.Reset) -> p.ResetReply:
        """Client reset; the reply goes out after the reset frame is drawn."""
        async with self._env_lock:
            self._take_fps(request)
            episode_id = await self._reset(
                env_id=request.env_id, seed=request.seed, hint=request.episode_id, requested=True
            )
        return p.ResetReply(episode_id=episode_id, frame=self.frame)

    async def step(self, request: p.Step) -> p.StepReply:
        """Lockstep: one step per request."""
        try:
            action = action_from_json(self.env.action_space, request.action)
        except ValueError as exc:
            raise RequestRejected(str(exc)) from None
        async with self._env_lock:
            if self._ended:  # the protocol refuses this too; a second line of defence
                raise RequestRejected("the episode has ended; send v0.env.reset first")
            return await self._advance(action, request.action, autoreset=request.autoreset)

    # internals

    def _show(self, frame: np.ndarray) -> None:
        self.window.draw(frame)
        self.frame += 1

    def _build_env(
        self, env_id: str, seed: int | None
    ) -> tuple[gymnasium.Env[Any, Any], Any, np.ndarray]:
        kwargs = self.config.env_kwargs if env_id == self.config.env_id else None
        env = make_env(env_id, kwargs)
        try:
            obs, _ = env.reset(seed=seed)
            return env, obs, render(env)
        except BaseException:
            env.close()
            raise

    async def _switch_env(self, env_id: str, seed: int | None) -> tuple[Any, np.ndarray]:
        """Build ``env_id``, reset it, and adopt it if its frames fit the display.

        Returns its first observation and frame.
        """
        try:
            self.catalog.allowed(env_id)
            env, obs, frame = await self._off_loop(self._build_env, env_id, seed)
        except ConfigError as exc:
            raise RequestRejected(str(exc)) from None
        try:
            keymap = resolve_keymap(self.config, env_id, env)
            if self.mode is p.Mode.REALTIME and keymap is None:
                raise RequestRejected(f"no key map for {env_id} (real-time mode needs one)")
            if frame.shape[:2] != (self.window.height, self.window.width):
                h, w = frame.shape[:2]
                raise RequestRejected(
                    f"{env_id} renders {w}x{h}, this display is {self.window.width}x"
                    f"{self.window.height}; start a runtime for it instead"
                )
        except (RequestRejected, ConfigError) as exc:
            await self._off_loop(env.close)
            raise RequestRejected(str(exc)) from None
        old, self.env, self.env_id, self.keymap = self.env, env, env_id, keymap
        await self._off_loop(old.close)
        log.info("switched environment to %s", env_id)
        return obs, frame

    @property
    def _observation_space(self) -> dict[str, Any] | None:
        """The env's observation space as JSON when it is small enough to be pushed."""
        space = self.env.observation_space
        if space.shape is None or math.prod(space.shape) > MAX_PUSHED_OBSERVATION_SIZE:
            return None
        try:
            return space_to_json(space)
        except UnsupportedSpace:
            return None

    def _push_observation(self, obs: Any, episode_id: int) -> None:
        if getattr(obs, "size", MAX_PUSHED_OBSERVATION_SIZE + 1) <= MAX_PUSHED_OBSERVATION_SIZE:
            self._server.push(p.Observation(observation=p.to_jsonable(obs), episode_id=episode_id))

    def _reset_env(self, seed: int | None) -> tuple[Any, np.ndarray]:
        obs, _ = self.env.reset(seed=seed)
        return obs, render(self.env)

    async def _reset(
        self,
        env_id: str | None = None,
        seed: int | None = None,
        hint: int | None = None,
        *,
        requested: bool = False,
    ) -> int:
        """Reset (switching env first if asked); returns the new episode id."""
        switched: tuple[Any, np.ndarray] | None = None
        if env_id is not None and env_id != self.env_id:
            switched = await self._switch_env(env_id, seed)
        with self._server.resetting(hint) as episode_id:
            if switched is None:
                switched = await self._off_loop(self._reset_env, seed)
            obs, frame = switched
            self._show(frame)
            self._push_observation(obs, episode_id)
        self._ended = False
        # Auto-resets happen many times a second in real time: keep them out of INFO.
        level = logging.INFO if requested else logging.DEBUG
        log.log(level, "episode %d started (frame %d)", episode_id, self.frame)
        if env_id is not None:
            self._server.push(p.Text(text=f"environment is {self.env_id}", episode_id=episode_id))
        return episode_id

    def _step_env(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any], np.ndarray]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward), bool(terminated), bool(truncated), info, render(self.env)

    async def _advance(
        self, action: Any, action_json: Any, *, autoreset: bool = True
    ) -> p.StepReply:
        obs, reward, terminated, truncated, info, frame = await self._off_loop(
            self._step_env, action
        )
        self._show(frame)
        server = self._server
        old_episode, step_frame = server.episodes.episode_id, self.frame
        info = p.jsonable_items(info)
        info["action"] = action_json
        server.push(
            p.Reward(
                reward=reward,
                terminated=terminated,
                truncated=truncated,
                info=info,
                frame=step_frame,
                episode_id=old_episode,
            )
        )
        self._push_observation(obs, old_episode)
        if (terminated or truncated) and not autoreset:
            self._ended = True  # the terminal frame stays on the display until a reset
        elif terminated or truncated:
            # Auto-reset: the observation (frame on screen) belongs to the new episode.
            info = {**info, "terminal_frame": step_frame, "terminal_episode_id": old_episode}
            await self._reset()
        return p.StepReply(
            frame=self.frame,
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            info=info,
            episode_id=server.episodes.episode_id,
        )

    async def tick(self) -> None:
        """Real-time: one step with the action of the keys held now."""
        assert self.keymap is not None
        async with self._env_lock:
            self.window.poll_events()
            action_json = self.keymap.action_for(
                self.window.held_keys,
                self.window.pointer,
                width=self.window.width,
                tick=self._tick,
            )
            self._tick += 1
            await self._advance(action_from_json(self.env.action_space, action_json), action_json)
