"""Key maps: which held keys / pointer presses give which action, as both sides read them.

Keys are X keysyms (the values VNC key events and X key events carry), named as
:func:`gymlab.rfb.keysyms.keysym` accepts them. A binding is a *chord*: the keys held
together (one key for most). Of the bindings whose keys are all held, the one with the
most keys wins, then the one whose latest key was pressed last; with nothing bound held,
the map's idle action applies. *Additive* maps (continuous actions) instead add the
actions of every held key onto the idle action, clipped to the action space.

This is the map itself and its JSON form (:meth:`KeyMap.from_json`, the form a runtime's
``describe`` carries and a user's key map file is written in). The runtime applies it to
the keys held on its display; the client reads it to turn an action into keys. Which map
an env gets is the runtime's business (:mod:`gymlab.runtime.keymaps`). Pure Python.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gymlab.rfb.keysyms import keysym

if TYPE_CHECKING:
    import gymnasium

#: Pointer button 1 in a VNC/X button mask.
BUTTON1 = 1

#: Generic maps: action i is the i-th of these keys (Discrete spaces up to this size).
GENERIC_KEYS = tuple("0123456789abcdefghijklmnopqrstuvwxyz")

#: The most bindings a key map may have (a user file, or a describe from a server).
MAX_BINDINGS = 256
#: Client side: an additive action is looked up among chords of at most this many keys.
MAX_ADDITIVE_CHORD = 4


#: The fields of a key map's JSON form.
_FILE_FIELDS = frozenset({"keys", "idle", "labels", "idle_cycle", "additive", "pointer"})


class KeyMapError(ValueError):
    """A key map that cannot be used (unknown key, action outside the space, bad file)."""


class UnknownKeyMap(KeyError):
    """No key map ships for this env id, and none can be derived."""


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
class Binding:
    """Holding ``keys`` together gives ``action``; ``label`` says what it does."""

    keys: tuple[str, ...]
    action: Any
    label: str = ""

    @property
    def chord(self) -> str:
        """The keys as one ``"Up+space"`` string (the key of a key map file's ``keys``)."""
        return "+".join(self.keys)


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python numbers and lists."""
    return value.tolist() if hasattr(value, "tolist") else value


def _same_action(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    try:
        xs, ys = _floats(a), _floats(b)
    except (TypeError, ValueError):
        return False
    if len(xs) != len(ys):
        return False
    return all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(xs, ys, strict=True))


def _floats(value: Any) -> list[float]:
    value = _plain(value)
    if isinstance(value, (list, tuple)):
        return [float(v) for v in value]
    raise TypeError("not a vector")


@dataclass(frozen=True)
class KeyMap:
    """Maps held keys (and pointer presses) to one env action.

    ``idle`` is the no-op: the actions used, cycled per tick, while nothing bound is held
    (one value for envs with a real no-op; CartPole has none, so it alternates left/right
    pushes, which on average leaves the cart alone). ``pointer_keys`` names the keys that
    button 1 held on the left / right half of the window stands for. ``additive`` maps
    sum the actions of the held keys onto ``idle[0]`` within ``low``..``high``.
    """

    env_id: str
    bindings: tuple[Binding, ...]
    idle: tuple[Any, ...]
    pointer_keys: tuple[str, str] | None = ("Left", "Right")
    additive: bool = False
    low: tuple[float, ...] | None = None
    high: tuple[float, ...] | None = None
    _codes: tuple[tuple[int, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.idle:
            raise KeyMapError(f"{self.env_id}: the key map has no idle action")
        if len(self.bindings) > MAX_BINDINGS:
            raise KeyMapError(
                f"{self.env_id}: {len(self.bindings)} key bindings; at most {MAX_BINDINGS}"
            )
        codes = []
        for binding in self.bindings:
            if not binding.keys:
                raise KeyMapError(f"{self.env_id}: a binding with no keys")
            try:
                codes.append(tuple(normalize_keysym(keysym(k)) for k in binding.keys))
            except (KeyError, ValueError) as exc:
                raise KeyMapError(
                    f"{self.env_id}: {binding.chord!r}: {exc.args[0]}; expected X keysym "
                    "names or single characters joined by '+' (e.g. Up+space)"
                ) from None
            if self.additive and len(binding.keys) > 1:
                raise KeyMapError(
                    f"{self.env_id}: {binding.chord!r}: an additive map binds single keys"
                )
        object.__setattr__(self, "_codes", tuple(codes))

    @property
    def noop(self) -> Any:
        """The no-op action (the first idle action)."""
        return self.idle[0]

    def binding(self, chord: str) -> Binding:
        """The binding for ``"Up+space"``-style ``chord``; KeyError if none."""
        for binding in self.bindings:
            if binding.chord == chord:
                return binding
        raise KeyError(chord)

    # runtime side: held keys -> action

    def action_for(
        self,
        held: Sequence[int],
        pointer: PointerState | None = None,
        *,
        width: int = 0,
        tick: int = 0,
    ) -> Any:
        """The action for keys ``held`` (keysyms, oldest press first) at ``tick``."""
        order = {normalize_keysym(value): i for i, value in enumerate(held)}
        if not self._matches(order) and pointer is not None and width > 0:
            if self.pointer_keys and pointer.buttons & BUTTON1:
                name = self.pointer_keys[0] if pointer.x < width // 2 else self.pointer_keys[1]
                order = {normalize_keysym(keysym(name)): 0}
        if self.additive:
            return self._sum(order)
        best: tuple[int, int] | None = None
        action = None
        for binding, codes in zip(self.bindings, self._codes, strict=True):
            if all(c in order for c in codes):
                rank = (len(codes), max(order[c] for c in codes))
                if best is None or rank > best:
                    best, action = rank, binding.action
        if best is not None:
            return action
        return self.idle[tick % len(self.idle)]

    def _matches(self, order: Mapping[int, int]) -> bool:
        return any(all(c in order for c in codes) for codes in self._codes)

    def _sum(self, order: Mapping[int, int]) -> Any:
        base = self.idle[0]
        total = list(_floats(base))
        for binding, codes in zip(self.bindings, self._codes, strict=True):
            if codes[0] in order:
                total = [t + a for t, a in zip(total, _floats(binding.action), strict=True)]
        if self.low is not None and self.high is not None:
            bounds = zip(total, self.low, self.high, strict=True)
            total = [min(max(t, lo), hi) for t, lo, hi in bounds]
        return total

    # client side: action -> keys to hold

    def keys_for(self, action: Any) -> tuple[str, ...]:
        """The keys to hold for ``action`` (none for the idle action); ValueError if no chord.

        For an additive map, chords of up to :data:`MAX_ADDITIVE_CHORD` keys are tried.
        """
        if not self.additive:
            # bindings first: an idle cycle (CartPole's) holds actions that keys give too
            for binding in self.bindings:
                if _same_action(binding.action, action):
                    return binding.keys
        if any(_same_action(idle, action) for idle in self.idle):
            return ()
        if self.additive:
            singles = [b.keys[0] for b in self.bindings]
            for size in range(1, min(MAX_ADDITIVE_CHORD, len(singles)) + 1):
                for chord in itertools.combinations(singles, size):
                    order = {normalize_keysym(keysym(k)): i for i, k in enumerate(chord)}
                    if _same_action(self._sum(order), action):
                        return chord
        choices = [b.action for b in self.bindings] + list(self.idle)
        raise ValueError(
            f"{self.env_id}: action {action!r} has no key (real-time actions: {choices})"
        )

    # checks and the JSON form

    def check(self, space: gymnasium.Space[Any]) -> None:
        """Raise :class:`KeyMapError` unless every action of the map is in ``space``."""
        from gymlab.rewarder.spaces import action_from_json

        named = [(f"idle action {a!r}", a) for a in self.idle]
        for binding, codes in zip(self.bindings, self._codes, strict=True):
            # an additive binding is a change: check what holding the key gives
            action = self._sum({codes[0]: 0}) if self.additive else binding.action
            named.append((f"the action of {binding.chord!r}", action))
        for what, action in named:
            try:
                action_from_json(space, action)
            except ValueError as exc:
                raise KeyMapError(f"{self.env_id}: {what}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        """The map as a JSON object (what ``describe`` sends, and a key map file's form)."""
        data: dict[str, Any] = {
            "keys": {b.chord: b.action for b in self.bindings},
            "idle": self.idle[0],
        }
        labels = {b.chord: b.label for b in self.bindings if b.label}
        if labels:
            data["labels"] = labels
        if len(self.idle) > 1:
            data["idle_cycle"] = list(self.idle)
        if self.additive:
            data["additive"] = True
        if self.pointer_keys != ("Left", "Right"):
            data["pointer"] = list(self.pointer_keys) if self.pointer_keys else None
        return data

    @classmethod
    def from_json(cls, data: Any, env_id: str, space: gymnasium.Space[Any] | None = None) -> KeyMap:
        """Build a map from :meth:`to_json`'s form; :class:`KeyMapError` names what is wrong.

        ``{"keys": {"Left": 0, "Up+space": 2}, "idle": 1}`` is the whole of it; optional:
        ``labels`` (chord -> text), ``idle_cycle`` (idle actions used in turn),
        ``additive`` (true: held keys' actions add up), ``pointer`` (the two keys the
        left / right half of the window stands for, or null).
        """
        if not isinstance(data, dict):
            raise KeyMapError(f"{env_id}: a key map is an object with keys and idle")
        unknown = sorted(set(data) - _FILE_FIELDS)
        if unknown:
            raise KeyMapError(
                f"{env_id}: unknown key map field {unknown[0]!r}; expected keys, idle, labels, "
                "idle_cycle, additive, pointer"
            )
        keys, labels = data.get("keys"), data.get("labels", {})
        if not isinstance(keys, dict) or not keys:
            raise KeyMapError(f"{env_id}: 'keys' must be a non-empty object of chord -> action")
        if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
            raise KeyMapError(f"{env_id}: 'labels' must be an object of chord -> text")
        if "idle" not in data:
            raise KeyMapError(f"{env_id}: the key map has no 'idle' action (the no-op)")
        idle = data.get("idle_cycle", [data["idle"]])
        if not isinstance(idle, list) or not idle:
            raise KeyMapError(f"{env_id}: 'idle_cycle' must be a non-empty list of actions")
        pointer = data.get("pointer", ["Left", "Right"])
        if pointer is not None and not (
            isinstance(pointer, list)
            and len(pointer) == 2
            and all(isinstance(k, str) for k in pointer)
        ):
            raise KeyMapError(f"{env_id}: 'pointer' must be two key names or null")
        additive = data.get("additive", False)
        if not isinstance(additive, bool):
            raise KeyMapError(f"{env_id}: 'additive' must be true or false")
        bindings = tuple(
            Binding(tuple(str(chord).split("+")), action, str(labels.get(chord, "")))
            for chord, action in keys.items()
        )
        low = high = None
        if space is not None and additive:
            low, high = _bounds(space)
        keymap = cls(
            env_id=env_id,
            bindings=bindings,
            idle=tuple(idle),
            pointer_keys=(pointer[0], pointer[1]) if pointer else None,
            additive=additive,
            low=low,
            high=high,
        )
        if keymap.pointer_keys:
            for name in keymap.pointer_keys:
                if not any(b.keys == (name,) for b in bindings):
                    keymap = _without_pointer(keymap)
                    break
        if space is not None:
            keymap.check(space)
        return keymap


def _without_pointer(keymap: KeyMap) -> KeyMap:
    return KeyMap(
        keymap.env_id, keymap.bindings, keymap.idle, None, keymap.additive, keymap.low, keymap.high
    )


def _bounds(space: gymnasium.Space[Any]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    low = getattr(space, "low", None)
    high = getattr(space, "high", None)
    if low is None or high is None:
        raise KeyMapError(f"an additive key map needs a Box action space, not {space}")
    return tuple(float(v) for v in low.ravel()), tuple(float(v) for v in high.ravel())
