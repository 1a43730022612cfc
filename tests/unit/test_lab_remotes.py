"""`invoke remotes`: the lab's runtimes laid out as the gym_runtime role deploys them."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from gymlab.client.remotes import parse_remotes
from gymlab.lab import remotes
from gymlab.lab.errors import LabError


@pytest.fixture
def lab(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    inv = tmp_path / "mylab"
    inv.mkdir()
    (inv / "hosts.yml").write_text(
        textwrap.dedent(
            """\
            all:
              children:
                runtime_hosts:
                  hosts:
                    gpu01: {ansible_host: 10.9.0.1}
                    gpu02:
                      gymlab_remote_address: runtimes.example.test
                      gym_runtime_vnc_base_port: 6000
                      gym_runtime_instances:
                        - {env_id: CartPole-v1}
                        - {env_id: Acrobot-v1}
                jupyter_hosts:
                  hosts:
                    notebook01: {}
            """
        )
    )
    return inv


def test_every_runtime_of_the_lab_in_one_string(lab):
    text = remotes.remotes_string(lab)
    assert text == (
        "vnc://10.9.0.1:5900+15900,runtimes.example.test:6000+15900,runtimes.example.test:6001+15901"
    )
    # The string is what the client parses.
    assert len(parse_remotes(text).remotes) == 3


def test_password_only_when_asked_and_only_from_the_secrets_file(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(LabError, match="provision the lab first"):
        remotes.remotes_string(lab, with_password=True)
    secret = remotes.password_file(lab)
    assert secret == tmp_path / "home/.config/gymlab/secrets/mylab/runtime-password"
    secret.parent.mkdir(parents=True)
    secret.write_text("s3cret\n")
    assert remotes.remotes_string(lab, with_password=True).endswith("?password=s3cret")
    assert "s3cret" not in remotes.remotes_string(lab)


def test_a_lab_without_runtime_hosts_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    inv = tmp_path / "empty"
    inv.mkdir()
    (inv / "hosts.yml").write_text("all:\n  hosts:\n    h1: {}\n")
    with pytest.raises(LabError, match="no hosts in group runtime_hosts"):
        remotes.lab_remotes(inv)
