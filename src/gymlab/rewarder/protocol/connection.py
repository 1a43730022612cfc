"""One side of one rewarder websocket: text frames in and out, the rules applied."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from gymlab.protocol_errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from gymlab.rewarder.protocol import fields as f
from gymlab.rewarder.protocol.codec import dumps, loads
from gymlab.rewarder.protocol.constants import (
    CLIENT_MAX_MESSAGE_BYTES,
    MAX_IN_FLIGHT,
    MAX_INCOMING_MESSAGE_BYTES,
    Clock,
    EnvState,
    Mode,
    Role,
)
from gymlab.rewarder.protocol.episode import Episode, Phase, Trigger
from gymlab.rewarder.protocol.events import (
    EVENTS,
    Close,
    Describe,
    ErrorReply,
    Event,
    Headers,
    Ping,
    PingReply,
    Reset,
    ResetReply,
    Reward,
    Step,
    StepReply,
    Unknown,
)
from gymlab.rewarder.protocol.fields import Rule
from gymlab.rewarder.protocol.rules import SEND_RULES, SendRule


@dataclass(frozen=True)
class _InFlight:
    request: Event | None  # None: a frame refused before it became an event
    received_at: float

    @property
    def kind(self) -> type[Event]:
        """The request's type (``Event`` for a refused frame: only an error answers it)."""
        return Event if self.request is None else type(self.request)


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
        #: the episode as this connection has seen it go by (the table in :mod:`.episode`)
        self.episode = Episode()
        self._episode_known = False
        self.closed = False

    @property
    def env_state(self) -> EnvState | None:
        """The episode state last announced (None before the first describe or reply)."""
        return self.episode.state if self._episode_known else None

    @property
    def episode_id(self) -> int | None:
        """The episode id last announced."""
        return self.episode.episode_id

    @property
    def episode_ended(self) -> bool:
        """An episode ended on a step without autoreset: only a reset may follow."""
        return self.episode.phase is Phase.ENDED

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
        parent = mid if f.ID.check(mid) else None
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
        cls = EVENTS.get(method)
        if cls is None:
            if self.role is Role.SERVER:
                raise RemoteProtocolError(f"unknown method {method!r:.60}")
            return Unknown(method=method, body=body, headers=headers)
        rule = SEND_RULES[cls]
        if rule.sender is self.role:
            raise RemoteProtocolError(f"{method} is sent by the {rule.sender.value}, not to it")
        if self.role is Role.SERVER and headers.message_id is None:
            raise RemoteProtocolError(f"headers.message_id must be {f.ID.expected}, got None")
        values = {
            name: _decode_field(method, f"body.{name}", rule, body.get(name, f.ABSENT))
            for name, rule in cls.BODY.items()
        }
        if cls is Reward and "terminated" not in body:
            # a Universe server sends only done: the episode ended by termination
            values["terminated"] = _decode_field(
                method, "body.done", f.FLAG, body.get("done", f.ABSENT)
            )
        if cls.EPISODE is not None:
            raw_id = raw_headers.get("episode_id", f.ABSENT)
            values["episode_id"] = _decode_field(method, "headers.episode_id", cls.EPISODE, raw_id)
        event = cls(headers=headers, **values)
        self._check_legal(event, Role.SERVER if self.role is Role.CLIENT else Role.CLIENT)
        self._track(event)
        return event

    def _decode_headers(self, raw: dict[str, Any]) -> Headers:
        values = {
            name: _decode_field("message", f"headers.{name}", rule, raw.get(name, f.ABSENT))
            for name, rule in f.HEADER_RULES.items()
        }
        extra = {k: v for k, v in raw.items() if k not in f.HEADER_RULES and k != "episode_id"}
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
        rule = SEND_RULES[type(event)]
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

    def _answered(self, event: Event, rule: SendRule) -> int | None:
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
        """Apply ``SEND_RULES`` to ``event`` going from ``sender`` over this connection."""
        local = sender is self.role
        rule = SEND_RULES[type(event)]

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
            request = flight.request if flight is not None else None
            ended = isinstance(request, Step) and not request.autoreset
            if (
                isinstance(event, StepReply)
                and event.done
                and ended
                and self.episode.allows(Trigger.END)
            ):
                self.episode.apply(Trigger.END)
            elif isinstance(event, ResetReply):
                self.episode.reset_seen(event.episode_id)
                self._episode_known = True
        if isinstance(event, Describe):
            self.episode.adopt(event.episode_id, event.env_state)
            self._episode_known = self._episode_known or event.env_state is not None
            if self.mode is None and event.mode is not None:
                self.mode = event.mode
        elif isinstance(event, StepReply) and event.episode_id is not None:
            self.episode.adopt(event.episode_id, EnvState.RUNNING)
            self._episode_known = True
        elif isinstance(event, Close):
            self.closed = True


def _decode_field(method: str, where: str, rule: Rule, value: Any) -> Any:
    """A received field's attribute value; :class:`RemoteProtocolError` naming it if bad."""

    def error(message: str) -> RemoteProtocolError:
        return RemoteProtocolError(f"{method}: {message}")

    return rule.decode(value) if f.check(rule, where, value, error) else rule.default()


def _encode_field(method: str, where: str, rule: Rule, value: Any) -> Any:
    """An outgoing field's JSON value (None: leave it out); the same rule as on receive."""

    def error(message: str) -> LocalProtocolError:
        return LocalProtocolError(f"{method}: {message}")

    encoded = None if value is None else rule.encode(value)
    return encoded if f.check(rule, where, encoded, error) else None
