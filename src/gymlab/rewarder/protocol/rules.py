"""Who may send what, when: one :class:`SendRule` per event, applied by the connection."""

from __future__ import annotations

from dataclasses import dataclass

from gymlab.rewarder.protocol import events as e
from gymlab.rewarder.protocol.constants import Mode, Role


@dataclass(frozen=True)
class SendRule:
    """Who sends an event, in which modes, to or from observers, what it answers, when not."""

    sender: Role
    modes: frozenset[Mode] = frozenset(Mode)
    observers: bool = True  # an observer connection may send (client) / receive it
    answers: tuple[type[e.Event], ...] = ()  # the request types a reply answers
    not_while_resetting: bool = False  # refused while a reset is in flight
    not_after_end: bool = False  # refused once an episode ended without an autoreset


SEND_RULES: dict[type[e.Event], SendRule] = {
    e.Reset: SendRule(Role.CLIENT, observers=False),
    e.Step: SendRule(
        Role.CLIENT,
        frozenset({Mode.LOCKSTEP}),
        observers=False,
        not_while_resetting=True,
        not_after_end=True,
    ),
    e.Ping: SendRule(Role.CLIENT),
    e.Describe: SendRule(Role.SERVER),
    e.Reward: SendRule(Role.SERVER),
    e.Text: SendRule(Role.SERVER),
    e.Observation: SendRule(Role.SERVER),
    e.Close: SendRule(Role.SERVER),
    e.ResetReply: SendRule(Role.SERVER, answers=(e.Reset,)),
    e.StepReply: SendRule(Role.SERVER, frozenset({Mode.LOCKSTEP}), answers=(e.Step,)),
    e.PingReply: SendRule(Role.SERVER, answers=(e.Ping,)),
    e.ErrorReply: SendRule(Role.SERVER, answers=(e.Reset, e.Step, e.Ping, e.Event)),
}
