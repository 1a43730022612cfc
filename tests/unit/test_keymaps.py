"""Runtime key maps: held keys / pointer presses -> env actions (shipped, derived, user)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium
import pytest
from gymnasium import spaces
from hypothesis import given
from hypothesis import strategies as st

from gymlab.keymap import KeyMap, KeyMapError, PointerState, UnknownKeyMap
from gymlab.rewarder.spaces import action_from_json
from gymlab.rfb.keysyms import keysym
from gymlab.runtime.keymaps import derived_from_meanings, env_keymap, keymap_for, load_keymap_file

LEFT, RIGHT, UP, DOWN, SPACE, A, D = (
    keysym(k) for k in ("Left", "Right", "Up", "Down", "space", "a", "d")
)

#: ALE's full action set, in its order (the meanings ale-py reports with full_action_space).
ALE_FULL = [
    "NOOP", "FIRE", "UP", "RIGHT", "LEFT", "DOWN", "UPRIGHT", "UPLEFT", "DOWNRIGHT",
    "DOWNLEFT", "UPFIRE", "RIGHTFIRE", "LEFTFIRE", "DOWNFIRE", "UPRIGHTFIRE", "UPLEFTFIRE",
    "DOWNRIGHTFIRE", "DOWNLEFTFIRE",
]  # fmt: skip

SHIPPED = [
    ("CartPole-v1", {}),
    ("MountainCar-v0", {}),
    ("MountainCarContinuous-v0", {}),
    ("Acrobot-v1", {}),
    ("Pendulum-v1", {}),
    ("LunarLander-v3", {}),
    ("LunarLander-v3", {"continuous": True}),
    ("CarRacing-v3", {}),
    ("CarRacing-v3", {"continuous": False}),
    ("BipedalWalker-v3", {}),
    ("MiniGrid-Empty-5x5-v0", {}),
]


def _env_keymap(env_id: str, **kwargs: Any) -> KeyMap:
    if env_id.startswith("MiniGrid"):
        pytest.importorskip("minigrid")
    env = gymnasium.make(env_id, **kwargs)
    try:
        return env_keymap(env_id, env)
    finally:
        env.close()


@pytest.mark.parametrize(("env_id", "kwargs"), SHIPPED)
def test_every_action_of_a_shipped_map_is_in_the_space(env_id: str, kwargs: dict) -> None:
    if env_id.startswith("MiniGrid"):
        pytest.importorskip("minigrid")
    space = gymnasium.make(env_id, **kwargs).action_space
    km = _env_keymap(env_id, **kwargs)
    for binding in km.bindings:
        if not km.additive:  # an additive binding is a change, not an action
            action_from_json(space, binding.action)  # raises if not in the space
        assert space.contains(action_from_json(space, km.action_for([keysym(binding.keys[0])])))
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


def test_lookup_by_name_at_any_version_and_module_prefix() -> None:
    assert keymap_for("CartPole-v0").env_id == "CartPole-v0"
    assert keymap_for("Pendulum-v9").action_for([LEFT]) == [-2.0]
    assert keymap_for("some_pkg:CartPole-v1").action_for([RIGHT]) == 1
    with pytest.raises(UnknownKeyMap):
        keymap_for("Breakout-v5")
    with pytest.raises(UnknownKeyMap):  # a Box with no shipped map: nothing to derive
        keymap_for("Foo-v0", spaces.Box(-1, 1, (5,)))


def test_lunar_lander_discrete_and_continuous() -> None:
    discrete = _env_keymap("LunarLander-v3")
    assert [discrete.action_for([k]) for k in (LEFT, UP, RIGHT)] == [1, 2, 3]
    assert discrete.action_for([]) == 0
    continuous = _env_keymap("LunarLander-v3", continuous=True)
    assert continuous.action_for([]) == [-1.0, 0.0]  # main engine off
    assert continuous.action_for([UP, LEFT]) == [1.0, -1.0]  # clipped to the space


def test_car_racing_keys_add_up_and_clip() -> None:
    km = _env_keymap("CarRacing-v3")
    assert km.additive
    assert km.action_for([LEFT, UP]) == [-1.0, 1.0, 0.0]
    assert km.action_for([LEFT, RIGHT]) == [0.0, 0.0, 0.0]
    assert km.action_for([DOWN]) == pytest.approx([0.0, 0.0, 0.8])
    assert km.keys_for([-1.0, 1.0, 0.0]) == ("Left", "Up")
    assert km.keys_for([0.0, 0.0, 0.0]) == ()
    with pytest.raises(ValueError, match="has no key"):
        km.keys_for([0.5, 0.0, 0.0])
    discrete = _env_keymap("CarRacing-v3", continuous=False)
    assert [discrete.action_for([k]) for k in (LEFT, RIGHT, UP, DOWN)] == [1, 2, 3, 4]


def test_bipedal_walker_joints() -> None:
    km = _env_keymap("BipedalWalker-v3")
    assert km.action_for([keysym("q"), keysym("s")]) == [1.0, -1.0, 0.0, 0.0]
    assert km.action_for([keysym("r")]) == [0.0, 0.0, 0.0, 1.0]
    assert km.pointer_keys is None


def test_minigrid_manual_control_keys() -> None:
    km = _env_keymap("MiniGrid-Empty-5x5-v0")
    assert km.action_for([UP]) == 2
    assert km.action_for([SPACE]) == 5
    assert km.action_for([keysym("Page_Down")]) == 4
    assert km.action_for([]) == 6
    assert km.binding("Up").label == "forward"


def test_atari_map_derived_from_meanings_combines_held_keys() -> None:
    km = KeyMap.from_json(derived_from_meanings("ALE/Foo-v5", ALE_FULL), "ALE/Foo-v5")
    assert km.action_for([UP, RIGHT, SPACE]) == ALE_FULL.index("UPRIGHTFIRE")
    assert km.action_for([SPACE, UP]) == ALE_FULL.index("UPFIRE")
    assert km.action_for([DOWN]) == ALE_FULL.index("DOWN")
    assert km.action_for([]) == 0
    assert km.binding("Up+Right+space").label == "UPRIGHTFIRE"
    for binding in km.bindings:  # the client holds these keys for this action
        assert km.action_for([keysym(k) for k in km.keys_for(binding.action)]) == binding.action


def test_atari_minimal_set_gives_the_largest_combination_it_has() -> None:
    pong = ["NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"]
    km = keymap_for("ALE/Pong-v5", spaces.Discrete(6), lambda: pong)
    assert km.action_for([UP, RIGHT, SPACE]) == 4  # no UP in Pong: RIGHTFIRE
    assert km.action_for([RIGHT, LEFT]) == 3  # the latest press wins a tie
    assert km.action_for([UP]) == 0  # unbound: idle


def test_real_ale_meanings_derive_a_map() -> None:
    pytest.importorskip("ale_py")
    km = _env_keymap("ALE/Pong-v5")
    assert km.action_for([RIGHT, SPACE]) == 4
    assert km.binding("Right+space").label == "RIGHTFIRE"


def test_generic_discrete_map_uses_digit_keys() -> None:
    km = keymap_for("Foo-v0", spaces.Discrete(4))
    assert [km.action_for([keysym(c)]) for c in "123"] == [1, 2, 3]
    assert km.action_for([]) == 0
    with pytest.raises(UnknownKeyMap):
        keymap_for("Foo-v0", spaces.Discrete(100))


def test_json_form_round_trips() -> None:
    for env_id, kwargs in SHIPPED[:6]:
        km = _env_keymap(env_id, **kwargs)
        again = KeyMap.from_json(json.loads(json.dumps(km.to_json())), env_id)
        assert again == km


@given(st.lists(st.sampled_from([LEFT, RIGHT, UP, DOWN, SPACE, A, 0x71]), max_size=6))
def test_a_derived_map_always_gives_an_action_in_its_space(held: list[int]) -> None:
    km = KeyMap.from_json(derived_from_meanings("ALE/X-v5", ALE_FULL), "ALE/X-v5")
    assert 0 <= km.action_for(held) < len(ALE_FULL)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "an object with keys and idle"),
        ({"keys": {"Left": 0}}, "no 'idle' action"),
        ({"keys": {}, "idle": 0}, "'keys' must be a non-empty object"),
        ({"keys": {"Lfet": 0}, "idle": 1}, "'Lfet': unknown key name 'Lfet'"),
        ({"keys": {"Left": 7}, "idle": 1}, "the action of 'Left': action 7 is not in Discrete(3)"),
        ({"keys": {"Left": 0}, "idle": "x"}, "idle action 'x'"),
        ({"keys": {"Left": 0}, "idle": 1, "colour": 2}, "unknown key map field 'colour'"),
        ({"keys": {"Left": 0}, "idle": 1, "labels": {"Left": 3}}, "'labels' must be"),
        ({"keys": {"Left": [0.0]}, "idle": [1.0], "additive": "yes"}, "'additive' must be"),
    ],
)
def test_bad_key_maps_fail_in_one_line(data: Any, message: str) -> None:
    with pytest.raises(KeyMapError) as info:
        KeyMap.from_json(data, "MountainCar-v0", spaces.Discrete(3))
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_user_key_map_files(tmp_path: Path) -> None:
    space = spaces.Discrete(3)
    as_json = tmp_path / "keys.json"
    as_json.write_text('{"keys": {"j": 0, "l": 2, "j+l": 1}, "idle": 1}')
    km = load_keymap_file(as_json, "MountainCar-v0", space)
    assert km.action_for([keysym("j")]) == 0
    assert km.action_for([keysym("l"), keysym("j")]) == 1  # the chord beats its keys
    assert km.pointer_keys is None  # no Left/Right bound: the pointer stays unbound
    as_yaml = tmp_path / "keys.yml"
    as_yaml.write_text("keys:\n  Up: 2\n  Down: 0\nidle: 1\n")
    assert load_keymap_file(as_yaml, "MountainCar-v0", space).action_for([UP]) == 2
    broken = tmp_path / "broken.json"
    broken.write_text("{keys")
    with pytest.raises(KeyMapError, match=r"broken.json is not valid JSON"):
        load_keymap_file(broken, "MountainCar-v0", space)
    with pytest.raises(KeyMapError, match="cannot read key map"):
        load_keymap_file(tmp_path / "missing.json", "MountainCar-v0", space)


def test_a_client_holds_a_key_for_an_action_that_is_also_idle() -> None:
    km = keymap_for("CartPole-v1")  # idle alternates 0/1, and Left/Right give 0/1 too
    assert km.keys_for(1) == ("Right",) and km.keys_for(0) == ("Left",)
    assert keymap_for("MountainCar-v0").keys_for(1) == ()
