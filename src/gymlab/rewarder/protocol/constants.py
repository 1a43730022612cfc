"""The rewarder v0 protocol's names and limits: method names, bounds, modes and states."""

from __future__ import annotations

import enum
from collections.abc import Callable

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


class EnvState(str, enum.Enum):
    """The episode state a ``v0.env.describe`` announces."""

    RESETTING = "resetting"
    RUNNING = "running"


class Role(enum.Enum):
    """Which side of the websocket a :class:`Connection` is."""

    CLIENT = "client"
    SERVER = "server"
