"""gymlab.lab.summary: what runs where, from a temporary inventory and secrets directory."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from gymlab.lab import summary
from gymlab.lab.errors import LabError

TOKEN = "t0ken-never-printed"
PASSWORD = "passw0rd-never-printed"


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
                jupyter_hosts:
                  hosts:
                    box:
                      ansible_host: 10.9.0.5
                      jupyterlab_users: [{name: gymlab, port: 8890}]
                      jupyterlab_listen_address: 0.0.0.0
                    notebooks:
                      jupyterlab_users: [alice, bob]
                runtime_hosts:
                  hosts:
                    box:
                      gym_runtime_novnc: true
                      gym_runtime_instances:
                        - {env_id: CartPole-v1}
                        - {env_id: Acrobot-v1, mode: realtime}
                other:
                  hosts:
                    plain: {}
            """
        )
    )
    return inv


def fact(*instances: tuple[str, str], novnc: bool = True) -> dict:
    """A gym_runtime fact as the role writes it (its layout from the default base ports)."""
    return {
        "novnc": novnc,
        "instances": [
            {"index": i, "env_id": env_id, "mode": mode, "fps": 60.0, "vnc_port": 5900 + i,
             "rewarder_port": 15900 + i, "novnc_port": 6080 + i if novnc else None}
            for i, (env_id, mode) in enumerate(instances)
        ],
    }  # fmt: skip


def jupyter(listen: str, *servers: tuple[str, int]) -> dict:
    """A jupyterlab fact as the role writes it."""
    return {
        "listen": listen,
        "runtime_access": False,
        "servers": [
            {"name": name, "port": port, "profile": "modern", "token": "generated"}
            for name, port in servers
        ],
    }


@pytest.fixture(autouse=True)
def facts(monkeypatch) -> dict:
    """The hosts' gym_runtime facts (reading them over SSH is tests/infra's to prove)."""
    known = {"box": fact(("CartPole-v1", "lockstep"), ("Acrobot-v1", "realtime")),
             "sandbox": fact(("CartPole-v1", "lockstep"))}  # fmt: skip
    jupyter_facts = {
        "box": jupyter("0.0.0.0", ("gymlab", 8890)),
        "notebooks": jupyter("127.0.0.1", ("alice", 8888), ("bob", 8889)),
        "sandbox": jupyter("0.0.0.0", ("gymlab", 8888)),
    }

    def read_facts(inventory, hosts, role="gym_runtime"):
        table = known if role == "gym_runtime" else jupyter_facts
        missing = [h for h in hosts if h not in table]
        if missing:
            raise LabError(f"cannot read the fact from {missing[0]} (unreachable)")
        return {h: table[h] for h in hosts}

    monkeypatch.setattr(summary.remotes, "read_facts", read_facts)
    return known


@pytest.fixture
def secrets(tmp_path: Path) -> Path:
    base = tmp_path / "secrets"
    (base / "mylab").mkdir(parents=True)
    (base / "mylab" / "jupyter-box-gymlab").write_text(TOKEN + "\n")
    (base / "mylab" / "runtime-password").write_text(PASSWORD + "\n")
    return base


def test_a_host_with_jupyterlab_and_runtimes(lab, secrets):
    text = summary.host_summary(lab, "box", secrets_dir=secrets)
    lines = text.splitlines()
    assert lines[0] == f"box ({lab}):"
    assert "  JupyterLab: http://10.9.0.5:8890/lab  (user gymlab, modern)" in lines
    assert f"    token: {secrets}/mylab/jupyter-box-gymlab" in lines
    # Ports, modes and noVNC come from what the gym_runtime role recorded on the host.
    assert "  runtimes: vnc://10.9.0.5:5900+15900,10.9.0.5:5901+15901" in lines
    assert "    0: CartPole-v1 (lockstep), VNC 5900, rewarder 15900" in lines
    assert "    1: Acrobot-v1 (realtime), VNC 5901, rewarder 15901" in lines
    assert f"    password: {secrets}/mylab/runtime-password" in lines
    assert any(line.startswith("  noVNC 0: http://10.9.0.5:6080/") for line in lines)
    assert any(line.startswith("  noVNC 1: http://10.9.0.5:6081/") for line in lines)
    remotes = f"  remotes string: invoke remotes --inventory {lab} (--with-password to include it)"
    assert remotes in lines
    assert f"  check the host: invoke verify --host box --inventory {lab}" in lines
    assert TOKEN not in text and PASSWORD not in text


def test_loopback_servers_get_the_tunnel_and_missing_tokens_say_so(lab, secrets):
    text = summary.host_summary(lab, "notebooks", secrets_dir=secrets)
    lines = text.splitlines()
    # Bare user names count up from the role's base port; the default binds to loopback.
    assert "  JupyterLab: http://127.0.0.1:8888/lab  (user alice, modern)" in lines
    assert "  JupyterLab: http://127.0.0.1:8889/lab  (user bob, modern)" in lines
    assert "    on the host only: ssh -L 8889:127.0.0.1:8889 notebooks" in lines
    assert (
        f"    token: {secrets}/mylab/jupyter-notebooks-bob (not generated yet: provision first)"
        in lines
    )
    assert "runtimes" not in text and "noVNC" not in text


def test_a_host_with_neither_gets_the_commands_only(lab, secrets):
    lines = summary.host_summary(lab, "plain", secrets_dir=secrets).splitlines()
    assert len(lines) == 3
    assert lines[2] == f"  check the host: invoke verify --host plain --inventory {lab}"


def test_a_missing_password_and_an_inventory_password(lab, tmp_path, facts):
    empty = tmp_path / "empty-secrets"
    text = summary.host_summary(lab, "box", secrets_dir=empty)
    assert f"password: {empty}/mylab/runtime-password (not generated yet: provision first)" in text
    hosts = lab / "hosts.yml"  # a password set in the inventory, and no noVNC
    hosts.write_text(
        hosts.read_text().replace("gym_runtime_novnc: true", "gym_runtime_password: y")
    )
    facts["box"] = fact(("CartPole-v1", "lockstep"), novnc=False)
    text = summary.host_summary(lab, "box", secrets_dir=empty)
    assert "password: set in the inventory (gym_runtime_password)" in text
    assert "noVNC" not in text


def test_runtimes_whose_fact_cannot_be_read_say_why(lab, secrets, facts):
    del facts["box"]
    lines = summary.host_summary(lab, "box", secrets_dir=secrets).splitlines()
    assert "  runtimes: cannot read the fact from box (unreachable)" in lines
    assert f"    password: {secrets}/mylab/runtime-password" in lines


def test_servers_come_from_the_hosts_fact_not_the_inventory(lab, secrets, monkeypatch):
    # The role recorded another port than the inventory names (e.g. the inventory changed
    # since): the summary says what serves; a fact it cannot read is said in one line.
    real = summary.remotes.read_facts

    def moved(inventory, hosts, role="gym_runtime"):
        found = real(inventory, hosts, role)
        if role == "jupyterlab":
            found["box"] = jupyter("10.9.0.5", ("gymlab", 9999))
        return found

    monkeypatch.setattr(summary.remotes, "read_facts", moved)
    text = summary.host_summary(lab, "box", secrets_dir=secrets)
    assert "  JupyterLab: http://10.9.0.5:9999/lab  (user gymlab, modern)" in text.splitlines()

    def unreadable(inventory, hosts, role="gym_runtime"):
        if role == "jupyterlab":
            raise LabError("cannot read /etc/ansible/facts.d/jupyterlab.fact from box (down)")
        return real(inventory, hosts, role)

    monkeypatch.setattr(summary.remotes, "read_facts", unreadable)
    lines = summary.host_summary(lab, "box", secrets_dir=secrets).splitlines()
    assert "  JupyterLab: cannot read /etc/ansible/facts.d/jupyterlab.fact from box (down)" in lines


def test_an_unknown_host_is_a_clear_error(lab, secrets):
    with pytest.raises(LabError, match="no host nope in"):
        summary.host_summary(lab, "nope", secrets_dir=secrets)


def test_the_embedded_sandbox_is_described(monkeypatch, tmp_path):
    """The local inventory as shipped: JupyterLab and runtimes on the container's address."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(summary.remotes, "container_address", lambda name: "172.17.0.9")
    text = summary.host_summary(summary.DEFAULT_INVENTORY, "sandbox", secrets_dir=tmp_path)
    assert "JupyterLab: http://172.17.0.9:8888/lab  (user gymlab, modern)" in text
    assert "runtimes: vnc://172.17.0.9:5900+15900" in text
    assert "noVNC 0: http://172.17.0.9:6080/" in text
    assert "check the host: invoke verify --host sandbox\n" in text + "\n"
    assert "invoke remotes --inventory inventories/local " in text
