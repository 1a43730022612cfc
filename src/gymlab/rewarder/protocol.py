"""Sans-I/O implementation of the rewarder v0 protocol (``docs/protocol.md``).

The shape follows h11 and wsproto: one vocabulary of events (frozen
dataclasses, one per v0 method and gymlab extension) used by both sides, and
one :class:`Connection` per websocket whose :meth:`Connection.receive` (text
frame in, event out) and :meth:`Connection.send` (event in, text frame out) are
the only way in and out. Nothing here touches a socket or an event loop.

Three tables hold the rules, so no transport or backend repeats them:

* ``_FIELDS``: one rule per wire field (type, range, default), checked on
  *both* sides: whatever a server may send is what a client accepts.
* ``_RULES``: who may send each event, in which mode, whether observers may,
  and which request a reply answers.
* the episode state (``resetting``/``running``, the episode id, a reset in
  flight) kept by the connection from the events that pass through it, so a
  step during a reset is refused here, not by each backend.

A peer's fault raises :class:`RemoteProtocolError` (a server answers it with
``v0.reply.error``); misuse by our own side raises :class:`LocalProtocolError`.
"""

from __future__ import annotations

import enum
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeGuard

from gymlab.protocol_errors import LocalProtocolError, ProtocolError, RemoteProtocolError

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

#: Largest incoming frame a server accepts; the websocket layer enforces the same limit.
MAX_INCOMING_MESSAGE_BYTES = 64 * 1024
#: Server frames can carry observations and texts: a client accepts more.
CLIENT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: Deepest JSON nesting accepted (real messages need 4 or 5 levels).
MAX_JSON_DEPTH = 32
#: Largest episode id either side issues or accepts (18 decimal digits).
MAX_EPISODE_ID = 10**18 - 1
#: Largest reset hint accepted; far below MAX_EPISODE_ID, so that no hint, however
#: hostile, can use up the ids (a client clamps its hint: see :func:`episode_hint`).
MAX_EPISODE_HINT = 10**15
#: Message ids stay exact in every JSON implementation (IEEE doubles).
MAX_MESSAGE_ID = 2**53 - 1
#: Real-time clock rates a runtime accepts, in frames per second.
MIN_FPS, MAX_FPS = 1.0, 1000.0
#: Requests a connection lets be in flight at once before refusing more.
MAX_IN_FLIGHT = 16
#: Longest env id accepted.
MAX_ENV_ID_LENGTH = 256
#: Largest display side a describe may announce (pixels).
MAX_FRAME_SIDE = 16384

Clock = Callable[[], float]


class Mode(str, enum.Enum):
    """How a runtime advances: on its own clock, or one step per ``v0.env.step``."""

    REALTIME = "realtime"
    LOCKSTEP = "lockstep"


#: The clock of a runtime nobody chose one for, everywhere (runtime CLI and API, local remotes,
#: the gym_runtime role): lockstep works for every env and every agent; real time needs a key
#: map and an agent that keeps up.
DEFAULT_MODE = Mode.LOCKSTEP


class EnvState(str, enum.Enum):
    """The episode state a ``v0.env.describe`` announces."""

    RESETTING = "resetting"
    RUNNING = "running"


class Role(enum.Enum):
    """Which side of the websocket a :class:`Connection` is."""

    CLIENT = "client"
    SERVER = "server"


# --- errors -----------------------------------------------------------------------


class MessageTooLarge(RemoteProtocolError):
    """An incoming frame exceeds the size limit; the connection must be closed (1009)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fatal=True)


# --- JSON -------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` (possibly holding numpy scalars/arrays) into strict-JSON types.

    Non-finite floats become the strings ``"inf"``, ``"-inf"`` and ``"nan"``
    because strict JSON (and browsers' ``JSON.parse``) has no literal for them.
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _nonfinite_name(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, without importing numpy
    if callable(tolist):
        return to_jsonable(tolist())
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def jsonable_items(info: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``info`` that have a JSON form (Gymnasium infos may hold anything)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        try:
            out[str(key)] = to_jsonable(value)
        except (TypeError, RecursionError):
            continue
    return out


def _nonfinite_name(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


def _depth(value: Any) -> int:
    """Nesting depth of decoded JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def loads(text: str | bytes, max_bytes: int | None) -> Any:
    """Strict, size- and depth-bounded ``json.loads``; raises :class:`RemoteProtocolError`."""
    size = len(text.encode("utf-8")) if isinstance(text, str) else len(text)
    if max_bytes is not None and size > max_bytes:
        raise MessageTooLarge(f"message of {size} bytes exceeds the {max_bytes}-byte limit")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        data = None
        too_deep = True
    except (ValueError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"malformed JSON: {exc}") from None
    else:
        too_deep = _depth(data) > MAX_JSON_DEPTH
    if too_deep:
        raise RemoteProtocolError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def dumps(payload: Any) -> str:
    """Compact, strict JSON."""
    return json.dumps(to_jsonable(payload), separators=(",", ":"), allow_nan=False)


# --- field rules ------------------------------------------------------------------


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_digits(value: Any, upper: int) -> bool:
    if _is_int(value):
        return 0 <= value <= upper
    return (
        isinstance(value, str)
        and 0 < len(value) <= len(str(upper))
        and value.isascii()
        and value.isdigit()
        and int(value) <= upper
    )


def _is_frame_shape(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(_is_int(v) for v in value)
        and 0 < value[0] <= MAX_FRAME_SIDE
        and 0 < value[1] <= MAX_FRAME_SIDE
        and value[2] == 3
    )


@dataclass(frozen=True)
class Rule:
    """What one wire field may hold: ``check`` on the JSON value, ``expected`` for errors.

    ``decode`` turns the JSON value into the event's attribute and ``encode`` back; an
    absent (or, when ``nullable``, null) field takes ``default()``; ``required`` ones must
    be there.
    """

    check: Callable[[Any], bool]
    expected: str
    decode: Callable[[Any], Any] = lambda v: v
    encode: Callable[[Any], Any] = lambda v: v
    default: Callable[[], Any] = lambda: None
    required: bool = False
    nullable: bool = True


#: marks a field that is not in the message at all
_ABSENT: Any = object()


def _optional(value: Any, convert: Callable[[Any], Any]) -> Any:
    return None if value is None else convert(value)


_ID = Rule(lambda v: _is_int(v) and 0 <= v <= MAX_MESSAGE_ID, f"an integer in 0..{MAX_MESSAGE_ID}")
_TIME = Rule(lambda v: _is_number(v) and v >= 0, "a non-negative number", float)
_EPISODE_ID = Rule(
    lambda v: _is_digits(v, MAX_EPISODE_ID),
    f"a decimal integer string in 0..{MAX_EPISODE_ID}",
    lambda v: _optional(v, int),
    lambda v: _optional(v, str),
)
# The server issues max(hint + 1, current + 1): hints leave room for 10**18 more ids.
_EPISODE_HINT = replace(
    _EPISODE_ID,
    check=lambda v: _is_digits(v, MAX_EPISODE_HINT),
    expected=f"a decimal integer string in 0..{MAX_EPISODE_HINT}",
)
_ENV_ID = Rule(
    lambda v: isinstance(v, str) and 0 < len(v) <= MAX_ENV_ID_LENGTH,
    f"a non-empty string of at most {MAX_ENV_ID_LENGTH} characters",
)
_SEED = Rule(lambda v: _is_int(v) and 0 <= v < 2**63, "an integer in 0..2**63-1")
_FPS = Rule(
    lambda v: _is_number(v) and MIN_FPS <= v <= MAX_FPS,
    f"a number in {MIN_FPS:g}..{MAX_FPS:g}",
    lambda v: _optional(v, float),
)
_NUMBER = Rule(_is_number, "a finite number", float, float, lambda: 0.0, nullable=False)
_FLAG = Rule(lambda v: isinstance(v, bool), "true or false", default=lambda: False, nullable=False)
_FRAME = Rule(lambda v: _is_int(v) and 0 <= v <= MAX_MESSAGE_ID, "a non-negative integer")
_OBJECT = Rule(lambda v: isinstance(v, dict), "an object", encode=to_jsonable, default=dict)
_AUTORESET = replace(_FLAG, default=lambda: True)
_SPACE = replace(_OBJECT, default=lambda: None)  # a describe extra: absent means unknown
_TEXT = Rule(lambda v: isinstance(v, str), "a string", default=str, nullable=False)
_ANY = Rule(lambda v: True, "any JSON value", encode=to_jsonable)
_STATE = Rule(
    lambda v: v in ("resetting", "running"),
    '"resetting" or "running"',
    lambda v: _optional(v, EnvState),
    lambda v: _optional(v, lambda s: EnvState(s).value),
)
_MODE = Rule(
    lambda v: v in ("realtime", "lockstep"),
    '"realtime" or "lockstep"',
    lambda v: _optional(v, Mode),
    lambda v: _optional(v, lambda m: Mode(m).value),
)
_SHAPE = Rule(
    _is_frame_shape,
    f"[height, width, 3] with sides in 1..{MAX_FRAME_SIDE}",
    lambda v: _optional(v, tuple),
    lambda v: _optional(v, list),
)

#: Header rules; every other header is kept verbatim in :attr:`Headers.extra`.
_HEADER_RULES = {
    "message_id": _ID,
    "sent_at": _TIME,
    "parent_message_id": _ID,
    "parent_runtime": _TIME,
}


def _check(rule: Rule, where: str, value: Any, error: Callable[[str], Exception]) -> bool:
    """Apply ``rule``; returns False when the field takes its default (absent or null)."""
    if value is _ABSENT and not rule.required:
        return False
    if value is None and rule.nullable and not rule.required:
        return False
    if value is _ABSENT or value is None or not rule.check(value):
        shown = "nothing" if value is _ABSENT else repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise error(f"{where} must be {rule.expected}, got {shown}")
    return True


# --- events -----------------------------------------------------------------------


@dataclass(frozen=True)
class Headers:
    """A message's headers, as received (or as stamped on send)."""

    message_id: int | None = None
    sent_at: float | None = None
    parent_message_id: int | None = None
    parent_runtime: float | None = None
    #: headers this side does not know, kept as they arrived
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every protocol event: the body fields of one method, plus its headers.

    ``headers`` is filled by :class:`Connection` (on receive: what arrived; on send the
    connection stamps ``message_id``/``sent_at`` and the reply headers itself).
    """

    METHOD: ClassVar[str]
    #: body field name -> rule (attributes of the same name); ``episode_id`` is a header
    BODY: ClassVar[Mapping[str, Rule]] = {}
    #: rule of the ``episode_id`` header, or None for events that are not episode-scoped
    EPISODE: ClassVar[Rule | None] = None

    headers: Headers = field(default_factory=Headers, compare=False)

    @property
    def message_id(self) -> int | None:
        """The sender's per-connection message counter."""
        return self.headers.message_id

    @property
    def parent_message_id(self) -> int | None:
        """The id of the request this message replies to, if any."""
        return self.headers.parent_message_id

    @property
    def sent_at(self) -> float | None:
        """The sender's UNIX time when it sent the message."""
        return self.headers.sent_at


@dataclass(frozen=True, kw_only=True)
class Reset(Event):
    """``v0.env.reset`` (C→S): reset, possibly switching env; ``episode_id`` is a hint."""

    METHOD = ENV_RESET
    BODY = {"env_id": _ENV_ID, "seed": _SEED, "fps": _FPS}
    EPISODE = _EPISODE_HINT

    env_id: str | None = None
    seed: int | None = None
    fps: float | None = None
    episode_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class Step(Event):
    """``v0.env.step`` (C→S, gymlab, lockstep): apply exactly this action.

    ``autoreset`` false asks the runtime to keep the episode's terminal frame on the display
    when this step ends the episode: the episode then stays ended until a ``v0.env.reset``
    (so a client can fetch the terminal frame). True, the default and what an older client
    gets, lets the runtime reset by itself.
    """

    METHOD = ENV_STEP
    BODY = {"action": replace(_ANY, required=True, nullable=False), "autoreset": _AUTORESET}

    action: Any = None
    autoreset: bool = True


@dataclass(frozen=True, kw_only=True)
class Ping(Event):
    """``v0.control.ping`` (C→S)."""

    METHOD = CONTROL_PING


@dataclass(frozen=True, kw_only=True)
class Describe(Event):
    """``v0.env.describe`` (S→C), on connect and on every state change.

    ``action_space``, ``observation_space`` (JSON forms of the env's spaces, see
    :mod:`gymlab.rewarder.spaces`), ``frame_shape``, ``mode``, ``frame`` and ``keys`` (the
    real-time key map, in :meth:`gymlab.runtime.keymaps.KeyMap.to_json`'s form) are gymlab
    extras; a Universe server sends none of them.
    """

    METHOD = ENV_DESCRIBE
    BODY = {
        "env_id": _ENV_ID,
        "env_state": _STATE,
        "fps": _FPS,
        "action_space": _SPACE,
        "observation_space": _SPACE,
        "frame_shape": _SHAPE,
        "mode": _MODE,
        "frame": _FRAME,
        "keys": _SPACE,
    }
    EPISODE = _EPISODE_ID

    env_id: str | None = None
    env_state: EnvState | None = None
    fps: float | None = None
    action_space: dict[str, Any] | None = None
    observation_space: dict[str, Any] | None = None
    frame_shape: tuple[int, int, int] | None = None
    mode: Mode | None = None
    frame: int | None = None
    keys: dict[str, Any] | None = None
    episode_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class StepResult(Event):
    """Fields shared by a pushed reward and a lockstep step reply: one environment step."""

    BODY = {
        "reward": _NUMBER,
        "terminated": _FLAG,
        "truncated": _FLAG,
        "info": _OBJECT,
        "frame": _FRAME,
    }
    EPISODE = _EPISODE_ID

    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    frame: int | None = None
    episode_id: int | None = None

    @property
    def done(self) -> bool:
        """Universe's single flag: the episode ended, by termination or truncation."""
        return self.terminated or self.truncated


@dataclass(frozen=True, kw_only=True)
class Reward(StepResult):
    """``v0.env.reward`` (S→C), pushed for every step; ``done`` travels for old clients.

    gymlab adds ``terminated``, ``truncated`` and ``frame``; from a Universe server
    ``terminated`` is ``done`` and ``truncated`` is false.
    """

    METHOD = ENV_REWARD


@dataclass(frozen=True, kw_only=True)
class StepReply(StepResult):
    """``v0.reply.env.step`` (S→C, gymlab): sent once the step's frame is on the display.

    The one step result: the runtime's backend returns it, the server sends it, the client
    returns it. On done the runtime has auto-reset: ``episode_id`` and ``frame`` are the new
    episode's and ``info`` names ``terminal_frame`` and ``terminal_episode_id``.
    """

    METHOD = REPLY_ENV_STEP
    BODY = {**StepResult.BODY, "frame": replace(_FRAME, required=True)}


@dataclass(frozen=True, kw_only=True)
class ResetReply(Event):
    """``v0.reply.env.reset`` (S→C): the reset frame is drawn; the new episode runs."""

    METHOD = REPLY_ENV_RESET
    BODY = {"frame": _FRAME}
    EPISODE = replace(_EPISODE_ID, required=True)

    frame: int | None = None
    episode_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class Text(Event):
    """``v0.env.text`` (S→C): free text for the agent."""

    METHOD = ENV_TEXT
    BODY = {"text": _TEXT}
    EPISODE = _EPISODE_ID

    text: str = ""
    episode_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class Observation(Event):
    """``v0.env.observation`` (S→C): the env's own observation as JSON (small spaces)."""

    METHOD = ENV_OBSERVATION
    BODY = {"observation": _ANY}
    EPISODE = _EPISODE_ID

    observation: Any = None
    episode_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class PingReply(Event):
    """``v0.reply.control.ping`` (S→C); ``headers.parent_runtime`` is the server's time."""

    METHOD = REPLY_CONTROL_PING


@dataclass(frozen=True, kw_only=True)
class ErrorReply(Event):
    """``v0.reply.error`` (S→C): the request with ``parent_message_id`` failed."""

    METHOD = REPLY_ERROR
    BODY = {"message": _TEXT}

    message: str = ""
    #: the request answered; None answers the connection's latest request in flight
    reply_to: int | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class Close(Event):
    """``v0.connection.close`` (S→C): the server closes the connection right after."""

    METHOD = CONNECTION_CLOSE
    BODY = {"message": _TEXT}

    message: str = ""


@dataclass(frozen=True, kw_only=True)
class Unknown(Event):
    """A method this side does not know (a newer peer): safe to ignore."""

    METHOD = ""
    method: str = ""
    body: dict[str, Any] = field(default_factory=dict)


_EVENTS: dict[str, type[Event]] = {
    cls.METHOD: cls
    for cls in (
        Reset,
        Step,
        Ping,
        Describe,
        Reward,
        StepReply,
        ResetReply,
        Text,
        Observation,
        PingReply,
        ErrorReply,
        Close,
    )
}

Request = Reset | Step | Ping
Reply = ResetReply | StepReply | PingReply | ErrorReply


# --- who may send what, when ------------------------------------------------------


@dataclass(frozen=True)
class _Rule:
    sender: Role
    modes: frozenset[Mode] = frozenset(Mode)
    observers: bool = True  # an observer connection may send (client) / receive it
    answers: tuple[type[Event], ...] = ()  # the request types a reply answers
    not_while_resetting: bool = False  # refused while a reset is in flight
    not_after_end: bool = False  # refused once an episode ended without an autoreset


_RULES: dict[type[Event], _Rule] = {
    Reset: _Rule(Role.CLIENT, observers=False),
    Step: _Rule(
        Role.CLIENT,
        frozenset({Mode.LOCKSTEP}),
        observers=False,
        not_while_resetting=True,
        not_after_end=True,
    ),
    Ping: _Rule(Role.CLIENT),
    Describe: _Rule(Role.SERVER),
    Reward: _Rule(Role.SERVER),
    Text: _Rule(Role.SERVER),
    Observation: _Rule(Role.SERVER),
    Close: _Rule(Role.SERVER),
    ResetReply: _Rule(Role.SERVER, answers=(Reset,)),
    StepReply: _Rule(Role.SERVER, frozenset({Mode.LOCKSTEP}), answers=(Step,)),
    PingReply: _Rule(Role.SERVER, answers=(Ping,)),
    ErrorReply: _Rule(Role.SERVER, answers=(Reset, Step, Ping, Event)),
}


@dataclass(frozen=True)
class _InFlight:
    request: Event | None  # None: a frame refused before it became an event
    received_at: float

    @property
    def kind(self) -> type[Event]:
        """The request's type (``Event`` for a refused frame: only an error answers it)."""
        return Event if self.request is None else type(self.request)


# --- episode ids ------------------------------------------------------------------


def episode_hint(episode_id: int | None) -> int | None:
    """The reset hint a client sends for its current episode (clamped to what is accepted)."""
    return None if episode_id is None else min(episode_id, MAX_EPISODE_HINT)


class EpisodeCounter:
    """The server's episode id and state.

    The id goes up each time the state becomes ``resetting``; a client's hint
    can only push it further: ``new = max(hint + 1, current + 1)``.
    """

    def __init__(self, episode_id: int = 0, state: EnvState = EnvState.RESETTING) -> None:
        self.episode_id = episode_id
        self.state = state

    def begin_reset(self, hint: int | None = None) -> int:
        """Enter ``resetting`` and return the new episode id."""
        new_id = self.episode_id + 1 if hint is None else max(self.episode_id, hint) + 1
        if new_id > MAX_EPISODE_ID:  # unreachable through the protocol (hints are bounded)
            raise LocalProtocolError(f"episode id {new_id} exceeds {MAX_EPISODE_ID}")
        self.episode_id = new_id
        self.state = EnvState.RESETTING
        return new_id

    def finish_reset(self) -> None:
        """The reset frame is on the display: the episode is running."""
        self.state = EnvState.RUNNING


# --- the connection ---------------------------------------------------------------


class Connection:
    """One side of one rewarder websocket.

    ``role`` is which side this is; ``mode`` the runtime's mode (a client may pass None
    and learn it from the first describe); ``observer`` marks a read-only client.
    """

    def __init__(
        self,
        role: Role,
        mode: Mode | str | None = None,
        observer: bool = False,
        *,
        clock: Clock = time.time,
        max_message_bytes: int | None = None,
        max_in_flight: int = MAX_IN_FLIGHT,
    ) -> None:
        if role is Role.SERVER and mode is None:
            raise LocalProtocolError("a server connection needs its mode")
        self.role = role
        self.mode = Mode(mode) if mode is not None else None
        self.observer = observer
        self._clock = clock
        if max_message_bytes is None:
            server = role is Role.SERVER
            max_message_bytes = MAX_INCOMING_MESSAGE_BYTES if server else CLIENT_MAX_MESSAGE_BYTES
        self._max_bytes = max_message_bytes
        self._max_in_flight = max_in_flight
        self._next_id = 1
        #: requests sent (client) or received (server) and not yet answered, by message id
        self._in_flight: dict[int, _InFlight] = {}
        #: the episode as this connection has seen it go by
        self.env_state: EnvState | None = None
        self.episode_id: int | None = None
        #: an episode ended on a step without autoreset: only a reset may follow
        self.episode_ended = False
        self.closed = False

    @property
    def reset_pending(self) -> bool:
        """A ``v0.env.reset`` is in flight on this connection."""
        return any(f.kind is Reset for f in self._in_flight.values())

    @property
    def next_message_id(self) -> int:
        """The ``message_id`` the next sent event will carry (to match its reply)."""
        return self._next_id

    @property
    def in_flight(self) -> int:
        """Requests in flight (sent and unanswered, or received and unanswered)."""
        return len(self._in_flight)

    # ----- in -------------------------------------------------------------------------

    def receive(self, text: str | bytes) -> Event:
        """Decode one frame from the peer. Raises :class:`RemoteProtocolError`."""
        data = loads(text, self._max_bytes)
        if not isinstance(data, dict):
            raise RemoteProtocolError("a message must be a JSON object")
        raw_headers = data.get("headers", {})
        if not isinstance(raw_headers, dict):
            raise RemoteProtocolError(
                f"headers must be an object, got {type(raw_headers).__name__}"
            )
        mid = raw_headers.get("message_id")
        parent = mid if _ID.check(mid) else None
        try:
            return self._decode(data, raw_headers)
        except RemoteProtocolError as exc:
            if exc.parent_message_id is None and parent is not None:
                exc.parent_message_id = parent
            if self.role is Role.SERVER and exc.parent_message_id is not None and not exc.fatal:
                # the caller answers with an ErrorReply: let it point at this frame
                self._in_flight.setdefault(exc.parent_message_id, _InFlight(None, self._clock()))
            raise

    def _decode(self, data: dict[str, Any], raw_headers: dict[str, Any]) -> Event:
        headers = self._decode_headers(raw_headers)
        method = data.get("method")
        if not isinstance(method, str):
            raise RemoteProtocolError(f"method must be a string, got {method!r:.40}")
        body = data.get("body", {})
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise RemoteProtocolError(f"{method}: body must be an object")
        cls = _EVENTS.get(method)
        if cls is None:
            if self.role is Role.SERVER:
                raise RemoteProtocolError(f"unknown method {method!r:.60}")
            return Unknown(method=method, body=body, headers=headers)
        rule = _RULES[cls]
        if rule.sender is self.role:
            raise RemoteProtocolError(f"{method} is sent by the {rule.sender.value}, not to it")
        if self.role is Role.SERVER and headers.message_id is None:
            raise RemoteProtocolError(f"headers.message_id must be {_ID.expected}, got None")
        values = {
            name: _decode_field(method, f"body.{name}", rule, body.get(name, _ABSENT))
            for name, rule in cls.BODY.items()
        }
        if cls is Reward and "terminated" not in body:
            # a Universe server sends only done: the episode ended by termination
            values["terminated"] = _decode_field(
                method, "body.done", _FLAG, body.get("done", _ABSENT)
            )
        if cls.EPISODE is not None:
            raw_id = raw_headers.get("episode_id", _ABSENT)
            values["episode_id"] = _decode_field(method, "headers.episode_id", cls.EPISODE, raw_id)
        event = cls(headers=headers, **values)
        self._check_legal(event, Role.SERVER if self.role is Role.CLIENT else Role.CLIENT)
        self._track(event)
        return event

    def _decode_headers(self, raw: dict[str, Any]) -> Headers:
        values = {
            name: _decode_field("message", f"headers.{name}", rule, raw.get(name, _ABSENT))
            for name, rule in _HEADER_RULES.items()
        }
        extra = {k: v for k, v in raw.items() if k not in _HEADER_RULES and k != "episode_id"}
        return Headers(**values, extra=extra)

    # ----- out ------------------------------------------------------------------------

    def send(self, event: Event) -> str:
        """Encode ``event`` for the peer. Raises :class:`LocalProtocolError` if not allowed."""
        if isinstance(event, Unknown):
            raise LocalProtocolError("cannot send an unknown method")
        self._check_legal(event, self.role)
        cls = type(event)
        body: dict[str, Any] = {}
        for name, rule in cls.BODY.items():
            value = _encode_field(event.METHOD, f"body.{name}", rule, getattr(event, name))
            if value is not None:
                body[name] = value
        headers = self._stamp(event)
        wire_headers: dict[str, Any] = {**event.headers.extra}
        wire_headers.update(
            {k: v for k, v in vars(headers).items() if k != "extra" and v is not None}
        )
        if cls.EPISODE is not None:
            eid = _encode_field(event.METHOD, "headers.episode_id", cls.EPISODE, event.episode_id)  # type: ignore[attr-defined]
            if eid is not None:
                wire_headers["episode_id"] = eid
        if isinstance(event, Reward):
            body["done"] = event.done  # Universe clients read only done
        self._track(replace(event, headers=headers))
        return dumps({"method": event.METHOD, "headers": wire_headers, "body": body})

    def _stamp(self, event: Event) -> Headers:
        """Fresh ``message_id``/``sent_at``; replies get their parent and its runtime."""
        now = self._clock()
        parent = runtime = None
        rule = _RULES[type(event)]
        if rule.answers:
            parent = self._answered(event, rule)
            if parent is not None and self.role is Role.SERVER:
                runtime = max(0.0, now - self._in_flight[parent].received_at)
        headers = Headers(
            message_id=self._next_id,
            sent_at=now,
            parent_message_id=parent,
            parent_runtime=runtime,
            extra=event.headers.extra,
        )
        self._next_id += 1
        return headers

    def _answered(self, event: Event, rule: _Rule) -> int | None:
        """The in-flight request ``event`` answers (the latest one of a matching type)."""
        wanted = event.reply_to if isinstance(event, ErrorReply) else event.parent_message_id
        if wanted is not None:
            flight = self._in_flight.get(wanted)
            if flight is None or flight.kind not in rule.answers:
                raise LocalProtocolError(f"{event.METHOD} answers no request {wanted} in flight")
            return wanted
        for mid in reversed(self._in_flight):
            if self._in_flight[mid].kind in rule.answers:
                return mid
        if isinstance(event, ErrorReply):
            return None  # an error about a frame whose id could not be read
        raise LocalProtocolError(f"{event.METHOD} answers no request in flight")

    # ----- the state table ------------------------------------------------------------

    def _check_legal(self, event: Event, sender: Role) -> None:
        """Apply ``_RULES`` to ``event`` going from ``sender`` over this connection."""
        local = sender is self.role
        rule = _RULES[type(event)]

        def refuse(message: str) -> ProtocolError:
            if local:
                return LocalProtocolError(message)
            return RemoteProtocolError(message, event.message_id)

        if self.closed and local:
            raise LocalProtocolError(f"cannot send {event.METHOD}: the connection is closed")
        if rule.sender is not sender:
            raise refuse(f"{event.METHOD} is sent by the {rule.sender.value}")
        if self.observer and not rule.observers:
            raise refuse(f"observers cannot send {event.METHOD}")
        if self.mode is not None and self.mode not in rule.modes:
            allowed = " or ".join(sorted(m.value for m in rule.modes))
            raise refuse(
                f"{event.METHOD} is only available in {allowed} mode;"
                f" this connection is in {self.mode.value} mode"
            )
        if rule.not_while_resetting and self.reset_pending:
            raise refuse(f"{event.METHOD} while a reset is in flight; wait for its reply")
        if rule.not_after_end and self.episode_ended:
            raise refuse(f"{event.METHOD}: the episode has ended; send v0.env.reset first")
        is_request = sender is Role.CLIENT
        if is_request and len(self._in_flight) >= self._max_in_flight:
            raise refuse(
                f"{event.METHOD}: {self._max_in_flight} requests already in flight;"
                " wait for their replies"
            )
        if not local and rule.answers and self.role is Role.CLIENT:
            parent = event.parent_message_id
            flight = self._in_flight.get(parent) if parent is not None else None
            if parent is not None and flight is not None and flight.kind not in rule.answers:
                raise refuse(f"{event.METHOD} cannot answer the {flight.kind.METHOD} {parent}")

    def _track(self, event: Event) -> None:
        """Update in-flight requests and the episode state from an event that went by."""
        if isinstance(event, (Reset, Step, Ping)):
            assert event.message_id is not None
            self._in_flight[event.message_id] = _InFlight(event, self._clock())
        elif isinstance(event, (ResetReply, StepReply, PingReply, ErrorReply)):
            parent = event.parent_message_id
            flight = self._in_flight.pop(parent, None) if parent is not None else None
            if isinstance(event, StepReply) and event.done and flight is not None:
                self.episode_ended = (
                    isinstance(flight.request, Step) and not flight.request.autoreset
                )
            elif isinstance(event, ResetReply):
                self.episode_ended = False
        if isinstance(event, Describe):
            self.env_state = event.env_state or self.env_state
            self.episode_id = event.episode_id if event.episode_id is not None else self.episode_id
            if self.mode is None and event.mode is not None:
                self.mode = event.mode
        elif isinstance(event, (ResetReply, StepReply)) and event.episode_id is not None:
            self.env_state, self.episode_id = EnvState.RUNNING, event.episode_id
        elif isinstance(event, Close):
            self.closed = True


def _decode_field(method: str, where: str, rule: Rule, value: Any) -> Any:
    """A received field's attribute value; :class:`RemoteProtocolError` naming it if bad."""

    def error(message: str) -> RemoteProtocolError:
        return RemoteProtocolError(f"{method}: {message}")

    return rule.decode(value) if _check(rule, where, value, error) else rule.default()


def _encode_field(method: str, where: str, rule: Rule, value: Any) -> Any:
    """An outgoing field's JSON value (None: leave it out); the same rule as on receive."""

    def error(message: str) -> LocalProtocolError:
        return LocalProtocolError(f"{method}: {message}")

    encoded = None if value is None else rule.encode(value)
    return encoded if _check(rule, where, encoded, error) else None
