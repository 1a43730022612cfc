"""Who may send what, when: one :class:`SendRule` per event, applied by the connection."""

from __future__ import annotations

from dataclasses import dataclass

from gymlab.rewarder.protocol.constants import Mode, Role
from gymlab.rewarder.protocol.events import (
    Close,
    Describe,
    ErrorReply,
    Event,
    Observation,
    Ping,
    PingReply,
    Reset,
    ResetReply,
    Reward,
    Step,
    StepReply,
    Text,
)


@dataclass(frozen=True)
class SendRule:
    sender: Role
    modes: frozenset[Mode] = frozenset(Mode)
    observers: bool = True  # an observer connection may send (client) / receive it
    answers: tuple[type[Event], ...] = ()  # the request types a reply answers
    not_while_resetting: bool = False  # refused while a reset is in flight
    not_after_end: bool = False  # refused once an episode ended without an autoreset


SEND_RULES: dict[type[Event], SendRule] = {
    Reset: SendRule(Role.CLIENT, observers=False),
    Step: SendRule(
        Role.CLIENT,
        frozenset({Mode.LOCKSTEP}),
        observers=False,
        not_while_resetting=True,
        not_after_end=True,
    ),
    Ping: SendRule(Role.CLIENT),
    Describe: SendRule(Role.SERVER),
    Reward: SendRule(Role.SERVER),
    Text: SendRule(Role.SERVER),
    Observation: SendRule(Role.SERVER),
    Close: SendRule(Role.SERVER),
    ResetReply: SendRule(Role.SERVER, answers=(Reset,)),
    StepReply: SendRule(Role.SERVER, frozenset({Mode.LOCKSTEP}), answers=(Step,)),
    PingReply: SendRule(Role.SERVER, answers=(Ping,)),
    ErrorReply: SendRule(Role.SERVER, answers=(Reset, Step, Ping, Event)),
}
