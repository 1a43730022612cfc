"""Fixtures shared by the testinfra suites (molecule verify and `invoke verify --host`).

What a role set up is read from the local fact it wrote on the host
(``/etc/ansible/facts.d/<role>.fact``), never from the inventory: a lab may leave any variable
to the role's default, and the checks must see what the role did with it.
"""

from __future__ import annotations

import json

import probe_kit
import pytest

from gymlab.lab.remotes import FACTS_DIR


def host_var(host, name: str, default):
    """An inventory variable of the host under test, or ``default``: only for what the
    inventory itself decides (groups, connection, test-only settings), never a role's setting."""
    return host.ansible.get_variables().get(name, default)


def role_fact(host, role: str) -> dict | None:
    """The local fact ``role`` wrote on the host, or None where the role did not run."""
    fact = host.file(f"{FACTS_DIR}/{role}.fact")
    return json.loads(fact.content_string) if fact.exists else None


@pytest.fixture(scope="module")
def display(host) -> int:
    """The display number the headless_display role exports as DISPLAY (its fact)."""
    fact = role_fact(host, "headless_display")
    if fact is None:
        # Layer-only scenarios (gpu, containers) converge one playbook, not site.yml.
        pytest.skip("the headless_display layer was not applied to this host")
    return int(fact["default"])


@pytest.fixture(scope="module")
def probe(host) -> probe_kit.Kit:
    """The probe kit installed in the host (a Gym the rendering checks can run)."""
    return probe_kit.ensure_installed(host)
