"""The rewarder's asyncio websocket server.

It wraps :class:`gymlab.rewarder.protocol.ServerConnection` around the
``websockets`` library (new asyncio API). The environment side is a
:class:`RewarderBackend`; the server turns requests into backend calls and
exposes ``push_*`` methods for the backend's own messages (rewards, state
changes, text). Every connection has an ordered outgoing queue and a writer
task, so pushes never block the environment loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from gymlab.rewarder import protocol as p
from gymlab.rewarder.auth import FailedAttemptLimiter, check_basic_authorization

log = logging.getLogger("gymlab.rewarder")

#: Messages queued for one client before it is considered too slow and dropped.
MAX_QUEUED_MESSAGES = 4096


class RequestRejected(Exception):
    """Raised by a backend to answer a request with ``v0.reply.error``."""


@dataclass(frozen=True)
class ResetOutcome:
    """The reset finished: its episode id and the number of the frame now shown."""

    episode_id: int
    frame: int


@dataclass(frozen=True)
class StepOutcome:
    """One lockstep step, after its frame is on the display."""

    frame: int
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    episode_id: int


class RewarderBackend(Protocol):
    """What the server needs from the environment host."""

    def describe_body(self) -> dict[str, Any]:
        """Body of ``v0.env.describe``: env_id, env_state, fps, plus gymlab extras."""
        ...

    @property
    def episode_id(self) -> int:
        """The server-owned current episode id."""
        ...

    async def reset(self, request: p.ResetRequest) -> ResetOutcome:
        """Reset; return once the reset frame is drawn. May raise RequestRejected."""
        ...

    async def step(self, request: p.StepRequest) -> StepOutcome:
        """Advance one step (lockstep). May raise RequestRejected."""
        ...


def parse_observer_header(value: str | None) -> bool:
    """``openai-observer: true`` (case-insensitive; 1/yes accepted too)."""
    return (value or "").strip().lower() in {"true", "1", "yes"}


@dataclass
class _Admission:
    ok: bool
    observer: bool
    reason: str


class _Peer:
    """One accepted connection: protocol state plus its ordered outgoing queue."""

    def __init__(self, ws: ServerConnection, proto: p.ServerConnection, address: str) -> None:
        self.ws = ws
        self.proto = proto
        self.address = address
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(MAX_QUEUED_MESSAGES)
        self.writer: asyncio.Task[None] | None = None

    def enqueue(self, text: str) -> None:
        try:
            self.queue.put_nowait(text)
        except asyncio.QueueFull:
            log.warning("client %s is too slow, disconnecting it", self.address)
            self.ws.transport.abort()

    async def write_loop(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            while (text := await self.queue.get()) is not None:
                await self.ws.send(text)


def _peer_ip(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return str(addr[0]) if addr else "unknown"


class RewarderServer:
    """Websocket rewarder: Basic auth at the upgrade, one controller, many observers."""

    def __init__(
        self,
        backend: RewarderBackend,
        *,
        password: str,
        host: str = "127.0.0.1",
        port: int = 0,
        lockstep: bool = False,
        max_message_bytes: int = p.MAX_INCOMING_MESSAGE_BYTES,
        limiter: FailedAttemptLimiter | None = None,
    ) -> None:
        self._backend = backend
        self._password = password
        self._host = host
        self._port = port
        self._lockstep = lockstep
        self._max_bytes = max_message_bytes
        self._limiter = limiter if limiter is not None else FailedAttemptLimiter()
        self._admissions: dict[ServerConnection, _Admission] = {}
        self._peers: dict[ServerConnection, _Peer] = {}
        self._controller: _Peer | None = None
        self._server: Server | None = None
        self._closing = False

    # lifecycle

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await serve(
            self._handle,
            self._host,
            self._port,
            process_request=self._process_request,
            max_size=self._max_bytes,
            ping_interval=20,
            ping_timeout=20,
            logger=logging.getLogger("gymlab.rewarder.websockets"),
        )

    @property
    def port(self) -> int:
        """The bound TCP port (useful when started with port 0)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def observer_count(self) -> int:
        """Connected observers."""
        return sum(1 for peer in self._peers.values() if peer.proto.observer)

    @property
    def has_controller(self) -> bool:
        """Whether a controlling client is connected."""
        return self._controller is not None

    async def close(self, message: str = "rewarder shutting down") -> None:
        """Send ``v0.connection.close`` to every client, close them (1000), stop listening."""
        self._closing = True
        if self._server is not None:
            self._server.close(close_connections=False)
        for peer in list(self._peers.values()):
            peer.enqueue(peer.proto.close(message))
            with contextlib.suppress(asyncio.QueueFull):
                peer.queue.put_nowait(None)  # ends the writer after the close message
        for peer in list(self._peers.values()):
            if peer.writer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(peer.writer), 2.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(peer.ws.close(1000, message[:120]), 2.0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)

    # pushes (called by the backend)

    def _broadcast(self, build: Any) -> None:
        for peer in list(self._peers.values()):
            peer.enqueue(build(peer.proto))

    def push_describe(self) -> None:
        """Send ``v0.env.describe`` to everyone (on every state change)."""
        body, eid = self._backend.describe_body(), self._backend.episode_id
        self._broadcast(lambda proto: proto.describe(body, eid))

    def push_reward(
        self,
        *,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: Mapping[str, Any],
        frame: int,
        episode_id: int,
    ) -> None:
        """Send ``v0.env.reward`` to everyone."""
        info_json = p.to_jsonable(info)
        self._broadcast(
            lambda proto: proto.reward(
                reward=reward,
                terminated=terminated,
                truncated=truncated,
                info=info_json,
                frame=frame,
                episode_id=episode_id,
            )
        )

    def push_text(self, text: str) -> None:
        """Send ``v0.env.text`` to everyone."""
        eid = self._backend.episode_id
        self._broadcast(lambda proto: proto.text(text, eid))

    def push_observation(self, observation: Any, episode_id: int) -> None:
        """Send ``v0.env.observation`` to everyone."""
        obs = p.to_jsonable(observation)
        self._broadcast(lambda proto: proto.observation(obs, episode_id))

    # connection handling

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """Runs during the HTTP upgrade: decide admission before any message exists."""
        ip = _peer_ip(ws)
        now = time.monotonic()
        if self._limiter.is_blocked(ip, now):
            return ws.respond(http.HTTPStatus.TOO_MANY_REQUESTS, "Too many failed attempts\n")
        headers: Headers = request.headers
        observer = parse_observer_header(headers.get(p.OBSERVER_HEADER))
        if not check_basic_authorization(headers.get("Authorization"), self._password):
            failures = self._limiter.record_failure(ip, now)
            if failures < self._limiter.max_failures:
                log.warning("refused %s: wrong or missing password", ip)
            else:
                log.warning(
                    "refused %s: wrong or missing password; blocking it for %.0fs",
                    ip,
                    self._limiter.window,
                )
            self._admissions[ws] = _Admission(False, observer, "invalid password")
        else:
            self._admissions[ws] = _Admission(True, observer, "")
        return None

    async def _refuse(self, ws: ServerConnection, proto: p.ServerConnection, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(proto.close(reason))
            await ws.close(1000, reason)

    async def _handle(self, ws: ServerConnection) -> None:
        admission = self._admissions.pop(ws, None) or _Admission(False, False, "invalid password")
        ip = _peer_ip(ws)
        proto = p.ServerConnection(
            observer=admission.observer, lockstep=self._lockstep, max_message_bytes=self._max_bytes
        )
        if not admission.ok:
            await self._refuse(ws, proto, admission.reason)
            return
        if self._closing:
            await self._refuse(ws, proto, "rewarder shutting down")
            return
        if not admission.observer and self._controller is not None:
            log.warning("refused %s: a controller is already connected", ip)
            await self._refuse(ws, proto, "another controlling client is already connected")
            return
        peer = _Peer(ws, proto, ip)
        self._peers[ws] = peer
        if not admission.observer:
            self._controller = peer
        role = "observer" if admission.observer else "controller"
        log.info("%s connected from %s", role, ip)
        peer.writer = asyncio.create_task(peer.write_loop())
        peer.enqueue(proto.describe(self._backend.describe_body(), self._backend.episode_id))
        try:
            async for text in ws:
                if self._closing:
                    break
                await self._dispatch(peer, text)
        except ConnectionClosed:
            pass
        except p.MessageTooLarge as exc:
            log.warning("closing %s: %s", ip, exc)
            with contextlib.suppress(ConnectionClosed):
                await ws.close(1009, "message too big")
        finally:
            self._peers.pop(ws, None)
            if self._controller is peer:
                self._controller = None
            if not self._closing and peer.writer is not None:
                peer.writer.cancel()
            log.info("%s %s disconnected", role, ip)

    async def _dispatch(self, peer: _Peer, text: str | bytes) -> None:
        event = peer.proto.receive(text)
        try:
            await self._answer(peer, event)
        except Exception as exc:  # a backend bug or a dying display: report, keep serving
            log.error("request from %s failed: %r", peer.address, exc)
            parent = getattr(event, "message_id", None)
            peer.enqueue(peer.proto.error(parent, f"internal error: {type(exc).__name__}"))

    async def _answer(self, peer: _Peer, event: p.ServerEvent) -> None:
        proto = peer.proto
        if isinstance(event, p.BadRequest):
            log.info("bad request from %s: %s", peer.address, event.message)
            peer.enqueue(event.reply)
        elif isinstance(event, p.PingRequest):
            peer.enqueue(proto.reply_ping(event))
        elif isinstance(event, p.ResetRequest):
            try:
                reset = await self._backend.reset(event)
            except RequestRejected as exc:
                peer.enqueue(proto.error(event.message_id, str(exc)))
            else:
                peer.enqueue(
                    proto.reply_reset(event, episode_id=reset.episode_id, frame=reset.frame)
                )
        else:
            try:
                step = await self._backend.step(event)
            except RequestRejected as exc:
                peer.enqueue(proto.error(event.message_id, str(exc)))
            else:
                peer.enqueue(
                    proto.reply_step(
                        event,
                        frame=step.frame,
                        reward=step.reward,
                        terminated=step.terminated,
                        truncated=step.truncated,
                        info=p.to_jsonable(step.info),
                        episode_id=step.episode_id,
                    )
                )
