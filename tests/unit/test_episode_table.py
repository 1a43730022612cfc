"""The episode-state table: every (phase, trigger) pair, legal or not, and the views on it."""

from __future__ import annotations

import itertools

import pytest

from gymlab.rewarder import protocol as p
from gymlab.rewarder.protocol.episode import TRANSITIONS, WIRE_STATE

Phase, Trigger = p.Phase, p.Trigger

#: What the table must say, written out: (phase, trigger) -> next phase.
LEGAL = {
    (Phase.RUNNING, Trigger.BEGIN_RESET): Phase.RESETTING,
    (Phase.ENDED, Trigger.BEGIN_RESET): Phase.RESETTING,
    (Phase.RESETTING, Trigger.BEGIN_RESET): Phase.RESETTING,
    (Phase.RESETTING, Trigger.FINISH_RESET): Phase.RUNNING,
    (Phase.RESETTING, Trigger.CANCEL_RESET): Phase.RUNNING,
    (Phase.RUNNING, Trigger.STEP): Phase.RUNNING,
    (Phase.RUNNING, Trigger.END): Phase.ENDED,
}
ALL_PAIRS = list(itertools.product(Phase, Trigger))


def test_the_table_is_the_written_one() -> None:
    assert dict(TRANSITIONS) == LEGAL


@pytest.mark.parametrize(("phase", "trigger"), [k for k in ALL_PAIRS if k in LEGAL])
def test_legal_transition(phase: p.Phase, trigger: p.Trigger) -> None:
    episode = p.Episode(3, phase)
    assert episode.allows(trigger)
    assert episode.apply(trigger) is LEGAL[phase, trigger] is episode.phase
    assert episode.episode_id == 3  # only begin_reset issues ids


@pytest.mark.parametrize(("phase", "trigger"), [k for k in ALL_PAIRS if k not in LEGAL])
def test_illegal_transition_is_refused_and_changes_nothing(
    phase: p.Phase, trigger: p.Trigger
) -> None:
    episode = p.Episode(3, phase)
    assert not episode.allows(trigger)
    with pytest.raises(p.LocalProtocolError, match=rf"cannot {trigger.value} while the episode is"):
        episode.apply(trigger)
    assert (episode.phase, episode.episode_id) == (phase, 3)


def test_an_ended_episode_is_announced_running() -> None:
    """The terminal frame is still on screen: the wire has no word for ended."""
    assert WIRE_STATE == {
        Phase.RESETTING: p.EnvState.RESETTING,
        Phase.RUNNING: p.EnvState.RUNNING,
        Phase.ENDED: p.EnvState.RUNNING,
    }


def test_begin_reset_issues_ids_and_a_failed_reset_starts_afresh() -> None:
    episode = p.Episode(1)
    assert episode.begin_reset() == 2 and episode.phase is Phase.RESETTING
    assert episode.begin_reset(hint=10) == 11  # the one before failed: a fresh id
    episode.finish_reset()
    assert (episode.phase, episode.state) == (Phase.RUNNING, p.EnvState.RUNNING)
    with pytest.raises(p.LocalProtocolError):
        episode.finish_reset()  # no reset under way


def test_ids_cannot_pass_the_largest() -> None:
    episode = p.Episode(p.MAX_EPISODE_ID)
    with pytest.raises(p.LocalProtocolError, match="exceeds"):
        episode.begin_reset()
    assert episode.phase is Phase.RUNNING and episode.episode_id == p.MAX_EPISODE_ID


@pytest.mark.parametrize("phase", list(Phase))
def test_a_reset_seen_only_by_its_reply_runs_from_any_phase(phase: p.Phase) -> None:
    episode = p.Episode(4, phase)
    episode.reset_seen(9)
    assert (episode.phase, episode.episode_id) == (Phase.RUNNING, 9)


@pytest.mark.parametrize(
    ("phase", "announced", "after"),
    [
        (Phase.RUNNING, p.EnvState.RESETTING, Phase.RESETTING),
        (Phase.RESETTING, p.EnvState.RUNNING, Phase.RUNNING),
        (Phase.ENDED, p.EnvState.RUNNING, Phase.ENDED),  # still ended: only a reset ends it
        (Phase.ENDED, p.EnvState.RESETTING, Phase.RESETTING),
        (Phase.RUNNING, None, Phase.RUNNING),
    ],
)
def test_adopting_an_announcement(
    phase: p.Phase, announced: p.EnvState | None, after: p.Phase
) -> None:
    episode = p.Episode(4, phase)
    episode.adopt(7, announced)
    assert (episode.phase, episode.episode_id) == (after, 7)
