"""Per-environment key maps: which held keys / pointer presses give which action.

Keys are X keysyms (the values VNC key events and X key events carry).
When several bound keys are held, the most recently pressed one wins; with
nothing bound held, the map's idle action applies. Pure Python, no X needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gymlab.rfb.keysyms import keysym

#: The keysym names the shipped maps bind, with their values from the one keysym table.
KEYSYMS: dict[str, int] = {
    name: keysym(name) for name in ("Left", "Up", "Right", "Down", "space", "a", "d", "s", "w")
}

#: Pointer button 1 in a VNC/X button mask.
BUTTON1 = 1


def normalize_keysym(value: int) -> int:
    """Fold Latin-1 upper-case letters to lower case (Shift must not change the action)."""
    if 0x41 <= value <= 0x5A:
        return value + 0x20
    return value


@dataclass(frozen=True)
class PointerState:
    """Where the pointer is and which buttons are down (bit 0 = button 1)."""

    x: int
    y: int
    buttons: int


@dataclass(frozen=True)
class KeyMap:
    """Maps held keys (and pointer presses) to one env action.

    ``bindings`` pairs keysym names with actions. ``idle`` is the no-op: the
    actions used, cycled per tick, while nothing bound is held (one value for
    envs with a real no-op; CartPole has none, so it alternates left/right
    pushes, which on average leaves the cart alone). ``pointer_keys`` names
    the keys that button 1 held on the left / right half of the window stands
    for.
    """

    env_id: str
    bindings: tuple[tuple[str, Any], ...]
    idle: tuple[Any, ...]
    pointer_keys: tuple[str, str] | None = ("Left", "Right")

    @property
    def noop(self) -> Any:
        """The no-op action (the first idle action)."""
        return self.idle[0]

    def _by_keysym(self) -> dict[int, Any]:
        return {KEYSYMS[name]: action for name, action in self.bindings}

    def action_for(
        self,
        held: Sequence[int],
        pointer: PointerState | None = None,
        *,
        width: int = 0,
        tick: int = 0,
    ) -> Any:
        """The action for keys ``held`` (keysyms, oldest press first) at ``tick``."""
        by_keysym = self._by_keysym()
        for value in reversed(held):
            action = by_keysym.get(normalize_keysym(value))
            if action is not None:
                return action
        if pointer is not None and self.pointer_keys and pointer.buttons & BUTTON1 and width > 0:
            left, right = self.pointer_keys
            name = left if pointer.x < width // 2 else right
            return dict(self.bindings)[name]
        return self.idle[tick % len(self.idle)]


def _lr(env_id: str, left: Any, right: Any, idle: tuple[Any, ...]) -> KeyMap:
    """A left/right map: arrow keys and a/d."""
    return KeyMap(
        env_id=env_id,
        bindings=(("Left", left), ("a", left), ("Right", right), ("d", right)),
        idle=idle,
    )


KEYMAPS: dict[str, KeyMap] = {
    km.env_id: km
    for km in (
        _lr("CartPole-v1", 0, 1, idle=(0, 1)),
        _lr("CartPole-v0", 0, 1, idle=(0, 1)),
        _lr("MountainCar-v0", 0, 2, idle=(1,)),
        _lr("MountainCarContinuous-v0", [-1.0], [1.0], idle=([0.0],)),
        _lr("Acrobot-v1", 0, 2, idle=(1,)),
        _lr("Pendulum-v1", [-2.0], [2.0], idle=([0.0],)),
    )
}


class UnknownKeyMap(KeyError):
    """No key map ships for this env id."""


def keymap_for(env_id: str) -> KeyMap:
    """The key map for ``env_id`` (exact id, then the same name at any version)."""
    if env_id in KEYMAPS:
        return KEYMAPS[env_id]
    base = env_id.rsplit("-v", 1)[0]
    for known, km in KEYMAPS.items():
        if known.rsplit("-v", 1)[0] == base:
            return km
    raise UnknownKeyMap(env_id)
