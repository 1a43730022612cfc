"""End-to-end: ``gymlab.make(env_id, remotes=N)`` starts N local runtimes and leaves none.

Real runtime subprocesses with their own Xvnc; the process checks read /proc.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import time

import pytest

import gymlab
from gymlab.client.local_remotes import MAX_LOCAL_REMOTES, LocalRemotes, check_count
from gymlab.procfs import pid_alive
from gymlab.rewarder.protocol import Mode

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"),
]


def alive_after(pids: list[int], seconds: float = 5.0) -> list[int]:
    """The ``pids`` still alive after waiting up to ``seconds`` for them to go."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


def assert_exit_leaves_nothing(script: str) -> None:
    """Run ``script`` (it prints its runtime's and Xvnc's pids) and let it exit: none survive."""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    pids = [int(p) for p in result.stdout.split()]
    assert len(pids) == 2
    assert alive_after(pids) == []
    assert "Traceback" not in result.stderr


def tree(local: LocalRemotes) -> list[int]:
    return [pid for rt in local.runtimes for pid in (rt.proc.pid, *rt.xvnc_pids())]


def test_make_with_a_number_starts_local_remotes_and_close_stops_them(
    capfd: pytest.CaptureFixture[str],
) -> None:
    env = gymlab.make("CartPole-v1", remotes=2)
    try:
        assert env._local is not None
        pids = tree(env._local)
        assert len(pids) == 4  # two runtimes, each with its Xvnc
        obs, _ = env.reset(seed=0)
        assert obs.shape == (2, 400, 600, 3)
        env.step(env.action_space.sample())
    finally:
        env.close()
    assert alive_after(pids) == []
    err = capfd.readouterr().err
    assert (
        err.count("run the same thing by hand as: gymlab runtime serve --env-id CartPole-v1") == 2
    )
    assert "?password=" not in err  # the password is never printed


def test_an_interpreter_that_exits_without_close_leaves_nothing(tmp_path) -> None:
    script = textwrap.dedent(
        """
        import gymlab
        env = gymlab.make("CartPole-v1", remotes=1)
        env.reset(seed=0)
        rt = env._local.runtimes[0]
        print(rt.proc.pid, *rt.xvnc_pids(), flush=True)
        """
    )
    assert_exit_leaves_nothing(script)


@pytest.mark.parametrize("n", [0, -1, True, 1.5, "2", MAX_LOCAL_REMOTES + 1])
def test_bad_counts_are_named(n: object) -> None:
    with pytest.raises(ValueError, match=rf"remotes={n!r}: a number of local remotes"):
        check_count(n)


def test_local_remotes_need_an_env_id() -> None:
    with pytest.raises(ValueError, match="say which env"):
        gymlab.RemoteVectorEnv(2)


def test_local_remotes_started_directly_serve_make_and_close_leaves_nothing(
    capfd: pytest.CaptureFixture[str],
) -> None:
    local = LocalRemotes.start(2, "CartPole-v1", mode="realtime", fps=30)
    password = local.runtimes[0].password
    try:
        pids = tree(local)
        assert len(pids) == 4
        env = gymlab.make("CartPole-v1", remotes=local.remotes)
        try:
            assert env.mode is Mode.REALTIME and env.fps == 30
            env.reset(seed=0)
            _, rewards, *_ = env.step(env.action_space.sample())
            assert rewards.shape == (2,)
        finally:
            env.close()
    finally:
        local.close()
    local.close()  # idempotent
    assert alive_after(pids) == []
    err = capfd.readouterr().err
    assert err.count("--mode realtime --fps 30 --vnc-port") == 2
    assert password not in err and "?password=" not in err


def test_an_unreferenced_local_remotes_runs_until_exit_and_exit_stops_it() -> None:
    script = textwrap.dedent(
        """
        import gc
        import gymlab
        from gymlab.client import local_remotes
        from gymlab.client.local_remotes import LocalRemotes
        # the LocalRemotes object is dropped at once: its runtime must live on until exit
        env = gymlab.make("CartPole-v1", remotes=LocalRemotes.start(1, "CartPole-v1").remotes)
        gc.collect()
        env.reset(seed=0)
        env.step(env.action_space.sample())
        (local,) = local_remotes._running
        rt = local.runtimes[0]
        print(rt.proc.pid, *rt.xvnc_pids(), flush=True)
        """
    )
    assert_exit_leaves_nothing(script)
