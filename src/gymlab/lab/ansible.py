"""Running Ansible for the invoke tasks: inventory look-ups and playbooks with a summary line."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gymlab.lab.errors import LabError
from gymlab.lab.proc import run

REPO = Path(__file__).resolve().parents[3]
CALLBACK_DIR = REPO / "plugins" / "callback"
PREFLIGHT = REPO / "playbooks" / "preflight.yml"


@dataclass(frozen=True)
class InventoryHost:
    name: str
    vars: dict


def inventory_host(host: str, inventory: Path) -> InventoryHost:
    """The host's variables from the inventory; LabError naming the known hosts if absent."""
    if not host:
        raise LabError("no host given; use --host NAME (see `invoke --list` and the inventory)")
    require_inventory(inventory)
    listing = json.loads(
        run(["ansible-inventory", "-i", str(inventory), "--list"], what="ansible-inventory")
    )
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    if host not in hostvars:
        known = ", ".join(sorted(hostvars)) or "none"
        raise LabError(f"unknown host '{host}' in {inventory}; known hosts: {known}")
    return InventoryHost(host, hostvars[host])


def require_inventory(inventory: Path) -> None:
    if not inventory.exists():
        raise LabError(f"no such inventory: {inventory} (a directory with hosts.yml, or a file)")


def preflight(inventory: Path, limit: str | None = None) -> None:
    """Check the hosts' role variables against the roles' argument specs (playbooks/
    preflight.yml), contacting no host; LabError with one line per bad value."""
    require_inventory(inventory)
    playbook(PREFLIGHT, inventory=inventory, limit=limit, quiet=True)


def playbook(
    path: Path,
    *,
    inventory: Path,
    limit: str | None = None,
    check: bool = False,
    diff: bool = False,
    tags: str | None = None,
    extra: list[str] | None = None,
    quiet: bool = False,
) -> None:
    """Run a playbook with live output (none when ``quiet``: shown only if it fails without a
    failed task); on failure raise LabError with the first failed task."""
    with tempfile.NamedTemporaryFile(prefix="gymlab-failure-", suffix=".json") as failure:
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_CALLBACK_PLUGINS": str(CALLBACK_DIR),
            "ANSIBLE_CALLBACKS_ENABLED": "gymlab_failure",
            "GYMLAB_FAILURE_FILE": failure.name,
        }
        argv = ["ansible-playbook", "-i", str(inventory), str(path)]
        if limit:
            argv += ["--limit", limit]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        if tags:
            argv += ["--tags", tags]
        argv += extra or []
        done = subprocess.run(
            argv, env=env, cwd=REPO, check=False, text=True,
            stdout=subprocess.PIPE if quiet else None, stderr=subprocess.STDOUT if quiet else None,
        )  # fmt: skip
        if done.returncode == 0:
            return
        text = Path(failure.name).read_text()
        if text:
            first = json.loads(text)
            if path == PREFLIGHT:
                raise LabError(f"{inventory}: {first['msg']}")
            raise LabError(
                f"{path.name} failed on {first['host']} at task '{first['task']}': {first['msg']}"
            )
        if quiet:
            print(done.stdout)
        raise LabError(
            f"ansible-playbook {path.name} exited {done.returncode}; see the output above"
        )


def adhoc(inventory: Path, pattern: str, module: str, args: str) -> dict[str, dict]:
    """One ad-hoc module run on the hosts ``pattern`` names, in parallel: {host: its result}
    (failed and unreachable hosts included, with ``failed`` / ``unreachable`` set)."""
    require_inventory(inventory)
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
           "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "json"}  # fmt: skip
    argv = ["ansible", "-i", str(inventory), pattern, "-m", module, "-a", args]
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    try:
        plays = json.loads(done.stdout)["plays"]
    except (ValueError, KeyError):
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LabError(f"ansible {module} on {pattern} failed: {detail}") from None
    return {h: r for p in plays for t in p["tasks"] for h, r in t["hosts"].items()}
