"""End-to-end: ``gymlab.RemoteEnv``, one remote as a ``gymnasium.Env``, against in-process.

A real local runtime (its own Xvnc) in lockstep: Gymnasium's ``check_env`` passes, and an
episode played through it equals the same seed and actions in-process, pixels and state.
"""

from __future__ import annotations

import shutil

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import gymlab

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"),
]


@pytest.fixture(scope="module")
def both() -> gymlab.RemoteEnv:
    env = gymlab.RemoteEnv(1, env_id="CartPole-v1", mode="lockstep", observation="both")
    assert env.episode_id is None
    yield env
    env.close()


def test_gymnasium_check_env_passes(both: gymlab.RemoteEnv) -> None:
    check_env(both, skip_render_check=False)


def test_an_episode_equals_in_process(both: gymlab.RemoteEnv) -> None:
    local = gym.make("CartPole-v1", render_mode="rgb_array")
    try:
        obs, info = both.reset(seed=7)
        want, _ = local.reset(seed=7)
        assert isinstance(info, dict) and "episode_id" not in info
        first_episode, frames = both.episode_id, []
        assert first_episode is not None
        np.testing.assert_allclose(obs["state"], want, rtol=1e-6)
        assert np.array_equal(obs["pixels"], local.render())
        steps, terminated = 0, False
        while not terminated and steps < 500:
            action = steps % 2
            obs, reward, terminated, truncated, info = both.step(action)
            want, want_reward, want_terminated, _, _ = local.step(action)
            assert (reward, terminated) == (want_reward, want_terminated)
            np.testing.assert_allclose(obs["state"], want, rtol=1e-6)
            assert np.array_equal(obs["pixels"], local.render())
            assert np.array_equal(both.render(), obs["pixels"])
            assert not truncated and "error" not in info and "frame" not in info
            frames.append(both.frame)
            steps += 1
        assert terminated  # alternating actions end a CartPole episode well before 500
        assert both.episode_id == first_episode  # the terminal step is still that episode's
        assert frames == list(range(frames[0], frames[0] + steps))  # one frame per step
    finally:
        local.close()


def test_one_remote_only_and_no_reset_options() -> None:
    with pytest.raises(ValueError, match="RemoteEnv serves one remote, got 2"):
        gymlab.RemoteEnv("vnc://127.0.0.1:1+2,127.0.0.1:3+4", "pw", connect_timeout=0.1)
