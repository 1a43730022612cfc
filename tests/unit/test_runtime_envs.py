"""Env ids the Gymnasium way: module prefixes, imports, families, make kwargs, resets."""

from __future__ import annotations

import sys

import pytest

from gymlab.runtime.envs import (
    ConfigError,
    EnvCatalog,
    make_env,
    parse_env_kwargs,
    parse_imports,
    split_env_id,
)


def test_split_env_id() -> None:
    assert split_env_id("gym_foo:Foo-v0") == ("gym_foo", "Foo-v0")
    assert split_env_id("gym_foo.envs:Foo-v0") == ("gym_foo.envs", "Foo-v0")
    assert split_env_id("ALE/Pong-v5") == (None, "ALE/Pong-v5")
    assert split_env_id(":Foo-v0") == (None, ":Foo-v0")


def test_parse_imports_accepts_repeats_commas_and_empty_values() -> None:
    assert parse_imports(["gym_foo, ale_py", "", "gym_foo", "a.b"]) == ("gym_foo", "ale_py", "a.b")
    assert parse_imports([""]) == ()
    with pytest.raises(ConfigError, match="'os;rm' is not a module name"):
        parse_imports(["os;rm"])


def test_parse_env_kwargs() -> None:
    assert parse_env_kwargs("") == {} and parse_env_kwargs(None) == {}
    assert parse_env_kwargs('{"frameskip": 1}') == {"frameskip": 1}
    for text, message in [
        ("{frameskip: 1}", "is not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"render_mode": "human"}', "render_mode is the runtime's"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_env_kwargs(text)


def test_module_prefix_imports_and_registers() -> None:
    catalog = EnvCatalog()
    catalog.load("gym_foo:Foo-v0")
    assert catalog.imported == ["gym_foo"]
    env = make_env("gym_foo:Foo-v0", {"goal": 3})
    assert env.unwrapped.goal == 3  # type: ignore[attr-defined]
    env.close()


def test_family_module_is_imported_for_plain_ids() -> None:
    pytest.importorskip("minigrid")
    catalog = EnvCatalog()
    catalog.load("MiniGrid-Empty-5x5-v0")
    assert "minigrid" in sys.modules


@pytest.mark.parametrize(
    ("env_id", "imports", "message"),
    [
        ("nope_pkg:Foo-v0", (), "cannot make 'nope_pkg:Foo-v0': cannot import nope_pkg"),
        ("Nope-v0", ("gym_foo",), "(modules imported: gym_foo"),
        ("CartPole-v1", ("nope_pkg",), "cannot import nope_pkg"),
    ],
)
def test_load_errors_name_the_id_the_modules_and_the_reason(
    env_id: str, imports: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        EnvCatalog().load(env_id, imports)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_reset_may_not_name_a_module_the_runtime_did_not_import() -> None:
    catalog = EnvCatalog()
    catalog.load("CartPole-v1", ("gym_foo",))
    catalog.allowed("gym_foo:Foo-v0")
    catalog.allowed("MountainCar-v0")
    with pytest.raises(ConfigError, match="imports no module 'this'"):
        catalog.allowed("this:Foo-v0")
    assert "this" not in sys.modules


def test_make_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match=r"with \{\"sideways\": 1\}: TypeError"):
        make_env("CartPole-v1", {"sideways": 1})
