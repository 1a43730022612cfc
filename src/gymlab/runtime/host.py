"""The env host: a Gymnasium env drawn into the runtime's X display, and its clocks.

:class:`EnvHost` is the rewarder's backend. It owns the env, the window it is
drawn into and the episode counter; the process around it (Xvnc, the rewarder
server, signals) lives in :mod:`gymlab.runtime.core`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING, Any

from gymlab.rewarder import protocol as p
from gymlab.rewarder.server import (
    RequestRejected,
    ResetOutcome,
    RewarderServer,
    StepOutcome,
)
from gymlab.rewarder.spaces import action_from_json, space_to_json
from gymlab.runtime.keymaps import KeyMap, UnknownKeyMap, keymap_for

if TYPE_CHECKING:
    import gymnasium
    import numpy as np

    from gymlab.runtime.core import RuntimeConfig
    from gymlab.runtime.xwindow import FrameWindow

log = logging.getLogger("gymlab.runtime")

#: Observations up to this many numbers are pushed as v0.env.observation.
MAX_PUSHED_OBSERVATION_SIZE = 1024


class ConfigError(ValueError):
    """Bad runtime configuration (unknown env id, bad fps, ...)."""


def check_env_id(env_id: str) -> None:
    """Raise :class:`ConfigError` unless Gymnasium knows ``env_id``."""
    import gymnasium

    if env_id not in gymnasium.registry:
        raise ConfigError(f"unknown environment id {env_id!r}")


def make_env(env_id: str) -> gymnasium.Env[Any, Any]:
    import gymnasium

    # rgb_array rendering needs no window system; without this SDL probes for one.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    return gymnasium.make(env_id, render_mode="rgb_array")


def render(env: gymnasium.Env[Any, Any]) -> np.ndarray:
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
        env = make_env(env_id)
        env.reset(seed=seed)
        frame = render(env)
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
            frame = render(self.env)
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
        self._show(render(self.env))
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
