"""Make sure a Docker daemon answers, starting Debian's ``dockerd`` when we may.

Development and CI machines ship a docker client but no running daemon (MACHINE-NOTES.md).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from gymlab.lab.errors import LabError

DOCKERD_LOG = Path("/var/log/gymlab-dockerd.log")
START_TIMEOUT_S = 60.0


def daemon_answers() -> bool:
    """True when ``docker info`` reaches a daemon."""
    if shutil.which("docker") is None:
        return False
    done = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=30)
    return done.returncode == 0


def ensure_daemon(*, start: bool = True) -> None:
    """Return when a daemon answers; start ``dockerd`` in the background if allowed.

    Raises LabError with one actionable line when there is no daemon and none can be started.
    """
    if daemon_answers():
        return
    if not start:
        raise LabError("no Docker daemon answers; start one (e.g. `systemctl start docker`)")
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise LabError(
            "no Docker daemon answers and dockerd is not installed; "
            "run `apt-get install docker.io` (or `./lab`, which installs it) and retry"
        )
    if os.geteuid() != 0:
        raise LabError("no Docker daemon answers; starting dockerd needs root (run as root)")
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(
            [dockerd], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if daemon_answers():
            return
        time.sleep(1)
    raise LabError(f"dockerd did not answer within {START_TIMEOUT_S:.0f}s; see {DOCKERD_LOG}")


def image_label(image: str, label: str) -> str | None:
    """The value of ``label`` on a local image, or None when the image is absent."""
    done = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{label}"}}}}',
            image,
        ],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        return None
    value = done.stdout.decode().strip()
    return None if value in ("", "<no value>") else value
