"""Real-time actions: VNC event lists (Universe style) and native actions mapped to keys.

In real-time mode the remote's environment reads the keys held on its display, so an agent
acts by sending VNC events. Two forms are accepted per remote:

* a list of events, as in Universe: ``[("KeyEvent", "ArrowUp", True), ("PointerEvent", x, y,
  mask)]`` (keys by :mod:`gymlab.rfb.keysyms` name or keysym number); an empty list sends
  nothing and keeps held keys held;
* the environment's native action (e.g. ``0``/``1`` for CartPole): :class:`KeyActionMapper`
  turns it into "hold the key the runtime's key map binds to this action, release the rest",
  or "release everything" for the map's idle action.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gymlab.keymap import KeyMap
from gymlab.rfb.keysyms import keysym


@dataclass(frozen=True)
class KeyEvent:
    """Press (``down``) or release one key, by keysym."""

    key: int
    down: bool


@dataclass(frozen=True)
class PointerEvent:
    """Move the pointer to (x, y) with ``mask`` buttons down (bit 0 = button 1)."""

    x: int
    y: int
    mask: int


VNCEvent = KeyEvent | PointerEvent


def _event(item: Any) -> VNCEvent:
    if isinstance(item, (KeyEvent, PointerEvent)):
        return item
    if not isinstance(item, (tuple, list)) or not item or not isinstance(item[0], str):
        raise ValueError(f"not a VNC event: {item!r}")
    kind, args = item[0], tuple(item[1:])
    if kind == "KeyEvent" and len(args) == 2 and isinstance(args[1], (bool, np.bool_)):
        try:
            return KeyEvent(keysym(args[0]), bool(args[1]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"bad KeyEvent {item!r}: {exc}") from None
    if kind == "PointerEvent" and len(args) == 3:
        x, y, mask = (int(a) for a in args)
        if not (0 <= x < 65536 and 0 <= y < 65536 and 0 <= mask < 256):
            raise ValueError(f"PointerEvent out of range: {item!r}")
        return PointerEvent(x, y, mask)
    raise ValueError(
        f"not a VNC event: {item!r}; expected ('KeyEvent', key, down) or "
        "('PointerEvent', x, y, buttonmask)"
    )


def is_event_list(action: Any) -> bool:
    """True if ``action`` looks like a list of VNC events (an empty list counts)."""
    if isinstance(action, np.ndarray) or not isinstance(action, (list, tuple)):
        return False
    return all(
        isinstance(item, (KeyEvent, PointerEvent))
        or (isinstance(item, (tuple, list)) and bool(item) and isinstance(item[0], str))
        for item in action
    )


_EVENT_NAMES = ("KeyEvent", "PointerEvent")


def is_event(item: Any) -> bool:
    """True for one VNC event, e.g. ``("KeyEvent", "ArrowLeft", True)`` (not a list of them)."""
    if isinstance(item, (KeyEvent, PointerEvent)):
        return True
    return (
        isinstance(item, (tuple, list))
        and bool(item)
        and isinstance(item[0], str)
        and item[0] in _EVENT_NAMES
    )


def _wrap_hint(num_envs: int | None) -> str:
    """How to wrap events: ``[[("KeyEvent", "ArrowLeft", True)], ...] (one list per remote)``."""
    shown = 1 if num_envs is None else min(num_envs, 2)
    example = ", ".join(['[("KeyEvent", "ArrowLeft", True)]'] * shown)
    more = ", ..." if num_envs is None or num_envs > 2 else ""
    here = "" if num_envs is None else f", {num_envs} here"
    return f"wrap each remote's events in a list: [{example}{more}] (one list per remote{here})"


def check_wrapped(actions: Any, num_envs: int) -> None:
    """Refuse events given without one list per remote, saying how to wrap them.

    Catches one bare event, a flat list of events, and a per-remote list in which some
    remote's entry is a bare event instead of a list of events.
    """
    flat = is_event(actions) or (
        isinstance(actions, (list, tuple)) and bool(actions) and all(is_event(a) for a in actions)
    )
    if flat:
        raise ValueError(_wrap_hint(num_envs))
    if isinstance(actions, (list, tuple)) and len(actions) == num_envs:
        for i, entry in enumerate(actions):
            if is_event(entry):
                raise ValueError(
                    f"remote {i}: got the bare event {entry!r}; {_wrap_hint(num_envs)}"
                )


def parse_events(action: Sequence[Any]) -> list[VNCEvent]:
    """Validate a Universe-style event list; :class:`ValueError` names the bad entry."""
    return [_event(item) for item in action]


class KeyActionMapper:
    """Native action -> the key events that make the runtime's key map produce it."""

    def __init__(self, keymap: KeyMap) -> None:
        self.keymap = keymap

    def keys_for(self, action: Any) -> tuple[int, ...]:
        """The keysyms to hold for ``action``; none for the idle action (hold nothing)."""
        if is_event(action) or (isinstance(action, str) and action in _EVENT_NAMES):
            raise ValueError(
                f"{self.keymap.env_id}: {action!r} is not an action; {_wrap_hint(None)}"
            )
        return tuple(keysym(name) for name in self.keymap.keys_for(action))

    def events(self, action: Any, held: Sequence[int]) -> list[VNCEvent]:
        """Events that change the ``held`` keysyms into what ``action`` needs.

        Keys of a chord are pressed in the map's order, after the releases.
        """
        target = self.keys_for(action)
        events: list[VNCEvent] = [KeyEvent(key, False) for key in held if key not in target]
        events += [KeyEvent(key, True) for key in target if key not in held]
        return events


def apply_held(held: list[int], events: Sequence[VNCEvent]) -> None:
    """Update the list of held keysyms (press order) after sending ``events``."""
    for event in events:
        if isinstance(event, KeyEvent):
            if event.key in held:
                held.remove(event.key)
            if event.down:
                held.append(event.key)


__all__ = [
    "KeyActionMapper",
    "KeyEvent",
    "PointerEvent",
    "VNCEvent",
    "apply_held",
    "check_wrapped",
    "is_event",
    "is_event_list",
    "parse_events",
]
