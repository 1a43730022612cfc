"""The protocol's one vocabulary: a frozen dataclass per v0 method and gymlab extension."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from gymlab.rewarder.protocol import constants as c
from gymlab.rewarder.protocol import fields as f
from gymlab.rewarder.protocol.fields import Rule


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

    METHOD = c.ENV_RESET
    BODY = {"env_id": f.ENV_ID, "seed": f.SEED, "fps": f.FPS}
    EPISODE = f.EPISODE_HINT

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

    METHOD = c.ENV_STEP
    BODY = {"action": replace(f.ANY, required=True, nullable=False), "autoreset": f.AUTORESET}

    action: Any = None
    autoreset: bool = True


@dataclass(frozen=True, kw_only=True)
class Ping(Event):
    """``v0.control.ping`` (C→S)."""

    METHOD = c.CONTROL_PING


@dataclass(frozen=True, kw_only=True)
class Describe(Event):
    """``v0.env.describe`` (S→C), on connect and on every state change.

    ``action_space``, ``observation_space`` (JSON forms of the env's spaces, see
    :mod:`gymlab.rewarder.spaces`), ``frame_shape``, ``mode``, ``frame`` and ``keys`` (the
    real-time key map, in :meth:`gymlab.runtime.keymaps.KeyMap.to_json`'s form) are gymlab
    extras; a Universe server sends none of them.
    """

    METHOD = c.ENV_DESCRIBE
    BODY = {
        "env_id": f.ENV_ID,
        "env_state": f.STATE,
        "fps": f.FPS,
        "action_space": f.SPACE,
        "observation_space": f.SPACE,
        "frame_shape": f.SHAPE,
        "mode": f.MODE,
        "frame": f.FRAME,
        "keys": f.SPACE,
    }
    EPISODE = f.EPISODE_ID

    env_id: str | None = None
    env_state: c.EnvState | None = None
    fps: float | None = None
    action_space: dict[str, Any] | None = None
    observation_space: dict[str, Any] | None = None
    frame_shape: tuple[int, int, int] | None = None
    mode: c.Mode | None = None
    frame: int | None = None
    keys: dict[str, Any] | None = None
    episode_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class StepResult(Event):
    """Fields shared by a pushed reward and a lockstep step reply: one environment step."""

    BODY = {
        "reward": f.NUMBER,
        "terminated": f.FLAG,
        "truncated": f.FLAG,
        "info": f.OBJECT,
        "frame": f.FRAME,
    }
    EPISODE = f.EPISODE_ID

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

    METHOD = c.ENV_REWARD


@dataclass(frozen=True, kw_only=True)
class StepReply(StepResult):
    """``v0.reply.env.step`` (S→C, gymlab): sent once the step's frame is on the display.

    The one step result: the runtime's backend returns it, the server sends it, the client
    returns it. On done the runtime has auto-reset: ``episode_id`` and ``frame`` are the new
    episode's and ``info`` names ``terminal_frame`` and ``terminal_episode_id``.
    """

    METHOD = c.REPLY_ENV_STEP
    BODY = {**StepResult.BODY, "frame": replace(f.FRAME, required=True)}


@dataclass(frozen=True, kw_only=True)
class ResetReply(Event):
    """``v0.reply.env.reset`` (S→C): the reset frame is drawn; the new episode runs."""

    METHOD = c.REPLY_ENV_RESET
    BODY = {"frame": f.FRAME}
    EPISODE = replace(f.EPISODE_ID, required=True)

    frame: int | None = None
    episode_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class Text(Event):
    """``v0.env.text`` (S→C): free text for the agent."""

    METHOD = c.ENV_TEXT
    BODY = {"text": f.TEXT}
    EPISODE = f.EPISODE_ID

    text: str = ""
    episode_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class Observation(Event):
    """``v0.env.observation`` (S→C): the env's own observation as JSON (small spaces)."""

    METHOD = c.ENV_OBSERVATION
    BODY = {"observation": f.ANY}
    EPISODE = f.EPISODE_ID

    observation: Any = None
    episode_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class PingReply(Event):
    """``v0.reply.control.ping`` (S→C); ``headers.parent_runtime`` is the server's time."""

    METHOD = c.REPLY_CONTROL_PING


@dataclass(frozen=True, kw_only=True)
class ErrorReply(Event):
    """``v0.reply.error`` (S→C): the request with ``parent_message_id`` failed."""

    METHOD = c.REPLY_ERROR
    BODY = {"message": f.TEXT}

    message: str = ""
    #: the request answered; None answers the connection's latest request in flight
    reply_to: int | None = field(default=None, compare=False)


@dataclass(frozen=True, kw_only=True)
class Close(Event):
    """``v0.connection.close`` (S→C): the server closes the connection right after."""

    METHOD = c.CONNECTION_CLOSE
    BODY = {"message": f.TEXT}

    message: str = ""


@dataclass(frozen=True, kw_only=True)
class Unknown(Event):
    """A method this side does not know (a newer peer): safe to ignore."""

    METHOD = ""
    method: str = ""
    body: dict[str, Any] = field(default_factory=dict)


EVENTS: dict[str, type[Event]] = {
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
