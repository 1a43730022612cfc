"""Runtime key maps: held keys / pointer presses -> env actions."""

from __future__ import annotations

import gymnasium
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gymlab.rewarder.spaces import action_from_json
from gymlab.runtime.keymaps import KEYMAPS, KEYSYMS, PointerState, UnknownKeyMap, keymap_for

LEFT, RIGHT, A, D = (KEYSYMS[k] for k in ("Left", "Right", "a", "d"))

CLASSIC = [
    "CartPole-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Acrobot-v1",
    "Pendulum-v1",
]


def test_keysym_values_match_xlib() -> None:
    xk = pytest.importorskip("Xlib.XK")
    for name, value in KEYSYMS.items():
        assert xk.string_to_keysym(name) == value, name


@pytest.mark.parametrize("env_id", CLASSIC)
def test_every_action_is_valid_for_the_env(env_id: str) -> None:
    space = gymnasium.make(env_id).action_space
    km = keymap_for(env_id)
    for _, action in km.bindings:
        action_from_json(space, action)  # raises if not in the space
    for action in km.idle:
        action_from_json(space, action)


@pytest.mark.parametrize(
    ("env_id", "left", "right", "noop"),
    [
        ("CartPole-v1", 0, 1, 0),
        ("MountainCar-v0", 0, 2, 1),
        ("MountainCarContinuous-v0", [-1.0], [1.0], [0.0]),
        ("Acrobot-v1", 0, 2, 1),
        ("Pendulum-v1", [-2.0], [2.0], [0.0]),
    ],
)
def test_left_right_and_noop(env_id: str, left: object, right: object, noop: object) -> None:
    km = keymap_for(env_id)
    assert km.action_for([LEFT]) == left
    assert km.action_for([D]) == right
    assert km.action_for([RIGHT]) == right
    assert km.noop == noop


def test_cartpole_idle_alternates() -> None:
    km = keymap_for("CartPole-v1")
    assert [km.action_for([], tick=t) for t in range(4)] == [0, 1, 0, 1]


def test_latest_press_wins_and_unbound_keys_are_ignored() -> None:
    km = keymap_for("MountainCar-v0")
    assert km.action_for([LEFT, RIGHT]) == 2
    assert km.action_for([RIGHT, LEFT]) == 0
    assert km.action_for([LEFT, 0x71]) == 0  # 'q' is not bound: Left still held
    assert km.action_for([0x44]) == 2  # Shift+d arrives as 'D'


def test_pointer_halves() -> None:
    km = keymap_for("MountainCar-v0")
    assert km.action_for([], PointerState(10, 5, 1), width=600) == 0
    assert km.action_for([], PointerState(590, 5, 1), width=600) == 2
    assert km.action_for([], PointerState(590, 5, 0), width=600) == 1  # not pressed
    assert km.action_for([LEFT], PointerState(590, 5, 1), width=600) == 0  # keys first


def test_lookup() -> None:
    assert keymap_for("CartPole-v0").env_id == "CartPole-v0"
    assert keymap_for("Pendulum-v9") is KEYMAPS["Pendulum-v1"]
    with pytest.raises(UnknownKeyMap):
        keymap_for("Breakout-v5")


@given(st.lists(st.sampled_from([LEFT, RIGHT, A, D, 0x20, 0x71]), max_size=8), st.integers(0, 99))
def test_action_always_in_space(held: list[int], tick: int) -> None:
    km = keymap_for("Acrobot-v1")
    assert km.action_for(held, tick=tick) in (0, 1, 2)
