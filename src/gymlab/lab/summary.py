"""What runs where on a provisioned host, as a few lines of plain text.

Everything comes from what the roles recorded on the host (the jupyterlab and gym_runtime local
facts, read by :mod:`gymlab.lab.remotes`), the inventory (``ansible-inventory --list``) for
groups and addresses, and the files the roles keep on this machine (generated JupyterLab tokens
and the lab's runtime password). Secrets are never printed, only where they are kept. Addresses
are found as ``invoke remotes`` finds them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from gymlab import deployment
from gymlab.client.remotes import format_remotes
from gymlab.lab import remotes
from gymlab.lab.errors import LabError
from gymlab.lab.proc import run

REPO = Path(__file__).resolve().parents[3]
DEFAULT_INVENTORY = REPO / "inventories" / "local"
JUPYTER_GROUP = "jupyter_hosts"
WILDCARDS = {"0.0.0.0", "::"}


def _listing(inventory: Path) -> dict:
    return json.loads(
        run(["ansible-inventory", "-i", str(inventory), "--list"], what="ansible-inventory")
    )


def _group_hosts(listing: dict, group: str) -> set[str]:
    """Hosts of ``group`` and of its child groups."""
    entry = listing.get(group, {})
    found = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        found |= _group_hosts(listing, child)
    return found


def _url_host(address: str) -> str:
    return f"[{address}]" if ":" in address else address


def _shown(path: Path) -> str:
    """A path as a person would type it: ~/... under the home directory."""
    home = Path.home()
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


def _inventory_arg(inventory: Path) -> str:
    inv = inventory.resolve()
    try:
        return str(inv.relative_to(REPO))
    except ValueError:
        return str(inv)


def _jupyter_lines(
    name: str,
    settings: dict,
    inventory: Path,
    address: Callable[[], str],
    secrets: Path | None,
) -> list[str]:
    try:  # what the jupyterlab role recorded on the host
        fact = remotes.read_facts(inventory, [name], role="jupyterlab")[name]
    except LabError as exc:
        return [f"JupyterLab: {exc}"]
    servers = fact.get("servers", [])
    if not servers:
        return ["JupyterLab: no servers (jupyterlab_users is empty)"]
    listen = str(fact.get("listen") or "127.0.0.1")
    local_only = listen.startswith("127.") or listen == "::1"
    where = "127.0.0.1" if local_only else (address() if listen in WILDCARDS else listen)
    tokens = deployment.secrets_dir(settings, variable="jupyterlab_secrets_dir", given=secrets)
    base = tokens / inventory.resolve().name
    lines = []
    for server in servers:
        user, port, profile = server["name"], int(server["port"]), server["profile"]
        lines.append(f"JupyterLab: http://{_url_host(where)}:{port}/lab  (user {user}, {profile})")
        if local_only:
            lines.append(f"  on the host only: ssh -L {port}:127.0.0.1:{port} {name}")
        if server.get("token") == "inventory":
            lines.append("  token: set in the inventory (jupyterlab_users)")
        else:
            token = base / f"jupyter-{name}-{user}"
            missing = "" if token.is_file() else " (not generated yet: provision first)"
            lines.append(f"  token: {_shown(token)}{missing}")
    return lines


def _runtime_lines(name: str, settings: dict, inventory: Path, secrets: Path | None) -> list[str]:
    try:  # what the role recorded on the host (gymlab.lab.remotes)
        found = remotes.lab_runtimes(inventory, only=name)
        lines = [f"runtimes: {format_remotes([rt.remote for rt in found])}"]
    except LabError as exc:
        found, lines = [], [f"runtimes: {exc}"]
    for rt in found:
        lines.append(
            f"  {rt.index}: {rt.env_id} ({rt.mode}), "
            f"VNC {rt.remote.vnc_port}, rewarder {rt.remote.rewarder_port}"
        )
    if str(settings.get("gym_runtime_password") or ""):
        lines.append("  password: set in the inventory (gym_runtime_password)")
    else:
        secret = deployment.secrets_path(inventory, settings, given=secrets)
        missing = "" if secret.is_file() else " (not generated yet: provision first)"
        lines.append(f"  password: {_shown(secret)}{missing}")
    for rt in found:
        if rt.novnc_port is not None:
            lines.append(
                f"noVNC {rt.index}: http://{_url_host(rt.remote.host)}:{rt.novnc_port}/"
                "  (opens the viewer; it asks for the password)"
            )
    return lines


def host_summary(inventory: Path, host: str, *, secrets_dir: Path | None = None) -> str:
    """A short plain-text summary of what the roles run on ``host`` of ``inventory``.

    Lists the JupyterLab URL(s) and where each token is kept on this machine, the runtimes'
    remotes string and where their password is kept, the noVNC URLs, and the commands that
    print the lab's remotes and check the host. ``secrets_dir`` replaces the roles' secrets
    directory (default: the inventory's ``*_secrets_dir``, else ``~/.config/gymlab/secrets``).
    Raises :class:`LabError` for a host the inventory does not have.
    """
    listing = _listing(inventory)
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    if host not in hostvars and host not in _group_hosts(listing, "all"):
        raise LabError(f"no host {host} in {inventory}")
    settings = hostvars.get(host, {})
    cached: list[str] = []

    def address() -> str:
        if not cached:
            cached.append(remotes.host_address(host, settings))
        return cached[0]

    lines = [f"{host} ({_inventory_arg(inventory)}):"]
    body: list[str] = []
    if host in _group_hosts(listing, JUPYTER_GROUP):
        body += _jupyter_lines(host, settings, inventory, address, secrets_dir)
    if host in _group_hosts(listing, remotes.RUNTIME_GROUP):
        body += _runtime_lines(host, settings, inventory, secrets_dir)
    inv_arg = _inventory_arg(inventory)
    verify = f"invoke verify --host {host}"
    if inventory.resolve() != DEFAULT_INVENTORY.resolve():
        verify += f" --inventory {inv_arg}"
    body += [
        f"remotes string: invoke remotes --inventory {inv_arg} (--with-password to include it)",
        f"check the host: {verify}",
    ]
    return "\n".join(lines + ["  " + line for line in body])
