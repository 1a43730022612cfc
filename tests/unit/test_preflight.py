"""The preflight: inventory values checked against the roles' argument specs on the controller,
before any host is contacted (plugins/action/gymlab_preflight.py, playbooks/preflight.yml), and
the invoke tasks that go through it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "plugins" / "action"))
import gymlab_preflight as preflight  # noqa: E402

SPECS = preflight.load_specs()


def problems(**variables) -> list[str]:
    return preflight.check_host("rt01", variables, SPECS)


@pytest.mark.parametrize(
    ("variables", "line"),
    [
        ({"gym_runtime_vnc_base_port": "many"},
         "rt01: gym_runtime_vnc_base_port = 'many': expected int"),
        ({"gym_runtime_instances": "many"},
         "rt01: gym_runtime_instances = 'many': expected list of dict"),
        ({"gym_runtime_mode": "vm"},
         "rt01: gym_runtime_mode = 'vm': expected str, one of: container, native"),
        ({"headless_display_gl": "maybe"},
         "rt01: headless_display_gl = 'maybe': expected bool"),
        ({"gym_runtme_password": "x"},
         "rt01: gym_runtme_password: not a variable of any role;"
         " did you mean gym_runtime_password?"),
        ({"cuda_toolkit": ["12.4"]},
         "rt01: cuda_toolkit: not a variable of role cuda; did you mean cuda_toolkits?"),
    ],
)  # fmt: skip
def test_one_line_naming_host_variable_value_and_what_was_expected(variables, line):
    assert problems(**variables) == [line]


def test_nested_options_are_checked_too():
    [line] = problems(gym_runtime_instances=[{"env_idd": "CartPole-v1"}])
    assert line.startswith("rt01: gym_runtime_instances = [{'env_idd': 'CartPole-v1'}]: expected")
    assert "env_id" in line and "env_idd" in line
    [line] = problems(gym_runtime_instances=[{"env_id": "CartPole-v1", "mode": "fast"}])
    assert "lockstep, realtime" in line


def test_good_values_templates_and_other_variables_pass():
    assert (
        problems(
            gym_runtime_vnc_base_port="6000",  # what a template renders: converts to int
            gym_runtime_instances=[{"env_id": "ALE/Pong-v5", "mode": "realtime", "fps": 30}],
            cuda_toolkits="{{ lab_cuda_versions }}",  # a template: the role checks it
            ansible_host="10.0.0.1",
            my_lab_owner="alice",
        )
        == []
    )


def test_every_role_spec_is_read():
    roles = {p.parents[1].name for p in (REPO / "roles").glob("*/meta/argument_specs.yml")}
    assert set(SPECS) == roles
    assert all(SPECS[role] for role in roles)


# --- real ansible-playbook runs ---------------------------------------------------------------


class Listener:
    """A loopback TCP port standing in for the hosts' SSH: counts every connection attempt."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.close()  # no SSH banner: the client gives up at once

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def listener():
    ear = Listener()
    yield ear
    ear.close()


def lab(tmp_path: Path, port: int, **runtime_vars) -> Path:
    """A lab inventory whose two hosts' SSH port is ``port`` on loopback."""
    ssh = {"ansible_host": "127.0.0.1", "ansible_port": port, "ansible_user": "nobody",
           "ansible_ssh_common_args": "-o ConnectTimeout=3 -o ConnectionAttempts=1"}  # fmt: skip
    inv = tmp_path / "mylab"
    inv.mkdir()
    hosts = {"rt01": {**ssh, **runtime_vars}, "rt02": dict(ssh)}
    (inv / "hosts.yml").write_text(
        yaml.safe_dump({"all": {"children": {"runtime_hosts": {"hosts": hosts}}}})
    )
    return inv


def ansible_playbook(inv: Path, playbook: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    return subprocess.run(
        ["ansible-playbook", "-i", str(inv), str(REPO / "playbooks" / playbook), *args],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("playbook", ["site.yml", "runtimes.yml"])
def test_a_bad_value_stops_the_run_before_any_host_is_contacted(tmp_path, listener, playbook):
    inv = lab(tmp_path, listener.port, gym_runtime_vnc_base_port="many", gym_runtme_mode="x")
    done = ansible_playbook(inv, playbook)
    assert done.returncode != 0
    assert "rt01: gym_runtime_vnc_base_port = 'many': expected int" in done.stdout
    assert "rt01: gym_runtme_mode: not a variable of any role; did you mean gym_runtime_mode?" in (
        done.stdout
    )
    assert "Gathering Facts" not in done.stdout
    time.sleep(0.3)
    assert listener.connections == 0


def test_a_good_inventory_passes_and_the_hosts_are_contacted(tmp_path, listener):
    """The control for the test above: the same lab with good values goes on to the hosts."""
    inv = lab(tmp_path, listener.port, gym_runtime_vnc_base_port=6000)
    done = ansible_playbook(inv, "display.yml")
    assert "ok: [rt01 -> localhost]" in done.stdout  # the preflight passed
    assert "UNREACHABLE" in done.stdout
    assert listener.connections >= 2


def test_limit_checks_only_the_limited_hosts(tmp_path, listener):
    inv = lab(tmp_path, listener.port, gym_runtime_vnc_base_port="many")
    done = ansible_playbook(inv, "preflight.yml", "--limit", "rt02")
    assert done.returncode == 0, done.stdout
    assert listener.connections == 0


# --- the invoke tasks -----------------------------------------------------------------------


def invoke(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "invoke"), "-r", str(REPO), *args],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"},
    )  # fmt: skip


def test_remotes_on_a_bad_inventory_lists_every_bad_value_and_no_traceback(tmp_path, listener):
    inv = lab(tmp_path, listener.port, gym_runtime_vnc_base_port="many", gym_runtime_instances="x")
    done = invoke("remotes", "--inventory", str(inv))
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines == [
        f"gymlab: {inv}: 2 bad inventory values; no host was contacted:",
        "rt01: gym_runtime_instances = 'x': expected list of dict",
        "rt01: gym_runtime_vnc_base_port = 'many': expected int",
    ]
    assert listener.connections == 0


def test_remotes_on_a_missing_inventory_says_so(tmp_path):
    done = invoke("remotes", "--inventory", str(tmp_path / "nonexistent"))
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"gymlab: no such inventory: {tmp_path / 'nonexistent'} (a directory with hosts.yml,"
        " or a file)"
    )


def test_remotes_on_a_good_inventory_goes_on_to_the_hosts_facts(tmp_path, listener):
    inv = lab(tmp_path, listener.port, gym_runtime_instances=[{"env_id": "CartPole-v1"}] * 2)
    done = invoke("remotes", "--inventory", str(inv))
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("gymlab: cannot read /etc/ansible/facts.d/gym_runtime.fact from rt01 (")
    assert listener.connections >= 2  # past the preflight: both hosts were asked


@pytest.mark.parametrize("task", ["provision", "verify"])
def test_provision_and_verify_check_the_inventory_first(tmp_path, listener, task):
    inv = lab(tmp_path, listener.port, gym_runtime_mode="vm")
    done = invoke(task, "--host", "rt01", "--inventory", str(inv))
    assert done.returncode == 1
    assert "rt01: gym_runtime_mode = 'vm': expected str, one of: container, native" in done.stderr
    assert "Traceback" not in done.stderr
    assert listener.connections == 0
