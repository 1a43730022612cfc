"""The probe kit: a small Gym installation the rendering checks run inside the host.

The product's roles do not install Gym (environment profiles do); the checks need one to
prove that rendering works, so they bring their own: the host's own numpy/pygame/scipy from
apt, and pure-Python wheels downloaded on the control machine (with pip's configured index)
and copied in, so the host itself needs no route to a package index.

Ubuntu 18.04 gets that era's stack (gym 0.12 rendering through pyglet 1.3 and GLX); newer
platforms get Gymnasium (pygame).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

PROBE_ROOT = "/opt/gymlab-probe"
CACHE = Path.home() / ".cache" / "gymlab" / "probe"
SCRIPTS = Path(__file__).parent / "probe"


@dataclass(frozen=True)
class Kit:
    name: str
    apt: tuple[str, ...]
    wheels: tuple[str, ...]

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.apt, self.wheels]).encode()).hexdigest()[:12]


GYMNASIUM = Kit(
    "gymnasium",
    apt=("python3-venv", "python3-numpy", "python3-pygame"),
    wheels=(
        "gymnasium==1.1.1",
        "cloudpickle==3.1.1",
        "farama-notifications==0.0.4",
        "typing-extensions==4.12.2",
    ),
)
GYM_PYGLET = Kit(
    "gym-pyglet",
    apt=(
        "python3-venv",
        "python3-numpy",
        "python3-scipy",
        "python3-six",
        "python3-future",
        "python3-setuptools",
        "python3-wheel",
    ),
    wheels=("gym==0.12.5", "pyglet==1.3.2"),
)


def kit_for(host) -> Kit:
    """The kit matching the host's era."""
    return GYM_PYGLET if host.system_info.codename == "bionic" else GYMNASIUM


def download(kit: Kit) -> Path:
    """The kit's wheels/sdists on the control machine, downloaded once into the cache."""
    target = CACHE / f"{kit.name}-{kit.digest}"
    if not (target / ".complete").exists():
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "-d",
                str(target),
                *kit.wheels,
            ],
            check=True,
        )
        (target / ".complete").write_text(kit.digest)
    return target


def ensure_installed(host) -> Kit:
    """Install the probe kit into ``host`` unless the same kit is already there."""
    kit = kit_for(host)
    marker = f"{PROBE_ROOT}/.kit"
    if host.file(marker).exists and host.file(marker).content_string.strip() == kit.digest:
        _copy_scripts(host)
        return kit
    local = download(kit)
    host.ansible(
        "apt",
        f"name={','.join(kit.apt)} state=present install_recommends=false "
        "update_cache=true cache_valid_time=3600",
        check=False,
        become=True,
    )
    host.ansible("copy", f"src={local}/ dest={PROBE_ROOT}/dist/", check=False, become=True)
    host.check_output(
        f"python3 -m venv --system-site-packages {PROBE_ROOT}/venv && "
        f"{PROBE_ROOT}/venv/bin/pip install -q --no-index --no-deps {PROBE_ROOT}/dist/*"
    )
    _copy_scripts(host)
    host.check_output(f"echo {kit.digest} > {marker}")
    return kit


def _copy_scripts(host) -> None:
    host.ansible("copy", f"src={SCRIPTS}/ dest={PROBE_ROOT}/scripts/", check=False, become=True)


def python() -> str:
    return f"{PROBE_ROOT}/venv/bin/python"


def script(name: str) -> str:
    return f"{PROBE_ROOT}/scripts/{name}"
