"""The deployment contract: the facts about a deployed runtime that more than one part needs.

The gym_runtime role computes the same things in its ``gym_runtime_contract`` fact (recorded on
the host as ``ansible_local.gym_runtime``); ``tests/unit/test_deployment.py`` runs the role's
logic and checks that both agree. Everything in Python that needs a port, the remotes string,
where the lab's generated password is kept, or a runtime default takes it from here:

- :func:`ports`: runtime ``index`` -> its VNC, rewarder and noVNC ports;
- :func:`layout`: a host's ``gym_runtime_instances`` -> the fact's ``instances`` entries;
- :func:`remotes_string`: remotes (+ password, always URL-quoted) -> ``vnc://...?password=...``;
- :func:`secrets_dir` / :func:`secrets_path`: where the lab's generated password is kept on the
  control machine;
- :data:`DEFAULT_FPS` / :data:`DEFAULT_MODE`: the runtime defaults.

It imports nothing from :mod:`gymlab.runtime`, only the remotes type and the protocol's modes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from gymlab.client.remotes import Remote, format_remotes
from gymlab.rewarder.protocol.constants import Mode

#: A runtime's defaults (the role's gym_runtime_default_fps / gym_runtime_default_mode), for
#: the runtime CLI and API and local remotes alike. Lockstep works for every env and every
#: agent; real time needs a key map and an agent that keeps up.
DEFAULT_FPS = 60.0
DEFAULT_MODE = Mode.LOCKSTEP
#: Ports of runtime 0; runtime i listens on base + i (gym_runtime_*_base_port).
VNC_BASE_PORT = 5900
REWARDER_BASE_PORT = 15900
NOVNC_BASE_PORT = 6080
#: Where the lab's generated runtime password is kept: SECRETS_DIR/<inventory dir name>/FILE.
SECRETS_DIR_VARIABLE = "gym_runtime_secrets_dir"
PASSWORD_FILE_NAME = "runtime-password"


@dataclass(frozen=True)
class Ports:
    """The ports of one runtime (``novnc`` is None where noVNC is off)."""

    vnc: int
    rewarder: int
    novnc: int | None = None


def ports(
    index: int,
    *,
    vnc_base: int = VNC_BASE_PORT,
    rewarder_base: int = REWARDER_BASE_PORT,
    novnc_base: int | None = None,
) -> Ports:
    """The ports of runtime ``index`` (gym-runtime@index); noVNC only with ``novnc_base``."""
    if index < 0:
        raise ValueError(f"runtime index must be 0 or more, got {index}")
    return Ports(
        vnc_base + index,
        rewarder_base + index,
        None if novnc_base is None else novnc_base + index,
    )


def layout(
    instances: Iterable[Mapping],
    *,
    vnc_base: int = VNC_BASE_PORT,
    rewarder_base: int = REWARDER_BASE_PORT,
    novnc_base: int | None = None,
) -> list[dict]:
    """The fact's ``instances``: index, env id, mode, fps and ports of each runtime."""
    entries = []
    for index, item in enumerate(instances):
        where = ports(index, vnc_base=vnc_base, rewarder_base=rewarder_base, novnc_base=novnc_base)
        entries.append(
            {
                "index": index,
                "env_id": item["env_id"],
                "mode": item.get("mode", DEFAULT_MODE),
                "fps": float(item.get("fps", DEFAULT_FPS)),
                "vnc_port": where.vnc,
                "rewarder_port": where.rewarder,
                "novnc_port": where.novnc,
            }
        )
    return entries


def remotes_string(remotes: Iterable[Remote], password: str | None = None) -> str:
    """``vnc://h:V+R,...`` and ``?password=...`` (URL-quoted, so any character survives
    :func:`gymlab.client.remotes.parse_remotes`) when a password is given."""
    remotes = tuple(remotes)
    if not remotes:
        raise ValueError("no remotes")
    text = format_remotes(remotes)
    return text if password is None else f"{text}?password={quote(password, safe='')}"


def _literal(value: object) -> bool:
    """False for a value the inventory left as a Jinja expression (only Ansible resolves it)."""
    return not (isinstance(value, str) and "{{" in value)


def secrets_dir(
    settings: Mapping | None = None,
    *,
    variable: str = SECRETS_DIR_VARIABLE,
    given: Path | None = None,
) -> Path:
    """The roles' secrets directory on the control machine: ``given``, else the host's
    ``variable`` (when the inventory sets it literally), else ``~/.config/gymlab/secrets``
    (the roles' default)."""
    if given is not None:
        return given
    value = (settings or {}).get(variable)
    if value and _literal(value):
        return Path(os.path.expanduser(str(value)))
    return Path.home() / ".config" / "gymlab" / "secrets"


def secrets_path(
    inventory: Path, settings: Mapping | None = None, *, given: Path | None = None
) -> Path:
    """Where the gym_runtime role keeps the lab's generated password (one per inventory)."""
    return secrets_dir(settings, given=given) / inventory.resolve().name / PASSWORD_FILE_NAME


__all__ = [
    "DEFAULT_FPS",
    "DEFAULT_MODE",
    "NOVNC_BASE_PORT",
    "PASSWORD_FILE_NAME",
    "REWARDER_BASE_PORT",
    "SECRETS_DIR_VARIABLE",
    "VNC_BASE_PORT",
    "Ports",
    "layout",
    "ports",
    "remotes_string",
    "secrets_dir",
    "secrets_path",
]
