"""A converged host is a fixed point: `site.yml --check --diff` reports nothing to change.

Runs on the control machine against the host under test, with the same inventory testinfra
uses (molecule's, or the one given to `invoke verify`).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# One check-mode run per inventory and host pattern, shared by the hosts under test: Ansible
# checks them in parallel (a lab's hosts in about the time of one) and each host's test reads
# its own recap line.
_RUNS: dict[tuple[str, str], subprocess.CompletedProcess] = {}


def hosts_under_test(pytestconfig, name: str) -> str:
    """The host pattern of testinfra's --hosts (``ansible://web1`` -> ``web1``); ``all`` when
    it tests every host of the inventory (molecule passes --connection ansible and no --hosts);
    else this host alone."""
    spec = pytestconfig.getoption("hosts", default=None) or ""
    patterns = [p.split("://", 1)[-1].split("?", 1)[0] for p in spec.split(",") if p.strip()]
    if any(patterns):
        return ",".join(p for p in patterns if p)
    return "all" if pytestconfig.getoption("connection", default=None) == "ansible" else name


def check_mode_run(inventory: str, limit: str) -> subprocess.CompletedProcess:
    key = (inventory, limit)
    if key not in _RUNS:
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",  # molecule forces colour; the recap is parsed below
        }
        _RUNS[key] = subprocess.run(
            ["ansible-playbook", "-i", inventory, str(REPO / "playbooks" / "site.yml"),
             "--check", "--diff", "--limit", limit],
            capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False,
        )  # fmt: skip
    return _RUNS[key]


def test_site_check_mode_reports_no_change(host, pytestconfig):
    inventory = pytestconfig.getoption("ansible_inventory")
    if not inventory:
        pytest.skip("needs --ansible-inventory (molecule verify or `invoke verify` pass it)")
    name = host.backend.host
    done = check_mode_run(inventory, hosts_under_test(pytestconfig, name))
    recap = re.search(
        rf"^{re.escape(name)}\s*:.*changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
        done.stdout,
        re.M,
    )
    assert recap, f"no recap for {name} (exit {done.returncode}): " + (
        done.stdout[-3000:] + done.stderr[-2000:]
    )
    changed, unreachable, failed = recap.groups()
    mine = [line for line in done.stdout.splitlines() if f"[{name}" in line]
    assert (unreachable, failed) == ("0", "0"), "\n".join(mine[-40:])
    changes = [line for line in mine if line.startswith("changed:")]
    assert changed == "0", f"check mode would change: {changes}"
