"""Fixtures shared by the testinfra suites (molecule verify and `invoke verify --host`)."""

from __future__ import annotations

import probe_kit
import pytest


def host_var(host, name: str, default):
    """An inventory variable of the host under test, or ``default`` (role defaults)."""
    return host.ansible.get_variables().get(name, default)


@pytest.fixture(scope="module")
def display(host) -> int:
    """The display number the headless_display role exports as DISPLAY."""
    if not host.file("/etc/systemd/system/xvfb@.service").exists:
        # Layer-only scenarios (gpu, containers) converge one playbook, not site.yml.
        pytest.skip("the headless_display layer was not applied to this host")
    return int(host_var(host, "headless_display_default", 99))


@pytest.fixture(scope="module")
def probe(host) -> probe_kit.Kit:
    """The probe kit installed in the host (a Gym the rendering checks can run)."""
    return probe_kit.ensure_installed(host)
