"""The episode's state, one table for everyone who tracks it.

The runtime's server moves its episode through :data:`TRANSITIONS` as it resets and steps;
a client's connection and its reward buffer keep their own view of the same episode
through the same table (a peer's announcement, e.g. a describe, is adopted as it is). So
"a step after an episode ended without autoreset" or "rewards during a reset" are answered
in one place, not by each backend and each buffer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from gymlab.protocol_errors import LocalProtocolError
from gymlab.rewarder.protocol.constants import MAX_EPISODE_HINT, MAX_EPISODE_ID, EnvState


class Phase(enum.Enum):
    """Where an episode is."""

    RESETTING = "resetting"  # a reset is under way, or failed (the next reset starts afresh)
    RUNNING = "running"
    ENDED = "ended"  # ended on a step that asked for no autoreset: only a reset may follow


class Trigger(enum.Enum):
    """What moves an episode."""

    BEGIN_RESET = "begin reset"
    FINISH_RESET = "finish reset"
    CANCEL_RESET = "cancel reset"  # a client's reset was refused: nothing changed
    STEP = "step"
    END = "end"  # a step ended the episode and asked for no autoreset


#: (phase, trigger) -> next phase; a pair not here is illegal.
TRANSITIONS: Mapping[tuple[Phase, Trigger], Phase] = {
    (Phase.RUNNING, Trigger.BEGIN_RESET): Phase.RESETTING,
    (Phase.ENDED, Trigger.BEGIN_RESET): Phase.RESETTING,
    (Phase.RESETTING, Trigger.BEGIN_RESET): Phase.RESETTING,  # after one that failed
    (Phase.RESETTING, Trigger.FINISH_RESET): Phase.RUNNING,
    (Phase.RESETTING, Trigger.CANCEL_RESET): Phase.RUNNING,
    (Phase.RUNNING, Trigger.STEP): Phase.RUNNING,
    (Phase.RUNNING, Trigger.END): Phase.ENDED,
}

#: What a ``v0.env.describe`` announces for each phase (an ended episode is still on screen).
WIRE_STATE: Mapping[Phase, EnvState] = {
    Phase.RESETTING: EnvState.RESETTING,
    Phase.RUNNING: EnvState.RUNNING,
    Phase.ENDED: EnvState.RUNNING,
}


def episode_hint(episode_id: int | None) -> int | None:
    """The reset hint a client sends for its current episode (clamped to what is accepted)."""
    return None if episode_id is None else min(episode_id, MAX_EPISODE_HINT)


class Episode:
    """One party's view of the episode: its id and :class:`Phase`, moved by :data:`TRANSITIONS`.

    The id goes up each time a reset begins; a client's hint can only push it further:
    ``new = max(hint + 1, current + 1)``.
    """

    def __init__(self, episode_id: int | None = None, phase: Phase = Phase.RUNNING) -> None:
        self.episode_id = episode_id
        self.phase = phase

    @property
    def state(self) -> EnvState:
        """The state a describe announces."""
        return WIRE_STATE[self.phase]

    def allows(self, trigger: Trigger) -> bool:
        """Whether ``trigger`` is legal now."""
        return (self.phase, trigger) in TRANSITIONS

    def apply(self, trigger: Trigger) -> Phase:
        """Move by ``trigger``; :class:`LocalProtocolError` naming both when it is illegal."""
        try:
            self.phase = TRANSITIONS[self.phase, trigger]
        except KeyError:
            raise LocalProtocolError(
                f"cannot {trigger.value} while the episode is {self.phase.value}"
            ) from None
        return self.phase

    def begin_reset(self, hint: int | None = None) -> int:
        """Enter ``resetting`` under a new episode id, and return it."""
        current = self.episode_id or 0
        new_id = current + 1 if hint is None else max(current, hint) + 1
        if new_id > MAX_EPISODE_ID:  # unreachable through the protocol (hints are bounded)
            raise LocalProtocolError(f"episode id {new_id} exceeds {MAX_EPISODE_ID}")
        self.apply(Trigger.BEGIN_RESET)
        self.episode_id = new_id
        return new_id

    def finish_reset(self) -> None:
        """The reset frame is on the display: the episode runs."""
        self.apply(Trigger.FINISH_RESET)

    def reset_seen(self, episode_id: int | None) -> None:
        """A reset finished that this party saw only the end of (its reply): go through it."""
        if self.phase is not Phase.RESETTING:
            self.apply(Trigger.BEGIN_RESET)
        self.apply(Trigger.FINISH_RESET)
        if episode_id is not None:
            self.episode_id = episode_id

    def adopt(self, episode_id: int | None, state: EnvState | None = None) -> None:
        """Take what the peer announced (a describe, a reply): its id and its wire state.

        Not a transition: the peer's own table moved. An ended episode the peer still
        calls running stays ended here.
        """
        if episode_id is not None:
            self.episode_id = episode_id
        if state is EnvState.RESETTING:
            self.phase = Phase.RESETTING
        elif state is EnvState.RUNNING and self.phase is not Phase.ENDED:
            self.phase = Phase.RUNNING
