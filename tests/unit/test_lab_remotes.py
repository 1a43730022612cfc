"""`invoke remotes`: the lab's runtimes as the gym_runtime role recorded them in each host's fact
(gymlab.lab.remotes); the real read is proved against molecule hosts (tests/infra)."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from gymlab.client.remotes import Remote, format_remotes, parse_remotes
from gymlab.lab import remotes
from gymlab.lab.errors import LabError
from gymlab.procfs import free_port

FACT = {
    "mode": "container",
    "bind": "0.0.0.0",
    "novnc": True,
    "password_file": "/etc/gymlab/runtime/password",
    "instances": [
        {"index": 0, "env_id": "CartPole-v1", "mode": "lockstep", "fps": 60.0,
         "vnc_port": 6000, "rewarder_port": 15900, "novnc_port": 6080},
        {"index": 1, "env_id": "ALE/Pong-v5", "mode": "realtime", "fps": 30.0,
         "vnc_port": 6001, "rewarder_port": 15901, "novnc_port": 6081},
    ],
}  # fmt: skip


@pytest.fixture(autouse=True)
def venv_path(monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")


def lab(tmp_path: Path) -> Path:
    port = free_port()  # nothing listens: the hosts are unreachable at once
    inv = tmp_path / "mylab"
    inv.mkdir()
    (inv / "hosts.yml").write_text(
        textwrap.dedent(
            f"""\
            all:
              vars: {{ansible_host: 127.0.0.1, ansible_port: {port}}}
              children:
                runtime_hosts:
                  hosts:
                    rt01: {{}}
                    rt02: {{gymlab_remote_address: runtimes.example.test}}
                jupyter_hosts:
                  hosts:
                    notebook01: {{}}
            """
        )
    )
    return inv


def test_the_fact_gives_every_runtime_with_its_ports_and_what_it_serves():
    found = remotes.runtimes_of("rt02", "runtimes.example.test", FACT)
    assert [(rt.host, rt.index, rt.env_id, rt.mode, rt.fps, rt.novnc_port) for rt in found] == [
        ("rt02", 0, "CartPole-v1", "lockstep", 60.0, 6080),
        ("rt02", 1, "ALE/Pong-v5", "realtime", 30.0, 6081),
    ]
    text = format_remotes([rt.remote for rt in found])
    assert text == "vnc://runtimes.example.test:6000+15900,runtimes.example.test:6001+15901"
    assert len(parse_remotes(text).remotes) == 2  # the string is what the client parses
    assert remotes.runtimes_of("rt03", "h", {"instances": []}) == []


def test_addresses_follow_the_inventory():
    both = {"gymlab_remote_address": "a.test", "ansible_host": "b"}
    assert remotes.host_address("rt01", both) == "a.test"
    assert remotes.host_address("rt01", {"ansible_host": "10.9.0.1"}) == "10.9.0.1"
    assert remotes.host_address("rt01", {}) == "rt01"


def test_hosts_whose_fact_cannot_be_read_are_named_in_one_error(tmp_path):
    with pytest.raises(LabError) as caught:
        remotes.lab_remotes(lab(tmp_path))
    message = str(caught.value)
    assert message.startswith(f"cannot read {remotes.FACT_FILE} from rt01 (")
    assert "; rt02 (" in message and message.endswith("provision the host(s) first")
    assert "\n" not in message


def test_only_one_host_and_a_host_without_runtimes(tmp_path):
    inv = lab(tmp_path)
    assert remotes.lab_runtimes(inv, only="notebook01") == []
    with pytest.raises(LabError, match=r"from rt02 \(") as caught:
        remotes.lab_runtimes(inv, only="rt02")
    assert "rt01" not in str(caught.value)


def test_password_only_when_asked_and_only_from_the_secrets_file(tmp_path, monkeypatch):
    inv = lab(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(LabError, match="provision the lab first"):
        remotes.remotes_string(inv, with_password=True)
    secrets = tmp_path / "home/.config/gymlab/secrets"
    assert remotes.password_file(inv) == secrets / "mylab/runtime-password"


def test_the_password_is_where_the_inventory_keeps_the_secrets(tmp_path, monkeypatch):
    """gym_runtime_secrets_dir moves the generated password (as the role and the summary say);
    a password with URL characters comes back quoted and parses back whole."""
    inv = lab(tmp_path)
    hosts = inv / "hosts.yml"
    hosts.write_text(
        hosts.read_text().replace("vars: {", f"vars: {{gym_runtime_secrets_dir: {tmp_path}/vault, ")
    )
    secret = tmp_path / "vault/mylab/runtime-password"
    assert remotes.password_file(inv) == secret
    secret.parent.mkdir(parents=True)
    secret.write_text("a b&c?=%\n")
    monkeypatch.setattr(remotes, "lab_remotes", lambda inventory: [Remote("10.0.0.1", 5900, 15900)])
    text = remotes.remotes_string(inv, with_password=True)
    assert text == "vnc://10.0.0.1:5900+15900?password=a%20b%26c%3F%3D%25"
    assert parse_remotes(text).password == "a b&c?=%"


def test_a_lab_without_runtime_hosts_is_a_clear_error(tmp_path):
    inv = tmp_path / "empty"
    inv.mkdir()
    (inv / "hosts.yml").write_text("all:\n  hosts:\n    h1: {}\n")
    with pytest.raises(LabError, match="no hosts in group runtime_hosts"):
        remotes.lab_remotes(inv)
