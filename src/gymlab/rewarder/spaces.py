"""JSON form of Gymnasium action spaces (the gymlab ``action_space`` describe field).

``{"type": "Discrete", "n": 2, "start": 0}``,
``{"type": "Box", "low": [...], "high": [...], "shape": [1], "dtype": "float32"}``,
``{"type": "MultiDiscrete", "nvec": [...]}``, ``{"type": "MultiBinary", "n": ...}``,
``{"type": "Text", "min_length": 0, "max_length": 64, "charset": "..."}``,
``{"type": "Dict", "spaces": {"name": {...}, ...}}`` (values: JSON objects of the same keys).
Non-finite bounds travel as the strings "inf"/"-inf" (strict JSON has no literal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gymlab.rewarder.protocol import to_jsonable

if TYPE_CHECKING:
    import gymnasium


class UnsupportedSpace(ValueError):
    """The space has no JSON form here."""


def space_to_json(space: gymnasium.Space[Any]) -> dict[str, Any]:
    """Describe ``space`` as a JSON-ready dict."""
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "low": to_jsonable(space.low),
            "high": to_jsonable(space.high),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, spaces.MultiDiscrete):
        return {"type": "MultiDiscrete", "nvec": to_jsonable(space.nvec)}
    if isinstance(space, spaces.MultiBinary):
        return {"type": "MultiBinary", "n": to_jsonable(space.n)}
    if isinstance(space, spaces.Text):
        return {
            "type": "Text",
            "min_length": int(space.min_length),
            "max_length": int(space.max_length),
            "charset": "".join(space.character_set),
        }
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(v) for k, v in space.spaces.items()}}
    raise UnsupportedSpace(f"no JSON form for {type(space).__name__}")


def _floats(value: Any) -> Any:
    if isinstance(value, list):
        return [_floats(v) for v in value]
    return float(value)  # float("inf") accepts the string forms


def space_from_json(data: dict[str, Any]) -> gymnasium.Space[Any]:
    """Rebuild a Gymnasium space from :func:`space_to_json` output."""
    import numpy as np
    from gymnasium import spaces

    kind = data.get("type")
    if kind == "Discrete":
        return spaces.Discrete(int(data["n"]), start=int(data.get("start", 0)))
    if kind == "Box":
        dtype = np.dtype(data.get("dtype", "float32"))
        shape = tuple(int(s) for s in data["shape"])
        low = np.asarray(_floats(data["low"]), dtype=dtype).reshape(shape)
        high = np.asarray(_floats(data["high"]), dtype=dtype).reshape(shape)
        return spaces.Box(low=low, high=high, shape=shape, dtype=dtype)
    if kind == "MultiDiscrete":
        return spaces.MultiDiscrete(np.asarray(data["nvec"], dtype=np.int64))
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    if kind == "Text":
        return spaces.Text(
            max_length=int(data["max_length"]),
            min_length=int(data.get("min_length", 1)),
            charset=str(data["charset"]),
        )
    if kind == "Dict":
        return spaces.Dict({str(k): space_from_json(v) for k, v in data["spaces"].items()})
    raise UnsupportedSpace(f"unknown space type {kind!r}")


def value_from_json(space: gymnasium.Space[Any], value: Any) -> Any:
    """Convert a JSON value (an action or an observation) into ``space``'s native form.

    ValueError if it has the wrong form; whether it lies in the space is not checked.
    """
    import numpy as np
    from gymnasium import spaces

    try:
        if isinstance(space, spaces.Discrete):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError("a Discrete value must be an integer")
            return np.int64(value)
        if isinstance(space, (spaces.Box, spaces.MultiDiscrete, spaces.MultiBinary)):
            array = np.asarray(_floats(value) if isinstance(space, spaces.Box) else value)
            return array.astype(space.dtype).reshape(space.shape)
        if isinstance(space, spaces.Text):
            if not isinstance(value, str):
                raise ValueError("a Text value must be a string")
            return value
        if isinstance(space, spaces.Dict):
            if not isinstance(value, dict) or set(value) != set(space.spaces):
                raise ValueError(f"a Dict value must be an object with keys {sorted(space.spaces)}")
            return {k: value_from_json(sub, value[k]) for k, sub in space.spaces.items()}
        raise UnsupportedSpace(f"no JSON values for {type(space).__name__}")
    except UnsupportedSpace:
        raise
    except (TypeError, ValueError, OverflowError) as exc:  # 2**64 overflows int64
        raise ValueError(f"invalid value {_short(value)}: {exc}") from None


def action_from_json(space: gymnasium.Space[Any], value: Any) -> Any:
    """Convert a JSON action into ``space``'s native form; ValueError if it is not in it."""
    from gymnasium import spaces

    try:
        action = value_from_json(space, value)
    except UnsupportedSpace:
        raise
    except ValueError as exc:
        raise ValueError(f"invalid action {str(exc).removeprefix('invalid value ')}") from None
    if not space.contains(action):
        raise ValueError(f"action {_short(value)} is not in {space}")
    return int(action) if isinstance(space, spaces.Discrete) else action


def _short(value: Any) -> str:
    """``repr`` cut to one short line (actions come from the wire)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
