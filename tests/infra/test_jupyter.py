"""JupyterLab servers (jupyterlab role): token auth, localhost only, the host's profile kernels,
and each profile's kernel starts and imports TensorFlow."""

from __future__ import annotations

import json

import pytest
from conftest import host_var

ROOT_DEFAULT = "/opt/gymlab/envs"
TIMEOUT = "timeout 300"


def users(host) -> list[dict]:
    return list(host_var(host, "jupyterlab_users", []))


@pytest.fixture
def servers(host) -> list[dict]:
    found = users(host)
    if not found:
        pytest.skip("no JupyterLab server configured for this host")
    return found


def token(host, name: str) -> str:
    with host.sudo():
        line = host.file(f"/etc/gymlab/jupyter/{name}.env").content_string.strip()
    assert line.startswith("JUPYTER_TOKEN=")
    return line.split("=", 1)[1]


# Minimal hosts have no curl, ps or ss: HTTP goes through the serving env's Python, processes
# and sockets are read from /proc.
HTTP_GET = (
    "import sys, urllib.request, urllib.error\n"
    "req = urllib.request.Request(sys.argv[1])\n"
    "if len(sys.argv) > 2: req.add_header('Authorization', 'token ' + sys.argv[2])\n"
    "try:\n"
    "    r = urllib.request.urlopen(req, timeout=30); print(r.status); print(r.read().decode())\n"
    "except urllib.error.HTTPError as e:\n"
    "    print(e.code)\n"
)
LISTENERS = (
    "import sys\n"
    "port = int(sys.argv[1])\n"
    "for table in ('/proc/net/tcp', '/proc/net/tcp6'):\n"
    "    for line in open(table).read().splitlines()[1:]:\n"
    "        local, state = line.split()[1], line.split()[3]\n"
    "        addr, p = local.split(':')\n"
    "        if state == '0A' and int(p, 16) == port: print(addr)\n"
)


def python(host) -> str:
    root = host_var(host, "python_envs_root", ROOT_DEFAULT)
    return f"{root}/{host_var(host, 'jupyterlab_profile', 'modern')}/bin/python"


def status_code(host, port: int, path: str, auth: str | None) -> tuple[int, str]:
    script = "/tmp/gymlab-http-get.py"
    host.check_output(f"cat > {script} <<'EOF'\n{HTTP_GET}EOF")
    out = host.check_output(
        f"{python(host)} {script} http://127.0.0.1:{port}{path} {auth or ''}"
    ).split("\n", 1)
    return int(out[0]), (out[1] if len(out) > 1 else "")


def listening_addresses(host, port: int) -> set[str]:
    """Hex local addresses (as /proc/net/tcp* shows them) listening on ``port``."""
    script = "/tmp/gymlab-listeners.py"
    host.check_output(f"cat > {script} <<'EOF'\n{LISTENERS}EOF")
    return set(host.check_output(f"{python(host)} {script} {port}").split())


def test_units_run_as_their_users(host, servers):
    for server in servers:
        service = host.service(f"jupyterlab-{server['name']}")
        assert service.is_running and service.is_enabled
        pid = host.check_output(f"systemctl show -p MainPID --value jupyterlab-{server['name']}")
        assert host.check_output(f"stat -c %U /proc/{pid}") == server["name"]


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


def test_bound_to_localhost_only(host, servers):
    if host_var(host, "jupyterlab_open", False):
        pytest.skip("this host opens JupyterLab on purpose")
    for server in servers:
        addresses = listening_addresses(host, server["port"])
        assert addresses, "nothing listens on the port"
        assert addresses <= LOOPBACK, f"listening beyond loopback: {addresses}"


def test_api_status_needs_the_token(host, servers):
    for server in servers:
        code, body = status_code(host, server["port"], "/api/status", token(host, server["name"]))
        assert code == 200
        assert "started" in json.loads(body)
        refused, _ = status_code(host, server["port"], "/api/status", None)
        assert refused == 403
        wrong, _ = status_code(host, server["port"], "/api/status", "not-the-token")
        assert wrong == 403


def test_kernels_are_the_hosts_profiles(host, servers):
    profiles = sorted(f"gymlab-{p}" for p in host_var(host, "python_envs_profiles", []))
    for server in servers:
        code, body = status_code(
            host, server["port"], "/api/kernelspecs", token(host, server["name"])
        )
        assert code == 200
        assert sorted(json.loads(body)["kernelspecs"]) == profiles


KERNEL_RUN = (
    "from jupyter_client.manager import start_new_kernel; import sys\n"
    "km, kc = start_new_kernel(kernel_name=sys.argv[1], startup_timeout=120)\n"
    "out = []\n"
    "reply = kc.execute_interactive(sys.argv[2], timeout=240, "
    "output_hook=lambda m: out.append(m['content'].get('text', '')))\n"
    "kc.stop_channels(); km.shutdown_kernel(now=True)\n"
    "print(reply['content']['status'], ''.join(out).strip().splitlines()[-1:])\n"
)


def test_each_profile_kernel_starts_and_imports_tensorflow(host, servers):
    root = host_var(host, "python_envs_root", ROOT_DEFAULT)
    serving = f"{root}/{servers[0].get('profile', host_var(host, 'jupyterlab_profile', 'modern'))}"
    host.check_output(f"cat > /tmp/gymlab-kernel-run.py <<'EOF'\n{KERNEL_RUN}EOF")
    for profile in host_var(host, "python_envs_profiles", []):
        if profile == "legacy-cuda9" and "libcudart.so.9.0" not in host.run("ldconfig -p").stdout:
            continue  # the TF 1.12 GPU build imports only with CUDA 9.0 from the cuda role
        out = host.check_output(
            f"{TIMEOUT} {serving}/bin/python /tmp/gymlab-kernel-run.py gymlab-{profile} "
            "'import tensorflow as tf; print(tf.__version__)'"
        )
        assert out.strip().startswith("ok"), out
