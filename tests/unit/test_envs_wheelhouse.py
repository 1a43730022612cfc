"""The profiles' wheelhouse on the control machine: the client wheel is built once per source."""

from __future__ import annotations

import pytest

from gymlab.envs import wheelhouse


def test_the_client_wheel_is_built_once_per_source(tmp_path, monkeypatch):
    assert wheelhouse.build_client(tmp_path)
    (wheel,) = (tmp_path / "gymlab").glob("gymlab-*.whl")

    def no_build(*args, **kwargs):
        pytest.fail("the client wheel was built again from the same sources")

    monkeypatch.setattr(wheelhouse, "build_host_wheel", no_build)
    assert not wheelhouse.build_client(tmp_path)
    # a folder that lost its wheel is built again
    wheel.unlink()
    monkeypatch.undo()
    assert wheelhouse.build_client(tmp_path)
    assert wheel.is_file()
