"""RewarderServer + RewarderClient over loopback websockets, with an in-memory backend.

The backend here is a tiny counting environment so the server's own rules
(auth, roles, ordering, errors, timeouts) can be checked without Xvnc; the
runtime's real backend is exercised in tests/e2e/test_runtime*.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gymlab.rewarder import protocol as p
from gymlab.rewarder.auth import FailedAttemptLimiter
from gymlab.rewarder.backend import EpisodeStart, RequestRejected, Transition
from gymlab.rewarder.client import (
    RewarderClient,
    RewarderConnectionLost,
    RewarderRefused,
    RewarderRequestError,
    RewarderTimeout,
)
from gymlab.rewarder.server import RewarderServer

PASSWORD = "open-sesame"


class CountingBackend:
    """Episode of 3 steps, reward 1 per step; reset can be slowed down.

    A client's reset draws a frame, an autoreset does not (so frame numbers show which).
    """

    def __init__(self) -> None:
        self.frame = 1
        self.steps = 0
        self.reset_delay = 0.0
        self.step_delay = 0.0
        self.steps_served = 0
        self.fail_reset = False
        self._requested = False

    def describe(self) -> p.Describe:
        return p.Describe(
            env_id="Count-v0",
            fps=60.0,
            action_space={"type": "Discrete", "n": 2, "start": 0},
            frame_shape=(4, 6, 3),
            mode=p.Mode.LOCKSTEP,
        )

    async def prepare_reset(self, request: p.Reset) -> None:
        if request.env_id not in (None, "Count-v0"):
            raise RequestRejected(f"unknown env {request.env_id}")
        self._requested = True

    async def reset(self, seed: int | None) -> EpisodeStart:
        await asyncio.sleep(self.reset_delay)
        if self.fail_reset:
            raise RuntimeError("the env could not reset")
        if self._requested:
            self.frame += 1
        self._requested = False
        self.steps = 0
        return EpisodeStart(frame=self.frame)

    async def step(self, action: Any) -> Transition:
        if action == "boom":
            raise RuntimeError("backend bug")
        time.sleep(self.step_delay)  # a slow env that does not yield (the worst case)
        self.steps_served += 1
        self.frame += 1
        self.steps += 1
        done = self.steps >= 3
        return Transition(
            reward=1.0, terminated=done, truncated=False, frame=self.frame, info={"a": action}
        )

    async def tick(self) -> Transition | None:
        return None


def start_server(
    mode: p.Mode = p.Mode.LOCKSTEP, **kwargs: Any
) -> tuple[CountingBackend, RewarderServer]:
    backend = CountingBackend()
    server = RewarderServer(backend, password=PASSWORD, port=0, mode=mode, **kwargs)
    return backend, server


def auth(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{password}:".encode()).decode()}


def raw(method: str, mid: int, body: dict | None = None) -> str:
    headers = {"message_id": mid, "sent_at": time.time()}
    return json.dumps({"method": method, "headers": headers, "body": body or {}})


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_client_conversation() -> None:
    async def main() -> None:
        _backend, server = start_server()
        await server.start()
        client = await RewarderClient.connect("127.0.0.1", server.port, PASSWORD, timeout=5)
        try:
            assert client.describe is not None
            assert client.describe.env_id == "Count-v0"
            assert client.describe.frame_shape == (4, 6, 3)
            assert client.describe.action_space == {"type": "Discrete", "n": 2, "start": 0}
            assert 0 < await client.ping() < 1
            eid = await client.reset(seed=1)
            assert eid == 2
            assert client.describe.env_state is p.EnvState.RUNNING
            results = [await client.step(1) for _ in range(3)]
            assert [r.frame for r in results] == [3, 4, 5]
            assert results[2].terminated and results[2].episode_id == 3
            assert results[0].info == {"a": 1}
            with pytest.raises(RewarderRequestError, match=r"unknown env"):
                await client.reset(env_id="Other-v0")
            with pytest.raises(RewarderRequestError, match=r"internal error: RuntimeError"):
                await client.step("boom")
            assert await client.ping() > 0  # still served
        finally:
            await client.close()
            await server.close()

    run(main())


def test_a_failed_reset_stops_the_episode_until_a_reset_succeeds() -> None:
    async def main() -> None:
        backend, server = start_server()
        await server.start()
        client = await RewarderClient.connect("127.0.0.1", server.port, PASSWORD, timeout=5)
        try:
            backend.fail_reset = True
            with pytest.raises(RewarderRequestError, match=r"internal error: RuntimeError"):
                await client.reset()
            assert server.episode.phase is p.Phase.RESETTING
            with pytest.raises(RewarderRequestError, match=r"the last reset failed"):
                await client.step(1)
            assert backend.steps_served == 0
            backend.fail_reset = False
            assert await client.reset() == 3  # the failed one used episode 2
            assert (await client.step(1)).episode_id == 3
            await client.step(1)
            ended = await client.step(1, autoreset=False)
            assert ended.terminated and server.episode.phase is p.Phase.ENDED
        finally:
            await client.close()
            await server.close()

    run(main())


def test_wrong_password_close_message_then_1000() -> None:
    async def main() -> None:
        _backend, server = start_server()
        await server.start()
        try:
            async with connect(
                f"ws://127.0.0.1:{server.port}/", additional_headers=auth("no")
            ) as ws:
                first = json.loads(await ws.recv())
                assert first["method"] == p.CONNECTION_CLOSE
                assert "password" in first["body"]["message"]
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 1000
            with pytest.raises(RewarderRefused, match=r"password"):
                await RewarderClient.connect("127.0.0.1", server.port, "nope", timeout=5)
        finally:
            await server.close()

    run(main())


def test_failed_attempts_hold_the_address_briefly_and_say_why() -> None:
    async def main() -> None:
        limiter = FailedAttemptLimiter(free_failures=2, window=60, hold=1.0)
        _backend, server = start_server(limiter=limiter)
        await server.start()
        try:
            for _ in range(3):
                with pytest.raises(RewarderRefused, match=r"password"):
                    await RewarderClient.connect("127.0.0.1", server.port, "bad", timeout=5)
            # held: a client that cannot wait is told why and for how long
            with pytest.raises(
                RewarderRefused, match=r"too many failed attempts from 127\.0\.0\.1; retry in 1 s"
            ):
                await RewarderClient.connect("127.0.0.1", server.port, PASSWORD, timeout=0.5)
            # one that can wait gets in with the right password once the hold is over
            start = time.monotonic()
            client = await RewarderClient.connect("127.0.0.1", server.port, PASSWORD, timeout=5)
            assert time.monotonic() - start < 2.0
            await client.close()
        finally:
            await server.close()

    run(main())


def test_missing_password_is_named_as_such() -> None:
    async def main() -> None:
        _backend, server = start_server()
        await server.start()
        try:
            async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
                first = json.loads(await ws.recv())
                assert first["body"]["message"] == "no password given"
            with pytest.raises(RewarderRefused, match=r"no password given"):
                await RewarderClient.connect("127.0.0.1", server.port, "", timeout=5)
        finally:
            await server.close()

    run(main())


def test_one_controller_many_observers() -> None:
    async def main() -> None:
        _backend, server = start_server()
        await server.start()
        controller = await RewarderClient.connect("127.0.0.1", server.port, PASSWORD)
        observers = [
            await RewarderClient.connect("127.0.0.1", server.port, PASSWORD, observer=True)
            for _ in range(2)
        ]
        try:
            with pytest.raises(RewarderRefused, match=r"controlling client"):
                await RewarderClient.connect("127.0.0.1", server.port, PASSWORD)
            assert server.observer_count == 2 and server.has_controller
            await controller.step(0)
            for obs in observers:
                await obs.ping()  # observers may ping (and the reply follows the reward push)
            with pytest.raises(p.LocalProtocolError, match=r"observers"):
                await observers[0].reset()  # but not control: their own protocol refuses
            for obs in observers:
                popped = obs.pop_rewards()
                assert (popped.reward, popped.info["stats.reward.count"]) == (1.0, 1)
            await controller.close()
            for _ in range(100):  # the slot frees once the server saw the close
                if not server.has_controller:
                    break
                await asyncio.sleep(0.01)
            again = await RewarderClient.connect("127.0.0.1", server.port, PASSWORD)
            await again.close()
        finally:
            for obs in observers:
                await obs.close()
            await server.close()

    run(main())


def test_errors_keep_connection_and_oversized_closes() -> None:
    async def main() -> None:
        _backend, server = start_server(p.Mode.REALTIME)
        await server.start()
        try:
            async with connect(
                f"ws://127.0.0.1:{server.port}/", additional_headers=auth(PASSWORD)
            ) as ws:
                assert json.loads(await ws.recv())["method"] == p.ENV_DESCRIBE
                await ws.send("{oops")
                err = json.loads(await ws.recv())
                assert err["method"] == p.REPLY_ERROR and "malformed" in err["body"]["message"]
                await ws.send(raw(p.ENV_STEP, 5, {"action": 1}))
                err = json.loads(await ws.recv())
                assert err["headers"]["parent_message_id"] == 5
                assert "lockstep" in err["body"]["message"]
                await ws.send(raw(p.CONTROL_PING, 6))
                assert json.loads(await ws.recv())["method"] == p.REPLY_CONTROL_PING
                await ws.send("x" * (p.MAX_INCOMING_MESSAGE_BYTES + 1))
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                assert ws.close_code == 1009
        finally:
            await server.close()

    run(main())


def test_reset_timeout_and_connection_lost() -> None:
    async def main() -> None:
        backend, server = start_server()
        await server.start()
        client = await RewarderClient.connect("127.0.0.1", server.port, PASSWORD)
        try:
            backend.reset_delay = 2.0
            with pytest.raises(RewarderTimeout, match=r"reset"):
                await client.reset(timeout=0.2)
            backend.reset_delay = 0.0
            await server.close("maintenance")
            with pytest.raises(RewarderConnectionLost):
                await client.ping(timeout=2)
            assert client.close_message == "maintenance"
        finally:
            await client.close()

    run(main())


def test_connect_to_nothing_is_connection_lost() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(RewarderConnectionLost):
        run(RewarderClient.connect("127.0.0.1", port, PASSWORD, timeout=2))
