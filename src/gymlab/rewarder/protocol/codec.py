"""JSON in and out of the wire, with the protocol's limits (size, depth, finite numbers)."""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from typing import Any

from gymlab.protocol_errors import RemoteProtocolError
from gymlab.rewarder.protocol.constants import MAX_JSON_DEPTH


class MessageTooLarge(RemoteProtocolError):
    """An incoming frame exceeds the size limit; the connection must be closed (1009)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, fatal=True)


def to_jsonable(value: Any) -> Any:
    """Convert ``value`` (possibly holding numpy scalars/arrays) into strict-JSON types.

    Non-finite floats become the strings ``"inf"``, ``"-inf"`` and ``"nan"``
    because strict JSON (and browsers' ``JSON.parse``) has no literal for them.
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else _nonfinite_name(value)
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, without importing numpy
    if callable(tolist):
        return to_jsonable(tolist())
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def jsonable_items(info: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``info`` that have a JSON form (Gymnasium infos may hold anything)."""
    out: dict[str, Any] = {}
    for key, value in info.items():
        try:
            out[str(key)] = to_jsonable(value)
        except (TypeError, RecursionError):
            continue
    return out


def _nonfinite_name(value: float) -> str:
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not strict JSON")


def _depth(value: Any) -> int:
    """Nesting depth of decoded JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def loads(text: str | bytes, max_bytes: int | None) -> Any:
    """Strict, size- and depth-bounded ``json.loads``; raises :class:`RemoteProtocolError`."""
    size = len(text.encode("utf-8")) if isinstance(text, str) else len(text)
    if max_bytes is not None and size > max_bytes:
        raise MessageTooLarge(f"message of {size} bytes exceeds the {max_bytes}-byte limit")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        data = None
        too_deep = True
    except (ValueError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"malformed JSON: {exc}") from None
    else:
        too_deep = _depth(data) > MAX_JSON_DEPTH
    if too_deep:
        raise RemoteProtocolError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def dumps(payload: Any) -> str:
    """Compact, strict JSON."""
    return json.dumps(to_jsonable(payload), separators=(",", ":"), allow_nan=False)
