"""RemoteVectorEnv bookkeeping that needs no processes: outcomes, batching, actions, backoff."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from gymnasium.spaces import Discrete
from gymnasium.vector import AutoresetMode

from gymlab.client.actions import (
    KeyActionMapper,
    KeyEvent,
    PointerEvent,
    apply_held,
    check_wrapped,
    is_event_list,
    parse_events,
)
from gymlab.client.loop import LoopThread
from gymlab.client.session import Backoff, RemoteStep, lockstep_outcome, realtime_outcome
from gymlab.client.vector import NotConfiguredError, RemoteVectorEnv
from gymlab.rewarder import protocol as p
from gymlab.rewarder.reward_buffer import RewardBuffer
from gymlab.rfb.keysyms import keysym
from gymlab.runtime.keymaps import keymap_for

FRAME = np.full((4, 6, 3), 7, np.uint8)


def test_realtime_rewards_accumulate_and_done_closes_the_episode() -> None:
    buffer = RewardBuffer(episode_id=3)
    truncated: set[int] = set()
    for _ in range(3):
        buffer.push(1.0, False, {"k": 1}, episode_id=3)
    out = realtime_outcome(FRAME, buffer.pop(), truncated)
    assert (out.result.reward, out.result.terminated, out.result.truncated) == (3.0, False, False)
    assert out.result.info["stats.reward.count"] == 3 and out.result.info["episode_id"] == 3
    assert out.final_info is None
    # the end of episode 3 and the first reward of 4 arrive before the next pop
    buffer.push(1.0, True, {}, episode_id=3)
    buffer.push(1.0, False, {}, episode_id=4)
    out = realtime_outcome(FRAME, buffer.pop(), truncated)
    assert (out.result.reward, out.result.terminated, out.result.truncated) == (1.0, True, False)
    assert out.final_info is not None and out.final_info["episode_id"] == 3
    out = realtime_outcome(FRAME, buffer.pop(), truncated)
    assert (out.result.reward, out.result.terminated, out.result.info["episode_id"]) == (
        1.0,
        False,
        4,
    )


def test_realtime_truncation_is_told_apart_from_termination() -> None:
    buffer = RewardBuffer(episode_id=1)
    truncated = {1}  # the rewarder listener saw truncated=True for episode 1
    buffer.push(1.0, True, {}, episode_id=1)
    out = realtime_outcome(FRAME, buffer.pop(), truncated)
    assert (out.result.terminated, out.result.truncated) == (False, True)
    assert truncated == set()


def test_nothing_arrived_gives_zero_reward() -> None:
    out = realtime_outcome(FRAME, RewardBuffer(episode_id=2).pop(), set())
    assert (out.result.reward, out.result.terminated, out.result.info["stats.reward.count"]) == (
        0.0,
        False,
        0,
    )


def test_lockstep_outcome_keeps_terminal_info() -> None:
    reply = p.StepReply(
        frame=9,
        reward=1.0,
        terminated=True,
        truncated=False,
        info={"terminal_frame": 8, "terminal_episode_id": 2},
        episode_id=3,
    )
    out = lockstep_outcome(FRAME, reply)
    assert (
        out.result.reward,
        out.result.terminated,
        out.result.info["frame"],
        out.result.info["episode_id"],
    ) == (
        1.0,
        True,
        9,
        3,
    )
    assert out.final_info is not None and out.final_info["terminal_episode_id"] == 2


def _unconfigured(n: int, mode: AutoresetMode = AutoresetMode.SAME_STEP) -> RemoteVectorEnv:
    env = RemoteVectorEnv(autoreset_mode=mode)
    env.num_envs = n
    env._obs = np.zeros((n, *FRAME.shape), np.uint8)
    return env


def test_collate_batches_and_masks_same_step_autoreset() -> None:
    env = _unconfigured(3)
    final = {"terminal_episode_id": 5, "episode_id": 6}
    outcomes = [
        RemoteStep(FRAME, p.StepResult(reward=1.0, info={"episode_id": 1})),
        RemoteStep(
            FRAME + 1,
            p.StepResult(reward=1.0, terminated=True, info=dict(final)),
            final_obs=FRAME + 2,
        ),
        RemoteStep(FRAME * 0, p.StepResult(truncated=True, info={"error": "remote 2: gone"})),
    ]
    obs, rewards, terms, truncs, infos = env._collate(outcomes)
    assert obs.shape == (3, *FRAME.shape) and obs.dtype == np.uint8
    assert np.array_equal(obs[1], FRAME + 1)
    assert rewards.tolist() == [1.0, 1.0, 0.0]
    assert terms.tolist() == [False, True, False]
    assert truncs.tolist() == [False, False, True]
    # every ended episode has a final_info, a remote that went down (truncated) too
    assert infos["_final_info"].tolist() == [False, True, True]
    assert np.array_equal(infos["final_obs"][1], FRAME + 2)  # the terminal frame
    assert np.array_equal(infos["final_obs"][2], FRAME * 0)  # a dead remote's blank
    assert infos["final_info"]["terminal_episode_id"][1] == 5
    assert infos["_error"].tolist() == [False, False, True]
    assert infos["error"][2] == "remote 2: gone"
    obs[0] = 99  # returned arrays are copies
    assert env._collate(outcomes)[0][0].max() == 7
    # NEXT_STEP (the default) reports no final_obs/final_info, as Gymnasium's envs do
    assert "final_info" not in _unconfigured(3, AutoresetMode.NEXT_STEP)._collate(outcomes)[4]


def test_metadata_and_unconfigured_errors() -> None:
    env = RemoteVectorEnv()
    assert env.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    with pytest.raises(NotConfiguredError, match="configure"):
        env.reset()
    with pytest.raises(TypeError, match="unexpected option"):
        env.configure("vnc://h:1+2", bogus=1)


def test_key_mapper_holds_one_key_and_releases_for_idle() -> None:
    mapper = KeyActionMapper(keymap_for("MountainCar-v0"))
    left, right = keysym("Left"), keysym("Right")
    held: list[int] = []
    events = mapper.events(0, held)
    assert events == [KeyEvent(left, True)]
    apply_held(held, events)
    events = mapper.events(2, held)
    assert events == [KeyEvent(left, False), KeyEvent(right, True)]
    apply_held(held, events)
    assert held == [right]
    assert mapper.events(2, held) == []  # already held: nothing to send
    assert mapper.events(1, held) == [KeyEvent(right, False)]  # idle: release
    with pytest.raises(ValueError, match="no key"):
        mapper.events(7, held)


def test_continuous_actions_map_through_exact_bindings() -> None:
    mapper = KeyActionMapper(keymap_for("Pendulum-v1"))
    assert mapper.keys_for(np.array([2.0], np.float32)) == (keysym("Right"),)
    assert mapper.keys_for([0.0]) == ()


def test_key_mapper_holds_a_chord_for_a_combined_action() -> None:
    meanings = ["NOOP", "FIRE", "UP", "UPFIRE"]
    mapper = KeyActionMapper(keymap_for("ALE/Foo-v5", Discrete(4), lambda: meanings))
    up, space = keysym("Up"), keysym("space")
    held: list[int] = []
    events = mapper.events(np.int64(3), held)
    assert events == [KeyEvent(up, True), KeyEvent(space, True)]
    apply_held(held, events)
    assert mapper.events(1, held) == [KeyEvent(up, False)]  # keep space, let go of Up


def test_universe_event_lists() -> None:
    action = [("KeyEvent", "ArrowUp", True), ("PointerEvent", 10, 20, 1)]
    assert is_event_list(action) and is_event_list([])
    assert not is_event_list(np.array([1, 0])) and not is_event_list(1)
    assert parse_events(action) == [KeyEvent(keysym("ArrowUp"), True), PointerEvent(10, 20, 1)]
    for bad in ([("KeyEvent", "NoSuchKey", True)], [("PointerEvent", -1, 0, 0)], [("Bogus",)]):
        with pytest.raises(ValueError):
            parse_events(bad)


def test_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(initial=0.1, maximum=0.5, jitter=0.0)
    assert [round(backoff.next_delay(), 3) for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


def test_loop_thread_runs_and_times_out() -> None:
    loop = LoopThread()
    try:

        async def add(a: int, b: int) -> int:
            await asyncio.sleep(0)
            return a + b

        assert loop.run(add(2, 3), 5) == 5
        with pytest.raises(TimeoutError):
            loop.run(asyncio.sleep(10), 0.05)
    finally:
        loop.stop()
    assert not loop.running
    with pytest.raises(RuntimeError, match="stopped"):
        loop.run(add(1, 1))


def test_loop_thread_passes_the_coroutines_own_timeout_error_through() -> None:
    class Mine(TimeoutError):
        pass

    async def fail() -> None:
        raise Mine("from the coroutine")

    loop = LoopThread()
    try:
        with pytest.raises(Mine, match="from the coroutine"):
            loop.run(fail(), 5)
    finally:
        loop.stop()


def test_loop_thread_stops_cleanly_when_called_inside_a_running_loop() -> None:
    """A notebook closes its env from inside the kernel's own event loop."""
    thread = LoopThread()
    finalised: list[bool] = []

    async def numbers():  # an async generator left open, as a half-read stream would be
        try:
            yield 1
            yield 2
        finally:
            finalised.append(True)

    async def start():
        gen = numbers()
        await gen.__anext__()
        return gen

    gen = thread.run(start(), 5)

    async def kernel_cell() -> None:
        thread.stop()

    asyncio.run(kernel_cell())
    assert finalised == [True]
    assert thread.loop.is_closed()
    assert gen is not None


@pytest.mark.parametrize(
    "actions",
    [
        ("KeyEvent", "ArrowLeft", True),
        [("KeyEvent", "ArrowLeft", True), ("PointerEvent", 1, 2, 0)],
        [PointerEvent(1, 2, 0)],
    ],
)
def test_unwrapped_real_time_events_are_refused_with_the_fix(actions: object) -> None:
    with pytest.raises(ValueError, match=r"wrap each remote's events in a list: \[\["):
        check_wrapped(actions, 2)


def test_one_remote_given_a_bare_event_is_named() -> None:
    wrapped = [("KeyEvent", "ArrowLeft", True)]
    with pytest.raises(ValueError, match=r"^remote 1: got the bare event .*\(one list per remote"):
        check_wrapped([wrapped, ("KeyEvent", "ArrowRight", True)], 2)


def test_flat_events_for_one_remote_show_the_wrapped_form() -> None:
    with pytest.raises(ValueError) as info:
        check_wrapped([("KeyEvent", "ArrowLeft", True), ("KeyEvent", "ArrowLeft", False)], 1)
    assert str(info.value) == (
        'wrap each remote\'s events in a list: [[("KeyEvent", "ArrowLeft", True)]]'
        " (one list per remote, 1 here)"
    )


def test_the_key_mapper_explains_an_event_given_as_an_action() -> None:
    mapper = KeyActionMapper(keymap_for("CartPole-v1"))
    for action in ("KeyEvent", ("KeyEvent", "ArrowLeft", True)):
        with pytest.raises(ValueError, match=r"is not an action; wrap each remote's events"):
            mapper.events(action, [])


def test_wrapped_events_and_native_actions_pass() -> None:
    check_wrapped([[("KeyEvent", "ArrowLeft", True)], []], 2)
    check_wrapped(np.array([0, 1]), 2)
    check_wrapped([0, 1], 2)
    check_wrapped([[np.array([0.5])], [np.array([1.0, 2.0])]], 2)  # arrays never look like events
