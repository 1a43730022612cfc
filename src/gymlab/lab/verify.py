"""`invoke verify`: testinfra (tests/infra) against hosts, a per-check table for each, and one
HTML page for all of them (gymlab.lab.html_report)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from gymlab.client.remotes import Remote
from gymlab.lab import ansible
from gymlab.lab import remotes as lab_remotes
from gymlab.lab.errors import LabError
from gymlab.lab.html_report import HostReport, Screenshot, render, screenshots
from gymlab.lab.report import cases_table, junit_cases, phase

REPO = Path(__file__).resolve().parents[3]
GPU_QUERY = "nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv"


def testinfra(host: str, inventory: Path, junit: Path) -> bool:
    """Run tests/infra against one host; True when every check passed or skipped."""
    junit.unlink(missing_ok=True)
    argv = [
        "pytest", str(REPO / "tests" / "infra"), f"--hosts=ansible://{host}",
        f"--ansible-inventory={inventory}", "-p", "no:cacheprovider", "-q", f"--junitxml={junit}",
    ]  # fmt: skip
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    if not junit.is_file():
        print(done.stdout + done.stderr)
        raise LabError(f"verify could not run on {host}; see the output above")
    return done.returncode == 0


def gpu_facts(host: str, inventory: Path) -> str:
    """What nvidia-smi says on the host, or "" when it has none (or it fails)."""
    shell = f"command -v nvidia-smi >/dev/null && {GPU_QUERY}"
    result = ansible.adhoc(inventory, host, "ansible.builtin.shell", shell).get(host, {})
    return result.get("stdout", "") if result.get("rc") == 0 else ""


def runtime_password(inventory: Path) -> str | None:
    secret = lab_remotes.password_file(inventory)
    return secret.read_text().strip() if secret.is_file() else None


def verify(hosts: list[str], inventory: Path, reports: Path) -> tuple[bool, Path]:
    """Verify every host; return (all passed, the HTML page's path)."""
    for host in hosts:
        ansible.inventory_host(host, inventory)
    ansible.preflight(inventory, limit=",".join(hosts))
    reports.mkdir(parents=True, exist_ok=True)
    ok, sections = True, []
    password = runtime_password(inventory)
    for host in hosts:
        junit = reports / f"verify-{host}.xml"
        with phase(f"verify {host}") as timed:
            timed.ok = testinfra(host, inventory, junit)
            cases = junit_cases(junit, hosts=[host])
            try:
                shots = screenshots(lab_remotes.lab_remotes(inventory, only=host), password)
            except LabError as exc:  # the host's runtimes cannot be listed: the page says why
                shots = [Screenshot(Remote(host, 0, 0), error=str(exc))]
            sections.append(HostReport(host, cases, gpu_facts(host, inventory), shots))
        print(cases_table(f"verify {host} (JUnit: {junit})", cases))
        ok = ok and timed.ok
    page = reports / f"verify-{'-'.join(hosts) if len(hosts) <= 3 else inventory.name}.html"
    page.write_text(render(f"gymlab verify: {', '.join(hosts)} ({inventory.name})", sections))
    print(f"report: {page}")
    return ok, page
