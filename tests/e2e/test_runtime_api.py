"""End-to-end: the programmatic runtime API (in-process) driven by gymlab's RewarderClient."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from _support_runtime import PASSWORD, free_port, running_runtime

from gymlab.rewarder.client import (
    RewarderClient,
    RewarderRefused,
    RewarderRequestError,
    RewarderTimeout,
)
from gymlab.runtime import Runtime, RuntimeConfig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"),
]


def test_in_process_runtime_with_rewarder_client() -> None:
    async def main() -> None:
        config = RuntimeConfig(
            env_id="Pendulum-v1",
            password=PASSWORD,
            vnc_port=free_port(),
            rewarder_port=free_port(),
            mode="lockstep",
        )
        runtime = Runtime(config)
        task = asyncio.create_task(runtime.run())
        await asyncio.wait_for(runtime.ready.wait(), 30)
        assert runtime.rewarder_port is not None
        try:
            client = await RewarderClient.connect(
                "127.0.0.1", runtime.rewarder_port, PASSWORD, timeout=10
            )
            try:
                described = client.describe
                assert described is not None
                assert described.env_id == "Pendulum-v1"
                assert described.frame_shape == (500, 500, 3)
                assert described.action_space is not None
                assert described.action_space["type"] == "Box"
                assert described.action_space["high"] == [2.0]
                first = await client.reset(seed=3)
                second = await client.reset(seed=3)
                assert second == first + 1
                results = [await client.step([0.5]) for _ in range(5)]
                assert [r.frame for r in results] == sorted({r.frame for r in results})
                assert all(r.reward <= 0 for r in results)  # Pendulum's cost is never positive
                with pytest.raises(RewarderRequestError, match="not in Box"):
                    await client.step([9.0])
                rtt = await client.ping()
                assert 0 < rtt < 1.0
                with pytest.raises(RewarderRefused):
                    await RewarderClient.connect("127.0.0.1", runtime.rewarder_port, "nope")
            finally:
                await client.close()
        finally:
            runtime.stop()
            assert await asyncio.wait_for(task, 30) == 0

    asyncio.run(asyncio.wait_for(main(), 120))


def test_reset_timeout_is_a_clear_exception() -> None:
    async def main() -> None:
        config = RuntimeConfig(
            env_id="CartPole-v1",
            password=PASSWORD,
            vnc_port=free_port(),
            rewarder_port=free_port(),
            mode="lockstep",
        )
        runtime = Runtime(config)
        task = asyncio.create_task(runtime.run())
        await asyncio.wait_for(runtime.ready.wait(), 30)
        assert runtime.rewarder_port is not None
        client = await RewarderClient.connect("127.0.0.1", runtime.rewarder_port, PASSWORD)
        try:
            with pytest.raises(RewarderTimeout, match="reset"):
                await client.reset(timeout=0.0)
            # the late reply is ignored and the connection stays usable
            assert await client.ping() > 0
            assert not client.rewards.reset_pending  # the late reply still ended the reset
            assert await client.reset(timeout=10) > 0
        finally:
            await client.close()
            runtime.stop()
            assert await asyncio.wait_for(task, 30) == 0

    asyncio.run(asyncio.wait_for(main(), 120))


def _free_display() -> int:
    start = 200 + os.getpid() % 100  # spread parallel runs apart
    for n in range(start, start + 200):
        if not (Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists()):
            return n
    raise AssertionError("no free X display number found")


def test_explicit_display_number(tmp_path: Path) -> None:
    display = _free_display()
    with running_runtime(tmp_path, extra=["--display", str(display)]) as rt:
        assert rt.display == display
        assert Path(f"/tmp/.X11-unix/X{display}").exists()
    assert not Path(f"/tmp/.X11-unix/X{display}").exists()
