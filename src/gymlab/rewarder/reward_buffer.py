"""Client-side reward accumulation with Universe's episode semantics.

Pure data structure, no I/O: the rewarder client feeds it every
``v0.env.reward`` and each agent step pops what arrived since the last pop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gymlab.rewarder.protocol.episode import Episode, Phase, Trigger

REWARD_COUNT_KEY = "stats.reward.count"
#: Episodes with rewards waiting at once (a server that runs ahead loses its oldest).
MAX_EPISODES = 64
#: Distinct info keys merged per episode (later new keys are dropped).
MAX_INFO_KEYS = 256


@dataclass(frozen=True)
class PoppedReward:
    """What arrived since the last pop, for one episode."""

    reward: float
    done: bool
    info: dict[str, Any]
    episode_id: int | None


@dataclass
class _Accumulated:
    reward: float = 0.0
    done: bool = False
    count: int = 0
    info: dict[str, Any] = field(default_factory=dict)


class RewardBuffer:
    """Rewards kept per episode id.

    * ``pop`` returns the sum of rewards, the OR of ``done`` flags and the
      merged info (with ``"stats.reward.count"``) for the agent's current
      episode. When that episode is done, the pop closes it and the agent
      moves to the next episode: reward and done belong to the old episode,
      the next observation to the new one. Rewards already received for the
      next episode wait for the next pop.
    * Between ``begin_reset`` and ``finish_reset`` (a client reset in flight)
      every reward is dropped, as are rewards for episodes older than the
      current one.
    * Memory is bounded whatever the server sends: at most ``MAX_EPISODES``
      episodes wait, each with at most ``MAX_INFO_KEYS`` info keys.
    """

    def __init__(self, episode_id: int | None = None) -> None:
        self._current = episode_id
        #: only its phase is read: whether a reset of ours is in flight (the episode table's)
        self._reset = Episode()
        self._episodes: dict[int, _Accumulated] = {}

    @property
    def episode_id(self) -> int | None:
        """The episode the agent is currently in (None before any is known)."""
        return self._current

    @property
    def reset_pending(self) -> bool:
        """True between ``begin_reset`` and ``finish_reset``."""
        return self._reset.phase is Phase.RESETTING

    def set_episode(self, episode_id: int) -> None:
        """Adopt the server's episode id (from the first describe) if none is known yet."""
        if self._current is None:
            self._current = episode_id

    def begin_reset(self) -> None:
        """A reset request was sent: drop rewards until its reply arrives."""
        self._reset.apply(Trigger.BEGIN_RESET)

    def cancel_reset(self) -> None:
        """The reset request failed: accept rewards for the current episode again."""
        if self._reset.allows(Trigger.CANCEL_RESET):
            self._reset.apply(Trigger.CANCEL_RESET)

    def finish_reset(self, episode_id: int) -> None:
        """The reset reply arrived: the agent is now in ``episode_id``; older rewards go.

        Also for an autoreset the agent only learns of from a step's reply.
        """
        self._reset.reset_seen(episode_id)
        self._current = episode_id
        for old in [e for e in self._episodes if e < episode_id]:
            del self._episodes[old]

    def push(
        self,
        reward: float,
        done: bool,
        info: dict[str, Any] | None = None,
        episode_id: int | None = None,
    ) -> bool:
        """Record one ``v0.env.reward``. Returns False when it was dropped."""
        if self.reset_pending:
            return False
        if episode_id is None:
            episode_id = self._current if self._current is not None else 0
        if self._current is None:
            self._current = episode_id
        if episode_id < self._current:
            return False
        acc = self._episodes.get(episode_id)
        if acc is None:
            if len(self._episodes) >= MAX_EPISODES:
                del self._episodes[min(self._episodes)]
            acc = self._episodes[episode_id] = _Accumulated()
        acc.reward += reward
        acc.done = acc.done or done
        acc.count += 1
        for key, value in (info or {}).items():
            if key in acc.info or len(acc.info) < MAX_INFO_KEYS:
                acc.info[key] = value
        return True

    def pop(self) -> PoppedReward:
        """Return (and clear) what accumulated for the current episode."""
        current = self._current
        if current is not None and current not in self._episodes:
            # The server moved on without a done we saw (e.g. our reward for the
            # end was lost): follow it to the oldest episode that has rewards.
            later = [e for e in self._episodes if e > current]
            if later:
                current = self._current = min(later)
        acc = self._episodes.pop(current, None) if current is not None else None
        if acc is None:
            return PoppedReward(0.0, False, {REWARD_COUNT_KEY: 0}, current)
        info = dict(acc.info)
        info[REWARD_COUNT_KEY] = acc.count
        if acc.done and current is not None:
            later = [e for e in self._episodes if e > current]
            self._current = min(later) if later else current + 1
        return PoppedReward(acc.reward, acc.done, info, current)
