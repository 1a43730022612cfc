"""The remotes string of a lab: every runtime the gym_runtime role deploys, from the inventory.

Addresses: a host's ``gymlab_remote_address`` when set, else the container address for hosts
reached through Docker (the sandbox, molecule hosts), else ``ansible_host`` or its name.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from gymlab.client.remotes import Remote, format_remotes
from gymlab.lab.errors import LabError
from gymlab.lab.proc import run

REPO = Path(__file__).resolve().parents[3]
ROLE_DEFAULTS = REPO / "roles" / "gym_runtime" / "defaults" / "main.yml"
RUNTIME_GROUP = "runtime_hosts"
DOCKER_CONNECTIONS = {"docker", "community.docker.docker"}


def container_address(container: str) -> str:
    """The first network address of a local container."""
    done = subprocess.run(
        ["docker", "inspect", "--format",
         "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", container],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    addresses = done.stdout.split()
    if done.returncode != 0 or not addresses:
        raise LabError(f"container {container} is not running; provision it first")
    return addresses[0]


def host_remotes(name: str, hostvars: dict, defaults: dict) -> list[Remote]:
    """The remotes one host serves, as the gym_runtime role lays them out."""
    settings = {**defaults, **hostvars}
    if "gymlab_remote_address" in settings:
        address = settings["gymlab_remote_address"]
    elif settings.get("ansible_connection") in DOCKER_CONNECTIONS:
        address = container_address(settings.get("ansible_host", name))
    else:
        address = settings.get("ansible_host", name)
    vnc, rewarder = (
        settings["gym_runtime_vnc_base_port"],
        settings["gym_runtime_rewarder_base_port"],
    )
    return [
        Remote(address, int(vnc) + i, int(rewarder) + i)
        for i in range(len(settings["gym_runtime_instances"]))
    ]


def lab_remotes(inventory: Path, only: str | None = None) -> list[Remote]:
    """Every runtime of the lab described by ``inventory`` (of host ``only``, when given: none
    when it serves no runtimes)."""
    listing = json.loads(
        run(["ansible-inventory", "-i", str(inventory), "--list"], what="ansible-inventory")
    )
    hosts = listing.get(RUNTIME_GROUP, {}).get("hosts", [])
    if only is not None:
        hosts = [h for h in hosts if h == only]
    elif not hosts:
        raise LabError(f"no hosts in group {RUNTIME_GROUP} of {inventory}")
    defaults = yaml.safe_load(ROLE_DEFAULTS.read_text())
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    return [r for h in hosts for r in host_remotes(h, hostvars.get(h, {}), defaults)]


def password_file(inventory: Path, secrets_dir: Path | None = None) -> Path:
    """Where the role keeps the lab's generated password on this machine."""
    base = secrets_dir or Path.home() / ".config" / "gymlab" / "secrets"
    return base / inventory.resolve().name / "runtime-password"


def remotes_string(inventory: Path, *, with_password: bool = False) -> str:
    """``vnc://h:5900+15900,...`` for the lab; the password is added only when asked for."""
    text = format_remotes(lab_remotes(inventory))
    if with_password:
        secret = password_file(inventory)
        if not secret.is_file():
            raise LabError(f"no generated password at {secret}; provision the lab first")
        text += "?password=" + secret.read_text().strip()
    return text
