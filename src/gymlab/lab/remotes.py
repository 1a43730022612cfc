"""The runtimes of a lab, as the gym_runtime role recorded them on each host.

The role writes what it deployed to ``/etc/ansible/facts.d/gym_runtime.fact`` (its one
definition of the port layout, ``gym_runtime_layout``); this module reads those facts from
every runtime host in one ad-hoc Ansible run, so `invoke remotes`, `verify` and the checks see
what runs rather than re-deriving it from the inventory.

Addresses: a host's ``gymlab_remote_address`` when set, else the container address for hosts
reached through Docker (the sandbox, molecule hosts), else ``ansible_host`` or its name.
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from gymlab import deployment
from gymlab.client.remotes import Remote
from gymlab.lab import ansible
from gymlab.lab.errors import LabError
from gymlab.lab.proc import run

RUNTIME_GROUP = "runtime_hosts"
FACTS_DIR = "/etc/ansible/facts.d"
FACT_FILE = f"{FACTS_DIR}/gym_runtime.fact"
DOCKER_CONNECTIONS = {"docker", "community.docker.docker"}


@dataclass(frozen=True)
class Runtime:
    """One runtime of the lab: where it is reached, and what it serves (the role's fact)."""

    host: str  # the inventory name
    index: int  # gym-runtime@<index>, its gym_runtime_instances entry
    remote: Remote
    env_id: str
    mode: str
    fps: float
    novnc_port: int | None


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


def host_address(name: str, hostvars: dict) -> str:
    """How this machine reaches the host's services."""
    if "gymlab_remote_address" in hostvars:
        return str(hostvars["gymlab_remote_address"])
    if hostvars.get("ansible_connection") in DOCKER_CONNECTIONS:
        return container_address(hostvars.get("ansible_host", name))
    return str(hostvars.get("ansible_host", name))


def runtimes_of(name: str, address: str, fact: dict) -> list[Runtime]:
    """The runtimes one host's gym_runtime fact describes."""
    return [
        Runtime(
            name,
            int(i["index"]),
            Remote(address, int(i["vnc_port"]), int(i["rewarder_port"])),
            i["env_id"],
            i["mode"],
            float(i["fps"]),
            None if i.get("novnc_port") is None else int(i["novnc_port"]),
        )
        for i in fact.get("instances", [])
    ]


def read_facts(inventory: Path, hosts: list[str], role: str = "gym_runtime") -> dict[str, dict]:
    """{host: the local fact ``role`` wrote there}, read from every host at once; LabError
    naming each host whose fact could not be read (unreachable, or not provisioned yet)."""
    fact_file = f"{FACTS_DIR}/{role}.fact"
    results = ansible.adhoc(inventory, ",".join(hosts), "ansible.builtin.slurp", f"src={fact_file}")
    facts, problems = {}, []
    for host in hosts:
        result = results.get(host, {"failed": True, "msg": "no answer"})
        if result.get("unreachable") or result.get("failed") or "content" not in result:
            reason = " ".join(str(result.get("msg", "failed")).split())[:200]
            problems.append(f"{host} ({reason})")
            continue
        facts[host] = json.loads(base64.b64decode(result["content"]))
    if problems:
        raise LabError(
            f"cannot read {fact_file} from {'; '.join(problems)}: provision the host(s) first"
        )
    return facts


def _runtime_hosts(inventory: Path) -> tuple[list[str], dict]:
    """The runtime hosts of ``inventory`` and every host's variables."""
    listing = json.loads(
        run(["ansible-inventory", "-i", str(inventory), "--list"], what="ansible-inventory")
    )
    hosts = listing.get(RUNTIME_GROUP, {}).get("hosts", [])
    return hosts, listing.get("_meta", {}).get("hostvars", {})


def lab_runtimes(inventory: Path, only: str | None = None) -> list[Runtime]:
    """Every runtime of the lab (of host ``only``, when given: none when it serves none)."""
    hosts, hostvars = _runtime_hosts(inventory)
    if only is not None:
        hosts = [h for h in hosts if h == only]
        if not hosts:
            return []
    elif not hosts:
        raise LabError(f"no hosts in group {RUNTIME_GROUP} of {inventory}")
    facts = read_facts(inventory, hosts)
    return [
        rt for h in hosts for rt in runtimes_of(h, host_address(h, hostvars.get(h, {})), facts[h])
    ]


def lab_remotes(inventory: Path, only: str | None = None) -> list[Remote]:
    return [rt.remote for rt in lab_runtimes(inventory, only)]


def password_file(inventory: Path, secrets_dir: Path | None = None) -> Path:
    """Where the role keeps the lab's generated password on this machine: ``secrets_dir``, else
    the runtime hosts' ``gym_runtime_secrets_dir``, else the role's default directory."""
    if secrets_dir is not None:
        return deployment.secrets_path(inventory, given=secrets_dir)
    hosts, hostvars = _runtime_hosts(inventory)
    return deployment.secrets_path(inventory, hostvars.get(hosts[0], {}) if hosts else {})


def remotes_string(inventory: Path, *, with_password: bool = False) -> str:
    """``vnc://h:5900+15900,...`` for the lab; the password (URL-quoted) only when asked for."""
    secret = password_file(inventory) if with_password else None
    if secret is not None and not secret.is_file():
        raise LabError(f"no generated password at {secret}; provision the lab first")
    password = secret.read_text().strip() if secret is not None else None
    return deployment.remotes_string(lab_remotes(inventory), password)
