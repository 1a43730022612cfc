"""The lab as an agent sees it: the printed remotes string drives every runtime at once.

Runs once per verify (it takes no ``host``), from the control machine, against the inventory
testinfra was given. Labs without runtime hosts skip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gymlab.client.remotes import parse_remotes
from gymlab.client.vector import RemoteVectorEnv
from gymlab.lab import remotes as lab_remotes
from gymlab.lab.errors import LabError

STEPS = 60


@pytest.fixture(scope="module")
def remotes_string(pytestconfig) -> str:
    inventory = pytestconfig.getoption("ansible_inventory")
    if not inventory:
        pytest.skip("needs --ansible-inventory (molecule verify or `invoke verify` pass it)")
    try:
        return lab_remotes.remotes_string(Path(inventory), with_password=True)
    except LabError as exc:
        pytest.skip(f"no runtimes in this lab: {exc}")


def test_random_agent_plays_every_runtime_of_the_lab(remotes_string):
    env = RemoteVectorEnv(remotes_string, mode="lockstep")
    try:
        obs, infos = env.reset(seed=0)
        n = env.num_envs
        assert n == len(parse_remotes(remotes_string).remotes)
        assert obs.shape[0] == n and obs.dtype == np.uint8
        episodes = 0
        for _ in range(STEPS):
            obs, rewards, terminated, truncated, infos = env.step(env.action_space.sample())
            assert "error" not in infos or not any(infos["error"]), infos.get("error")
            assert obs.shape[0] == n and np.all(np.isfinite(rewards))
            episodes += int(np.sum(terminated | truncated))
        # Every runtime rendered something: not one flat colour per observation.
        for frame in obs:
            assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 2
        # CartPole ends well within 60 random steps on most runtimes: auto-reset happened.
        assert episodes >= 1
    finally:
        env.close()
