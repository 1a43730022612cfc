"""The deployment contract: gymlab.deployment and the gym_runtime role's gym_runtime_contract
fact say the same (defaults, ports, remotes, secrets path), proved by running the role's own
contract tasks with ansible-playbook on this machine (they change nothing on a host)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from gymlab import deployment
from gymlab.client.remotes import Remote, parse_remote, parse_remotes

REPO = Path(__file__).resolve().parents[2]
ROLE_DEFAULTS = REPO / "roles" / "gym_runtime" / "defaults" / "main.yml"
VENV_BIN = Path(sys.executable).parent
# Every character a URL treats specially, and a space.
PASSWORD = "p@ss w/rd&x=1?#%+:;"
INSTANCES = [
    {"env_id": "CartPole-v1"},
    {"env_id": "ALE/Pong-v5", "mode": "realtime", "fps": 30},
    {"env_id": "MountainCar-v0", "mode": "realtime"},
]
PLAYBOOK = """\
- name: The gym_runtime role's contract, as the jupyterlab role reads it
  hosts: runtime_hosts
  gather_facts: false
  tasks:
    - name: Compute it
      ansible.builtin.include_role:
        name: gymlab.lab.gym_runtime
        tasks_from: contract
    - name: Save it with the password it settled on
      ansible.builtin.copy:
        content: "{{ {'contract': gym_runtime_contract,
                      'password': gym_runtime_effective_password} | to_json }}"
        dest: "{{ out_dir }}/{{ inventory_hostname }}.json"
        mode: "0600"
"""


def role_defaults() -> dict:
    return yaml.safe_load(ROLE_DEFAULTS.read_text())


def test_python_defaults_are_the_roles():
    role = role_defaults()
    assert deployment.DEFAULT_FPS == float(role["gym_runtime_default_fps"])
    assert deployment.DEFAULT_MODE == role["gym_runtime_default_mode"]
    assert deployment.VNC_BASE_PORT == role["gym_runtime_vnc_base_port"]
    assert deployment.REWARDER_BASE_PORT == role["gym_runtime_rewarder_base_port"]
    assert deployment.NOVNC_BASE_PORT == role["gym_runtime_novnc_base_port"]


def test_ports_and_remotes_string():
    assert deployment.ports(2) == deployment.Ports(5902, 15902, None)
    assert deployment.ports(1, novnc_base=6080) == deployment.Ports(5901, 15901, 6081)
    with pytest.raises(ValueError, match="index"):
        deployment.ports(-1)
    remotes = [Remote("10.0.0.1", 5900, 15900), Remote("::1", 5901, 15901)]
    text = deployment.remotes_string(remotes, PASSWORD)
    assert text.startswith("vnc://10.0.0.1:5900+15900,[::1]:5901+15901?password=")
    assert " " not in text and text.count("?") == 1 and text.count("&") == 0
    parsed = parse_remotes(text)
    assert parsed.password == PASSWORD and list(parsed.remotes) == remotes
    assert deployment.remotes_string(remotes) == "vnc://10.0.0.1:5900+15900,[::1]:5901+15901"
    with pytest.raises(ValueError, match="no remotes"):
        deployment.remotes_string([])


def test_secrets_path(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    inv = tmp_path / "mylab"
    default = tmp_path / "home/.config/gymlab/secrets/mylab/runtime-password"
    assert deployment.secrets_path(inv) == default
    # a template only Ansible resolves: the role's default directory is meant
    templated = {"gym_runtime_secrets_dir": "{{ lookup('env', 'HOME') }}/x"}
    assert deployment.secrets_path(inv, templated) == default
    literal = {"gym_runtime_secrets_dir": "~/vault"}
    assert deployment.secrets_path(inv, literal) == tmp_path / "home/vault/mylab/runtime-password"
    given = tmp_path / "given"
    assert deployment.secrets_path(inv, literal, given=given) == given / "mylab/runtime-password"


@pytest.fixture(scope="module")
def role_contract(tmp_path_factory) -> tuple[Path, dict, dict]:
    """(inventory, its host variables, {host: what the role's contract tasks set there})."""
    tmp = tmp_path_factory.mktemp("contract")
    inv = tmp / "samplelab"
    inv.mkdir()
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    settings = {
        "rt01": {**local, "gym_runtime_instances": INSTANCES, "gym_runtime_vnc_base_port": 6000,
                 "gym_runtime_novnc": True, "gym_runtime_bind": "0.0.0.0"},
        "rt02": {**local, "gym_runtime_instances": INSTANCES[:1], "gym_runtime_bind": "fd00::5"},
    }  # fmt: skip
    lab_vars = {"gym_runtime_password": PASSWORD, "gym_runtime_secrets_dir": str(tmp / "secrets")}
    (inv / "hosts.yml").write_text(
        yaml.safe_dump(
            {"all": {"vars": lab_vars, "children": {"runtime_hosts": {"hosts": settings}}}}
        )
    )
    (tmp / "contract.yml").write_text(PLAYBOOK)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    done = subprocess.run(
        ["ansible-playbook", "-i", str(inv), str(tmp / "contract.yml"), "-e", f"out_dir={tmp}"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    found = {h: json.loads((tmp / f"{h}.json").read_text()) for h in settings}
    return inv, {h: {**lab_vars, **v} for h, v in settings.items()}, found


@pytest.mark.parametrize("host", ["rt01", "rt02"])
def test_the_role_contract_and_the_module_agree(role_contract, host):
    inv, hostvars, found = role_contract
    settings, contract = hostvars[host], found[host]["contract"]
    role = role_defaults()
    novnc = settings.get("gym_runtime_novnc", role["gym_runtime_novnc"])
    expected = deployment.layout(
        settings["gym_runtime_instances"],
        vnc_base=settings.get("gym_runtime_vnc_base_port", deployment.VNC_BASE_PORT),
        novnc_base=deployment.NOVNC_BASE_PORT if novnc else None,
    )
    keys = expected[0].keys()
    assert [{k: i[k] for k in keys} for i in contract["instances"]] == expected
    assert contract["defaults"] == {"fps": deployment.DEFAULT_FPS, "mode": deployment.DEFAULT_MODE}
    assert Path(contract["secrets_path"]) == deployment.secrets_path(inv, settings)

    # The remotes notebooks on the host get, with the password the role settled on, make the
    # remotes string the module builds from its own layout, and the password survives it.
    password = found[host]["password"]
    assert password == PASSWORD
    local = [parse_remote(entry) for entry in contract["local_remotes"]]
    address = "127.0.0.1" if settings["gym_runtime_bind"] == "0.0.0.0" else "fd00::5"
    ours = [Remote(address, i["vnc_port"], i["rewarder_port"]) for i in expected]
    text = deployment.remotes_string(local, password)
    assert text == deployment.remotes_string(ours, PASSWORD)
    assert parse_remotes(text).password == PASSWORD


def test_the_runtime_defaults_are_the_contracts():
    """The runtime's CLI and RuntimeConfig fall back to the contract's fps and mode, and the
    role offers exactly the runtime's modes."""
    import argparse
    import dataclasses

    from gymlab.rewarder.protocol import Mode
    from gymlab.runtime import cli
    from gymlab.runtime.config import RuntimeConfig

    assert isinstance(deployment.DEFAULT_MODE, Mode)
    fields = {f.name: f.default for f in dataclasses.fields(RuntimeConfig)}
    assert fields["fps"] == deployment.DEFAULT_FPS
    assert Mode(fields["mode"]) is deployment.DEFAULT_MODE
    parser = argparse.ArgumentParser()
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(
        ["runtime", "serve", "--env-id", "E-v0", "--vnc-port", "1", "--rewarder-port", "2",
         "--password-file", "pw"]
    )  # fmt: skip
    assert (args.fps, args.mode) == (deployment.DEFAULT_FPS, deployment.DEFAULT_MODE)
    spec = yaml.safe_load((REPO / "roles/gym_runtime/meta/argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    assert set(options["gym_runtime_default_mode"]["choices"]) == {m.value for m in Mode}
