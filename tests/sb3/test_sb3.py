"""Stable-Baselines3 through ``gymlab.integrations.sb3.RemoteVecEnv`` over local remotes.

Runs in its own venv (PyTorch's CPU build, SB3): ``invoke test --sb3``. Two lockstep CartPole
runtimes on loopback (skipped without Xvnc, as tests/e2e are); terminal frames are compared
with in-process Gymnasium's, and PPO's CnnPolicy learns from the remotes' pixels.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator

import gymnasium as gym
import numpy as np
import pytest
import torch
from _support_sb3 import check_vec_env_step
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecMonitor

import gymlab
from gymlab.client.session import RemoteConnectError
from gymlab.integrations.sb3 import RemoteVecEnv
from gymlab.supervisor import LocalRuntime, local_runtimes, remotes_string

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


@needs_xvnc
def test_terminal_observations_are_the_local_terminal_frames(
    runtimes: list[LocalRuntime],
) -> None:
    """Remote 0 pushes right, remote 1 left: both terminal frames equal in-process ones."""
    venv = RemoteVecEnv(connect(runtimes))
    local = [gym.make("CartPole-v1", render_mode="rgb_array") for _ in range(2)]
    actions = np.array([1, 0])
    try:
        assert venv.observation_space == gym.spaces.Box(0, 255, (400, 600, 3), np.uint8)
        assert venv.seed(5) == [5, 6]
        obs = venv.reset()
        for i, env in enumerate(local):
            env.reset(seed=5 + i)
            assert np.array_equal(obs[i], env.render()), f"remote {i}'s first frame"
        ended: dict[int, int] = {}
        for step in range(1, 201):
            obs, _, dones, infos = venv.step(actions)
            check_vec_env_step(venv, obs, _, dones, infos)
            for i, env in enumerate(local):
                if i in ended:
                    continue
                _, _, terminated, truncated, _ = env.step(int(actions[i]))
                assert bool(dones[i]) == (terminated or truncated), f"remote {i}, step {step}"
                if dones[i]:
                    ended[i] = step
                    assert terminated and not truncated
                    frame = infos[i]["terminal_observation"]
                    assert np.array_equal(frame, env.render()), f"remote {i}'s terminal frame"
                    assert infos[i]["TimeLimit.truncated"] is False
                    assert not np.array_equal(obs[i], frame)  # already the next episode's
            if len(ended) == 2:
                break
        assert len(ended) == 2, f"only remotes {sorted(ended)} ended within 200 steps"
        assert venv.get_attr("render_mode") == ["rgb_array", "rgb_array"]
        assert venv.env_is_wrapped(gym.Wrapper) == [False, False]
        with pytest.raises(NotImplementedError, match="env_method\\('render'\\)"):
            venv.env_method("render")
        assert [img.shape for img in venv.get_images()] == [(400, 600, 3)] * 2
    finally:
        venv.close()
        for env in local:
            env.close()


@needs_xvnc
def test_ppo_cnn_policy_learns_from_two_remotes_pixels(
    runtimes: list[LocalRuntime], capsys: pytest.CaptureFixture[str]
) -> None:
    torch.set_num_threads(1)  # a 2-core machine, shared with the runtimes
    venv = VecMonitor(RemoteVecEnv(connect(runtimes)))
    try:
        # NatureCNN flattens a 400x600 frame to 209k features: a 64-wide feature layer, not
        # 512, keeps the policy at 14M parameters, not 107M (11 s less init, 2.5x faster)
        small = {"features_extractor_kwargs": {"features_dim": 64}}
        model = PPO(
            "CnnPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu",
            policy_kwargs=small,
        )  # fmt: skip
        start = time.perf_counter()
        model.learn(total_timesteps=256)
        elapsed = time.perf_counter() - start
        rate = model.num_timesteps / elapsed
        with capsys.disabled():  # measured, not asserted: always shown
            print(f"\nPPO CnnPolicy, 2 lockstep remotes, 400x600 pixels: {rate:.1f} env steps/s")
        assert model.num_timesteps >= 256
        assert len(model.ep_info_buffer) > 0  # VecMonitor saw episodes end
        assert all(info["l"] > 0 and info["r"] == info["l"] for info in model.ep_info_buffer)
    finally:
        venv.close()


@needs_xvnc
def test_ppo_learns_from_the_remotes_state(
    runtimes: list[LocalRuntime], capsys: pytest.CaptureFixture[str]
) -> None:
    venv = VecMonitor(RemoteVecEnv(connect(runtimes, observation="state")))
    try:
        model = PPO("MlpPolicy", venv, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
        start = time.perf_counter()
        model.learn(total_timesteps=256)
        elapsed = time.perf_counter() - start
        rate = model.num_timesteps / elapsed
        with capsys.disabled():
            print(f"\nPPO MlpPolicy, 2 lockstep remotes, state: {rate:.0f} env steps/s")
        assert len(model.ep_info_buffer) > 0
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
