"""One rule per wire field (type, range, default), checked on both sides.

Whatever a server may send is what a client accepts: :class:`Rule` decodes a received
value and encodes an outgoing one with the same check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeGuard

from gymlab.rewarder.protocol.codec import to_jsonable
from gymlab.rewarder.protocol.constants import (
    MAX_ENV_ID_LENGTH,
    MAX_EPISODE_HINT,
    MAX_EPISODE_ID,
    MAX_FPS,
    MAX_FRAME_SIDE,
    MAX_MESSAGE_ID,
    MIN_FPS,
    EnvState,
    Mode,
)


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
ABSENT: Any = object()


def _optional(value: Any, convert: Callable[[Any], Any]) -> Any:
    return None if value is None else convert(value)


ID = Rule(lambda v: _is_int(v) and 0 <= v <= MAX_MESSAGE_ID, f"an integer in 0..{MAX_MESSAGE_ID}")
TIME = Rule(lambda v: _is_number(v) and v >= 0, "a non-negative number", float)
EPISODE_ID = Rule(
    lambda v: _is_digits(v, MAX_EPISODE_ID),
    f"a decimal integer string in 0..{MAX_EPISODE_ID}",
    lambda v: _optional(v, int),
    lambda v: _optional(v, str),
)
# The server issues max(hint + 1, current + 1): hints leave room for 10**18 more ids.
EPISODE_HINT = replace(
    EPISODE_ID,
    check=lambda v: _is_digits(v, MAX_EPISODE_HINT),
    expected=f"a decimal integer string in 0..{MAX_EPISODE_HINT}",
)
ENV_ID = Rule(
    lambda v: isinstance(v, str) and 0 < len(v) <= MAX_ENV_ID_LENGTH,
    f"a non-empty string of at most {MAX_ENV_ID_LENGTH} characters",
)
SEED = Rule(lambda v: _is_int(v) and 0 <= v < 2**63, "an integer in 0..2**63-1")
FPS = Rule(
    lambda v: _is_number(v) and MIN_FPS <= v <= MAX_FPS,
    f"a number in {MIN_FPS:g}..{MAX_FPS:g}",
    lambda v: _optional(v, float),
)
NUMBER = Rule(_is_number, "a finite number", float, float, lambda: 0.0, nullable=False)
FLAG = Rule(lambda v: isinstance(v, bool), "true or false", default=lambda: False, nullable=False)
FRAME = Rule(lambda v: _is_int(v) and 0 <= v <= MAX_MESSAGE_ID, "a non-negative integer")
OBJECT = Rule(lambda v: isinstance(v, dict), "an object", encode=to_jsonable, default=dict)
AUTORESET = replace(FLAG, default=lambda: True)
SPACE = replace(OBJECT, default=lambda: None)  # a describe extra: absent means unknown
TEXT = Rule(lambda v: isinstance(v, str), "a string", default=str, nullable=False)
ANY = Rule(lambda v: True, "any JSON value", encode=to_jsonable)
STATE = Rule(
    lambda v: v in ("resetting", "running"),
    '"resetting" or "running"',
    lambda v: _optional(v, EnvState),
    lambda v: _optional(v, lambda s: EnvState(s).value),
)
MODE = Rule(
    lambda v: v in ("realtime", "lockstep"),
    '"realtime" or "lockstep"',
    lambda v: _optional(v, Mode),
    lambda v: _optional(v, lambda m: Mode(m).value),
)
SHAPE = Rule(
    _is_frame_shape,
    f"[height, width, 3] with sides in 1..{MAX_FRAME_SIDE}",
    lambda v: _optional(v, tuple),
    lambda v: _optional(v, list),
)

#: Header rules; every other header is kept verbatim in :attr:`Headers.extra`.
HEADER_RULES = {
    "message_id": ID,
    "sent_at": TIME,
    "parent_message_id": ID,
    "parent_runtime": TIME,
}


def check(rule: Rule, where: str, value: Any, error: Callable[[str], Exception]) -> bool:
    """Apply ``rule``; returns False when the field takes its default (absent or null)."""
    if value is ABSENT and not rule.required:
        return False
    if value is None and rule.nullable and not rule.required:
        return False
    if value is ABSENT or value is None or not rule.check(value):
        shown = "nothing" if value is ABSENT else repr(value)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise error(f"{where} must be {rule.expected}, got {shown}")
    return True
