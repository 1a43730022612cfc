"""Sans-I/O implementation of the rewarder v0 protocol (see PROTOCOL.md).

Nothing here touches a socket or an event loop: the connection classes take
incoming text frames and return events, and build outgoing text frames that
the caller sends however it likes. That keeps the protocol testable with plain
strings and lets the asyncio server and client share one definition of every
message shape.
"""

from __future__ import annotations

import enum
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeGuard

# --- method names -----------------------------------------------------------------

ENV_DESCRIBE = "v0.env.describe"
ENV_RESET = "v0.env.reset"
REPLY_ENV_RESET = "v0.reply.env.reset"
ENV_REWARD = "v0.env.reward"
ENV_TEXT = "v0.env.text"
ENV_OBSERVATION = "v0.env.observation"
CONTROL_PING = "v0.control.ping"
REPLY_CONTROL_PING = "v0.reply.control.ping"
REPLY_ERROR = "v0.reply.error"
CONNECTION_CLOSE = "v0.connection.close"
ENV_STEP = "v0.env.step"  # gymlab extension (lockstep mode)
REPLY_ENV_STEP = "v0.reply.env.step"  # gymlab extension (lockstep mode)

#: HTTP upgrade header marking a read-only client.
OBSERVER_HEADER = "openai-observer"

CLIENT_METHODS = frozenset({ENV_RESET, CONTROL_PING, ENV_STEP})

#: Largest incoming frame a server accepts; the websocket layer enforces the same limit.
MAX_INCOMING_MESSAGE_BYTES = 64 * 1024

EnvState = Literal["resetting", "running"]


class Mode(str, enum.Enum):
    """How a runtime advances: on its own clock, or one step per ``v0.env.step``."""

    REALTIME = "realtime"
    LOCKSTEP = "lockstep"

Clock = Callable[[], float]


class ProtocolError(ValueError):
    """An incoming frame is not a valid v0 message.

    ``parent_message_id`` is the offending message's id when it could be read,
    so that the error reply can point at it.
    """

    def __init__(self, message: str, parent_message_id: int | None = None) -> None:
        super().__init__(message)
        self.parent_message_id = parent_message_id


class MessageTooLarge(ProtocolError):
    """An incoming frame exceeds the size limit; the connection must be closed."""


# --- JSON helpers -----------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` (possibly holding numpy scalars/arrays) into strict-JSON types.

    Non-finite floats become the strings ``"inf"``, ``"-inf"`` and ``"nan"``
    because strict JSON (and browsers' ``JSON.parse``) has no literal for them.
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _nonfinite_name(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, without importing numpy
    if callable(tolist):
        return to_jsonable(tolist())
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def _nonfinite_name(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- messages ---------------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    """One v0 message: ``{"method", "headers", "body"}``."""

    method: str
    headers: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def message_id(self) -> int | None:
        """The sender's per-connection message counter, if present and valid."""
        value = self.headers.get("message_id")
        return value if _is_int(value) else None

    @property
    def parent_message_id(self) -> int | None:
        """The id of the request this message replies to, if any."""
        value = self.headers.get("parent_message_id")
        return value if _is_int(value) else None

    @property
    def episode_id(self) -> int | None:
        """The episode id header as an integer (it travels as a decimal string)."""
        return parse_episode_id(self.headers.get("episode_id"))

    def to_json(self) -> str:
        """Encode as a compact, strict JSON text frame."""
        payload = {"method": self.method, "headers": self.headers, "body": self.body}
        return json.dumps(to_jsonable(payload), separators=(",", ":"), allow_nan=False)


def parse_episode_id(value: Any) -> int | None:
    """Read an ``episode_id`` header (decimal string; integers tolerated) or None."""
    if _is_int(value) and value >= 0:
        return int(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    return None


def format_episode_id(episode_id: int) -> str:
    """Episode ids travel as decimal strings (Universe did the same)."""
    return str(int(episode_id))


def parse_message(
    text: str | bytes, *, max_bytes: int | None = MAX_INCOMING_MESSAGE_BYTES
) -> Message:
    """Parse one text frame into a :class:`Message`.

    Raises :class:`MessageTooLarge` above ``max_bytes`` and :class:`ProtocolError`
    for anything that is not ``{"method": str, "headers": {...}, "body": {...}}``.
    """
    size = len(text.encode("utf-8")) if isinstance(text, str) else len(text)
    if max_bytes is not None and size > max_bytes:
        raise MessageTooLarge(f"message of {size} bytes exceeds the {max_bytes}-byte limit")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("a message must be a JSON object")
    headers = data.get("headers", {})
    parent = headers.get("message_id") if isinstance(headers, dict) else None
    parent = parent if _is_int(parent) else None
    if not isinstance(headers, dict):
        raise ProtocolError("headers must be an object")
    method = data.get("method")
    if not isinstance(method, str):
        raise ProtocolError("method must be a string", parent)
    body = data.get("body", {})
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ProtocolError("body must be an object", parent)
    return Message(method=method, headers=headers, body=body)


class MessageFactory:
    """Builds outgoing messages for one side of one connection.

    Owns the ``message_id`` counter (counts up from 1) and stamps ``sent_at``.
    """

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._next_id = 1

    @property
    def next_message_id(self) -> int:
        """The id the next built message will carry."""
        return self._next_id

    def build(
        self,
        method: str,
        body: Mapping[str, Any] | None = None,
        *,
        parent_message_id: int | None = None,
        parent_runtime: float | None = None,
        episode_id: int | None = None,
    ) -> Message:
        """Build a message with fresh ``message_id``/``sent_at`` headers."""
        headers: dict[str, Any] = {"message_id": self._next_id, "sent_at": self._clock()}
        self._next_id += 1
        if parent_message_id is not None:
            headers["parent_message_id"] = parent_message_id
        if parent_runtime is not None:
            headers["parent_runtime"] = parent_runtime
        if episode_id is not None:
            headers["episode_id"] = format_episode_id(episode_id)
        return Message(method=method, headers=headers, body=dict(body or {}))


# --- episode ids ------------------------------------------------------------------


class EpisodeCounter:
    """The server's episode id and state.

    The id goes up each time the state becomes ``resetting``; a client's hint
    can only push it further: ``new = max(hint + 1, current + 1)``.
    """

    def __init__(self, episode_id: int = 0, state: EnvState = "resetting") -> None:
        self.episode_id = episode_id
        self.state: EnvState = state

    def begin_reset(self, hint: int | None = None) -> int:
        """Enter ``resetting`` and return the new episode id."""
        new_id = self.episode_id + 1
        if hint is not None:
            new_id = max(new_id, hint + 1)
        self.episode_id = new_id
        self.state = "resetting"
        return new_id

    def finish_reset(self) -> None:
        """The reset frame is on the display: the episode is running."""
        self.state = "running"


# --- server side ------------------------------------------------------------------


@dataclass(frozen=True)
class ResetRequest:
    """``v0.env.reset`` from a controller."""

    message_id: int
    env_id: str | None
    seed: int | None
    fps: float | None
    episode_id_hint: int | None
    received_at: float


@dataclass(frozen=True)
class StepRequest:
    """``v0.env.step`` (gymlab, lockstep): the action as decoded JSON."""

    message_id: int
    action: Any
    received_at: float


@dataclass(frozen=True)
class PingRequest:
    """``v0.control.ping``."""

    message_id: int
    received_at: float


@dataclass(frozen=True)
class BadRequest:
    """The frame was rejected; ``reply`` is the ``v0.reply.error`` text to send back."""

    message: str
    parent_message_id: int | None
    reply: str


ServerEvent = ResetRequest | StepRequest | PingRequest | BadRequest
Request = ResetRequest | StepRequest | PingRequest


class ServerConnection:
    """Server side of one rewarder connection.

    ``receive`` turns an incoming frame into a request event (or a
    :class:`BadRequest` carrying its error reply); the other methods build
    outgoing frames. Role and mode rules live here so every transport
    enforces the same ones: observers may only ping, and ``v0.env.step``
    exists only in lockstep mode.
    """

    def __init__(
        self,
        *,
        observer: bool = False,
        lockstep: bool = False,
        clock: Clock = time.time,
        max_message_bytes: int | None = MAX_INCOMING_MESSAGE_BYTES,
    ) -> None:
        self.observer = observer
        self.lockstep = lockstep
        self._clock = clock
        self._max_bytes = max_message_bytes
        self._factory = MessageFactory(clock)

    # incoming

    def receive(self, text: str | bytes) -> ServerEvent:
        """Decode one frame. Raises :class:`MessageTooLarge` (caller closes)."""
        try:
            return self._decode(parse_message(text, max_bytes=self._max_bytes))
        except MessageTooLarge:
            raise
        except ProtocolError as exc:
            return self._bad(str(exc), exc.parent_message_id)

    def _decode(self, msg: Message) -> ServerEvent:
        now = self._clock()
        mid = msg.message_id
        if mid is None:
            return self._bad("headers.message_id must be an integer", None)
        if msg.method not in CLIENT_METHODS:
            return self._bad(f"unknown method {msg.method!r}", mid)
        if msg.method == CONTROL_PING:
            return PingRequest(message_id=mid, received_at=now)
        if self.observer:
            return self._bad(f"observers cannot send {msg.method}", mid)
        if msg.method == ENV_RESET:
            return self._decode_reset(msg, mid, now)
        # ENV_STEP
        if not self.lockstep:
            return self._bad("v0.env.step is only available in lockstep mode", mid)
        if "action" not in msg.body:
            return self._bad("v0.env.step needs body.action", mid)
        return StepRequest(message_id=mid, action=msg.body["action"], received_at=now)

    def _decode_reset(self, msg: Message, mid: int, now: float) -> ServerEvent:
        body = msg.body
        env_id = body.get("env_id")
        if env_id is not None and (not isinstance(env_id, str) or not env_id):
            return self._bad("body.env_id must be a non-empty string or null", mid)
        seed = body.get("seed")
        if seed is not None and not (_is_int(seed) and 0 <= seed < 2**63):
            return self._bad("body.seed must be a non-negative integer or null", mid)
        fps = body.get("fps")
        if fps is not None and not (_is_number(fps) and 0 < fps <= 1000):
            return self._bad("body.fps must be a number in (0, 1000] or null", mid)
        raw_hint = msg.headers.get("episode_id")
        hint = parse_episode_id(raw_hint)
        if raw_hint is not None and hint is None:
            return self._bad("headers.episode_id must be a decimal integer string", mid)
        return ResetRequest(
            message_id=mid,
            env_id=env_id,
            seed=seed,
            fps=float(fps) if fps is not None else None,
            episode_id_hint=hint,
            received_at=now,
        )

    def _bad(self, message: str, parent: int | None) -> BadRequest:
        reply = self.error(parent, message)
        return BadRequest(message=message, parent_message_id=parent, reply=reply)

    # outgoing

    def _encode(self, method: str, body: Mapping[str, Any] | None = None, **headers: Any) -> str:
        return self._factory.build(method, body, **headers).to_json()

    def _runtime(self, request: Request) -> float:
        return max(0.0, self._clock() - request.received_at)

    def describe(self, body: Mapping[str, Any], episode_id: int) -> str:
        """``v0.env.describe``: ``body`` holds env_id, env_state, fps and gymlab extras."""
        return self._encode(ENV_DESCRIBE, body, episode_id=episode_id)

    def reward(
        self,
        *,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: Mapping[str, Any],
        frame: int,
        episode_id: int,
    ) -> str:
        """``v0.env.reward``; ``done`` is ``terminated or truncated``."""
        body = {
            "reward": float(reward),
            "done": bool(terminated or truncated),
            "info": dict(info),
            "terminated": bool(terminated),
            "truncated": bool(truncated),
            "frame": int(frame),
        }
        return self._encode(ENV_REWARD, body, episode_id=episode_id)

    def text(self, text: str, episode_id: int | None = None) -> str:
        """``v0.env.text``."""
        return self._encode(ENV_TEXT, {"text": text}, episode_id=episode_id)

    def observation(self, observation: Any, episode_id: int) -> str:
        """``v0.env.observation`` (JSON observation, a debugging aid)."""
        return self._encode(ENV_OBSERVATION, {"observation": observation}, episode_id=episode_id)

    def reply_reset(self, request: ResetRequest, *, episode_id: int, frame: int) -> str:
        """``v0.reply.env.reset``, sent once the reset frame is drawn (gymlab adds ``frame``)."""
        return self._encode(
            REPLY_ENV_RESET,
            {"frame": int(frame)},
            parent_message_id=request.message_id,
            parent_runtime=self._runtime(request),
            episode_id=episode_id,
        )

    def reply_step(
        self,
        request: StepRequest,
        *,
        frame: int,
        reward: float,
        terminated: bool,
        truncated: bool,
        info: Mapping[str, Any],
        episode_id: int,
    ) -> str:
        """``v0.reply.env.step`` (gymlab), sent after the frame is on the display."""
        body = {
            "frame": int(frame),
            "reward": float(reward),
            "terminated": bool(terminated),
            "truncated": bool(truncated),
            "info": dict(info),
        }
        return self._encode(
            REPLY_ENV_STEP,
            body,
            parent_message_id=request.message_id,
            parent_runtime=self._runtime(request),
            episode_id=episode_id,
        )

    def reply_ping(self, request: PingRequest) -> str:
        """``v0.reply.control.ping``."""
        return self._encode(
            REPLY_CONTROL_PING,
            {},
            parent_message_id=request.message_id,
            parent_runtime=self._runtime(request),
        )

    def error(self, parent_message_id: int | None, message: str) -> str:
        """``v0.reply.error`` pointing at the failed request when its id is known."""
        return self._encode(REPLY_ERROR, {"message": message}, parent_message_id=parent_message_id)

    def close(self, message: str) -> str:
        """``v0.connection.close``: the server closes the connection right after."""
        return self._encode(CONNECTION_CLOSE, {"message": message})


# --- client side ------------------------------------------------------------------


@dataclass(frozen=True)
class Describe:
    """``v0.env.describe``; ``body`` keeps gymlab extras (action_space, frame_shape, mode)."""

    env_id: str | None
    env_state: str | None
    fps: float | None
    episode_id: int | None
    body: dict[str, Any]


@dataclass(frozen=True)
class Reward:
    """``v0.env.reward``."""

    reward: float
    done: bool
    info: dict[str, Any]
    terminated: bool
    truncated: bool
    frame: int | None
    episode_id: int | None


@dataclass(frozen=True)
class Text:
    """``v0.env.text``."""

    text: str
    episode_id: int | None


@dataclass(frozen=True)
class Observation:
    """``v0.env.observation``."""

    observation: Any
    episode_id: int | None


@dataclass(frozen=True)
class ResetReply:
    """``v0.reply.env.reset``: the new episode is running."""

    parent_message_id: int | None
    episode_id: int | None
    frame: int | None


@dataclass(frozen=True)
class StepReply:
    """``v0.reply.env.step`` (gymlab)."""

    parent_message_id: int | None
    frame: int
    reward: float
    terminated: bool
    truncated: bool
    info: dict[str, Any]
    episode_id: int | None


@dataclass(frozen=True)
class PingReply:
    """``v0.reply.control.ping``."""

    parent_message_id: int | None
    parent_runtime: float | None


@dataclass(frozen=True)
class ErrorReply:
    """``v0.reply.error``."""

    parent_message_id: int | None
    message: str


@dataclass(frozen=True)
class ConnectionClose:
    """``v0.connection.close``: the server is about to close."""

    message: str


@dataclass(frozen=True)
class UnknownMessage:
    """A method this client does not know (newer server); safe to ignore."""

    message: Message


ClientEvent = (
    Describe
    | Reward
    | Text
    | Observation
    | ResetReply
    | StepReply
    | PingReply
    | ErrorReply
    | ConnectionClose
    | UnknownMessage
)


def _float(value: Any, name: str) -> float:
    if not _is_number(value):
        raise ProtocolError(f"{name} must be a number")
    return float(value)


def _dict(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"{name} must be an object")
    return value


class ClientConnection:
    """Client side of one rewarder connection.

    The request builders return ``(message_id, text)`` so that the caller can
    match the reply by ``parent_message_id``. ``receive`` raises
    :class:`ProtocolError` for frames that are not valid server messages.
    """

    def __init__(self, clock: Clock = time.time, max_message_bytes: int | None = None) -> None:
        self._factory = MessageFactory(clock)
        self._max_bytes = max_message_bytes

    def _request(self, method: str, body: Mapping[str, Any], **headers: Any) -> tuple[int, str]:
        msg = self._factory.build(method, body, **headers)
        assert msg.message_id is not None
        return msg.message_id, msg.to_json()

    def reset(
        self,
        *,
        env_id: str | None = None,
        seed: int | None = None,
        fps: float | None = None,
        episode_id_hint: int | None = None,
    ) -> tuple[int, str]:
        """Build ``v0.env.reset``; ``episode_id_hint`` travels as the episode_id header."""
        return self._request(
            ENV_RESET, {"env_id": env_id, "seed": seed, "fps": fps}, episode_id=episode_id_hint
        )

    def step(self, action: Any) -> tuple[int, str]:
        """Build ``v0.env.step`` (lockstep) with the env's native action as JSON."""
        return self._request(ENV_STEP, {"action": to_jsonable(action)})

    def ping(self) -> tuple[int, str]:
        """Build ``v0.control.ping``."""
        return self._request(CONTROL_PING, {})

    def receive(self, text: str | bytes) -> ClientEvent:
        """Decode one server frame into an event."""
        msg = parse_message(text, max_bytes=self._max_bytes)
        body, eid, parent = msg.body, msg.episode_id, msg.parent_message_id
        method = msg.method
        if method == ENV_DESCRIBE:
            fps = body.get("fps")
            return Describe(
                env_id=body.get("env_id") if isinstance(body.get("env_id"), str) else None,
                env_state=body.get("env_state") if isinstance(body.get("env_state"), str) else None,
                fps=float(fps) if _is_number(fps) else None,
                episode_id=eid,
                body=body,
            )
        if method == ENV_REWARD:
            done = bool(body.get("done", False))
            frame = body.get("frame")
            return Reward(
                reward=_float(body.get("reward", 0.0), "reward"),
                done=done,
                info=_dict(body.get("info"), "info"),
                terminated=bool(body.get("terminated", done)),
                truncated=bool(body.get("truncated", False)),
                frame=frame if _is_int(frame) else None,
                episode_id=eid,
            )
        if method == ENV_TEXT:
            return Text(text=str(body.get("text", "")), episode_id=eid)
        if method == ENV_OBSERVATION:
            return Observation(observation=body.get("observation"), episode_id=eid)
        if method == REPLY_ENV_RESET:
            frame = body.get("frame")
            return ResetReply(
                parent_message_id=parent, episode_id=eid, frame=frame if _is_int(frame) else None
            )
        if method == REPLY_ENV_STEP:
            frame = body.get("frame")
            if not _is_int(frame):
                raise ProtocolError("v0.reply.env.step needs an integer frame")
            return StepReply(
                parent_message_id=parent,
                frame=frame,
                reward=_float(body.get("reward", 0.0), "reward"),
                terminated=bool(body.get("terminated", False)),
                truncated=bool(body.get("truncated", False)),
                info=_dict(body.get("info"), "info"),
                episode_id=eid,
            )
        if method == REPLY_CONTROL_PING:
            runtime = msg.headers.get("parent_runtime")
            return PingReply(
                parent_message_id=parent,
                parent_runtime=float(runtime) if _is_number(runtime) else None,
            )
        if method == REPLY_ERROR:
            return ErrorReply(parent_message_id=parent, message=str(body.get("message", "")))
        if method == CONNECTION_CLOSE:
            return ConnectionClose(message=str(body.get("message", "")))
        return UnknownMessage(message=msg)
