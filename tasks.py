"""gymlab's front door: `invoke --list` shows the tasks, `invoke TASK --help` their options.

Every task ends with a non-zero exit and one line saying what failed and what to do, instead
of a traceback, when the failure is one the user can act on (gymlab.lab.errors.LabError).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from invoke import Exit, task

REPO = Path(__file__).resolve().parent
sys.path.insert(0, str(REPO / "src"))
VENV_BIN = Path(sys.executable).parent
# Ansible, molecule and pytest run from the same venv as invoke.
os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"

from gymlab.lab import ansible, docker, images, sandbox, suites  # noqa: E402
from gymlab.lab.errors import LabError, error_line  # noqa: E402
from gymlab.lab.report import phase  # noqa: E402

DEFAULT_INVENTORY = REPO / "inventories" / "local"


def one_line_errors(func):
    """Turn LabError into `gymlab: <message>` and exit 1."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except LabError as exc:
            raise Exit(error_line(exc), code=1) from None

    return wrapper


def _inventory(path: str | None) -> Path:
    return Path(path).resolve() if path else DEFAULT_INVENTORY


def _is_sandbox(host: ansible.InventoryHost) -> bool:
    return host.vars.get("ansible_host") == sandbox.CONTAINER


@task(
    help={
        "host": "inventory host to converge (default inventory: 'sandbox')",
        "inventory": "inventory directory (default: inventories/local)",
        "check": "report what would change, change nothing (--check --diff)",
        "tags": "only these layers/tags, comma-separated (e.g. display)",
    }
)
@one_line_errors
def provision(c, host="", inventory=None, check=False, tags=None):
    """Converge one host with playbooks/site.yml (creates the sandbox host when needed)."""
    inv = _inventory(inventory)
    target = ansible.inventory_host(host, inv)
    ansible.preflight(inv, limit=host)
    if _is_sandbox(target):
        with phase("sandbox host"):
            sandbox.up(target.vars.get("gymlab_sandbox_image", "debian12"))
    with phase(f"converge {host}{' (check mode)' if check else ''}"):
        ansible.playbook(
            REPO / "playbooks" / "site.yml",
            inventory=inv,
            limit=host,
            check=check,
            diff=check,
            tags=tags,
        )
    if not check:
        from gymlab.lab.summary import host_summary

        print(host_summary(inv, host), flush=True)


@task(
    help={
        "host": "inventory host(s) to check, comma-separated",
        "inventory": "inventory directory (default: inventories/local)",
        "reports": "directory for the JUnit files and the HTML page (default: reports/)",
    }
)
@one_line_errors
def verify(c, host="", inventory=None, reports="reports"):
    """Run the testinfra checks (tests/infra) against hosts: a per-check table for each, JUnit
    files and one HTML page (checks by layer, GPU facts, a screenshot of every runtime)."""
    from gymlab.lab.verify import verify as verify_hosts

    hosts = [h for h in host.split(",") if h] or [""]
    ok, _ = verify_hosts(hosts, _inventory(inventory), Path(reports).resolve())
    if not ok:
        raise Exit(f"gymlab: verify found failures on {host}; see the report above", code=1)


@task(
    help={
        "name": "image to build (repeatable): " + ", ".join(images.RECIPES),
        "force": "rebuild even when the recipe hash matches",
    },
    iterable=["name"],
    name="images",
)
@one_line_errors
def images_(c, name=None, force=False):
    """Build and cache the local systemd base images (debootstrap; no registry needed)."""
    for recipe in images.resolve(name):
        with phase(f"image {recipe.tag}"):
            images.build(recipe, force=force)


@task(
    help={"action": "up or down", "image": "base image for a new sandbox (default debian12)"},
    name="sandbox",
)
@one_line_errors
def sandbox_(c, action, image="debian12"):
    """Create/boot (up) or remove (down) the local sandbox host container."""
    if action == "up":
        sandbox.up(image)
    elif action == "down":
        sandbox.down()
    else:
        raise LabError(f"unknown sandbox action '{action}'; expected 'up' or 'down'")


@task
def lint(c):
    """ruff, yamllint and ansible-lint (production profile)."""
    os.chdir(REPO)
    suites.lint(c.run)


@task(
    help={
        "unit": "run tests/unit",
        "e2e": "run tests/e2e (real Xvnc and websocket peers on loopback)",
        "sb3": "run tests/sb3 (Stable-Baselines3 over local remotes, in its own cached venv)",
        "molecule": "run the molecule scenarios (real systemd host containers)",
        "scenario": "molecule scenario(s) to run (repeatable; default: all)",
        "tour": "the README's tour: provision the sandbox, verify it (0 failed), remove it if new",
        "collection": "the built collection: ansible-test sanity (both ansible-cores), "
        "galaxy-importer, the changelog, the consumer playbooks",
        "reports": "directory for JUnit XML reports (default: reports/)",
    },
    iterable=["scenario"],
)
@one_line_errors
def test(
    c,
    unit=False,
    e2e=False,
    sb3=False,
    molecule=False,
    scenario=None,
    tour=False,
    collection=False,
    reports="reports",
):
    """Run the test suites (none selected: lint, unit, e2e, sb3, collection, molecule, the
    tour), then a summary."""
    os.chdir(REPO)
    run = suites.run_suites(
        c.run,
        Path(reports).resolve(),
        unit=unit,
        e2e=e2e,
        sb3=sb3,
        molecule=molecule,
        scenario=scenario,
        tour=tour,
        collection=collection,
    )
    if not run.ok:
        raise Exit(code=1)


@task(
    help={
        "inventory": "inventory directory (default: inventories/local)",
        "with_password": "append ?password=... (otherwise only the password file's path is shown)",
    }
)
@one_line_errors
def remotes(c, inventory=None, with_password=False):
    """Print the remotes string of every runtime in a lab (vnc://host:5900+15900,...)."""
    from gymlab.lab import remotes as lab_remotes

    inv = _inventory(inventory)
    ansible.preflight(inv)
    print(lab_remotes.remotes_string(inv, with_password=with_password))
    if not with_password:
        print(f"password: {lab_remotes.password_file(inv)}", file=sys.stderr)


@task(
    help={
        "env": "profile under envs/ (repeatable; default: all)",
        "channel": "conda channel URL to lock the conda part against (repeatable; a lab's)",
        "check": "change nothing; fail when a lock does not match its spec",
        "part": "lock this part only: conda or pypi (default: the parts profile.yml names)",
        "envs_dir": "directory of the profiles (default: envs/)",
        "runtime": "the runtime hosts' locks (runtime-envs/py<X.Y>.lock) instead of the profiles",
    },
    iterable=["env", "channel"],
)
def lock(c, env=None, channel=None, check=False, part=None, envs_dir=None, runtime=False):
    """Lock environment profiles (PyPI part here; conda part with --channel), or --check them;
    --runtime: the runtime hosts' locks instead (a plain --check checks them too)."""
    from gymlab.envs import locking

    # The runtime hosts' locks (gymlab.lab.runtime_locks): --runtime writes or checks only them,
    # a --check of every profile checks them as well.
    runtime_ok = True
    if runtime or (check and not (env or part or envs_dir)):
        from gymlab.lab import runtime_locks

        runtime_ok = runtime_locks.main(["--check"] if check else []) == 0
        if runtime:
            if not runtime_ok:
                raise Exit(code=1)
            return

    argv = [a for name in env or [] for a in ("--env", name)]
    argv += [a for url in channel or [] for a in ("--channel", url)]
    argv += ["--part", part] if part else []
    argv += ["--envs-dir", str(envs_dir)] if envs_dir else []
    if locking.main([*argv, *(["--check"] if check else [])]) != 0 or not runtime_ok:
        raise Exit(code=1)


@task(
    help={
        "steps": "random-agent steps to play on every runtime (default 100)",
        "out": "where to write the screenshot (default: reports/demo-sandbox.png)",
    }
)
@one_line_errors
def demo(c, steps=100, out=None):
    """The sandbox end to end: provision it, play its runtimes remotely, save a screenshot."""
    from gymlab.lab import demo as lab_demo
    from gymlab.lab import remotes as lab_remotes

    provision(c, host="sandbox")
    remotes = lab_remotes.remotes_string(DEFAULT_INVENTORY, with_password=True)
    shot = Path(out or REPO / "reports" / "demo-sandbox.png").resolve()
    lab_demo.random_agent(remotes, steps, shot)


@task
@one_line_errors
def daemon(c):
    """Make sure a Docker daemon answers (starts Debian's dockerd when none does)."""
    docker.ensure_daemon()
    print("docker daemon: answering")


@task(
    help={
        "quick": "short sections (the whole run under a minute)",
        "seconds": "seconds per section (default 10, quick 2)",
        "fps": "real-time frame rate (default 60)",
        "json": "also write the results to this JSON file",
    }
)
def bench(c, quick=False, seconds=None, fps="60", json=None):
    """Benchmark remote envs (lockstep, vector, real-time lag, bytes, memory) vs in-process."""
    args = ["--quick"] if quick else []
    if seconds is not None:
        args += ["--seconds", str(seconds)]
    args += ["--fps", str(fps)]
    if json:
        args += ["--json", str(json)]
    c.run(" ".join([sys.executable, "-m", "gymlab.cli", "bench", *args]), pty=False)
