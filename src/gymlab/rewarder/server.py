"""The rewarder's asyncio websocket server.

It wraps one :class:`gymlab.rewarder.protocol.Connection` per websocket around the
``websockets`` library (new asyncio API). The environment side is a
:class:`~gymlab.rewarder.backend.RewarderBackend` that only returns results; the server
owns the episode (the protocol's episode table), turns requests and real-time ticks into
backend calls, decides autoresets and publishes what happened (rewards, observations,
texts, state changes) to every client.

Serving is fair: each connection's requests are handled one at a time (the websocket
layer's bounded queue and TCP hold back a pipelining client), the loop yields between
messages so observers' pings and new handshakes are served, and an aborted client's
queued requests are dropped. Every connection has an ordered, bounded outgoing queue
and a writer task, so pushes never block the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http
import logging
import socket
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from gymlab.rewarder import protocol as p
from gymlab.rewarder.auth import FailedAttemptLimiter, check_basic_authorization
from gymlab.rewarder.backend import EpisodeStart, RequestRejected, RewarderBackend, Transition

log = logging.getLogger("gymlab.rewarder")

#: Messages queued for one client before it is considered too slow and dropped.
MAX_QUEUED_MESSAGES = 4096
#: Incoming frames the websocket layer buffers per connection before TCP pushes back.
MAX_BUFFERED_FRAMES = 16


def parse_observer_header(value: str | None) -> bool:
    """``openai-observer: true`` (case-insensitive; 1/yes accepted too)."""
    return (value or "").strip().lower() in {"true", "1", "yes"}


@dataclass(frozen=True)
class _Admission:
    observer: bool
    refusal: str | None  # None: admitted


class _Peer:
    """One accepted connection: protocol state plus its ordered outgoing queue."""

    def __init__(self, ws: ServerConnection, proto: p.Connection, address: str) -> None:
        self.ws = ws
        self.proto = proto
        self.address = address
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(MAX_QUEUED_MESSAGES)
        self.writer: asyncio.Task[None] | None = None
        self.aborted = False

    @property
    def gone(self) -> bool:
        """Aborted by us or no longer open: nothing it sent is worth serving."""
        return self.aborted or self.ws.state is not State.OPEN

    def send(self, event: p.Event) -> None:
        """Encode ``event`` on this connection and queue it."""
        if self.gone:
            return
        try:
            self.queue.put_nowait(self.proto.send(event))
        except asyncio.QueueFull:
            log.warning("client %s is too slow, disconnecting it", self.address)
            self.aborted = True
            self.ws.transport.abort()

    async def write_loop(self) -> None:
        """Send the queue in order; what was queued together leaves in one TCP segment.

        A lockstep step queues its reward and observation pushes and its reply at once:
        one segment wakes the client once instead of three times.
        """
        with contextlib.suppress(ConnectionClosed):
            while (text := await self.queue.get()) is not None:
                batch = [text] + [self.queue.get_nowait() for _ in range(self.queue.qsize())]
                with _corked(self.ws):
                    for text in batch:
                        if text is None:
                            return
                        await self.ws.send(text)


@contextlib.contextmanager
def _corked(ws: ServerConnection) -> Iterator[None]:
    """Hold back partial TCP segments until the block ends (Linux ``TCP_CORK``)."""
    sock = ws.transport.get_extra_info("socket")
    cork = getattr(socket, "TCP_CORK", None)
    if sock is None or cork is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        yield
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, cork, 1)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # the connection may be gone by now
            sock.setsockopt(socket.IPPROTO_TCP, cork, 0)


def _peer_ip(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return str(addr[0]) if addr else "unknown"


class RewarderServer:
    """Websocket rewarder: Basic auth at the upgrade, one controller, many observers.

    The episode starts as episode 1, running: the backend has its first frame on the
    display before :meth:`start`. ``bind`` is the address to listen on.
    """

    def __init__(
        self,
        backend: RewarderBackend,
        *,
        password: str,
        mode: p.Mode | str,
        bind: str = "127.0.0.1",
        port: int = 0,
        max_message_bytes: int = p.MAX_INCOMING_MESSAGE_BYTES,
        limiter: FailedAttemptLimiter | None = None,
    ) -> None:
        self._backend = backend
        self._password = password
        self.mode = p.Mode(mode)
        self._bind = bind
        self._port = port
        self._max_bytes = max_message_bytes
        self._limiter = limiter if limiter is not None else FailedAttemptLimiter()
        # Filled during the HTTP upgrade, read by the handler; weak, so a request that
        # never becomes a websocket leaves nothing behind.
        self._admissions: weakref.WeakKeyDictionary[ServerConnection, _Admission] = (
            weakref.WeakKeyDictionary()
        )
        self._peers: dict[ServerConnection, _Peer] = {}
        self._controller: _Peer | None = None
        self._server: Server | None = None
        self._closing = False
        self.episode = p.Episode(1, p.Phase.RUNNING)
        #: one user of the env at a time: client resets, lockstep steps, real-time ticks
        self._env_lock = asyncio.Lock()

    # lifecycle

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await serve(
            self._handle,
            self._bind,
            self._port,
            process_request=self._process_request,
            max_size=self._max_bytes,
            max_queue=MAX_BUFFERED_FRAMES,
            # Messages are a few hundred bytes of JSON: deflating each costs both ends more
            # CPU than it saves, and a peer gets no decompression to make us do.
            compression=None,
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
            peer.send(p.Close(message=message))
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

    # episodes and what is published

    def describe(self) -> p.Describe:
        """The backend's describe with this server's episode state."""
        return dataclasses.replace(
            self._backend.describe(),
            env_state=self.episode.state,
            episode_id=self.episode.episode_id,
        )

    def push(self, event: p.Event) -> None:
        """Send a server event (reward, text, observation, describe) to every client."""
        for peer in list(self._peers.values()):
            peer.send(event)

    async def tick(self) -> None:
        """Real time: one tick of the backend's clock, published like a step (autoreset)."""
        async with self._env_lock:
            if not self.episode.allows(p.Trigger.STEP):
                return  # a reset failed: nothing moves until the next one
            transition = await self._backend.tick()
            if transition is not None:
                await self._publish(transition, autoreset=True)

    async def _reset(self, request: p.Reset) -> p.ResetReply:
        async with self._env_lock:
            await self._backend.prepare_reset(request)
            episode_id, start = await self._begin_episode(
                request.seed, request.episode_id, requested=True
            )
        return p.ResetReply(episode_id=episode_id, frame=start.frame)

    async def _step(self, request: p.Step) -> p.StepReply:
        async with self._env_lock:
            if not self.episode.allows(p.Trigger.STEP):
                raise RequestRejected(
                    "the episode has ended; send v0.env.reset first"
                    if self.episode.phase is p.Phase.ENDED
                    else "the last reset failed; send v0.env.reset"
                )
            transition = await self._backend.step(request.action)
            return await self._publish(transition, autoreset=request.autoreset)

    async def _begin_episode(
        self, seed: int | None, hint: int | None = None, *, requested: bool = False
    ) -> tuple[int, EpisodeStart]:
        """Announce ``resetting`` under a new id, reset, announce ``running``.

        If the backend raises, the episode stays ``resetting`` and the next reset starts a
        fresh one.
        """
        episode_id = self.episode.begin_reset(hint)
        self.push(self.describe())
        start = await self._backend.reset(seed)
        self.episode.finish_reset()
        if start.observation is not None:
            self.push(p.Observation(observation=start.observation, episode_id=episode_id))
        if start.text is not None:
            self.push(p.Text(text=start.text, episode_id=episode_id))
        self.push(self.describe())
        # Auto-resets happen many times a second in real time: keep them out of INFO.
        level = logging.INFO if requested else logging.DEBUG
        log.log(level, "episode %d started (frame %d)", episode_id, start.frame)
        return episode_id, start

    async def _publish(self, step: Transition, *, autoreset: bool) -> p.StepReply:
        """Push a step's reward and observation; end the episode or reset it; the reply."""
        episode_id = self.episode.episode_id
        info = p.jsonable_items(step.info)
        self.push(
            p.Reward(
                reward=step.reward,
                terminated=step.terminated,
                truncated=step.truncated,
                info=info,
                frame=step.frame,
                episode_id=episode_id,
            )
        )
        if step.observation is not None:
            self.push(p.Observation(observation=step.observation, episode_id=episode_id))
        frame = step.frame
        if step.done and not autoreset:
            self.episode.apply(p.Trigger.END)  # the terminal frame stays until a reset
        elif step.done:
            # The reply's observation (the frame on screen) belongs to the new episode.
            info = {**info, "terminal_frame": step.frame, "terminal_episode_id": episode_id}
            _, start = await self._begin_episode(None)
            frame = start.frame
        return p.StepReply(
            frame=frame,
            reward=step.reward,
            terminated=step.terminated,
            truncated=step.truncated,
            info=info,
            episode_id=self.episode.episode_id,
        )

    # connection handling

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """Runs during the HTTP upgrade: decide admission before any message exists."""
        ip = _peer_ip(ws)
        now = time.monotonic()
        refusal = self._limiter.refusal(ip, now)
        if refusal is not None:
            response = ws.respond(http.HTTPStatus.TOO_MANY_REQUESTS, refusal + "\n")
            response.headers["Retry-After"] = str(max(1, round(self._limiter.retry_after(ip, now))))
            return response
        headers = request.headers
        observer = parse_observer_header(headers.get(p.OBSERVER_HEADER))
        authorization = headers.get("Authorization")
        if authorization is None:
            log.warning("refused %s: no password given", ip)
            reason: str | None = "no password given"
        elif not check_basic_authorization(authorization, self._password):
            hold = self._limiter.record_failure(ip, now)
            held = f"; holding it for {hold:g} s" if hold else ""
            log.warning("refused %s: wrong password%s", ip, held)
            reason = "invalid password"
        else:
            reason = None
        self._admissions[ws] = _Admission(observer, reason)
        return None

    async def _refuse(self, ws: ServerConnection, proto: p.Connection, reason: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(proto.send(p.Close(message=reason)))
            await ws.close(1000, reason)

    async def _handle(self, ws: ServerConnection) -> None:
        admission = self._admissions.pop(ws, None) or _Admission(False, "invalid password")
        ip = _peer_ip(ws)
        proto = p.Connection(
            p.Role.SERVER, self.mode, admission.observer, max_message_bytes=self._max_bytes
        )
        if admission.refusal is not None:
            await self._refuse(ws, proto, admission.refusal)
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
        peer.send(self.describe())
        try:
            async for text in ws:
                if self._closing or peer.gone:
                    break  # drop what an aborted client still had queued
                await self._serve(peer, text)
                await asyncio.sleep(0)  # one message at a time: let the other peers in
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

    async def _serve(self, peer: _Peer, text: str | bytes) -> None:
        try:
            event = peer.proto.receive(text)
        except p.RemoteProtocolError as exc:
            if exc.fatal:
                raise
            log.info("bad request from %s: %s", peer.address, exc)
            peer.send(p.ErrorReply(message=str(exc), reply_to=exc.parent_message_id))
            return
        try:
            reply = await self._answer(event)
        except RequestRejected as exc:
            reply = p.ErrorReply(message=str(exc))
        except Exception as exc:  # a backend bug or a dying display: report, keep serving
            log.error("request from %s failed: %r", peer.address, exc)
            reply = p.ErrorReply(message=f"internal error: {type(exc).__name__}")
        peer.send(reply)

    async def _answer(self, event: p.Event) -> p.Event:
        if isinstance(event, p.Ping):
            return p.PingReply()
        if isinstance(event, p.Reset):
            return await self._reset(event)
        if isinstance(event, p.Step):
            return await self._step(event)
        raise RequestRejected(f"{event.METHOD} is not a request")
