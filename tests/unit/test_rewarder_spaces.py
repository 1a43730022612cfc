"""JSON form of action spaces and actions (describe's gymlab action_space field)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium import spaces

from gymlab.rewarder.spaces import (
    UnsupportedSpace,
    action_from_json,
    space_from_json,
    space_to_json,
)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(2),
        spaces.Discrete(3, start=-1),
        spaces.Box(-1.0, 1.0, (1,), np.float32),
        spaces.Box(low=np.array([-np.inf, 0.0]), high=np.array([np.inf, 5.0]), dtype=np.float64),
        spaces.MultiDiscrete([3, 4]),
        spaces.MultiBinary(5),
    ],
)
def test_roundtrip_through_strict_json(space: spaces.Space) -> None:
    text = json.dumps(space_to_json(space), allow_nan=False)
    assert space_from_json(json.loads(text)) == space


def test_discrete_json_shape() -> None:
    assert space_to_json(spaces.Discrete(2)) == {"type": "Discrete", "n": 2, "start": 0}


def test_unsupported() -> None:
    with pytest.raises(UnsupportedSpace):
        space_to_json(spaces.Graph(spaces.Discrete(2), None))
    with pytest.raises(UnsupportedSpace):
        space_from_json({"type": "Graph"})


def test_dict_and_text_round_trip_and_check_values() -> None:
    space = spaces.Dict(
        {"kind": spaces.Discrete(3), "at": spaces.Box(0, 9, (2,)), "text": spaces.Text(8)}
    )
    assert space_from_json(json.loads(json.dumps(space_to_json(space)))) == space
    action = action_from_json(space, {"kind": 2, "at": [1.5, 2], "text": "hi"})
    assert action["kind"] == 2 and action["text"] == "hi" and action["at"].tolist() == [1.5, 2.0]
    with pytest.raises(ValueError, match="an object with keys"):
        action_from_json(space, {"kind": 2})
    with pytest.raises(ValueError, match="a Text value must be a string"):
        action_from_json(space, {"kind": 2, "at": [1, 2], "text": 5})
    with pytest.raises(ValueError, match="is not in Dict"):
        action_from_json(space, {"kind": 2, "at": [1, 20], "text": "hi"})


def test_actions_are_converted_and_checked() -> None:
    assert action_from_json(spaces.Discrete(2), 1) == 1
    box = action_from_json(spaces.Box(-2.0, 2.0, (1,), np.float32), [1.5])
    assert box.dtype == np.float32 and box.shape == (1,)
    assert action_from_json(spaces.Box(-2.0, 2.0, (1,), np.float32), 1.5).shape == (1,)
    for space, bad in [
        (spaces.Discrete(2), 2),
        (spaces.Discrete(2), True),
        (spaces.Discrete(2), "1"),
        (spaces.Box(-2.0, 2.0, (1,), np.float32), [3.0]),
        (spaces.Box(-2.0, 2.0, (1,), np.float32), [1.0, 1.0]),
        (spaces.Box(-2.0, 2.0, (1,), np.float32), "left"),
    ]:
        with pytest.raises(ValueError):
            action_from_json(space, bad)
