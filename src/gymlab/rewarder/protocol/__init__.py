"""Sans-I/O implementation of the rewarder v0 protocol (``docs/protocol.md``).

The shape follows h11 and wsproto: one vocabulary of events (frozen dataclasses, one per
v0 method and gymlab extension, :mod:`.events`) used by both sides, and one
:class:`Connection` per websocket (:mod:`.connection`) whose :meth:`Connection.receive`
(text frame in, event out) and :meth:`Connection.send` (event in, text frame out) are the
only way in and out. Nothing here touches a socket or an event loop.

Three tables hold the rules, so no transport or backend repeats them:

* :mod:`.fields`: one rule per wire field (type, range, default), checked on *both*
  sides: whatever a server may send is what a client accepts.
* :mod:`.rules`: who may send each event, in which mode, whether observers may, and
  which request a reply answers.
* :mod:`.episode`: the episode's phases and their transitions, which the server, each
  connection and the client's reward buffer all move through.

A peer's fault raises :class:`RemoteProtocolError` (a server answers it with
``v0.reply.error``); misuse by our own side raises :class:`LocalProtocolError`
(:mod:`gymlab.protocol_errors`, shared with the RFB client).

This package is the import surface: ``from gymlab.rewarder import protocol as p``.
"""

from __future__ import annotations

from gymlab.protocol_errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from gymlab.rewarder.protocol.codec import (
    MessageTooLarge,
    dumps,
    jsonable_items,
    loads,
    to_jsonable,
)
from gymlab.rewarder.protocol.connection import Connection
from gymlab.rewarder.protocol.constants import (
    CLIENT_MAX_MESSAGE_BYTES,
    CONNECTION_CLOSE,
    CONTROL_PING,
    ENV_DESCRIBE,
    ENV_OBSERVATION,
    ENV_RESET,
    ENV_REWARD,
    ENV_STEP,
    ENV_TEXT,
    MAX_ENV_ID_LENGTH,
    MAX_EPISODE_HINT,
    MAX_EPISODE_ID,
    MAX_FPS,
    MAX_FRAME_SIDE,
    MAX_IN_FLIGHT,
    MAX_INCOMING_MESSAGE_BYTES,
    MAX_JSON_DEPTH,
    MAX_MESSAGE_ID,
    MIN_FPS,
    OBSERVER_HEADER,
    REPLY_CONTROL_PING,
    REPLY_ENV_RESET,
    REPLY_ENV_STEP,
    REPLY_ERROR,
    Clock,
    EnvState,
    Mode,
    Role,
)
from gymlab.rewarder.protocol.episode import Episode, Phase, Trigger, episode_hint
from gymlab.rewarder.protocol.events import (
    Close,
    Describe,
    ErrorReply,
    Event,
    Headers,
    Observation,
    Ping,
    PingReply,
    Reply,
    Request,
    Reset,
    ResetReply,
    Reward,
    Step,
    StepReply,
    StepResult,
    Text,
    Unknown,
)

__all__ = [
    "CLIENT_MAX_MESSAGE_BYTES",
    "CONNECTION_CLOSE",
    "CONTROL_PING",
    "ENV_DESCRIBE",
    "ENV_OBSERVATION",
    "ENV_RESET",
    "ENV_REWARD",
    "ENV_STEP",
    "ENV_TEXT",
    "MAX_ENV_ID_LENGTH",
    "MAX_EPISODE_HINT",
    "MAX_EPISODE_ID",
    "MAX_FPS",
    "MAX_FRAME_SIDE",
    "MAX_INCOMING_MESSAGE_BYTES",
    "MAX_IN_FLIGHT",
    "MAX_JSON_DEPTH",
    "MAX_MESSAGE_ID",
    "MIN_FPS",
    "OBSERVER_HEADER",
    "REPLY_CONTROL_PING",
    "REPLY_ENV_RESET",
    "REPLY_ENV_STEP",
    "REPLY_ERROR",
    "Clock",
    "Close",
    "Connection",
    "Describe",
    "EnvState",
    "Episode",
    "ErrorReply",
    "Event",
    "Headers",
    "LocalProtocolError",
    "MessageTooLarge",
    "Mode",
    "Observation",
    "Phase",
    "Ping",
    "PingReply",
    "ProtocolError",
    "RemoteProtocolError",
    "Reply",
    "Request",
    "Reset",
    "ResetReply",
    "Reward",
    "Role",
    "Step",
    "StepReply",
    "StepResult",
    "Text",
    "Trigger",
    "Unknown",
    "dumps",
    "episode_hint",
    "jsonable_items",
    "loads",
    "to_jsonable",
]
