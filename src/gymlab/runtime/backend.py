"""What every runtime backend shares, and which backend serves an env id.

A backend draws one environment into the runtime's display and returns what happened
(:class:`~gymlab.rewarder.backend.Transition`, :class:`~gymlab.rewarder.backend.EpisodeStart`);
the rewarder server publishes it. Backends register themselves here
(:func:`register`), and the runtime's process (:mod:`gymlab.runtime.core`) asks
:func:`backend_for` which one serves its env id. Arrows point one way: core -> the backends
-> this base -> :mod:`gymlab.runtime.config`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from gymlab.rewarder import protocol as p
from gymlab.rewarder.backend import EpisodeStart, RequestRejected, Transition
from gymlab.runtime.config import ConfigError, RuntimeConfig

T = TypeVar("T")


@dataclass(frozen=True)
class Display:
    """The runtime's X display, once Xvnc runs: what a backend draws on."""

    name: str  # e.g. ":7"
    xauthority: Path | None
    workdir: Path  # the runtime's private work directory (0700)


class Backend:
    """The env thread, the real-time clock, the frame counter and the reset's env switch.

    The env's own work (``step``, ``reset``, ``render``, building a new env, driving a
    browser) runs on one worker thread (:meth:`off_loop`), so a slow environment cannot
    stall pings and handshakes on the loop; drawing into X stays on the loop. The server
    calls one method at a time.

    A subclass says which env ids it serves (:meth:`serves`), prepares itself before the
    display exists (:meth:`prepare`: frame size known, the env checked), attaches to the
    display (:meth:`attach`), and produces results: :meth:`reset`, :meth:`act` for a
    lockstep action, :meth:`tick` for real time, :meth:`switch` for another env id.
    """

    #: the size of the display the runtime starts for it, (width, height)
    frame_size: tuple[int, int]
    #: whether Xvnc draws a cursor (a program that draws its own pointer says no)
    shows_cursor: ClassVar[bool] = True

    def __init__(self, config: RuntimeConfig, env_id: str) -> None:
        self.config = config
        self.mode = p.Mode(config.mode)
        self.env_id = env_id
        self.fps = config.fps
        self.frame = 0
        self._env_thread = ThreadPoolExecutor(1, thread_name_prefix="gymlab-env")
        self._clock_changed = asyncio.Event()

    # what a subclass gives

    @classmethod
    def serves(cls, env_id: str) -> bool:
        """Whether this backend serves ``env_id``."""
        raise NotImplementedError

    @classmethod
    def prepare(cls, config: RuntimeConfig) -> Backend:
        """Check the config against this backend and build it (before the display exists).

        Raises :class:`ConfigError` naming what cannot work.
        """
        raise NotImplementedError

    async def attach(self, display: Display) -> None:
        """The display runs: show the first frame on it."""
        raise NotImplementedError

    def describe_extras(self) -> dict[str, Any]:
        """This backend's own describe fields (its action space, key map, ...)."""
        return {}

    async def switch(self, env_id: str, seed: int | None) -> None:
        """Serve ``env_id`` from the next reset on; :class:`RequestRejected` if it cannot."""
        raise RequestRejected(f"this runtime serves {self.env_id} only")

    async def reset(self, seed: int | None) -> EpisodeStart:
        raise NotImplementedError

    async def act(self, action: Any) -> Transition:
        """Lockstep: apply ``action`` (JSON); :class:`RequestRejected` for a bad one."""
        raise NotImplementedError

    async def tick(self) -> Transition | None:
        raise NotImplementedError

    def event_fd(self) -> int | None:
        """A file descriptor to watch for display events (:meth:`poll_events`), if any."""
        return None

    def poll_events(self) -> None:
        """Read what the display sent; raises when the display connection broke."""

    def close(self) -> None:
        """Stop the env thread (subclasses close their env or program too)."""
        self._env_thread.shutdown(wait=True, cancel_futures=True)

    # shared by every backend

    def describe(self) -> p.Describe:
        """The describe every backend gives (the server fills in the episode)."""
        width, height = self.frame_size
        return p.Describe(
            env_id=self.env_id,
            fps=self.fps,
            frame_shape=(height, width, 3),
            mode=self.mode,
            frame=self.frame,
            **self.describe_extras(),
        )

    async def prepare_reset(self, request: p.Reset) -> None:
        """A reset may change the real-time frame rate and switch env (before it starts)."""
        if request.env_id is not None and request.env_id != self.env_id:
            await self.switch(request.env_id, request.seed)
        if request.fps is not None and request.fps != self.fps:
            self.fps = request.fps
            self._clock_changed.set()  # a sleeping real-time clock picks it up now

    async def step(self, action: Any) -> Transition:
        """Lockstep step: :meth:`act`, with the action as sent in its ``info``."""
        transition = await self.act(action)
        transition.info["action"] = action
        return transition

    async def off_loop(self, func: Callable[..., T], *args: Any) -> T:
        """Run ``func`` on the env thread."""
        return await asyncio.get_running_loop().run_in_executor(self._env_thread, func, *args)

    async def run_clock(self, tick: Callable[[], Awaitable[None]]) -> None:
        """Real time: call ``tick`` at ``fps`` until cancelled.

        A late tick moves the schedule instead of bursting; a new ``fps`` (from a reset)
        wakes the clock at once and starts a new schedule.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            await tick()
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


_SPECIFIC: list[type[Backend]] = []
_FALLBACK: list[type[Backend]] = []


def register(*, fallback: bool = False) -> Callable[[type[Backend]], type[Backend]]:
    """Class decorator: make a backend known; a fallback serves what no other one claims."""

    def add(cls: type[Backend]) -> type[Backend]:
        (_FALLBACK if fallback else _SPECIFIC).append(cls)
        return cls

    return add


def backend_for(env_id: str) -> type[Backend]:
    """The backend that serves ``env_id``; :class:`ConfigError` when none does."""
    for cls in (*_SPECIFIC, *_FALLBACK):
        if cls.serves(env_id):
            return cls
    raise ConfigError(f"no runtime backend serves {env_id!r}")
