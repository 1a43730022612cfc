"""One remote as seen by the vector env: its VNC and rewarder connections, on one asyncio loop.

:class:`RemoteSession` turns connection failures into :class:`RemoteStep` values with an
``error`` instead of exceptions, and reconnects in the background with exponential backoff
(:class:`Backoff`). Everything here runs on the client's event loop thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from gymnasium.vector import AutoresetMode

from gymlab.client.actions import (
    KeyActionMapper,
    KeyEvent,
    PointerEvent,
    VNCEvent,
    apply_held,
    is_event_list,
    parse_events,
)
from gymlab.client.remotes import Remote
from gymlab.client.vnc import VNCConnection, VNCError, VNCTimeoutError
from gymlab.keymap import KeyMap, KeyMapError
from gymlab.rewarder import protocol as p
from gymlab.rewarder.client import (
    RewarderClient,
    RewarderError,
    RewarderRequestError,
    RewarderTimeout,
)
from gymlab.rewarder.reward_buffer import PoppedReward
from gymlab.rewarder.spaces import space_from_json, value_from_json

if TYPE_CHECKING:
    import gymnasium

log = logging.getLogger("gymlab.client")

#: What a remote's observation is: its display's pixels, the env's own observation, or both.
ObservationKind = Literal["pixels", "state", "both"]

#: Errors that mean "this remote is unusable now" (reconnect), never a bug of ours.
REMOTE_ERRORS: tuple[type[BaseException], ...] = (
    RewarderError,
    VNCError,
    OSError,
    asyncio.TimeoutError,
)
#: Callback types of the instrumentation hooks (called on the client loop thread).
UpdateHook = Callable[[int, float, np.ndarray], None]
RewardHook = Callable[[int, float, p.Reward], None]


class RemoteError(RuntimeError):
    """A remote could not be used; the message names it."""


class RemoteConnectError(RemoteError):
    """Connecting to (or authenticating with) a remote failed."""


class RemoteResetTimeout(RemoteError, TimeoutError):
    """A remote did not finish resetting within the reset timeout."""


@dataclass(frozen=True)
class RemoteStep:
    """One remote's share of a vector step (or reset): its observation and step result.

    ``result`` is the runtime's :class:`~gymlab.rewarder.protocol.StepReply` in lockstep,
    the rewards that arrived since the last step (as a pushed
    :class:`~gymlab.rewarder.protocol.Reward`) in real time, and a bare
    :class:`~gymlab.rewarder.protocol.StepResult` for resets and a remote that is down.
    """

    obs: Any
    result: p.StepResult
    #: the terminal observation when the episode ended and the remote was reset (SAME_STEP)
    final_obs: Any = None
    #: the info of that reset, which Gymnasium reports at the top level (SAME_STEP)
    reset_info: dict[str, Any] | None = None

    @property
    def final_info(self) -> dict[str, Any] | None:
        """The finished episode's info when it ended this step."""
        return dict(self.result.info) if self.result.done else None


@dataclass
class Backoff:
    """Exponential backoff with jitter: ``initial``, doubled per failure up to ``maximum``."""

    initial: float = 0.1
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.1
    _next: float | None = None

    def next_delay(self) -> float:
        """The delay to wait before the next attempt (grows on every call)."""
        delay = self.initial if self._next is None else self._next
        self._next = min(self.maximum, delay * self.factor)
        return delay * (1.0 + random.uniform(0.0, self.jitter))

    def reset(self) -> None:
        """Start again from ``initial`` (after a success)."""
        self._next = None


def _zeros(space: gymnasium.Space[Any]) -> Any:
    return np.zeros(space.shape, space.dtype) if space.shape is not None else None


def realtime_outcome(obs: Any, popped: PoppedReward, truncated_episodes: set[int]) -> RemoteStep:
    """Turn what the reward buffer popped into a step result (real-time mode).

    The buffer keeps Universe's single ``done``; the rewarder client's listener notes which
    episodes ended by truncation, so ``done`` splits into terminated/truncated here.
    """
    info = dict(popped.info)
    info["episode_id"] = popped.episode_id
    truncated = popped.done and popped.episode_id in truncated_episodes
    if popped.done and popped.episode_id is not None:
        truncated_episodes.discard(popped.episode_id)
    result = p.Reward(
        reward=popped.reward,
        terminated=popped.done and not truncated,
        truncated=truncated,
        info=info,
        episode_id=popped.episode_id,
    )
    return RemoteStep(obs, result)


def lockstep_outcome(obs: Any, reply: p.StepReply) -> RemoteStep:
    """The remote's step: the runtime's reply, with its episode and frame in ``info``.

    On done the runtime has already auto-reset: ``obs`` is the new episode's first frame and
    the reply's info names the terminal frame and episode.
    """
    info = {**reply.info, "episode_id": reply.episode_id, "frame": reply.frame}
    return RemoteStep(obs, replace(reply, info=info))


class RemoteSession:
    """Connections and episode state of one remote (index ``index`` in the vector env)."""

    def __init__(
        self,
        index: int,
        remote: Remote,
        password: str | None,
        *,
        mode: p.Mode | None,
        env_id: str | None = None,
        fps: float | None = None,
        connect_timeout: float = 10.0,
        reset_timeout: float = 60.0,
        step_timeout: float = 10.0,
        frame_timeout: float = 5.0,
        encodings: Iterable[str] | None = None,
        backoff: Backoff | None = None,
        on_update: UpdateHook | None = None,
        on_reward: RewardHook | None = None,
        autoreset: AutoresetMode = AutoresetMode.NEXT_STEP,
        observation: ObservationKind = "pixels",
    ) -> None:
        self.index = index
        self.autoreset = autoreset
        self.observation = observation
        self.remote = remote
        self._password = password
        self.mode = mode
        self.env_id = env_id
        self.fps = fps
        self.connect_timeout = connect_timeout
        self.reset_timeout = reset_timeout
        self.step_timeout = step_timeout
        self.frame_timeout = frame_timeout
        # None: the remote's own choice (Raw over loopback, ZRLE across a network)
        self.encodings = remote.encodings if encodings is None else tuple(encodings)
        self.backoff = backoff or Backoff()
        self.on_update = on_update
        self.on_reward = on_reward
        self.vnc: VNCConnection | None = None
        self.rewarder: RewarderClient | None = None
        self.description: p.Describe | None = None
        self.held: list[int] = []
        self.last_error: str | None = None
        self.down = False
        self.reconnects = 0
        self._reconnect_task: asyncio.Task[None] | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self._reconnected: RemoteStep | None = None
        self._truncated_episodes: set[int] = set()
        self._mapper: KeyActionMapper | None = None
        self._blank: Any = None
        self._state_space: gymnasium.Space[Any] | None = None
        #: NEXT_STEP: the last step ended the episode, the next one resets the remote
        self._needs_reset = False

    @property
    def name(self) -> str:
        """``remote i (host:vnc+rewarder)`` for messages."""
        return f"remote {self.index} ({self.remote.name})"

    @property
    def connected(self) -> bool:
        """Both connections are up."""
        return (
            self.vnc is not None
            and not self.vnc.closed
            and self.rewarder is not None
            and not self.rewarder.closed
        )

    # ----- connections ---------------------------------------------------------------------

    async def connect(self) -> p.Describe:
        """Connect the rewarder then VNC; raises :class:`RemoteConnectError` naming the remote."""
        await self.close_connections()
        try:
            self.rewarder = await RewarderClient.connect(
                self.remote.host,
                self.remote.rewarder_port,
                self._password or "",
                timeout=self.connect_timeout,
            )
            self.rewarder.add_listener(self._on_event)
            shape = self.rewarder.describe.frame_shape if self.rewarder.describe else None
            self.vnc = await VNCConnection.connect(
                self.remote.host,
                self.remote.vnc_port,
                self._password,
                timeout=self.connect_timeout,
                encodings=self.encodings,
                # the desktop may be no larger than the frames the rewarder announced
                max_size=(shape[1], shape[0]) if shape else None,
            )
        except REMOTE_ERRORS as exc:
            await self.close_connections()
            raise RemoteConnectError(f"{self.name}: {exc}") from exc
        description = self.rewarder.describe
        assert description is not None  # connect() waits for the first describe
        self.description = description
        if self.mode is None:
            self.mode = description.mode or p.Mode.REALTIME  # a Universe runtime: real time
        elif description.mode is not None and description.mode is not self.mode:
            await self.close_connections()
            raise RemoteConnectError(
                f"{self.name} runs in {description.mode.value} mode,"
                f" but mode={self.mode.value!r} was asked"
            )
        if self.mode is p.Mode.REALTIME:
            await self.vnc.start_streaming()
            if self.on_update is not None:
                self._monitor_task = asyncio.create_task(self._monitor(self.vnc))
        return description

    def _on_event(self, event: p.Event) -> None:
        if isinstance(event, p.Reward):
            if event.truncated and event.episode_id is not None:
                self._truncated_episodes.add(event.episode_id)
            if self.on_reward is not None:
                self.on_reward(self.index, time.time(), event)

    async def _monitor(self, vnc: VNCConnection) -> None:
        """Report every decoded update to ``on_update`` (benchmarks measure lag with it)."""
        assert self.on_update is not None
        seen = vnc.update_count
        while not vnc.closed:
            try:
                seen = await vnc.wait_for_update(seen, timeout=3600.0)
            except VNCTimeoutError:
                continue
            except VNCError:
                return
            self.on_update(self.index, time.time(), vnc.framebuffer)

    async def close_connections(self) -> None:
        """Close both connections (bounded waits); the session stays reusable."""
        if self._monitor_task is not None:
            self._monitor_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._monitor_task
            self._monitor_task = None
        vnc, rewarder = self.vnc, self.rewarder
        self.vnc = self.rewarder = None
        self.held.clear()  # a runtime releases all keys on reset / on a new client
        if vnc is not None:
            await vnc.close()
        if rewarder is not None:
            await rewarder.close()

    async def close(self) -> None:
        """Stop reconnecting and close everything."""
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reconnect_task
            self._reconnect_task = None
        await self.close_connections()

    # ----- frames --------------------------------------------------------------------------

    @property
    def state_space(self) -> gymnasium.Space[Any]:
        """The env's own observation space, from the describe (``observation`` "state"/"both")."""
        if self._state_space is None:
            space = self.description.observation_space if self.description else None
            if space is None:
                raise RemoteError(
                    f"{self.name} announces no observation space (its env's observations are"
                    " too large to push or have no JSON form): use observation='pixels'"
                )
            self._state_space = space_from_json(space)
        return self._state_space

    def blank(self) -> Any:
        """Zeros of the observation's shape (the observation while the remote is down)."""
        if self._blank is None:
            assert self.description is not None and self.description.frame_shape is not None
            pixels = np.zeros(self.description.frame_shape, np.uint8)
            self._blank = self._compose(pixels, lambda: _zeros(self.state_space))
        return self._blank

    def _compose(self, pixels: Any, state: Callable[[], Any]) -> Any:
        if self.observation == "pixels":
            return pixels
        if self.observation == "state":
            return state()
        return {"pixels": pixels, "state": state()}

    def _state(self) -> Any:
        """The env's own observation pushed with the latest step or reset."""
        pushed = self.rewarder.last_observation if self.rewarder else None
        if pushed is None:
            return _zeros(self.state_space)
        return value_from_json(self.state_space, pushed.observation)

    async def _observe(self, after_reset: bool = False) -> Any:
        """The observation now: pixels over VNC, the pushed state, or both."""
        if self.observation == "state":
            return self._state()
        frame = await (
            self._lockstep_frame()
            if self.mode is p.Mode.LOCKSTEP
            else self._realtime_frame(after_reset=after_reset)
        )
        return self._compose(frame, self._state)

    async def _lockstep_frame(self) -> np.ndarray:
        """Pixels of the frame the runtime just reported as drawn (it synced with Xvnc first)."""
        vnc = self.vnc
        assert vnc is not None
        await vnc.sync(timeout=self.frame_timeout)
        return vnc.framebuffer.copy()

    async def _realtime_frame(self, after_reset: bool) -> np.ndarray:
        vnc = self.vnc
        assert vnc is not None
        if after_reset:
            # the reset frame is drawn when the reply comes: wait for the next update
            with contextlib.suppress(VNCTimeoutError):
                await vnc.wait_for_update(vnc.update_count, timeout=self.frame_timeout)
        _, frame = vnc.latest_frame()
        return frame

    # ----- episodes ------------------------------------------------------------------------

    async def reset(self, seed: int | None = None) -> RemoteStep:
        """(Re)connect if needed, reset the remote's env and return its first frame.

        Stops a background reconnect first. Raises :class:`RemoteError` naming the remote.
        """
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reconnect_task
            self._reconnect_task = None
        self._reconnected = None
        return await self._reset(seed)

    def start_reconnect(self) -> None:
        """Keep trying to connect and reset in the background (after a failed reset)."""
        self.down = True
        if self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = asyncio.create_task(self._reconnect())

    async def _reset(self, seed: int | None) -> RemoteStep:
        try:
            if not self.connected:
                await self.connect()
            assert self.rewarder is not None
            await self._release_keys()
            # a little longer than the callers' own reset timeout, which then names the remote
            episode = await self.rewarder.reset(
                self.env_id, seed, fps=self.fps, timeout=self.reset_timeout + 1.0
            )
            obs = await self._observe(after_reset=True)
        except REMOTE_ERRORS as exc:
            self.last_error = f"{self.name}: {exc}"
            self.down = True
            await self.close_connections()
            raise RemoteError(self.last_error) from exc
        except asyncio.CancelledError:
            # a reset that timed out leaves the runtime in an unknown state: start afresh
            self.down = True
            await self.close_connections()
            raise
        self.down = False
        self._needs_reset = False
        self.last_error = None
        self.description = self.rewarder.describe or self.description
        self.backoff.reset()
        self._configure_keys()
        return RemoteStep(obs, p.StepResult(info={"episode_id": episode}))

    def _configure_keys(self) -> None:
        """Native actions in real time use the key map the runtime describes."""
        description = self.description
        self._mapper = None
        if description is None or description.keys is None:
            return
        try:
            keymap = KeyMap.from_json(description.keys, description.env_id or self.name)
        except KeyMapError as exc:
            log.warning(
                "%s: the runtime describes a key map this client cannot use: %s", self.name, exc
            )
            return
        self._mapper = KeyActionMapper(keymap)

    async def _release_keys(self) -> None:
        if self.vnc is not None:
            for key in list(self.held):
                await self.vnc.key_event(key, False)
        self.held.clear()

    async def _send(self, events: list[VNCEvent]) -> None:
        vnc = self.vnc
        assert vnc is not None
        for event in events:
            if isinstance(event, KeyEvent):
                await vnc.key_event(event.key, event.down)
            elif isinstance(event, PointerEvent):
                await vnc.pointer_event(event.x, event.y, event.mask)
        apply_held(self.held, events)

    def realtime_events(self, action: Any) -> list[VNCEvent]:
        """The VNC events for ``action`` (an event list or a native action); ValueError if bad."""
        if is_event_list(action):
            return parse_events(action)
        if self._mapper is None:
            raise ValueError(
                f"{self.name}: no key map for its environment; give VNC event lists as actions"
            )
        return self._mapper.events(action, self.held)

    def _fault(self, exc: BaseException) -> RemoteStep:
        """Mark the remote down, start reconnecting, and end its episode with the error."""
        self.last_error = f"{self.name}: {type(exc).__name__}: {exc}"
        log.warning("%s failed, reconnecting in the background: %s", self.name, exc)
        self.start_reconnect()
        return self._down_outcome()

    def _down_outcome(self) -> RemoteStep:
        info = {"error": self.last_error or f"{self.name} is down", "remote_down": True}
        return RemoteStep(self.blank(), p.StepResult(truncated=True, info=info))

    async def _reconnect(self) -> None:
        await self.close_connections()
        while True:
            await asyncio.sleep(self.backoff.next_delay())
            try:
                outcome = await asyncio.wait_for(self._reset(None), self.reset_timeout)
            except (RemoteError, asyncio.TimeoutError) as exc:
                self.last_error = f"{self.name}: reconnecting: {exc}"
                log.info("%s still down: %s", self.name, exc)
                continue
            self.reconnects += 1
            info = {**outcome.result.info, "reconnected": True}
            self._reconnected = RemoteStep(outcome.obs, p.StepResult(info=info))
            log.info("%s is back (reconnect %d)", self.name, self.reconnects)
            return

    async def step_lockstep(self, action: Any) -> RemoteStep:
        """Lockstep: one ``v0.env.step``, then the observation of that frame; never raises.

        The runtime is asked not to reset by itself, so the terminal frame can be fetched;
        the remote is then reset as :attr:`autoreset` says (SAME_STEP: now, with the terminal
        observation in ``final_obs``; NEXT_STEP: on the next step, which drops its action;
        DISABLED: by the caller).
        """
        if self._reconnected is not None:
            outcome, self._reconnected = self._reconnected, None
            return outcome  # the action is dropped: the reset observation comes first
        if self.down:
            return self._down_outcome()
        assert self.rewarder is not None
        try:
            if self._needs_reset:
                return await self._restart()
            episode = self.rewarder.rewards.episode_id
            reply = await self.rewarder.step(action, autoreset=False, timeout=self.step_timeout)
            obs = await self._observe()
            step = lockstep_outcome(obs, reply)
            if not reply.done:
                return step
            if reply.episode_id != episode:
                # a runtime that knows no autoreset=false has reset by itself: the terminal
                # frame is gone, the observation is the next episode's
                return step
            if self.autoreset is AutoresetMode.SAME_STEP:
                restart = await self._restart()
                return RemoteStep(
                    restart.obs, step.result, final_obs=obs, reset_info=restart.result.info
                )
            self._needs_reset = self.autoreset is AutoresetMode.NEXT_STEP
            return step
        except RewarderRequestError as exc:
            # the runtime refused this action; the connection is fine
            info = {"error": f"{self.name}: {exc}"}
            return RemoteStep(self.blank(), p.StepResult(truncated=True, info=info))
        except REMOTE_ERRORS as exc:
            return self._fault(exc)

    async def _restart(self) -> RemoteStep:
        """Start the next episode (autoreset): reward 0, the new episode's observation."""
        assert self.rewarder is not None
        self._needs_reset = False
        await self._release_keys()
        episode = await self.rewarder.reset(
            self.env_id, fps=self.fps, timeout=self.reset_timeout + 1.0
        )
        return RemoteStep(
            await self._observe(after_reset=True), p.StepResult(info={"episode_id": episode})
        )

    async def act_realtime(self, events: list[VNCEvent]) -> BaseException | None:
        """Real-time: send this step's events; returns the failure instead of raising."""
        if self.down or self._reconnected is not None or self.vnc is None:
            return None
        try:
            await self._send(events)
        except REMOTE_ERRORS as exc:
            return exc
        return None

    def observe_realtime(self, failure: BaseException | None = None) -> RemoteStep:
        """Real-time: the latest streamed frame and the rewards since the last step."""
        if self._reconnected is not None:
            outcome, self._reconnected = self._reconnected, None
            return outcome
        if self.down:
            return self._down_outcome()
        if failure is None and not self.connected:
            failure = RewarderTimeout("connection closed")
        if failure is not None:
            return self._fault(failure)
        assert self.vnc is not None and self.rewarder is not None
        try:
            _, frame = self.vnc.latest_frame()
        except VNCError as exc:
            return self._fault(exc)
        obs = self._compose(frame, self._state)
        if self._needs_reset:
            # NEXT_STEP: the runtime reset on its own clock; this step only reports the
            # new episode (reward 0), its rewards wait for the next step
            self._needs_reset = False
            info = {"episode_id": self.rewarder.rewards.episode_id}
            return RemoteStep(obs, p.StepResult(info=info))
        step = realtime_outcome(obs, self.rewarder.pop_rewards(), self._truncated_episodes)
        if step.result.done:
            if self.autoreset is AutoresetMode.SAME_STEP:
                # the runtime has reset by itself; the newest frame is the best terminal view
                return replace(step, final_obs=obs)
            self._needs_reset = True
        return step
