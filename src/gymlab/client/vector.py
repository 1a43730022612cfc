"""``RemoteVectorEnv``: Gymnasium's ``VectorEnv`` API over many gymlab remotes.

One asyncio event loop in a background thread (:class:`gymlab.client.loop.LoopThread`) drives
every remote at once, so four remotes step in parallel.

Modes (all remotes must run in the same one; by default the remotes' own mode is used):

* **lockstep** -- ``step`` sends ``v0.env.step`` to every remote concurrently, waits for the
  replies, then fetches the pixels of the frame each reply names. The action space is the
  environment's own (from the runtime's describe).
* **realtime** -- ``step`` sends VNC input, waits until one tick (``1/fps``) has passed since
  the previous step, and returns the newest streamed frame plus the rewards that arrived
  since the previous step (Universe's accumulation rules). ``action_space`` is still the
  environment's native space: a native action is mapped client-side through the runtime's key
  map to "hold this key". An action may instead be a Universe-style list of VNC events,
  ``[("KeyEvent", "ArrowUp", True), ("PointerEvent", x, y, mask)]`` (pass a list with one
  such list per remote).

Auto-reset follows Gymnasium's ``AutoresetMode`` (``autoreset_mode=``):

* **NEXT_STEP** (the default, as for Gymnasium's own vector envs): the step that ends an
  episode returns its terminal observation; the next step resets that remote (its action is
  dropped) and returns the new episode's first observation with reward 0.
* **SAME_STEP**: the step that ends an episode resets the remote at once and returns the new
  episode's first observation; the terminal observation is in ``infos["final_obs"]`` and the
  finished episode's info in ``infos["final_info"]`` (CleanRL's and Stable-Baselines3's idiom).
* **DISABLED**: an ended remote stays ended until ``reset(options={"reset_mask": mask})``.

In lockstep the runtime keeps the terminal frame on its display until the client has fetched
it (``v0.env.step`` with ``autoreset: false``), so terminal observations are exact. In real
time the runtime resets on its own clock: the terminal observation is the newest frame the
client had when the episode's end arrived, and DISABLED is not available.

Observations (``observation=``): ``"pixels"`` (the default, the display as HxWx3 uint8),
``"state"`` (the env's own observation, pushed by the runtime for small spaces) or ``"both"``
(a Dict of the two), so one remote serves pixel and state agents alike.

Faults: a remote that fails (connection lost, timeout) gets ``truncated=True`` and
``infos["error"]`` at its index, a black frame while it is down, and is reconnected in the
background with exponential backoff; its first step after coming back returns the reset
observation (with ``infos["reconnected"]``) and drops that step's action. ``step`` never
raises for a remote's failure; ``reset`` raises :class:`RemoteError` naming the remote.
"""

from __future__ import annotations

import asyncio
import atexit
import time
import weakref
from collections.abc import Iterable, Sequence
from copy import deepcopy
from typing import TYPE_CHECKING, Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, create_empty_array, iterate

from gymlab.client.actions import check_wrapped
from gymlab.client.loop import LoopThread
from gymlab.client.remotes import RemotesSpec, parse_remotes
from gymlab.client.session import (
    Backoff,
    ObservationKind,
    RemoteError,
    RemoteResetTimeout,
    RemoteSession,
    RemoteStep,
    RewardHook,
    UpdateHook,
)
from gymlab.rewarder.protocol import Mode
from gymlab.rewarder.spaces import space_from_json

if TYPE_CHECKING:
    from gymlab.client.local_remotes import LocalRemotes


def _close_at_exit(ref: weakref.ref[RemoteVectorEnv]) -> None:
    env = ref()
    if env is not None and not env.closed:
        env.close()


OBSERVATION_KINDS: tuple[ObservationKind, ...] = ("pixels", "state", "both")


def _value(mode: Mode | None) -> str | None:
    return None if mode is None else mode.value


def _autoreset_mode(value: AutoresetMode | str) -> AutoresetMode:
    """Gymnasium's enum, its value ("NextStep") or its name in any case ("next_step")."""
    if isinstance(value, AutoresetMode):
        return value
    for mode in AutoresetMode:
        if str(value) == mode.value or str(value).upper() == mode.name:
            return mode
    expected = ", ".join(m.name for m in AutoresetMode)
    raise ValueError(f"autoreset_mode must be one of {expected}, got {value!r}")


def _mode(value: Mode | str) -> Mode:
    try:
        return Mode(value)
    except ValueError:
        raise ValueError(f"mode must be 'lockstep' or 'realtime', got {value!r}") from None


class NotConfiguredError(RuntimeError):
    """The env has no remotes yet: call ``configure(remotes=...)`` first."""


class RemoteVectorEnv(VectorEnv[np.ndarray, Any, Any]):
    """A vector env whose sub-envs are gymlab runtimes reached over VNC + the rewarder.

    Args:
        remotes: a remotes string (``vnc://host:5900+15900,...?password=X``), a list of
            entries, or a number N of local runtimes to start (they need ``env_id``); may be
            left out and given later to :meth:`configure`.
        password: the remotes' password (or in the remotes string's query).
        env_id: if given, every reset asks the runtimes to run this environment.
        mode: ``"lockstep"`` or ``"realtime"``; None adopts the remotes' mode.
        fps: real-time tick rate to ask the runtimes for (None: keep theirs).
        connect_timeout / reset_timeout / step_timeout / frame_timeout: seconds.
        encodings: VNC encodings, most preferred first; None (the default) picks per remote:
            Raw over loopback, where it costs least CPU, ZRLE across a network.
        reconnect_backoff: (first delay, maximum delay) in seconds between reconnect attempts.
        autoreset_mode: Gymnasium's :class:`~gymnasium.vector.AutoresetMode` (or its value);
            NEXT_STEP by default.
        observation: ``"pixels"``, ``"state"`` or ``"both"``.
        on_update / on_reward: instrumentation hooks called on the client's loop thread for
            every decoded real-time VNC update ``(index, unix_time, framebuffer)`` and every
            pushed reward ``(index, unix_time, reward_event)``; they must be quick.
    """

    metadata: dict[str, Any] = {
        "autoreset_mode": AutoresetMode.NEXT_STEP,
        "render_modes": ["rgb_array"],
    }

    def __init__(
        self,
        remotes: str | Iterable[str] | int | None = None,
        password: str | None = None,
        *,
        env_id: str | None = None,
        mode: Mode | str | None = None,
        fps: float | None = None,
        connect_timeout: float = 10.0,
        reset_timeout: float = 60.0,
        step_timeout: float = 10.0,
        frame_timeout: float = 5.0,
        encodings: Sequence[str] | None = None,
        reconnect_backoff: tuple[float, float] = (0.1, 5.0),
        on_update: UpdateHook | None = None,
        on_reward: RewardHook | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        observation: ObservationKind = "pixels",
    ) -> None:
        self._password = password
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        if observation not in OBSERVATION_KINDS:
            raise ValueError(
                f"observation must be one of {', '.join(OBSERVATION_KINDS)}, got {observation!r}"
            )
        self.observation = observation
        self.env_id = env_id
        self.mode: Mode | None = None if mode is None else _mode(mode)
        self.fps = fps
        self.connect_timeout = connect_timeout
        self.reset_timeout = reset_timeout
        self.step_timeout = step_timeout
        self.frame_timeout = frame_timeout
        self.encodings = None if encodings is None else tuple(encodings)
        self.reconnect_backoff = reconnect_backoff
        self.on_update = on_update
        self.on_reward = on_reward
        self.render_mode = "rgb_array"
        self.spec_remotes: RemotesSpec | None = None
        self.sessions: list[RemoteSession] = []
        self._loop: LoopThread | None = None
        self._local: LocalRemotes | None = None
        self._obs: Any = None
        self._last_step = 0.0
        self.closed = False
        if remotes is not None:
            self.configure(remotes)

    # ----- setup ---------------------------------------------------------------------------

    def configure(
        self,
        remotes: str | Iterable[str] | int,
        password: str | None = None,
        **options: Any,
    ) -> None:
        """Connect to ``remotes`` (Universe's ``env.configure(remotes=...)``).

        ``remotes`` is a remotes string, a list of entries, or a number N: start N local
        runtimes of ``env_id`` (:class:`gymlab.client.local_remotes.LocalRemotes`), which
        :meth:`close` stops again. ``password`` defaults to the constructor's. ``options``
        override constructor arguments (``mode``, ``fps``, timeouts, ...).
        Raises :class:`ValueError` for a bad remotes string and :class:`RemoteError` naming
        the remote that cannot be reached, refuses the password, or runs in another mode.
        """
        for key, value in options.items():
            if key not in ("env_id", "mode", "fps", "encodings", "on_update", "on_reward") and (
                not key.endswith("_timeout") and key != "reconnect_backoff"
            ):
                raise TypeError(f"configure() got an unexpected option {key!r}")
            setattr(self, key, _mode(value) if key == "mode" and value is not None else value)
        if self.sessions or self._local is not None:
            self._shutdown()
        if isinstance(remotes, int):
            remotes = self._start_local(remotes)
        spec = parse_remotes(remotes, password if password is not None else self._password)
        self.closed = False
        self.spec_remotes = spec
        self._loop = LoopThread()
        first, maximum = self.reconnect_backoff
        self.sessions = [
            RemoteSession(
                i,
                remote,
                spec.password,
                mode=self.mode,
                env_id=self.env_id,
                fps=self.fps,
                connect_timeout=self.connect_timeout,
                reset_timeout=self.reset_timeout,
                step_timeout=self.step_timeout,
                frame_timeout=self.frame_timeout,
                encodings=self.encodings,
                backoff=Backoff(first, maximum),
                on_update=self.on_update,
                on_reward=self.on_reward,
                autoreset=self.autoreset_mode,
                observation=self.observation,
            )
            for i, remote in enumerate(spec.remotes)
        ]
        try:
            self._loop.run(self._connect_all(), self.connect_timeout * 2 + self.reset_timeout + 5)
            self._init_spaces()
        except BaseException:
            self._shutdown()  # a failed configure leaves no connection behind
            raise

    async def _connect_all(self) -> None:
        async def one(session: RemoteSession) -> None:
            description = await session.connect()
            if self.env_id is not None and description.env_id != self.env_id:
                await session.reset()  # switch env first: the spaces come from its describe

        results = await asyncio.gather(*(one(s) for s in self.sessions), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _init_spaces(self) -> None:
        described = [s.description for s in self.sessions]
        modes = {s.mode for s in self.sessions}
        if len(modes) != 1:
            names = ", ".join(f"{s.name}: {_value(s.mode)}" for s in self.sessions)
            raise RemoteError(f"remotes run in different modes ({names}); pass mode=...")
        self.mode = modes.pop()
        if self.mode is Mode.REALTIME and self.autoreset_mode is AutoresetMode.DISABLED:
            raise ValueError(
                "autoreset_mode=DISABLED needs lockstep remotes: real-time runtimes reset"
                " on their own clock"
            )
        first = described[0]
        assert first is not None
        if first.frame_shape is None or first.action_space is None:
            raise RemoteError(f"{self.sessions[0].name}: describe lacks frame_shape/action_space")
        for session, desc in zip(self.sessions, described, strict=True):
            assert desc is not None
            if (desc.frame_shape, desc.action_space, desc.observation_space) != (
                first.frame_shape,
                first.action_space,
                first.observation_space,
            ):
                raise RemoteError(
                    f"{session.name} serves {desc.env_id} {desc.frame_shape}, but "
                    f"{self.sessions[0].name} serves {first.env_id} {first.frame_shape}: "
                    "all remotes must have the same spaces"
                )
        self.num_envs = len(self.sessions)
        pixels = spaces.Box(0, 255, first.frame_shape, np.uint8)
        if self.observation == "pixels":
            self.single_observation_space = pixels
        else:
            state = self.sessions[0].state_space  # RemoteError when the runtime has none
            self.single_observation_space = (
                state
                if self.observation == "state"
                else spaces.Dict({"pixels": pixels, "state": state})
            )
        self.single_action_space = space_from_json(first.action_space)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        if self.fps is None and first.fps:
            self.fps = first.fps
        self._obs = create_empty_array(self.single_observation_space, self.num_envs)

    def _require(self) -> LoopThread:
        if self._loop is None or not self.sessions:
            raise NotConfiguredError("no remotes: call configure(remotes='vnc://...') first")
        if self.closed:
            raise RuntimeError("the env is closed")
        return self._loop

    # ----- Gymnasium API -------------------------------------------------------------------

    def reset(
        self,
        *,
        seed: int | Sequence[int | None] | None = None,
        options: dict[str, Any] | None = None,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every remote (concurrently); raises :class:`RemoteError` naming a failed one.

        ``seed``: an int (remote ``i`` gets ``seed + i``) or one seed per remote.
        ``options`` may hold ``reset_mask`` (a bool per remote: reset only those, as
        Gymnasium's vector envs do); other options are refused.
        """
        loop = self._require()
        options = dict(options or {})
        mask = options.pop("reset_mask", None)
        if options:
            raise ValueError(
                f"RemoteVectorEnv.reset takes only the reset_mask option, got {sorted(options)}"
            )
        super().reset(seed=None)
        if seed is None:
            seeds: list[int | None] = [None] * self.num_envs
        elif isinstance(seed, int):
            seeds = [seed + i for i in range(self.num_envs)]
        else:
            seeds = list(seed)
            if len(seeds) != self.num_envs:
                raise ValueError(f"{len(seeds)} seeds for {self.num_envs} remotes")
        chosen = self._reset_mask(mask)
        outcomes = loop.run(self._reset_all(seeds, chosen), self.reset_timeout + 10)
        self._last_step = time.monotonic()
        obs, _, _, _, infos = self._collate(outcomes, only=chosen)
        return obs, infos

    def _reset_mask(self, mask: Any) -> list[bool]:
        if mask is None:
            return [True] * self.num_envs
        array = np.asarray(mask)
        if array.dtype != np.bool_ or array.shape != (self.num_envs,):
            raise ValueError(
                f"reset_mask must be {self.num_envs} booleans, got {array.dtype} {array.shape}"
            )
        return array.tolist()

    async def _reset_all(self, seeds: list[int | None], chosen: list[bool]) -> list[RemoteStep]:
        async def one(session: RemoteSession, seed: int | None) -> RemoteStep:
            try:
                return await asyncio.wait_for(session.reset(seed), self.reset_timeout)
            except asyncio.TimeoutError:
                session.start_reconnect()
                raise RemoteResetTimeout(
                    f"{session.name} did not finish resetting within {self.reset_timeout} s"
                ) from None
            except RemoteError:
                session.start_reconnect()
                raise

        results = await asyncio.gather(
            *(one(s, seed) for s, seed, on in zip(self.sessions, seeds, chosen, strict=True) if on),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if isinstance(r, RemoteStep)]

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every remote at once; see the module docstring for modes and faults."""
        loop = self._require()
        if self.mode is Mode.LOCKSTEP:
            per_env = self._split_actions(actions)
            outcomes = loop.run(self._step_lockstep(per_env), self.step_timeout * 3 + 10)
        else:
            events = self._realtime_events(actions)
            outcomes = loop.run(self._step_realtime(events), self.step_timeout + 10)
        return self._collate(outcomes)

    def _split_actions(self, actions: Any) -> list[Any]:
        if isinstance(actions, (list, tuple)) and len(actions) == self.num_envs:
            per_env = list(actions)
        else:
            per_env = list(iterate(self.action_space, actions))
        space = self.single_action_space
        for i, action in enumerate(per_env):
            # checked here so that a bad action raises instead of looking like a remote fault
            if space.dtype is not None and not space.contains(np.asarray(action, space.dtype)):
                raise ValueError(f"action {action!r} for remote {i} is not in {space}")
        return per_env

    def _realtime_events(self, actions: Any) -> list[Any]:
        check_wrapped(actions, self.num_envs)
        if isinstance(actions, (list, tuple)) and len(actions) == self.num_envs:
            per_env = list(actions)
        else:
            per_env = list(iterate(self.action_space, actions))
        return [s.realtime_events(a) for s, a in zip(self.sessions, per_env, strict=True)]

    async def _step_lockstep(self, actions: list[Any]) -> list[RemoteStep]:
        return list(
            await asyncio.gather(
                *(s.step_lockstep(a) for s, a in zip(self.sessions, actions, strict=True))
            )
        )

    async def _step_realtime(self, events: list[Any]) -> list[RemoteStep]:
        failures = await asyncio.gather(
            *(s.act_realtime(e) for s, e in zip(self.sessions, events, strict=True))
        )
        # one tick after the previous step, so the runtimes applied this input at least once
        tick = 1.0 / self.fps if self.fps else 0.0
        delay = self._last_step + tick - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self._last_step = time.monotonic()
        return [s.observe_realtime(f) for s, f in zip(self.sessions, failures, strict=True)]

    def _collate(
        self, outcomes: list[RemoteStep], only: list[bool] | None = None
    ) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Batch the remotes' steps; with ``only``, ``outcomes`` are those of the True ones."""
        assert self._obs is not None
        indices = [i for i, on in enumerate(only or [True] * self.num_envs) if on]
        infos: dict[str, Any] = {}
        rewards = np.zeros(self.num_envs, np.float64)
        terminations = np.zeros(self.num_envs, np.bool_)
        truncations = np.zeros(self.num_envs, np.bool_)
        same_step = self.autoreset_mode is AutoresetMode.SAME_STEP
        for i, outcome in zip(indices, outcomes, strict=True):
            result = outcome.result
            # Gymnasium's SAME_STEP: the top level holds the reset's info, the finished
            # episode's goes to final_info
            info = result.info if outcome.reset_info is None else dict(outcome.reset_info)
            self._store(i, outcome.obs, info)
            rewards[i] = result.reward
            terminations[i] = result.terminated
            truncations[i] = result.truncated
            if same_step and result.done:
                # a remote that went down has no terminal view: its blank stands in
                final_obs = outcome.obs if outcome.final_obs is None else outcome.final_obs
                final = {"final_obs": final_obs, "final_info": outcome.final_info}
                infos = self._add_info(infos, final, i)
            infos = self._add_info(infos, info, i)
        return deepcopy(self._obs), rewards, terminations, truncations, infos

    def _store(self, i: int, obs: Any, info: dict[str, Any]) -> None:
        """Write remote ``i``'s observation into the batch (zeros when its shape changed)."""
        parts = self._obs.items() if isinstance(self._obs, dict) else [(None, self._obs)]
        for key, batch in parts:
            value = obs if key is None else obs[key]
            if np.shape(value) == batch.shape[1:]:
                batch[i] = value
            else:  # a remote came back with another size: keep the batch shape
                batch[i] = 0
                info.setdefault("error", f"remote {i}: observation shape {np.shape(value)}")

    def render(self) -> tuple[np.ndarray, ...] | None:
        """The latest observation of every remote."""
        if self._obs is None or self.observation == "state":
            return None
        frames = self._obs["pixels"] if isinstance(self._obs, dict) else self._obs
        return tuple(frames.copy())

    # ----- lifetime ------------------------------------------------------------------------

    @property
    def errors(self) -> list[str | None]:
        """The last error of each remote (None where it is healthy)."""
        return [s.last_error if s.down else None for s in self.sessions]

    def _start_local(self, n: int) -> str:
        from gymlab.client.local_remotes import LocalRemotes, check_count

        check_count(n)
        if self.env_id is None:
            raise ValueError(f"remotes={n} starts local runtimes: say which env (env_id=...)")
        self._local = LocalRemotes.start(n, self.env_id, mode=self.mode, fps=self.fps)
        # at exit, close the connections before the runtimes go (atexit runs last-in first)
        atexit.register(_close_at_exit, weakref.ref(self))
        return self._local.remotes

    def _shutdown(self) -> None:
        local, self._local = self._local, None
        try:
            self._close_sessions()
        finally:
            if local is not None:
                local.close()

    def _close_sessions(self) -> None:
        loop, sessions = self._loop, self.sessions
        if loop is not None and loop.running:

            async def close_all() -> None:
                await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)

            try:
                loop.run(close_all(), 15)
            except (TimeoutError, RuntimeError):
                pass
            loop.stop()
        self._loop = None

    def close_extras(self, **kwargs: Any) -> None:
        """Close every connection and stop the background loop."""
        self._shutdown()

    def __repr__(self) -> str:
        where = str(self.spec_remotes) if self.spec_remotes else "unconfigured"
        mode = self.mode.value if self.mode is not None else None
        return f"RemoteVectorEnv({where}, mode={mode})"
