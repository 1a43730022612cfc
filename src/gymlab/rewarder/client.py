"""Asyncio rewarder client.

One reader task decodes every server frame with
:class:`gymlab.rewarder.protocol.Connection`: replies resolve the
request futures (matched by ``parent_message_id``), rewards go into a
:class:`RewardBuffer`, describes update :attr:`RewarderClient.describe`.
Every wait is bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection as WsConnection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from gymlab.rewarder import protocol as p
from gymlab.rewarder.auth import basic_authorization
from gymlab.rewarder.reward_buffer import PoppedReward, RewardBuffer

log = logging.getLogger("gymlab.rewarder.client")

#: Texts kept (the newest), and the longest text kept whole.
MAX_TEXTS = 64
MAX_TEXT_CHARS = 64 * 1024
#: Invalid server messages logged per connection (the rest only counted).
MAX_LOGGED_INVALID = 5


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


def _refusal(exc: InvalidStatus, where: str) -> tuple[str, float | None]:
    """The server's one-line reason for refusing the upgrade, and its Retry-After."""
    response = exc.response
    reason = (response.body or b"").decode("utf-8", "replace").strip().splitlines()
    text = reason[0][:200] if reason else f"HTTP {response.status_code}"
    retry = response.headers.get("Retry-After")
    try:
        retry_after = float(retry) if retry is not None else None
    except ValueError:
        retry_after = None
    return f"{where} refused the connection: {text}", retry_after


class RewarderClient:
    """A connection to one rewarder. Build it with :meth:`connect`."""

    def __init__(self, ws: WsConnection, proto: p.Connection) -> None:
        self._ws = ws
        self._proto = proto
        self.observer = proto.observer
        self.rewards = RewardBuffer()
        #: the latest ``v0.env.describe``
        self.describe: p.Describe | None = None
        self.last_observation: p.Observation | None = None
        #: the newest texts (``v0.env.text``), each cut at MAX_TEXT_CHARS
        self.texts: deque[str] = deque(maxlen=MAX_TEXTS)
        self.invalid_messages = 0
        self.close_message: str | None = None
        self._pending: dict[int, asyncio.Future[p.Event]] = {}
        self._described = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[p.Event], None]] = []

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
        if not password:
            raise RewarderRefused(f"no password given for rewarder {host}:{port}")
        uri = f"ws://{host}:{port}/"
        where = f"rewarder {host}:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                ws = await asyncio.wait_for(
                    connect(
                        uri,
                        additional_headers=headers,
                        max_size=p.CLIENT_MAX_MESSAGE_BYTES,
                        open_timeout=None,
                        ping_interval=20,
                        ping_timeout=20,
                    ),
                    max(0.0, deadline - time.monotonic()),
                )
                break
            except asyncio.TimeoutError:
                raise RewarderTimeout(f"connecting to {where} timed out") from None
            except InvalidStatus as exc:
                message, retry_after = _refusal(exc, where)
                # held after someone's wrong passwords: worth one wait if it fits the timeout
                if retry_after is None or time.monotonic() + retry_after >= deadline:
                    raise RewarderRefused(message) from None
                log.info("%s; retrying in %g s", message, retry_after)
                await asyncio.sleep(retry_after)
            except (OSError, WebSocketException) as exc:
                raise RewarderConnectionLost(f"cannot connect to {where}: {exc}") from None
        client = cls(ws, p.Connection(p.Role.CLIENT, observer=observer))
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

    def add_listener(self, callback: Callable[[p.Event], None]) -> None:
        """Call ``callback`` with every decoded server event (after internal handling)."""
        self._listeners.append(callback)

    async def _read_loop(self) -> None:
        error: RewarderError | None = None
        try:
            async for text in self._ws:
                try:
                    event = self._proto.receive(text)
                except p.RemoteProtocolError as exc:
                    self.invalid_messages += 1
                    if self.invalid_messages <= MAX_LOGGED_INVALID:
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

    def _handle(self, event: p.Event) -> None:
        if isinstance(event, p.Describe):
            self.describe = event
            if event.episode_id is not None:
                self.rewards.set_episode(event.episode_id)
            if not self._described.done():
                self._described.set_result(None)
        elif isinstance(event, p.Reward):
            self.rewards.push(event.reward, event.done, event.info, event.episode_id)
        elif isinstance(event, p.Observation):
            self.last_observation = event
        elif isinstance(event, p.Text):
            self.texts.append(event.text[:MAX_TEXT_CHARS])
        elif isinstance(event, p.Close):
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

    async def _request(self, request: p.Request, timeout: float, what: str) -> Any:
        if self._reader is None or self._reader.done():
            raise RewarderConnectionLost("rewarder connection closed")
        message_id = self._proto.next_message_id
        text = self._proto.send(request)
        future: asyncio.Future[p.Event] = asyncio.get_running_loop().create_future()
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
        hint = p.episode_hint(self.rewards.episode_id)
        request = p.Reset(env_id=env_id, seed=seed, fps=fps, episode_id=hint)
        self.rewards.begin_reset()
        try:
            reply: p.ResetReply = await self._request(request, timeout, "reset")
        except (RewarderRequestError, p.LocalProtocolError):
            self.rewards.cancel_reset()
            raise
        assert reply.episode_id is not None  # the protocol requires it
        return reply.episode_id

    async def step(
        self, action: Any, *, autoreset: bool = True, timeout: float = 10.0
    ) -> p.StepReply:
        """Lockstep: apply ``action``, advance one step, return when its frame is shown.

        ``autoreset=False`` keeps a terminal frame on the display until :meth:`reset`.
        """
        step = p.Step(action=p.to_jsonable(action), autoreset=autoreset)
        reply: p.StepReply = await self._request(step, timeout, "step")
        # The reply carries this step's reward; drain the pushed copy so it is not counted twice.
        self.rewards.pop()
        if reply.episode_id is not None and reply.done:
            self.rewards.finish_reset(reply.episode_id)
        return reply

    async def ping(self, *, timeout: float = 5.0) -> float:
        """Round-trip time of ``v0.control.ping`` in seconds."""
        start = time.perf_counter()
        await self._request(p.Ping(), timeout, "ping")
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
