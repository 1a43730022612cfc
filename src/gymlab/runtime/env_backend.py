"""The env backend: a Gymnasium env drawn into the runtime's X display.

It serves every env id no other backend claims (the fallback in
:func:`gymlab.runtime.backend.backend_for`): registered ids, plugin families and the
``module:EnvId`` form (:mod:`gymlab.runtime.envs`). Each frame is the env's ``rgb_array``
render drawn into a window the size of the display; real time applies the env's key map
to the keys held on that display.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from gymlab.keymap import KeyMap, KeyMapError
from gymlab.rewarder import protocol as p
from gymlab.rewarder.backend import EpisodeStart, RequestRejected, Transition
from gymlab.rewarder.spaces import UnsupportedSpace, action_from_json, space_to_json
from gymlab.runtime.backend import Backend, Display, register
from gymlab.runtime.config import ConfigError, RuntimeConfig
from gymlab.runtime.envs import EnvCatalog, make_env
from gymlab.runtime.keymaps import UnknownKeyMap, env_keymap, load_keymap_file

if TYPE_CHECKING:
    import gymnasium
    import numpy as np

    from gymlab.runtime.xwindow import FrameWindow

log = logging.getLogger("gymlab.runtime")

#: Observations up to this many numbers are pushed as v0.env.observation.
MAX_PUSHED_OBSERVATION_SIZE = 1024


def render(env: gymnasium.Env[Any, Any]) -> np.ndarray:
    """The env's frame as a contiguous (H, W, 3) uint8 array."""
    import numpy as np

    frame = env.render()
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3:
        raise RuntimeError("env.render() did not return an (H, W, 3) array")
    return np.ascontiguousarray(frame, dtype=np.uint8)


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


def _pushed(obs: Any) -> Any:
    """An observation's JSON form when it is small enough to be pushed, else None."""
    if getattr(obs, "size", MAX_PUSHED_OBSERVATION_SIZE + 1) <= MAX_PUSHED_OBSERVATION_SIZE:
        return p.to_jsonable(obs)
    return None


@register(fallback=True)
class EnvBackend(Backend):
    """A Gymnasium env drawn into the display window, with its key map for real time."""

    def __init__(
        self,
        config: RuntimeConfig,
        env: gymnasium.Env[Any, Any],
        first_frame: np.ndarray,
        catalog: EnvCatalog,
        keymap: KeyMap | None,
    ) -> None:
        super().__init__(config, config.env_id)
        self.env = env
        self.catalog = catalog
        self.keymap = keymap
        self.frame_size = (first_frame.shape[1], first_frame.shape[0])
        self.window: FrameWindow | None = None
        self._first_frame: np.ndarray | None = first_frame
        #: a reset's switch to another env already reset it: (observation, frame)
        self._switched: tuple[Any, np.ndarray] | None = None
        self._tick = 0

    @classmethod
    def serves(cls, env_id: str) -> bool:
        return True

    @classmethod
    def prepare(cls, config: RuntimeConfig) -> EnvBackend:
        """Import what the env needs, make it, reset it, render its first frame, find its
        key map. Raises :class:`ConfigError` when the env cannot be made, or when real time
        has no key map for it."""
        catalog = EnvCatalog()
        catalog.load(config.env_id, config.imports)
        env = make_env(config.env_id, config.env_kwargs)
        try:
            keymap = resolve_keymap(config, config.env_id, env)
            if keymap is None and config.mode is p.Mode.REALTIME:
                raise ConfigError(
                    f"no key map for {config.env_id}: real-time mode needs one "
                    "(give one with --keymap FILE, or use lockstep)"
                )
            env.reset()
            first = render(env)
        except BaseException:
            env.close()
            raise
        return cls(config, env, first, catalog, keymap)

    async def attach(self, display: Display) -> None:
        from gymlab.runtime.xwindow import FrameWindow

        width, height = self.frame_size
        self.window = FrameWindow(display.name, width, height, display.xauthority)
        assert self._first_frame is not None
        self._show(self._first_frame)
        self._first_frame = None

    def event_fd(self) -> int | None:
        return self._window.fileno()

    def poll_events(self) -> None:
        self._window.poll_events()

    def close(self) -> None:
        """Stop the env thread, close the window and the env."""
        super().close()
        if self.window is not None:
            self.window.close()
        self.env.close()

    @property
    def _window(self) -> FrameWindow:
        if self.window is None:
            raise RuntimeError("the env backend is not attached to a display yet")
        return self.window

    # results

    def describe_extras(self) -> dict[str, Any]:
        """The action space, the observation space when it is pushed, the key map."""
        return {
            "action_space": space_to_json(self.env.action_space),
            "observation_space": self._observation_space,
            "keys": self.keymap.to_json() if self.keymap else None,
        }

    async def switch(self, env_id: str, seed: int | None) -> None:
        """Build ``env_id`` and reset it; adopt it if its frames fit the display."""
        try:
            self.catalog.allowed(env_id)
            env, obs, frame = await self.off_loop(self._build_env, env_id, seed)
        except ConfigError as exc:
            raise RequestRejected(str(exc)) from None
        try:
            keymap = resolve_keymap(self.config, env_id, env)
            if self.mode is p.Mode.REALTIME and keymap is None:
                raise RequestRejected(f"no key map for {env_id} (real-time mode needs one)")
            if (frame.shape[1], frame.shape[0]) != self.frame_size:
                h, w = frame.shape[:2]
                width, height = self.frame_size
                raise RequestRejected(
                    f"{env_id} renders {w}x{h}, this display is {width}x{height}; "
                    "start a runtime for it instead"
                )
        except (RequestRejected, ConfigError) as exc:
            await self.off_loop(env.close)
            raise RequestRejected(str(exc)) from None
        old, self.env, self.env_id, self.keymap = self.env, env, env_id, keymap
        self._switched = (obs, frame)
        await self.off_loop(old.close)
        log.info("switched environment to %s", env_id)

    async def reset(self, seed: int | None) -> EpisodeStart:
        switched, self._switched = self._switched, None
        if switched is None:
            obs, frame = await self.off_loop(self._reset_env, seed)
        else:
            obs, frame = switched
        self._show(frame)
        text = None if switched is None else f"environment is {self.env_id}"
        return EpisodeStart(frame=self.frame, observation=_pushed(obs), text=text)

    async def act(self, action: Any) -> Transition:
        try:
            decoded = action_from_json(self.env.action_space, action)
        except ValueError as exc:
            raise RequestRejected(str(exc)) from None
        return await self._advance(decoded)

    async def tick(self) -> Transition | None:
        """Real time: one step with the action of the keys held now."""
        assert self.keymap is not None
        window = self._window
        window.poll_events()
        action = self.keymap.action_for(
            window.held_keys, window.pointer, width=window.width, tick=self._tick
        )
        self._tick += 1
        transition = await self._advance(action_from_json(self.env.action_space, action))
        transition.info["action"] = action
        return transition

    # internals

    def _show(self, frame: np.ndarray) -> None:
        self._window.draw(frame)
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

    def _reset_env(self, seed: int | None) -> tuple[Any, np.ndarray]:
        obs, _ = self.env.reset(seed=seed)
        return obs, render(self.env)

    def _step_env(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any], np.ndarray]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward), bool(terminated), bool(truncated), info, render(self.env)

    async def _advance(self, action: Any) -> Transition:
        obs, reward, terminated, truncated, info, frame = await self.off_loop(
            self._step_env, action
        )
        self._show(frame)
        return Transition(
            reward=reward,
            terminated=terminated,
            truncated=truncated,
            frame=self.frame,
            info=p.jsonable_items(info),
            observation=_pushed(obs),
        )
