"""End-to-end: the env families a lab trains on, served by real runtimes on loopback.

A lab's own package (the gym-foo TEST FIXTURE, both id forms), Atari (ale-py), Box2D and
MiniGrid: in lockstep the frames the client decodes from VNC and the rewards equal
in-process Gymnasium's, step for step; in real time the keys the client holds over VNC
give the actions the runtime's key map says (``info["action"]``), chords included.
``pytest -s`` prints each family's frame size and lockstep steps/s.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from _support_runtime import PASSWORD, RuntimeProcess, free_port, running_runtime
from websockets.asyncio.client import connect

from gymlab.client import RemoteVectorEnv

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"),
]

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

LOCKSTEP_STEPS = 40

# (served id, runtime args, the id and kwargs to make in-process, module the family needs)
FAMILIES = [
    ("gym_foo:Foo-v0", [], "gym_foo:Foo-v0", {}, "gym_foo"),
    ("Foo-v0", ["--import", "gym_foo"], "gym_foo:Foo-v0", {}, "gym_foo"),
    ("ALE/Pong-v5", [], "ALE/Pong-v5", {}, "ale_py"),
    ("LunarLander-v3", [], "LunarLander-v3", {}, "Box2D"),
    ("CarRacing-v3", [], "CarRacing-v3", {}, "Box2D"),
    ("MiniGrid-Empty-5x5-v0", [], "MiniGrid-Empty-5x5-v0", {}, "minigrid"),
]


@contextlib.contextmanager
def remote(rt: RuntimeProcess, **kwargs: Any) -> Iterator[RemoteVectorEnv]:
    env = RemoteVectorEnv(f"vnc://127.0.0.1:{rt.vnc_port}+{rt.rewarder_port}", PASSWORD, **kwargs)
    try:
        yield env
    finally:
        env.close()


def reference(env_id: str, **kwargs: Any) -> gymnasium.Env[Any, Any]:
    if env_id.startswith("ALE/"):
        import ale_py

        gymnasium.register_envs(ale_py)
    if env_id.startswith("MiniGrid-"):
        import minigrid

        gymnasium.register_envs(minigrid)
    return gymnasium.make(env_id, render_mode="rgb_array", **kwargs)


@pytest.mark.parametrize(
    ("served", "args", "made", "kwargs", "module"), FAMILIES, ids=[f[0] for f in FAMILIES]
)
def test_lockstep_frames_and_rewards_equal_in_process_gymnasium(
    tmp_path: Path, served: str, args: list[str], made: str, kwargs: dict, module: str
) -> None:
    pytest.importorskip(module)
    ref = reference(made, **kwargs)
    with (
        running_runtime(tmp_path, env_id=served, mode="lockstep", extra=args) as rt,
        remote(rt) as env,
    ):
        assert env.single_action_space == ref.action_space
        obs, _ = env.reset(seed=5)
        ref.reset(seed=5)
        expected = ref.render()
        assert obs.shape[1:] == expected.shape
        assert np.array_equal(obs[0], expected), "reset frame differs"
        space = ref.action_space
        space.seed(5)
        steps, remote_s, local_s = 0, 0.0, 0.0
        for steps in range(1, LOCKSTEP_STEPS + 1):
            action = space.sample()
            started = time.perf_counter()
            obs, rewards, terms, truncs, _ = env.step(np.asarray([action]))
            remote_s += time.perf_counter() - started
            started = time.perf_counter()
            _, reward, term, trunc, _ = ref.step(action)
            frame = ref.render()
            local_s += time.perf_counter() - started
            assert rewards[0] == pytest.approx(reward, abs=1e-9), f"step {steps}"
            assert (bool(terms[0]), bool(truncs[0])) == (term, trunc), f"step {steps}"
            assert np.array_equal(obs[0], frame), f"step {steps}: pixels differ"
            if term or trunc:
                break
        print(f"\n{served}: frame {expected.shape[1]}x{expected.shape[0]}, {steps} lockstep "
              f"steps pixel-exact, {steps / remote_s:.0f} steps/s remote, "
              f"{steps / local_s:.0f} in-process step+render")  # fmt: skip
        assert steps >= min(LOCKSTEP_STEPS, 10)
    ref.close()


def _held_action(env: RemoteVectorEnv, action: Any, expected: Any, deadline: float = 10.0) -> Any:
    """Step with ``action`` (native, or VNC events) until the runtime applies ``expected``.

    Returns the last action the runtime reported (ticks before the keys arrived report
    the idle action).
    """
    stop = time.monotonic() + deadline
    seen = None
    while time.monotonic() < stop:
        _, _, _, _, infos = env.step(action)
        assert "_error" not in infos, infos.get("error")
        if infos.get("_action") is not None and infos["_action"][0]:
            seen = infos["action"][0]
            if np.allclose(np.asarray(seen, dtype=float), np.asarray(expected, dtype=float)):
                return seen
    return seen


def _events(*keys: str, down: bool = True) -> list[list[tuple[str, str, bool]]]:
    return [[("KeyEvent", key, down) for key in keys]]


def test_realtime_atari_derives_keys_and_combinations(tmp_path: Path) -> None:
    pytest.importorskip("ale_py")
    kwargs = json.dumps({"full_action_space": True, "frameskip": 1})
    args = ["--env-kwargs", kwargs]
    with (
        running_runtime(tmp_path, env_id="ALE/Pong-v5", mode="realtime", fps=30, extra=args) as rt,
        remote(rt) as env,
    ):
        env.reset()
        meanings = reference("ALE/Pong-v5", full_action_space=True).unwrapped.get_action_meanings()
        up_right_fire = meanings.index("UPRIGHTFIRE")
        # native action: the client holds the chord the runtime described (Up+Right+space)
        assert _held_action(env, np.array([up_right_fire]), up_right_fire) == up_right_fire
        assert env.sessions[0].held and len(env.sessions[0].held) == 3
        # raw VNC events: release Up, keep Right+space held -> RIGHTFIRE
        right_fire = meanings.index("RIGHTFIRE")
        assert _held_action(env, _events("Up", down=False), right_fire) == right_fire
        assert _held_action(env, np.array([0]), 0) == 0  # NOOP: hold nothing
        assert env.sessions[0].held == []
        keys = env.sessions[0].description.keys
        assert keys is not None and keys["labels"]["Up+Right+space"] == "UPRIGHTFIRE"


@pytest.mark.parametrize(
    ("env_id", "module", "action", "expected"),
    [
        ("LunarLander-v3", "Box2D", 2, 2),  # Up: main engine
        ("CarRacing-v3", "Box2D", [-1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]),  # Left+Up
        ("MiniGrid-Empty-5x5-v0", "minigrid", 2, 2),  # Up: forward
    ],
)
def test_realtime_shipped_maps(
    tmp_path: Path, env_id: str, module: str, action: Any, expected: Any
) -> None:
    pytest.importorskip(module)
    with (
        running_runtime(tmp_path, env_id=env_id, mode="realtime", fps=30) as rt,
        remote(rt) as env,
    ):
        env.reset()
        seen = _held_action(env, np.array([action]), expected)
        assert np.allclose(np.asarray(seen, dtype=float), np.asarray(expected, dtype=float))


def test_user_key_map_in_real_time(tmp_path: Path) -> None:
    keymap = tmp_path / "keys.json"
    keymap.write_text(json.dumps({"keys": {"j": 0, "l": 2}, "idle": 1}))
    args = ["--keymap", str(keymap)]
    with (
        running_runtime(
            tmp_path, env_id="gym_foo:Foo-v0", mode="realtime", fps=30, extra=args
        ) as rt,
        remote(rt) as env,
    ):
        env.reset(seed=1)
        assert env.sessions[0].description.keys == {"keys": {"j": 0, "l": 2}, "idle": 1,
                                                    "pointer": None}  # fmt: skip
        assert _held_action(env, _events("l"), 2) == 2  # a person pressing 'l' in a viewer
        env.step(_events("l", down=False))
        assert _held_action(env, np.array([0]), 0) == 0  # the client holds 'j' for action 0
        assert _held_action(env, np.array([1]), 1) == 1  # idle: nothing held
        with pytest.raises(ValueError, match="has no key"):
            env.step(np.array([5]))


def test_a_client_reset_cannot_make_the_runtime_import_modules(tmp_path: Path) -> None:
    import asyncio

    from _support_runtime import auth_headers, v0

    async def main(url: str) -> list[str]:
        messages = []
        async with connect(url, additional_headers=auth_headers(PASSWORD)) as ws:
            for i, env_id in enumerate(["antigravity:Foo-v0", "MiniGrid-Empty-5x5-v0"]):
                await ws.send(v0("v0.env.reset", i + 1, {"env_id": env_id}))
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), 20))
                    if msg["method"] == "v0.reply.error":
                        messages.append(msg["body"]["message"])
                        break
        return messages

    pytest.importorskip("minigrid")
    with running_runtime(tmp_path, env_id="gym_foo:Foo-v0", mode="lockstep") as rt:
        refused, resized = asyncio.run(main(rt.url))
        assert "imports no module 'antigravity'" in refused and "gym_foo" in refused
        assert "antigravity" not in sys.modules
        assert "renders 160x160, this display is 96x64" in resized


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--env-id", "nope_pkg:Foo-v0"], "cannot make 'nope_pkg:Foo-v0': cannot import nope_pkg"),
        (["--env-id", "Foo-v0"], "cannot make 'Foo-v0' (modules imported: "),
        (["--env-id", "gym_foo:Foo-v0", "--env-kwargs", '{"goal": 99}'],
         "cannot make 'gym_foo:Foo-v0' with {\"goal\": 99}: ValueError: goal must be in 0..11"),
        (["--env-id", "Foo-v0", "--import", "gym_foo", "--env-kwargs", "[1]"],
         "--env-kwargs must be a JSON object"),
        (["--env-id", "gym_foo:Foo-v0", "--import", "not a module"], "is not a module name"),
        (["--env-id", "gym_foo:Foo-v0", "--mode", "realtime", "--keymap", "KEYMAP"],
         "the action of 'Left': action 9 is not in Discrete(3)"),
        (["--env-id", "CarRacing-v3", "--mode", "realtime", "--env-kwargs",
          '{"continuous": false}', "--keymap", "/nonexistent.json"], "cannot read key map"),
    ],
)  # fmt: skip
def test_env_errors_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    bad_map = tmp_path / "bad.json"
    bad_map.write_text('{"keys": {"Left": 9}, "idle": 1}')
    args = [str(bad_map) if a == "KEYMAP" else a for a in args]
    cmd = [sys.executable, "-m", "gymlab.cli", "runtime", "serve", "--password-file", str(pw)]
    cmd += ["--vnc-port", str(free_port()), "--rewarder-port", str(free_port()), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    lines = [line for line in done.stderr.splitlines() if "error" in line]
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and message in lines[0], done.stderr
