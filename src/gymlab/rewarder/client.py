"""Asyncio rewarder client.

One reader task decodes every server frame with
:class:`gymlab.rewarder.protocol.ClientConnection`: replies resolve the
request futures (matched by ``parent_message_id``), rewards go into a
:class:`RewardBuffer`, describes update :attr:`RewarderClient.describe`.
Every wait is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from websockets.asyncio.client import ClientConnection as WsConnection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from gymlab.rewarder import protocol as p
from gymlab.rewarder.auth import basic_authorization
from gymlab.rewarder.reward_buffer import PoppedReward, RewardBuffer

log = logging.getLogger("gymlab.rewarder.client")

#: Server frames can carry observations; allow more than the server accepts.
CLIENT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class RewarderError(Exception):
    """Base class of rewarder client errors."""


class RewarderRefused(RewarderError):
    """The server refused the connection (wrong password, controller slot taken, rate limit)."""


class RewarderConnectionLost(RewarderError):
    """The connection closed or failed while the client needed it."""


class RewarderTimeout(RewarderError, TimeoutError):
    """A connect or request did not complete in time."""


class RewarderRequestError(RewarderError):
    """The server answered a request with ``v0.reply.error``."""


@dataclass(frozen=True)
class EnvDescription:
    """The latest ``v0.env.describe`` (gymlab extras decoded when present)."""

    env_id: str | None
    state: str | None
    fps: float | None
    episode_id: int | None
    action_space: dict[str, Any] | None
    frame_shape: tuple[int, ...] | None
    mode: str | None


@dataclass(frozen=True)
class StepResult:
    """A lockstep step's reply."""

    frame: int
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    episode_id: int | None


def _description(event: p.Describe) -> EnvDescription:
    body = event.body
    shape = body.get("frame_shape")
    space = body.get("action_space")
    return EnvDescription(
        env_id=event.env_id,
        state=event.env_state,
        fps=event.fps,
        episode_id=event.episode_id,
        action_space=space if isinstance(space, dict) else None,
        frame_shape=tuple(int(x) for x in shape) if isinstance(shape, list) else None,
        mode=body.get("mode") if isinstance(body.get("mode"), str) else None,
    )


class RewarderClient:
    """A connection to one rewarder. Build it with :meth:`connect`."""

    def __init__(self, ws: WsConnection, proto: p.ClientConnection, observer: bool) -> None:
        self._ws = ws
        self._proto = proto
        self.observer = observer
        self.rewards = RewardBuffer()
        self.describe: EnvDescription | None = None
        self.last_observation: p.Observation | None = None
        self.texts: list[str] = []
        self.close_message: str | None = None
        self._pending: dict[int, asyncio.Future[p.ClientEvent]] = {}
        self._described = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[p.ClientEvent], None]] = []

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        password: str,
        *,
        observer: bool = False,
        timeout: float = 10.0,
    ) -> RewarderClient:
        """Connect, authenticate and wait for the first describe.

        Raises :class:`RewarderRefused`, :class:`RewarderTimeout` or
        :class:`RewarderConnectionLost`.
        """
        headers = {
            "Authorization": basic_authorization(password),
            p.OBSERVER_HEADER: "true" if observer else "false",
        }
        uri = f"ws://{host}:{port}/"
        where = f"rewarder {host}:{port}"
        try:
            ws = await asyncio.wait_for(
                connect(
                    uri,
                    additional_headers=headers,
                    max_size=CLIENT_MAX_MESSAGE_BYTES,
                    open_timeout=None,
                    ping_interval=20,
                    ping_timeout=20,
                ),
                timeout,
            )
        except asyncio.TimeoutError:
            raise RewarderTimeout(f"connecting to {where} timed out") from None
        except InvalidStatus as exc:
            code = exc.response.status_code
            raise RewarderRefused(f"{where} refused the upgrade (HTTP {code})") from None
        except (OSError, WebSocketException) as exc:
            raise RewarderConnectionLost(f"cannot connect to {where}: {exc}") from None
        client = cls(ws, p.ClientConnection(max_message_bytes=CLIENT_MAX_MESSAGE_BYTES), observer)
        client._reader = asyncio.create_task(client._read_loop())
        try:
            await asyncio.wait_for(asyncio.shield(client._described), timeout)
        except asyncio.TimeoutError:
            await client.close()
            raise RewarderTimeout(f"{where} sent no describe in {timeout}s") from None
        except RewarderError:
            await client.close()
            raise
        return client

    # reading

    def add_listener(self, callback: Callable[[p.ClientEvent], None]) -> None:
        """Call ``callback`` with every decoded server event (after internal handling)."""
        self._listeners.append(callback)

    async def _read_loop(self) -> None:
        error: RewarderError | None = None
        try:
            async for text in self._ws:
                try:
                    event = self._proto.receive(text)
                except p.ProtocolError as exc:
                    log.warning("rewarder client: ignoring invalid server message: %s", exc)
                    continue
                self._handle(event)
        except ConnectionClosed:
            pass
        finally:
            if self.close_message is not None:
                error = RewarderRefused(self.close_message)
                if self.describe is not None:
                    error = RewarderConnectionLost(f"server closed: {self.close_message}")
            else:
                error = RewarderConnectionLost("rewarder connection closed")
            self._fail_all(error)

    def _fail_all(self, error: RewarderError) -> None:
        if not self._described.done():
            self._described.set_exception(error)
            self._described.exception()  # mark retrieved: connect() may have given up
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)
        self._pending.clear()

    def _handle(self, event: p.ClientEvent) -> None:
        if isinstance(event, p.Describe):
            self.describe = _description(event)
            if event.episode_id is not None:
                self.rewards.set_episode(event.episode_id)
            if not self._described.done():
                self._described.set_result(None)
        elif isinstance(event, p.Reward):
            self.rewards.push(event.reward, event.done, event.info, event.episode_id)
        elif isinstance(event, p.Observation):
            self.last_observation = event
        elif isinstance(event, p.Text):
            self.texts.append(event.text)
        elif isinstance(event, p.ConnectionClose):
            self.close_message = event.message
        elif isinstance(event, (p.ResetReply, p.StepReply, p.PingReply, p.ErrorReply)):
            if isinstance(event, p.ResetReply) and event.episode_id is not None:
                # also for a reply that arrives after its request timed out
                self.rewards.finish_reset(event.episode_id)
            parent = event.parent_message_id
            future = self._pending.pop(parent, None) if parent is not None else None
            if future is not None and not future.done():
                future.set_result(event)
            elif isinstance(event, p.ErrorReply):
                log.warning("rewarder client: server error: %s", event.message)
        for listener in self._listeners:
            listener(event)

    # requests

    async def _request(self, message_id: int, text: str, timeout: float, what: str) -> Any:
        if self._reader is None or self._reader.done():
            raise RewarderConnectionLost("rewarder connection closed")
        future: asyncio.Future[p.ClientEvent] = asyncio.get_running_loop().create_future()
        self._pending[message_id] = future
        try:
            await self._ws.send(text)
            reply = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise RewarderTimeout(f"{what} got no reply within {timeout}s") from None
        except ConnectionClosed:
            raise RewarderConnectionLost(f"connection lost during {what}") from None
        finally:
            self._pending.pop(message_id, None)
        if isinstance(reply, p.ErrorReply):
            raise RewarderRequestError(f"{what} failed: {reply.message}")
        return reply

    async def reset(
        self,
        env_id: str | None = None,
        seed: int | None = None,
        *,
        fps: float | None = None,
        timeout: float = 30.0,
    ) -> int:
        """Reset the remote env; returns the new episode id once the reset frame is drawn."""
        hint = self.rewards.episode_id
        message_id, text = self._proto.reset(
            env_id=env_id, seed=seed, fps=fps, episode_id_hint=hint
        )
        self.rewards.begin_reset()
        try:
            reply: p.ResetReply = await self._request(message_id, text, timeout, "reset")
        except RewarderRequestError:
            self.rewards.cancel_reset()
            raise
        if reply.episode_id is None:
            self.rewards.cancel_reset()
            raise RewarderRequestError("reset reply carried no episode_id")
        return reply.episode_id

    async def step(self, action: Any, *, timeout: float = 10.0) -> StepResult:
        """Lockstep: apply ``action``, advance one step, return when its frame is shown."""
        message_id, text = self._proto.step(action)
        reply: p.StepReply = await self._request(message_id, text, timeout, "step")
        # The reply carries this step's reward; drain the pushed copy so it is not counted twice.
        self.rewards.pop()
        if reply.episode_id is not None and (reply.terminated or reply.truncated):
            self.rewards.finish_reset(reply.episode_id)
        return StepResult(
            frame=reply.frame,
            reward=reply.reward,
            terminated=reply.terminated,
            truncated=reply.truncated,
            info=reply.info,
            episode_id=reply.episode_id,
        )

    async def ping(self, *, timeout: float = 5.0) -> float:
        """Round-trip time of ``v0.control.ping`` in seconds."""
        message_id, text = self._proto.ping()
        start = time.perf_counter()
        await self._request(message_id, text, timeout, "ping")
        return time.perf_counter() - start

    def pop_rewards(self) -> PoppedReward:
        """Real-time mode: what arrived since the last call (see :class:`RewardBuffer`)."""
        return self.rewards.pop()

    @property
    def closed(self) -> bool:
        """True once the connection is gone."""
        return self._reader is None or self._reader.done()

    async def close(self) -> None:
        """Close the connection (bounded wait)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(), 5.0)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def __aenter__(self) -> RewarderClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
