"""The embedded default host: a systemd container on the local Docker daemon.

It is what `invoke provision --host sandbox` converges when there is no lab at all.
"""

from __future__ import annotations

import subprocess
import time

from gymlab.lab import docker, images
from gymlab.lab.errors import LabError
from gymlab.lab.proc import run

CONTAINER = "gymlab-sandbox"
HOST = "sandbox"  # its name in inventories/local
BOOT_TIMEOUT_S = 60.0

# systemd as PID 1 in a container on this kind of machine (MACHINE-NOTES.md): --privileged is
# refused, so the capability and mount set is spelled out. molecule/*/molecule.yml uses the same.
SYSTEMD_RUN_ARGS = (
    "--cap-add", "SYS_ADMIN",
    "--security-opt", "seccomp=unconfined",
    "--cgroupns=host",
    "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run",
    "--tmpfs", "/run/lock",
    "-e", "container=docker",
)  # fmt: skip


def state(name: str = CONTAINER) -> str | None:
    """The container's state ("running", "exited", ...) or None when it does not exist."""
    done = subprocess.run(
        ["docker", "inspect", "--format", "{{.State.Status}}", name],
        capture_output=True,
        check=False,
    )
    return done.stdout.decode().strip() if done.returncode == 0 else None


def up(image_name: str = "debian12", *, name: str = CONTAINER, log=print) -> None:
    """Create and boot the sandbox host when absent; start it when stopped."""
    docker.ensure_daemon()
    current = state(name)
    if current == "running":
        log(f"{name}: running")
        return
    if current is not None:
        run(["docker", "start", name], what=f"docker start {name}")
    else:
        recipe = images.resolve([image_name])[0]
        images.build(recipe, log=log)
        run(
            ["docker", "run", "-d", "--name", name, "--hostname", HOST,
             *SYSTEMD_RUN_ARGS, recipe.tag, "/lib/systemd/systemd"],
            what=f"docker run {name}",
        )  # fmt: skip
    _wait_booted(name)
    log(f"{name}: up ({image_name})")


def _wait_booted(name: str) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    status = ""
    while time.monotonic() < deadline:
        done = subprocess.run(
            ["docker", "exec", name, "systemctl", "is-system-running"],
            capture_output=True,
            check=False,
        )
        status = done.stdout.decode().strip()
        if status in ("running", "degraded"):
            return
        time.sleep(1)
    raise LabError(f"{name} did not finish booting in {BOOT_TIMEOUT_S:.0f}s (systemd: {status})")


def down(*, name: str = CONTAINER, log=print) -> None:
    """Remove the sandbox host (and everything provisioned in it)."""
    if state(name) is None:
        log(f"{name}: absent")
        return
    run(["docker", "rm", "-f", name], what=f"docker rm {name}")
    log(f"{name}: removed")
