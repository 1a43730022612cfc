"""End-to-end: RemoteVectorEnv's autoreset modes and observations, checked step by step
against Gymnasium's own SyncVectorEnv over the same seeded envs, and Gymnasium's vector
wrappers on a live RemoteVectorEnv.

Two lockstep CartPole runtimes on loopback; the reference renders in-process. Lockstep
remotes are pixel-identical to in-process rendering, so everything is compared exactly.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import AddRenderObservation
from gymnasium.wrappers import vector as vw

import gymlab
from gymlab.client.session import RemoteConnectError
from gymlab.supervisor import LocalRuntime, local_runtimes, remotes_string

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"),
]

STEPS = 40


@pytest.fixture(scope="module")
def runtimes() -> Iterator[list[LocalRuntime]]:
    with local_runtimes(2, mode="lockstep") as rts:
        yield rts


def remote_env(runtimes: list[LocalRuntime], **kwargs: Any) -> gymlab.RemoteVectorEnv:
    """A RemoteVectorEnv on the shared runtimes (waiting for the last test's controller to go)."""
    for _ in range(50):
        try:
            return gymlab.make("CartPole-v1", remotes=remotes_string(runtimes), **kwargs)
        except RemoteConnectError as exc:
            if "controlling client" not in str(exc):
                raise
            time.sleep(0.1)
    raise AssertionError("the runtimes kept refusing a controller")


def reference(mode: AutoresetMode, observation: str) -> SyncVectorEnv:
    def one() -> gym.Env[Any, Any]:
        env = gym.make("CartPole-v1", render_mode="rgb_array")
        if observation == "pixels":
            return AddRenderObservation(env, render_only=True)
        if observation == "both":
            return AddRenderObservation(
                env, render_only=False, render_key="pixels", obs_key="state"
            )
        return env

    factories: list[Callable[[], gym.Env[Any, Any]]] = [one, one]
    return SyncVectorEnv(factories, autoreset_mode=mode)


def assert_same(ours: Any, theirs: Any, what: str) -> None:
    if isinstance(theirs, dict):
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{what}[{key}]")
    else:
        assert np.array_equal(np.asarray(ours), np.asarray(theirs)), what


def actions(t: int) -> np.ndarray:
    return np.array([1, t % 2])  # remote 0 falls over fast: several episodes in 40 steps


@pytest.mark.parametrize("observation", ["pixels", "state", "both"])
@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_autoreset_matches_gymnasium_step_by_step(
    runtimes: list[LocalRuntime], mode: AutoresetMode, observation: str
) -> None:
    env = remote_env(runtimes, autoreset_mode=mode, observation=observation)
    ref = reference(mode, observation)
    try:
        assert env.metadata["autoreset_mode"] is mode
        assert env.single_observation_space == ref.single_observation_space
        ours, _ = env.reset(seed=0)
        theirs, _ = ref.reset(seed=0)
        assert_same(ours, theirs, "reset obs")
        ended = 0
        for t in range(STEPS):
            mine, want = env.step(actions(t)), ref.step(actions(t))
            for k, name in enumerate(("obs", "rewards", "terminations", "truncations")):
                assert_same(mine[k], want[k], f"step {t} {name}")
            ended += int(np.sum(want[2] | want[3]))
            if "final_obs" in want[4]:
                mask = want[4]["_final_obs"]
                assert np.array_equal(mine[4]["_final_obs"], mask)
                for i in np.flatnonzero(mask):
                    assert_same(mine[4]["final_obs"][i], want[4]["final_obs"][i], f"final {t}")
                    ended_episode = mine[4]["final_info"]["episode_id"][i]
                    # as in Gymnasium, the top level holds the reset's info: the new episode
                    assert mine[4]["episode_id"][i] == ended_episode + 1
        assert ended >= 3  # the comparison covered episode ends
    finally:
        env.close()
        ref.close()


def test_disabled_mode_resets_only_what_the_mask_names(runtimes: list[LocalRuntime]) -> None:
    env = remote_env(runtimes, autoreset_mode=AutoresetMode.DISABLED)
    ref = reference(AutoresetMode.DISABLED, "pixels")
    try:
        assert_same(env.reset(seed=3)[0], ref.reset(seed=3)[0], "reset")
        for t in range(STEPS):
            mine, want = env.step(np.array([1, 1])), ref.step(np.array([1, 1]))
            assert_same(mine[0], want[0], f"step {t}")
            done = want[2] | want[3]
            if done.any():
                mask = done.copy()
                assert_same(
                    env.reset(options={"reset_mask": mask})[0],
                    ref.reset(options={"reset_mask": mask})[0],
                    f"masked reset {t}",
                )
        with pytest.raises(ValueError, match="reset_mask must be 2 booleans"):
            env.reset(options={"reset_mask": [1, 0]})
    finally:
        env.close()
        ref.close()


def test_gymnasium_vector_wrappers_run_on_a_live_remote(runtimes: list[LocalRuntime]) -> None:
    env = remote_env(runtimes)  # NEXT_STEP: what Gymnasium's observation wrappers require
    wrapped = vw.NormalizeReward(
        vw.GrayscaleObservation(vw.ResizeObservation(vw.RecordEpisodeStatistics(env), (84, 84)))
    )
    try:
        obs, _ = wrapped.reset(seed=0)
        assert obs.shape == (2, 84, 84) and obs.dtype == np.uint8
        episodes = []
        for t in range(STEPS):
            obs, rewards, _, _, infos = wrapped.step(actions(t))
            assert obs.shape == (2, 84, 84) and np.isfinite(rewards).all()
            if "episode" in infos:
                episodes += list(infos["episode"]["l"][infos["_episode"]])
        assert episodes and all(length > 0 for length in episodes)
    finally:
        wrapped.close()


def test_bad_choices_are_named(runtimes: list[LocalRuntime]) -> None:
    with pytest.raises(ValueError, match="autoreset_mode must be one of NEXT_STEP"):
        gymlab.RemoteVectorEnv(autoreset_mode="sometimes")
    with pytest.raises(ValueError, match="observation must be one of pixels, state, both"):
        gymlab.RemoteVectorEnv(observation="smell")
    # names and values of Gymnasium's enum are both accepted
    assert gymlab.RemoteVectorEnv(autoreset_mode="same_step").autoreset_mode is (
        AutoresetMode.SAME_STEP
    )
    assert gymlab.RemoteVectorEnv(autoreset_mode="NextStep").metadata["autoreset_mode"] is (
        AutoresetMode.NEXT_STEP
    )
