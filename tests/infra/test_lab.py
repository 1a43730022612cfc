"""The lab as an agent sees it: the printed remotes string drives every runtime of the lab.

Runs once per verify (it takes no ``host``), from the control machine, against the inventory
testinfra was given. Labs without runtime hosts skip. Each env the lab serves is played through
its part of the printed string (one RemoteVectorEnv per env: their spaces differ); Atari Pong,
served from a package the gym_runtime role installed, must equal in-process Gymnasium frame by
frame in lockstep. A MiniWoB++ web task (a Dict action space, played by a scripted agent
instead of random actions) must be solved over its part of the string.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import gymnasium
import numpy as np
import pytest

from gymlab.client.remotes import Remote, parse_remotes
from gymlab.client.vector import RemoteVectorEnv
from gymlab.lab import remotes as lab_remotes
from gymlab.lab.errors import LabError
from gymlab.rewarder.client import RewarderClient

STEPS = 60
PONG = "ALE/Pong-v5"
PONG_STEPS = 40
WEB = "miniwob/"
WEB_TASK = "miniwob/click-test-2-v1"
WEB_EPISODES = 3
CLICK_COORDS = 1


@pytest.fixture(scope="module")
def inventory(pytestconfig) -> Path:
    inventory = pytestconfig.getoption("ansible_inventory")
    if not inventory:
        pytest.skip("needs --ansible-inventory (molecule verify or `invoke verify` pass it)")
    return Path(inventory)


@pytest.fixture(scope="module")
def remotes_string(inventory) -> str:
    try:
        return lab_remotes.remotes_string(inventory, with_password=True)
    except LabError as exc:
        pytest.skip(f"no runtimes in this lab: {exc}")


@pytest.fixture(scope="module")
def instances(inventory, remotes_string) -> dict[tuple[str, int], dict]:
    """(address, VNC port) -> what the gym_runtime role recorded it deployed there (its fact's
    entry: env id, mode, env_kwargs, key map), whether the inventory spelled it out or left it
    to the role's defaults."""
    runtimes = lab_remotes.lab_runtimes(inventory)
    facts = lab_remotes.read_facts(inventory, sorted({rt.host for rt in runtimes}))
    return {
        (rt.remote.host, rt.remote.vnc_port): facts[rt.host]["instances"][rt.index]
        for rt in runtimes
    }


def part(remotes_string: str, keep) -> str:
    """The printed string cut down to the remotes ``keep(remote)`` accepts."""
    spec = parse_remotes(remotes_string)
    chosen = [r for r in spec.remotes if keep(r)]
    return f"vnc://{','.join(r.name for r in chosen)}?password={spec.password}"


def by_env(remotes_string: str, instances) -> dict[tuple[str, str], str]:
    """(env_id, mode) -> the part of the printed string serving it: one vector env each, since
    the remotes of one RemoteVectorEnv share their spaces and their mode."""

    def kind(r: Remote) -> tuple[str, str]:
        entry = instances[(r.host, r.vnc_port)]
        return entry["env_id"], entry["mode"]

    kinds = {kind(r) for r in parse_remotes(remotes_string).remotes}
    return {k: part(remotes_string, lambda r, k=k: kind(r) == k) for k in sorted(kinds)}


def test_random_agent_plays_every_runtime_of_the_lab(remotes_string, instances):
    total = len(parse_remotes(remotes_string).remotes)
    played = web = 0
    for (env_id, mode), remotes in by_env(remotes_string, instances).items():
        if env_id.startswith(WEB):
            # A web task's actions are a Dict of click/key/text arguments, which a vector env
            # of random samples does not play: test_scripted_agent_solves_the_web_task does.
            web += len(parse_remotes(remotes).remotes)
            continue
        env = RemoteVectorEnv(remotes, mode=mode)
        try:
            obs, infos = env.reset(seed=0)
            n = env.num_envs
            assert n == len(parse_remotes(remotes).remotes)
            assert obs.shape[0] == n and obs.dtype == np.uint8
            episodes = 0
            for _ in range(STEPS):
                obs, rewards, terminated, truncated, infos = env.step(env.action_space.sample())
                assert "error" not in infos or not any(infos["error"]), infos.get("error")
                assert obs.shape[0] == n and np.all(np.isfinite(rewards))
                episodes += int(np.sum(terminated | truncated))
            # Every runtime rendered something: not one flat colour per observation.
            for frame in obs:
                assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 2, env_id
            if env_id.startswith("CartPole") and mode == "lockstep":
                # CartPole ends well within 60 random steps on most runtimes: auto-reset happened.
                assert episodes >= 1
            played += n
        finally:
            env.close()
    assert played + web == total, "some runtimes of the printed string were not played"


@pytest.fixture(scope="module")
def pong(remotes_string, instances) -> tuple[str, list[dict]]:
    """The part of the printed string serving Pong in lockstep, and those runtimes' settings."""

    def lockstep_pong(r: Remote) -> bool:
        entry = instances[(r.host, r.vnc_port)]
        return entry["env_id"] == PONG and entry["mode"] == "lockstep"

    keep = [r for r in parse_remotes(remotes_string).remotes if lockstep_pong(r)]
    if not keep:
        pytest.skip(f"this lab serves no {PONG} in lockstep")
    return part(remotes_string, lockstep_pong), [instances[(r.host, r.vnc_port)] for r in keep]


def _env(instances, remote: Remote) -> str:
    return instances[(remote.host, remote.vnc_port)]["env_id"]


def test_pong_from_the_roles_package_equals_in_process_gymnasium(pong):
    """Lockstep Pong over the printed string: the frames and rewards of in-process Gymnasium
    (ale-py in this venv, same kwargs, seed i for remote i) for PONG_STEPS random steps."""
    import ale_py

    gymnasium.register_envs(ale_py)
    remotes, entries = pong
    env = RemoteVectorEnv(remotes, mode="lockstep")
    refs = [
        gymnasium.make(PONG, render_mode="rgb_array", **entry["env_kwargs"]) for entry in entries
    ]
    try:
        assert env.single_action_space == gymnasium.spaces.Discrete(6)
        assert env.single_observation_space.shape == (210, 160, 3)
        obs, _ = env.reset(seed=5)
        for i, ref in enumerate(refs):
            ref.reset(seed=5 + i)
            assert np.array_equal(obs[i], ref.render()), f"remote {i}: first frame differs"
        rng = np.random.default_rng(0)
        for step in range(PONG_STEPS):
            actions = rng.integers(0, 6, size=len(refs))
            obs, rewards, terminated, truncated, infos = env.step(actions)
            assert "error" not in infos or not any(infos["error"]), infos.get("error")
            for i, ref in enumerate(refs):
                _, reward, term, trunc, _ = ref.step(int(actions[i]))
                assert np.array_equal(obs[i], ref.render()), f"remote {i}: step {step} differs"
                assert rewards[i] == reward and terminated[i] == term and truncated[i] == trunc
    finally:
        env.close()
        for ref in refs:
            ref.close()


async def _described_keys(remote: Remote, password: str) -> dict | None:
    client = await RewarderClient.connect(remote.host, remote.rewarder_port, password)
    try:
        assert client.describe is not None
        return client.describe.keys
    finally:
        await client.close()


def test_pong_runtimes_describe_the_key_map_the_role_wrote(pong):
    remotes, entries = pong
    spec = parse_remotes(remotes)
    for remote, entry in zip(spec.remotes, entries, strict=True):
        if entry["keymap"] is None:
            continue
        keys = asyncio.run(asyncio.wait_for(_described_keys(remote, spec.password), 60))
        assert keys is not None, f"{remote.name} describes no key map"
        assert keys["idle"] == entry["keymap"]["idle"]
        assert keys["keys"] == entry["keymap"]["keys"], remote.name


async def _click_test_2(remote: Remote, password: str) -> list[float]:
    """Up to WEB_EPISODES lockstep episodes of click-test-2: click the centre of the button the
    utterance names, as the page pushed it after the reset; the rewards, until one is positive."""
    rewards: list[float] = []
    client = await RewarderClient.connect(remote.host, remote.rewarder_port, password, timeout=30)
    try:
        assert client.describe is not None and client.describe.env_id == WEB_TASK
        assert client.describe.action_space["type"] == "Dict"
        for episode in range(WEB_EPISODES):
            await client.reset(seed=episode)
            assert client.last_observation is not None, "no page after the reset"
            page = client.last_observation.observation
            match = re.search(r"button (\w+)", page["utterance"])
            assert match, f"{remote.name}: utterance {page['utterance']!r}"
            button = next(
                e for e in page["elements"] if e["tag"] == "BUTTON" and e["text"] == match[1]
            )
            x = button["left"] + button["width"] / 2
            y = button["top"] + button["height"] / 2
            reply = await client.step(
                {"action_type": CLICK_COORDS, "coords": [x, y], "ref": 0, "key": "", "text": ""}
            )
            assert reply.terminated, f"{remote.name}: a click on a button did not end the episode"
            rewards.append(reply.reward)
            if reply.reward > 0:  # the task's two buttons may overlap: a click can miss
                break
    finally:
        await client.close()
    return rewards


def test_scripted_agent_solves_the_web_task(remotes_string, instances):
    """Each click-test-2 runtime of the printed string, played by a scripted client over the
    rewarder: a positive reward within WEB_EPISODES episodes."""
    spec = parse_remotes(remotes_string)
    remotes = [r for r in spec.remotes if _env(instances, r) == WEB_TASK]
    if not remotes:
        pytest.skip(f"this lab serves no {WEB_TASK}")
    for remote in remotes:
        rewards = asyncio.run(asyncio.wait_for(_click_test_2(remote, spec.password), 120))
        assert any(r > 0 for r in rewards), f"{remote.name}: rewards {rewards}"
