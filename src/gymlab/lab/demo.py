"""The end of `invoke demo`: a random agent on every runtime of a remotes string, in lockstep
over :class:`gymlab.client.vector.RemoteVectorEnv`, and a screenshot of the first one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from gymlab.client.vector import RemoteVectorEnv
from gymlab.lab.report import phase


def random_agent(remotes: str, steps: int, shot: Path) -> list[float]:
    """Play ``steps`` random steps on every runtime, save runtime 0's last frame as ``shot``
    (a PNG) and print the total reward of each runtime; return those totals."""
    with phase(f"random agent, {steps} steps on every sandbox runtime"):
        env = RemoteVectorEnv(remotes, mode="lockstep")
        try:
            obs, _ = env.reset(seed=0)
            returns = np.zeros(env.num_envs)
            for _ in range(int(steps)):
                obs, rewards, _, _, _ = env.step(env.action_space.sample())
                returns += rewards
        finally:
            env.close()
    shot.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(obs[0]).save(shot)
    totals = returns.tolist()
    print(f"total reward per runtime: {totals}; screenshot of runtime 0: {shot}")
    return totals
