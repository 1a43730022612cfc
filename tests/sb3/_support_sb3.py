"""What SB3's algorithms and wrappers take from a VecEnv's step (its env_checker checks only
single Gymnasium envs): shared by the local and the remote tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv


def check_vec_env_step(venv: VecEnv, obs: np.ndarray, rewards: Any, dones: Any, infos: Any) -> None:
    """What SB3's algorithms and wrappers take from a VecEnv's step."""
    space = venv.observation_space
    assert isinstance(obs, np.ndarray) and obs.dtype == space.dtype
    assert obs.shape == (venv.num_envs, *space.shape)
    assert all(space.contains(o) for o in obs)
    assert isinstance(rewards, np.ndarray) and rewards.dtype == np.float32
    assert rewards.shape == (venv.num_envs,)
    assert isinstance(dones, np.ndarray) and dones.dtype == np.bool_
    assert dones.shape == (venv.num_envs,)
    assert isinstance(infos, list) and len(infos) == venv.num_envs
    for done, info in zip(dones, infos, strict=True):
        assert isinstance(info, dict)
        assert isinstance(info["TimeLimit.truncated"], bool)
        if done:
            terminal = info["terminal_observation"]
            assert space.contains(terminal)
        else:
            assert "terminal_observation" not in info and not info["TimeLimit.truncated"]
