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


def test_site_check_mode_reports_no_change(host, pytestconfig):
    inventory = pytestconfig.getoption("ansible_inventory")
    if not inventory:
        pytest.skip("needs --ansible-inventory (molecule verify or `invoke verify` pass it)")
    name = host.backend.host
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",  # molecule forces colour; the recap is parsed below
    }
    done = subprocess.run(
        ["ansible-playbook", "-i", inventory, str(REPO / "playbooks" / "site.yml"),
         "--check", "--diff", "--limit", name],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    recap = re.search(rf"^{re.escape(name)}\s*:.*changed=(\d+)", done.stdout, re.M)
    assert recap, done.stdout[-2000:]
    changed = [line for line in done.stdout.splitlines() if line.startswith("changed:")]
    assert recap.group(1) == "0", f"check mode would change: {changed}"
