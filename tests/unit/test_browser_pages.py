"""Browser runtimes without a browser: task ids, the action space, the page's DOM, sandboxing."""

from __future__ import annotations

import os

import pytest

from gymlab.rewarder.spaces import action_from_json, space_from_json, space_to_json
from gymlab.runtime import browser
from gymlab.runtime.envs import ConfigError

pytest.importorskip("miniwob")


def test_task_ids_name_miniwob_pages() -> None:
    assert browser.is_browser_env("miniwob/click-test-2-v1")
    assert not browser.is_browser_env("CartPole-v1")
    assert browser.task_page("miniwob/click-test-2-v1").name == "click-test-2.html"
    with pytest.raises(ConfigError, match="MiniWoB\\+\\+ has no task 'nope'"):
        browser.task_page("miniwob/nope-v1")
    with pytest.raises(ConfigError, match="no task ''"):
        browser.task_page("miniwob/")


def test_action_space_travels_as_json_and_checks_actions() -> None:
    space = browser.action_space()
    assert space_from_json(space_to_json(space)) == space
    click = {"action_type": 1, "coords": [10, 20], "ref": 0, "key": "", "text": ""}
    assert action_from_json(space, click)["action_type"] == 1
    for bad in (
        {**click, "coords": [160, 0]},  # x beyond the task area
        {**click, "action_type": len(browser.ACTION_TYPES)},
        {**click, "text": "x" * (browser.MAX_TEXT + 1)},
    ):
        with pytest.raises(ValueError, match="is not in Dict"):
            action_from_json(space, bad)


def test_dom_flattening_is_bounded() -> None:
    node = {"ref": 1, "tag": "DIV", "left": 0, "top": 0, "width": 1, "height": 1}
    tree = {**node, "children": [dict(node, ref=i) for i in range(2, 2 * browser.MAX_ELEMENTS)]}
    elements: list[dict] = []
    browser._elements(tree, elements)
    assert len(elements) == browser.MAX_ELEMENTS and elements[0]["ref"] == 1


def test_the_sandbox_decision_is_stated() -> None:
    reason = browser.no_sandbox_reason()
    if os.geteuid() == 0:
        assert reason is not None and "root" in reason
    else:
        assert (reason is None) == browser.user_namespaces_work()


def test_env_options_do_not_apply_to_web_tasks() -> None:
    from gymlab.runtime.config import RuntimeConfig

    RuntimeConfig("miniwob/click-test-2-v1", "pw").validate()
    config = RuntimeConfig("miniwob/click-test-2-v1", "pw", keymap_file="k.json", imports=("x",))
    config.validate()  # nothing wrong for a runtime in general: the browser backend refuses
    with pytest.raises(ConfigError, match="web task: --import, --keymap does not apply"):
        browser.BrowserBackend.prepare(config)


@pytest.mark.parametrize(
    ("env_id", "task"),
    [
        ("miniwob/click-test-2-v1", "miniwob/click-test-2-v1"),
        ("miniwob:miniwob/click-test-2-v1", "miniwob/click-test-2-v1"),
    ],
)
def test_every_form_of_a_web_task_id_reaches_the_browser_backend(env_id: str, task: str) -> None:
    from gymlab.runtime.config import RuntimeConfig
    from gymlab.runtime.core import backend_for

    cls = backend_for(env_id)
    assert cls is browser.BrowserBackend
    backend = cls.prepare(RuntimeConfig(env_id, "pw"))
    try:
        assert backend.env_id == task and backend.describe().env_id == task
        assert browser.task_page(env_id).name == "click-test-2.html"
    finally:
        backend.close()


def test_other_ids_reach_the_env_backend() -> None:
    from gymlab.runtime.core import backend_for
    from gymlab.runtime.env_backend import EnvBackend

    assert backend_for("CartPole-v1") is EnvBackend
    assert backend_for("gym_foo:Foo-v0") is EnvBackend
