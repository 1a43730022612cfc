"""RewardBuffer: per-episode accumulation, done boundaries, pending resets."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gymlab.rewarder.reward_buffer import REWARD_COUNT_KEY, PoppedReward, RewardBuffer


def test_empty_pop() -> None:
    assert RewardBuffer(3).pop() == PoppedReward(0.0, False, {REWARD_COUNT_KEY: 0}, 3)


def test_sums_since_last_pop() -> None:
    buf = RewardBuffer(1)
    buf.push(1.0, False, {"a": 1}, 1)
    buf.push(0.5, False, {"b": 2}, 1)
    popped = buf.pop()
    assert popped == PoppedReward(1.5, False, {"a": 1, "b": 2, REWARD_COUNT_KEY: 2}, 1)
    assert buf.pop().reward == 0.0


def test_done_belongs_to_old_episode_and_new_rewards_wait() -> None:
    buf = RewardBuffer(1)
    buf.push(1.0, False, None, 1)
    buf.push(1.0, True, None, 1)
    buf.push(5.0, False, None, 2)  # the new episode started before the agent popped
    old = buf.pop()
    assert (old.reward, old.done, old.episode_id) == (2.0, True, 1)
    assert buf.episode_id == 2
    new = buf.pop()
    assert (new.reward, new.done, new.episode_id) == (5.0, False, 2)


def test_done_without_later_rewards_moves_to_next_id() -> None:
    buf = RewardBuffer(4)
    buf.push(1.0, True, None, 4)
    assert buf.pop().done
    assert buf.episode_id == 5


def test_rewards_during_pending_reset_are_dropped() -> None:
    buf = RewardBuffer(1)
    buf.push(1.0, False, None, 1)
    buf.begin_reset()
    assert buf.reset_pending
    assert not buf.push(7.0, False, None, 1)
    assert not buf.push(7.0, False, None, 9)
    buf.finish_reset(9)
    assert buf.push(2.0, False, None, 9)
    popped = buf.pop()
    assert (popped.reward, popped.episode_id, popped.info[REWARD_COUNT_KEY]) == (2.0, 9, 1)


def test_cancelled_reset_accepts_rewards_again() -> None:
    buf = RewardBuffer(2)
    buf.push(0.5, False, None, 2)
    buf.begin_reset()
    buf.cancel_reset()
    assert buf.push(1.0, False, None, 2)
    assert buf.pop().reward == 1.5


def test_stale_episode_rewards_are_dropped() -> None:
    buf = RewardBuffer(5)
    assert not buf.push(1.0, False, None, 4)
    assert buf.pop().reward == 0.0


def test_follows_server_when_done_was_missed() -> None:
    buf = RewardBuffer(1)
    buf.push(3.0, False, None, 2)
    popped = buf.pop()
    assert (popped.reward, popped.episode_id) == (3.0, 2)


def test_first_episode_adopted_from_describe_or_reward() -> None:
    buf = RewardBuffer()
    buf.set_episode(7)
    buf.set_episode(8)  # only the first one counts
    assert buf.episode_id == 7
    other = RewardBuffer()
    other.push(1.0, False, None, 3)
    assert other.pop().episode_id == 3


@given(
    st.lists(
        st.tuples(st.floats(-10, 10, allow_nan=False), st.booleans(), st.booleans()),
        max_size=60,
    )
)
def test_no_reward_is_lost_or_double_counted(steps: list[tuple[float, bool, bool]]) -> None:
    """Pushing an auto-resetting stream and popping at random points conserves the total."""
    buf = RewardBuffer(1)
    episode, popped_total, pushed_total = 1, 0.0, 0.0
    for reward, done, pop_now in steps:
        buf.push(reward, done, None, episode)
        pushed_total += reward
        if done:
            episode += 1
        if pop_now:
            popped_total += buf.pop().reward
    for _ in range(len(steps) + 1):
        popped_total += buf.pop().reward
    assert abs(popped_total - pushed_total) < 1e-6
