"""RemoteVecEnv without remotes: over Gymnasium's SyncVectorEnv, against SB3's DummyVecEnv.

SB3's own ``env_checker`` checks single Gymnasium envs only; these are its expectations for a
``VecEnv`` (shapes, dtypes, dones, one info dict per env, terminal observations), and the
adapter over Gymnasium's SAME_STEP ``SyncVectorEnv`` must give exactly what SB3's
``DummyVecEnv`` gives over the same envs.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from _support_sb3 import check_vec_env_step
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import AddRenderObservation
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor, VecTransposeImage

import gymlab
from gymlab.integrations.sb3 import RemoteVecEnv, per_env_infos

N = 2


class InfoMarks(gym.Wrapper):
    """Step infos count the episode's steps, reset infos say so: where each info goes shows."""

    episodes = 0

    def reset(self, **kwargs: Any) -> Any:
        self.steps, self.episodes = 0, self.episodes + 1
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "reset": self.episodes}

    def step(self, action: Any) -> Any:
        self.steps += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward, terminated, truncated, {**info, "steps": self.steps}


def pixel_cartpole(max_episode_steps: int = 12) -> Callable[[], gym.Env]:
    """CartPole seen as its rendered frame (what a remote serves), with a short time limit."""

    def make() -> gym.Env:
        env = gym.make("CartPole-v1", render_mode="rgb_array", max_episode_steps=max_episode_steps)
        return InfoMarks(AddRenderObservation(env, render_only=True))

    return make


def local_vec_env(**kwargs: Any) -> RemoteVecEnv:
    return RemoteVecEnv(SyncVectorEnv([pixel_cartpole(**kwargs)] * N, autoreset_mode="SameStep"))


def test_the_adapter_meets_sb3s_vec_env_expectations() -> None:
    venv = local_vec_env()
    try:
        assert venv.num_envs == N
        assert venv.observation_space == gym.spaces.Box(0, 255, (400, 600, 3), np.uint8)
        assert venv.action_space == gym.spaces.Discrete(2)
        assert venv.seed(7) == [7, 8]
        obs = venv.reset()
        assert isinstance(obs, np.ndarray) and obs.shape == (N, 400, 600, 3)
        assert len(venv.reset_infos) == N
        ended = 0
        for _ in range(30):
            obs, rewards, dones, infos = venv.step(np.array([1, 0]))
            check_vec_env_step(venv, obs, rewards, dones, infos)
            ended += int(dones.sum())
        assert ended >= N
        assert venv.get_attr("render_mode") == ["rgb_array"] * N
        assert venv.get_attr("num_envs", indices=1) == [N]
        assert venv.has_attr("render_mode") and not venv.has_attr("no_such_attribute")
        venv.set_attr("gymlab_note", "x")
        assert venv.get_attr("gymlab_note") == ["x", "x"]
        with pytest.raises(NotImplementedError, match=r"set_attr\('gymlab_note'\)"):
            venv.set_attr("gymlab_note", "y", indices=[0])
        with pytest.raises(NotImplementedError, match=r"env_method\('render'\).*\.env\.render"):
            venv.env_method("render")
        with pytest.raises(NotImplementedError, match=r"env_method\('no_such_method'\)"):
            venv.env_method("no_such_method", indices=[1])
        assert venv.env_is_wrapped(gym.Wrapper) == [False] * N
        images = venv.get_images()
        assert all(np.array_equal(i, o) for i, o in zip(images, obs, strict=True))
        assert venv.render().shape == (800, 600, 3)  # SB3 tiles the frames: 2 x 1
        transposed = VecTransposeImage(venv)  # what CnnPolicy wraps image envs in
        assert transposed.reset().shape == (N, 3, 400, 600)
    finally:
        venv.close()


def test_the_adapter_gives_what_dummy_vec_env_gives() -> None:
    """Step for step: observations, rewards, dones, infos, reset infos, episode statistics."""
    ours = VecMonitor(local_vec_env())
    theirs = VecMonitor(DummyVecEnv([pixel_cartpole()] * N))
    rng = np.random.default_rng(0)
    ends = {"terminated": 0, "truncated": 0}
    try:
        for venv in (ours, theirs):
            venv.seed(3)
        assert np.array_equal(ours.reset(), theirs.reset())
        for _ in range(60):
            actions = np.array([1, rng.integers(0, 2)])  # env 0 falls over, env 1 times out
            a_obs, a_rew, a_done, a_infos = ours.step(actions)
            b_obs, b_rew, b_done, b_infos = theirs.step(actions)
            assert np.array_equal(a_obs, b_obs)
            assert np.array_equal(a_rew, b_rew) and a_rew.dtype == b_rew.dtype
            assert np.array_equal(a_done, b_done)
            for a, b in zip(a_infos, b_infos, strict=True):
                assert a.keys() == b.keys()
                for key in a:
                    if key == "terminal_observation":
                        assert np.array_equal(a[key], b[key])
                    elif key == "episode":
                        assert a[key]["r"] == b[key]["r"] and a[key]["l"] == b[key]["l"]
                    else:
                        assert a[key] == b[key], key
                if "terminal_observation" in a:
                    ends["truncated" if a["TimeLimit.truncated"] else "terminated"] += 1
                    assert a["steps"] > 0 and "reset" not in a  # the finished episode's info
            assert ours.venv.reset_infos == theirs.venv.reset_infos
            assert all(info.get("reset", 0) > 0 for info in ours.venv.reset_infos)
        assert ends["terminated"] > 0 and ends["truncated"] > 0, ends
    finally:
        ours.close()
        theirs.close()


def test_dict_observations_pass_through() -> None:
    def make() -> gym.Env:
        env = gym.make("CartPole-v1", render_mode="rgb_array", max_episode_steps=5)
        return AddRenderObservation(env, render_only=False)  # {"state", "pixels"}

    venv = RemoteVecEnv(SyncVectorEnv([make] * N, autoreset_mode=AutoresetMode.SAME_STEP))
    try:
        obs = venv.reset()
        assert set(obs) == {"state", "pixels"} and obs["pixels"].shape == (N, 400, 600, 3)
        for _ in range(5):
            obs, _, dones, infos = venv.step(np.array([0, 1]))
        assert dones.all() and all(set(i["terminal_observation"]) == set(obs) for i in infos)
    finally:
        venv.close()


def test_the_adapter_needs_same_step() -> None:
    next_step = SyncVectorEnv([pixel_cartpole()] * N)  # Gymnasium's default: NEXT_STEP
    with pytest.raises(ValueError, match=r"needs autoreset_mode=SAME_STEP.*got NEXT_STEP"):
        RemoteVecEnv(next_step)
    next_step.close()
    with pytest.raises(ValueError, match=r"got NEXT_STEP"):
        RemoteVecEnv(gymlab.RemoteVectorEnv())  # gymlab's default too


def test_step_wait_needs_step_async() -> None:
    venv = local_vec_env()
    try:
        venv.reset()
        with pytest.raises(RuntimeError, match="step_async"):
            venv.step_wait()
    finally:
        venv.close()


def test_vector_infos_become_one_dict_per_env() -> None:
    infos = {
        "episode_id": np.array([3, 4]),
        "_episode_id": np.array([True, True]),
        "error": np.array([None, "gone"], dtype=object),
        "_error": np.array([False, True]),
        "final_obs": np.array([None, None], dtype=object),
        "episode": {"r": np.array([0.0, 9.0]), "_r": np.array([False, True])},
        "_episode": np.array([False, True]),
        "shared": "both",
    }
    assert per_env_infos(infos, 2) == [
        {"episode_id": 3, "shared": "both"},
        {"episode_id": 4, "error": "gone", "episode": {"r": 9.0}, "shared": "both"},
    ]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_import_gymlab_needs_no_sb3() -> None:
    done = run_python(
        "import sys, gymlab, gymlab.integrations; gymlab.RemoteVectorEnv; "
        "print(sorted(m for m in ('stable_baselines3', 'torch') if m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_missing_sb3_is_one_line_naming_the_fix() -> None:
    done = run_python(
        "import sys; sys.modules['stable_baselines3'] = None\n"
        "try:\n    import gymlab.integrations.sb3\n"
        "except ImportError as exc:\n    print(repr(exc.__cause__), exc.__suppress_context__)\n"
        "    print(exc)"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "None True",
        "gymlab.integrations.sb3 needs stable-baselines3: pip install 'gymlab[sb3]'",
    ]
