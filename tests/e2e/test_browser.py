"""End-to-end: MiniWoB++ web tasks in browser runtimes (Chromium on Xvnc) on loopback.

Scripted agents read the utterance and the elements' display coordinates from the
rewarder, then act either as lockstep actions (X input injected by the runtime) or, in
real time, as plain VNC pointer events that reach Chromium as real X input.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _support_runtime import PASSWORD, RuntimeProcess, running_runtime

from gymlab.client.vnc import VNCConnection
from gymlab.rewarder import protocol as p
from gymlab.rewarder.client import RewarderClient, RewarderRequestError

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"),
    pytest.mark.skipif(
        shutil.which("chromedriver") is None, reason="Debian's chromium-driver is not installed"
    ),
]
pytest.importorskip("miniwob")
pytest.importorskip("selenium")

EPISODES = 10
CLICK, CLICK_ELEMENT, PRESS_KEY = 1, 2, 3


def action(action_type: int, x: float = 0, y: float = 0, ref: int = 0) -> dict[str, Any]:
    return {"action_type": action_type, "coords": [x, y], "ref": ref, "key": "", "text": ""}


def target(page: dict[str, Any]) -> dict[str, Any]:
    """The button the utterance names (click-test-2: 'Click button ONE.', click-button:
    'Click on the "Ok" button.')."""
    match = re.search(r'"([^"]+)"', page["utterance"]) or re.search(
        r"button (\w+)", page["utterance"]
    )
    assert match, page["utterance"]
    name = match.group(1)
    buttons = [e for e in page["elements"] if e["tag"] == "BUTTON" and e["text"] == name]
    assert buttons, (name, page["elements"])
    return buttons[0]  # click-button may show the same label twice: either one is right


def center(element: dict[str, Any]) -> tuple[float, float]:
    return element["left"] + element["width"] / 2, element["top"] + element["height"] / 2


def page_of(client: RewarderClient) -> dict[str, Any]:
    assert client.last_observation is not None
    return client.last_observation.observation


async def connect(rt: RuntimeProcess) -> RewarderClient:
    return await RewarderClient.connect("127.0.0.1", rt.rewarder_port, PASSWORD)


@pytest.mark.parametrize("task", ["click-test-2", "click-button"])
def test_lockstep_agent_solves_the_task(tmp_path: Path, task: str) -> None:
    async def main(rt: RuntimeProcess) -> list[float]:
        rewards = []
        async with await connect(rt) as client:
            describe = client.describe
            assert describe is not None and describe.frame_shape == (210, 160, 3)
            assert describe.action_space is not None and describe.action_space["type"] == "Dict"
            for episode in range(EPISODES):
                await client.reset(seed=episode)
                x, y = center(target(page_of(client)))
                reply = await client.step(action(CLICK, x, y))
                assert reply.terminated and reply.info["utterance"], reply
                # buttons may overlap (the task's own layout): then a click can miss
                assert reply.info["raw_reward"] in (1.0, -1.0)
                rewards.append(reply.reward)
        return rewards

    with running_runtime(tmp_path, env_id=f"miniwob/{task}-v1", mode="lockstep") as rt:
        rewards = asyncio.run(main(rt))
    assert sum(r > 0 for r in rewards) >= 9, rewards


def test_lockstep_wrong_click_element_action_and_mid_episode_reset(tmp_path: Path) -> None:
    async def main(rt: RuntimeProcess) -> None:
        async with await connect(rt) as client:
            for seed in range(3, 30):  # a page with a button of another label
                await client.reset(seed=seed)
                page = page_of(client)
                right = target(page)
                others = [
                    e for e in page["elements"]
                    if e["tag"] == "BUTTON" and e["text"] != right["text"]
                ]  # fmt: skip
                if others:
                    wrong = others[0]
                    break
            else:
                raise AssertionError("no page with two labels in 27 seeds")
            reply = await client.step(action(CLICK, *center(wrong)))
            assert reply.terminated and reply.reward < 0 and reply.info["raw_reward"] == -1.0
            # the element action clicks the element by its ref
            await client.reset(seed=4)
            reply = await client.step(action(CLICK_ELEMENT, ref=target(page_of(client))["ref"]))
            assert reply.terminated and reply.reward > 0
            # a reset mid-episode starts a new episode with a new utterance
            utterances = set()
            episode = await client.reset(seed=5)
            for seed in range(6, 12):
                utterances.add(page_of(client)["utterance"])
                await client.step(action(PRESS_KEY) | {"key": "a"})  # a key is no answer
                assert (await client.reset(seed=seed)) > episode
                episode = client.rewards.episode_id
            assert len(utterances) > 1, utterances
            assert list(client.texts)[-1] == page_of(client)["utterance"]
            with pytest.raises(RewarderRequestError, match="no element with ref 99999"):
                await client.step(action(CLICK_ELEMENT, ref=99999))
            with pytest.raises(RewarderRequestError, match="not in Dict"):
                await client.step(action(CLICK, 500, 500))

    with running_runtime(tmp_path, env_id="miniwob/click-button-v1", mode="lockstep") as rt:
        asyncio.run(main(rt))


def test_realtime_agent_clicks_through_vnc(tmp_path: Path) -> None:
    async def main(rt: RuntimeProcess) -> list[float]:
        rewards: list[float] = []
        ends: asyncio.Queue[p.Reward] = asyncio.Queue()
        async with (
            await connect(rt) as client,
            await VNCConnection.connect("127.0.0.1", rt.vnc_port, PASSWORD) as vnc,
        ):
            client.add_listener(
                lambda e: ends.put_nowait(e) if isinstance(e, p.Reward) and e.terminated else None
            )
            await client.reset(seed=0)
            for _ in range(EPISODES):
                x, y = center(target(page_of(client)))
                await vnc.pointer_event(int(x), int(y), 0)
                await vnc.pointer_event(int(x), int(y), 1)  # a real click, through Xvnc
                await vnc.pointer_event(int(x), int(y), 0)
                end = await asyncio.wait_for(ends.get(), 10)
                rewards.append(end.reward)
                # the runtime begins the next episode by itself: wait for its page
                for _ in range(200):
                    obs = client.last_observation
                    if (
                        obs is not None
                        and obs.episode_id is not None
                        and obs.episode_id > (end.episode_id or 0)
                    ):
                        break
                    await asyncio.sleep(0.02)
        return rewards

    with running_runtime(tmp_path, env_id="miniwob/click-button-v1", mode="realtime", fps=30) as rt:
        rewards = asyncio.run(main(rt))
    assert sum(r > 0 for r in rewards) >= 9, rewards


def xwd_screenshot(rt: RuntimeProcess) -> np.ndarray:
    """The runtime's whole display as ``xwd`` (x11-apps) dumps it, as an (H, W, 3) array."""
    auth = re.search(r"-auth (\S+)", rt.log)
    assert auth, rt.log
    dump = subprocess.run(
        ["xwd", "-root", "-silent", "-display", f":{rt.display}"],
        env={**os.environ, "XAUTHORITY": auth.group(1)},
        capture_output=True,
        check=True,
        timeout=30,
    ).stdout
    header = struct.unpack(">25I", dump[:100])
    header_size, width, height = header[0], header[4], header[5]
    bits_per_pixel, bytes_per_line, ncolors = header[11], header[12], header[19]
    assert bits_per_pixel == 32, header
    pixels = np.frombuffer(dump, np.uint8, offset=header_size + 12 * ncolors)
    rows = pixels[: bytes_per_line * height].reshape(height, bytes_per_line)
    bgrx = rows[:, : width * 4].reshape(height, width, 4)
    return bgrx[:, :, [2, 1, 0]] if header[7] == 0 else bgrx[:, :, [1, 2, 3]]


def test_the_decoded_frame_equals_a_screenshot_of_the_display(tmp_path: Path) -> None:
    async def main(rt: RuntimeProcess) -> np.ndarray:
        async with await connect(rt) as client:
            await client.reset(seed=2)
            await client.step(action(PRESS_KEY) | {"key": "Tab"})  # a focus ring: not a blank
            async with await VNCConnection.connect("127.0.0.1", rt.vnc_port, PASSWORD) as vnc:
                return await vnc.update(incremental=False)

    with running_runtime(tmp_path, env_id="miniwob/click-button-v1", mode="lockstep") as rt:
        decoded = asyncio.run(main(rt))
        screenshot = xwd_screenshot(rt)
    assert decoded.shape == screenshot.shape == (210, 160, 3)
    assert len(np.unique(decoded.reshape(-1, 3), axis=0)) > 3  # the page, not a flat colour
    differ = np.argwhere((decoded != screenshot).any(axis=2))
    assert not len(differ), (len(differ), differ[:5].tolist())


def test_unknown_task_is_one_line(tmp_path: Path) -> None:
    import sys

    from _support_runtime import free_port

    pw = tmp_path / "pw"
    pw.write_text("x\n")
    cmd = [sys.executable, "-m", "gymlab.cli", "runtime", "serve", "--password-file", str(pw)]
    cmd += ["--env-id", "miniwob/no-such-task-v1"]
    cmd += ["--vnc-port", str(free_port()), "--rewarder-port", str(free_port())]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == (
        "gymlab runtime: error: cannot serve 'miniwob/no-such-task-v1': "
        "MiniWoB++ has no task 'no-such-task'"
    )
