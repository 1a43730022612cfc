"""Stable-Baselines3 through ``gymlab.integrations.sb3.RemoteVecEnv`` over local remotes.

Runs in its own venv (PyTorch's CPU build, SB3): ``invoke test --sb3``. Two lockstep CartPole
runtimes on loopback; terminal frames are compared with in-process Gymnasium.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

import gymlab
from gymlab.client.session import RemoteConnectError
from gymlab.integrations.sb3 import RemoteVecEnv, per_env_infos
from gymlab.runtime.local import LocalRuntime, local_runtimes, remotes_string

needs_xvnc = pytest.mark.skipif(
    shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"
)


@pytest.fixture(scope="module")
def runtimes() -> Iterator[list[LocalRuntime]]:
    if shutil.which("Xvnc") is None:
        pytest.skip("TigerVNC Xvnc is not installed")
    with local_runtimes(2, mode="lockstep") as rts:
        yield rts


def connect(runtimes: list[LocalRuntime], **kwargs: object) -> gymlab.RemoteVectorEnv:
    """A SAME_STEP remote env (waiting for the last test's controller to leave)."""
    for _ in range(50):
        try:
            return gymlab.make(
                "CartPole-v1", remotes=remotes_string(runtimes), autoreset_mode="same_step",
                **kwargs,
            )  # fmt: skip
        except RemoteConnectError as exc:
            if "controlling client" not in str(exc):
                raise
            time.sleep(0.1)
    raise AssertionError("the runtimes kept refusing a controller")


def test_the_adapter_needs_same_step() -> None:
    with pytest.raises(ValueError, match=r"needs autoreset_mode=SAME_STEP.*got NEXT_STEP"):
        RemoteVecEnv(gymlab.RemoteVectorEnv())


def test_vector_infos_become_one_dict_per_env() -> None:
    infos = {
        "episode_id": np.array([3, 4]),
        "_episode_id": np.array([True, True]),
        "error": np.array([None, "gone"], dtype=object),
        "_error": np.array([False, True]),
        "final_obs": np.array([None, None], dtype=object),
    }
    assert per_env_infos(infos, 2) == [{"episode_id": 3}, {"episode_id": 4, "error": "gone"}]


@needs_xvnc
def test_terminal_observation_is_the_local_terminal_frame(runtimes: list[LocalRuntime]) -> None:
    venv = RemoteVecEnv(connect(runtimes))
    local = gym.make("CartPole-v1", render_mode="rgb_array")
    try:
        assert venv.observation_space == gym.spaces.Box(0, 255, (400, 600, 3), np.uint8)
        venv.seed(5)
        obs = venv.reset()
        local.reset(seed=5)
        assert obs.shape == (2, 400, 600, 3) and np.array_equal(obs[0], local.render())
        for _ in range(200):
            venv.step_async(np.array([1, 0]))
            obs, rewards, dones, infos = venv.step_wait()
            _, _, terminated, truncated, _ = local.step(1)
            assert rewards.dtype == np.float32 and len(infos) == 2
            if dones[0]:
                break
        else:
            raise AssertionError("pushing right never ended the episode")
        assert terminated and not truncated
        assert np.array_equal(infos[0]["terminal_observation"], local.render())
        assert infos[0]["TimeLimit.truncated"] is False
        assert not np.array_equal(obs[0], infos[0]["terminal_observation"])  # already reset
        assert venv.get_attr("num_envs") == [2, 2]
        assert venv.env_is_wrapped(gym.Wrapper) == [False, False]
        with pytest.raises(NotImplementedError, match="env_method\\('render'\\)"):
            venv.env_method("render")
    finally:
        venv.close()
        local.close()


@needs_xvnc
def test_ppo_learns_over_two_remotes_with_vecmonitor(runtimes: list[LocalRuntime]) -> None:
    # the state observation keeps the policy small enough for a 2-core machine
    venv = VecMonitor(RemoteVecEnv(connect(runtimes, observation="state")))
    try:
        model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
        start = time.perf_counter()
        model.learn(total_timesteps=256)
        elapsed = time.perf_counter() - start
        print(f"PPO over 2 lockstep remotes: {model.num_timesteps / elapsed:.0f} env steps/s")
        assert model.num_timesteps >= 256
        assert len(model.ep_info_buffer) > 0  # VecMonitor saw episodes end
        assert all(info["l"] > 0 and info["r"] == info["l"] for info in model.ep_info_buffer)
    finally:
        venv.close()


@needs_xvnc
@pytest.mark.parametrize("extra", [[], ["--pixels", "--total-timesteps", "256"]])
def test_the_cleanrl_style_example_trains_on_local_remotes(extra: list[str]) -> None:
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "cleanrl_ppo.py"
    argv = [sys.executable, str(example), "--num-envs", "2", "--total-timesteps", "512", *extra]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "episodic_return=" in result.stdout and "SPS: " in result.stdout
    print(result.stdout.strip().splitlines()[-1], extra)
