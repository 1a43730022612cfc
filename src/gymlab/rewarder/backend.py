"""What the rewarder server needs from the environment side, and what it gets back.

A backend only produces results: a :class:`Transition` for a step or a real-time tick, an
:class:`EpisodeStart` for a reset. The server (:mod:`gymlab.rewarder.server`) owns the
episode (its table in :mod:`gymlab.rewarder.protocol.episode`), decides autoresets and
publishes rewards, observations, texts and describes. Neither holds the other beyond the
server calling these methods.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from gymlab.rewarder import protocol as p


class RequestRejected(Exception):
    """Raised by a backend to answer a request with ``v0.reply.error``."""


@dataclass(frozen=True)
class Transition:
    """One step's result. ``observation`` is its JSON form, or None when it is not pushed."""

    reward: float
    terminated: bool
    truncated: bool
    frame: int  # the frame counter once this step's frame is on the display
    info: dict[str, Any] = field(default_factory=dict)  # with the action taken, as JSON
    observation: Any = None

    @property
    def done(self) -> bool:
        """The episode ended (terminated or truncated)."""
        return self.terminated or self.truncated


@dataclass(frozen=True)
class EpisodeStart:
    """A reset's result: its frame is on the display; what to push for the new episode."""

    frame: int
    observation: Any = None
    text: str | None = None


class RewarderBackend(Protocol):
    """The environment side of a runtime, as the server drives it (one call at a time)."""

    def describe(self) -> p.Describe:
        """env_id, fps and the gymlab extras; the server fills env_state and episode_id."""
        ...

    async def prepare_reset(self, request: p.Reset) -> None:
        """Take a reset's fps and switch env if it names another; the episode is unchanged.

        May raise :class:`RequestRejected` (nothing changed then).
        """
        ...

    async def reset(self, seed: int | None) -> EpisodeStart:
        """Start a new episode (the server has announced ``resetting``)."""
        ...

    async def step(self, action: Any) -> Transition:
        """Lockstep: apply ``action`` (JSON). May raise :class:`RequestRejected`."""
        ...

    async def tick(self) -> Transition | None:
        """Real time: advance one frame on the input held now (None: nothing happened)."""
        ...
