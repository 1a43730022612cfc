"""Which key map an env gets: shipped, derived from action meanings, generic, or a user's file.

A shipped map for the env's id and action space (classic control, Box2D, MiniGrid), else
one derived from the env's ``get_action_meanings()`` (Atari: arrows + space, combinations
give the combined meaning), else a generic one for small ``Discrete`` spaces (digit keys).
A user's own map is a JSON/YAML file in :meth:`gymlab.keymap.KeyMap.from_json`'s format.
The map type itself lives in :mod:`gymlab.keymap`, which the client reads too.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gymlab.keymap import GENERIC_KEYS, KeyMap, KeyMapError, UnknownKeyMap

if TYPE_CHECKING:
    import gymnasium


def load_keymap_file(path: str | Path, env_id: str, space: gymnasium.Space[Any]) -> KeyMap:
    """Read a user's key map (JSON, or YAML when PyYAML is installed) and check it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KeyMapError(f"cannot read key map {path}: {exc.strerror}") from None
    try:
        if path.suffix in (".yml", ".yaml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ImportError:
        raise KeyMapError(f"key map {path}: YAML needs PyYAML; write it as JSON") from None
    except ValueError as exc:  # json.JSONDecodeError and yaml.YAMLError's parser errors
        kind = "YAML" if path.suffix in (".yml", ".yaml") else "JSON"
        raise KeyMapError(f"key map {path} is not valid {kind}: {exc}") from None
    except Exception as exc:  # yaml.YAMLError is not a ValueError
        raise KeyMapError(f"key map {path} is not valid YAML: {exc}") from None
    try:
        return KeyMap.from_json(data, env_id, space)
    except KeyMapError as exc:
        raise KeyMapError(f"key map {path}: {exc}") from None


# shipped maps


def _lr(left: Any, right: Any, idle: tuple[Any, ...]) -> dict[str, Any]:
    """A left/right map: arrow keys and a/d."""
    return {
        "keys": {"Left": left, "a": left, "Right": right, "d": right},
        "idle": idle[0],
        **({"idle_cycle": list(idle)} if len(idle) > 1 else {}),
    }


def _vector(n: int, i: int, value: float) -> list[float]:
    return [value if j == i else 0.0 for j in range(n)]


#: name (the id without module prefix and version) -> action space kind -> map in JSON form.
SHIPPED: dict[str, dict[str, dict[str, Any]]] = {
    "CartPole": {"Discrete": _lr(0, 1, idle=(0, 1))},
    "MountainCar": {"Discrete": _lr(0, 2, idle=(1,))},
    "MountainCarContinuous": {"Box": _lr([-1.0], [1.0], idle=([0.0],))},
    "Acrobot": {"Discrete": _lr(0, 2, idle=(1,))},
    "Pendulum": {"Box": _lr([-2.0], [2.0], idle=([0.0],))},
    "LunarLander": {
        "Discrete": {
            "keys": {"Left": 1, "Up": 2, "Right": 3, "a": 1, "w": 2, "d": 3},
            "idle": 0,
            "labels": {"Left": "left engine", "Up": "main engine", "Right": "right engine"},
        },
        # [main, lateral]: main below 0 is off, lateral beyond +-0.5 fires a side engine
        "Box": {
            "keys": {"Up": [2.0, 0.0], "Left": [0.0, -1.0], "Right": [0.0, 1.0]},
            "idle": [-1.0, 0.0],
            "additive": True,
            "labels": {"Up": "main engine", "Left": "left engine", "Right": "right engine"},
        },
    },
    "CarRacing": {
        # [steering, gas, brake]
        "Box": {
            "keys": {
                "Left": [-1.0, 0.0, 0.0],
                "Right": [1.0, 0.0, 0.0],
                "Up": [0.0, 1.0, 0.0],
                "Down": [0.0, 0.0, 0.8],
            },
            "idle": [0.0, 0.0, 0.0],
            "additive": True,
            "labels": {"Left": "steer left", "Right": "steer right", "Up": "gas", "Down": "brake"},
        },
        # continuous=False: do nothing, steer left, steer right, gas, brake
        "Discrete": {"keys": {"Left": 1, "Right": 2, "Up": 3, "Down": 4}, "idle": 0},
    },
    "BipedalWalker": {
        # [hip 1, knee 1, hip 2, knee 2] torques: q/a w/s for leg 1, e/d r/f for leg 2
        "Box": {
            "keys": {
                key: _vector(4, joint, sign)
                for joint, pair in enumerate(("qa", "ws", "ed", "rf"))
                for key, sign in zip(pair, (1.0, -1.0), strict=True)
            },
            "idle": [0.0, 0.0, 0.0, 0.0],
            "additive": True,
            "pointer": None,
        }
    },
}

#: Id prefixes of env families whose maps ship (MiniGrid's own manual-control keys).
_MINIGRID = {
    "keys": {
        "Left": 0,
        "Right": 1,
        "Up": 2,
        "Page_Up": 3,
        "Tab": 3,
        "Page_Down": 4,
        "Shift_L": 4,
        "space": 5,
        "Return": 6,
    },
    "idle": 6,
    "labels": {
        "Left": "turn left",
        "Right": "turn right",
        "Up": "forward",
        "Page_Up": "pick up",
        "Tab": "pick up",
        "Page_Down": "drop",
        "Shift_L": "drop",
        "space": "toggle",
        "Return": "done",
    },
}
FAMILY_PREFIXES: dict[str, dict[str, dict[str, Any]]] = {
    "MiniGrid-": {"Discrete": _MINIGRID},
    "BabyAI-": {"Discrete": _MINIGRID},
}

#: Atari action meanings: the key each part of a meaning stands for.
_MEANING_KEYS = {"UP": "Up", "DOWN": "Down", "LEFT": "Left", "RIGHT": "Right", "FIRE": "space"}


def _meaning_keys(meaning: str) -> tuple[str, ...] | None:
    """``"UPRIGHTFIRE"`` -> ("Up", "Right", "space"); None for a meaning of other words."""
    keys: list[str] = []
    rest = meaning
    while rest:
        for word, key in _MEANING_KEYS.items():
            if rest.startswith(word):
                keys.append(key)
                rest = rest[len(word) :]
                break
        else:
            return None
    return tuple(keys)


def derived_from_meanings(env_id: str, meanings: Sequence[str]) -> dict[str, Any]:
    """An Atari-style map: arrows + space, held together for combined meanings."""
    keys: dict[str, int] = {}
    labels: dict[str, str] = {}
    idle = 0
    for action, meaning in enumerate(meanings):
        if meaning == "NOOP":
            idle = action
            continue
        parts = _meaning_keys(meaning)
        if parts is None:
            raise UnknownKeyMap(f"{env_id}: no key for the action meaning {meaning!r}")
        chord = "+".join(parts)
        keys.setdefault(chord, action)
        labels.setdefault(chord, meaning)
    return {"keys": keys, "idle": idle, "labels": labels}


def generic_discrete(n: int) -> dict[str, Any]:
    """Digit (then letter) keys for a ``Discrete(n)`` env without action meanings."""
    return {"keys": {GENERIC_KEYS[i]: i for i in range(1, n)}, "idle": 0, "pointer": None}


def _space_kind(space: gymnasium.Space[Any] | None) -> str | None:
    return None if space is None else type(space).__name__


def _name(env_id: str) -> str:
    """``"gym_foo:Foo-v0"`` -> ``"Foo"``; ``"ALE/Pong-v5"`` -> ``"ALE/Pong"``."""
    return env_id.rpartition(":")[2].rsplit("-v", 1)[0]


@functools.lru_cache(maxsize=64)
def _shipped(env_id: str, kind: str | None) -> dict[str, Any] | None:
    name = _name(env_id)
    tables = [SHIPPED.get(name)] + [
        table for prefix, table in FAMILY_PREFIXES.items() if name.startswith(prefix)
    ]
    for table in tables:
        if table:
            return table.get(kind) if kind else next(iter(table.values()))
    return None


def keymap_for(
    env_id: str,
    space: gymnasium.Space[Any] | None = None,
    meanings: Callable[[], Sequence[str]] | None = None,
) -> KeyMap:
    """The key map for ``env_id`` with action ``space`` (shipped, derived or generic).

    ``meanings`` returns the env's action meanings (Atari's ``get_action_meanings``).
    Raises :class:`UnknownKeyMap` when none fits.
    """
    data = _shipped(env_id, _space_kind(space))
    if data is None and meanings is not None:
        data = derived_from_meanings(env_id, meanings())
    n = getattr(space, "n", None)
    if data is None and _space_kind(space) == "Discrete" and n is not None:
        if int(n) <= len(GENERIC_KEYS) and int(getattr(space, "start", 0)) == 0:
            data = generic_discrete(int(n))
    if data is None:
        raise UnknownKeyMap(env_id)
    return KeyMap.from_json(data, env_id, space)


def env_keymap(env_id: str, env: gymnasium.Env[Any, Any]) -> KeyMap:
    """The key map for a built ``env`` (its action space, and meanings where it has them)."""
    meanings = getattr(env.unwrapped, "get_action_meanings", None)
    return keymap_for(env_id, env.action_space, meanings)
