"""JupyterLab servers (jupyterlab role): token auth, localhost unless configured otherwise, the
configured listen address reached from the control machine, the host's profile kernels, each
profile's kernel starting and importing TensorFlow, the starter notebooks executing (a frame
rendered on the headless display) and the runtime access file."""

from __future__ import annotations

import base64
import json
import re
import shlex
import urllib.error
import urllib.request

import pytest
from conftest import host_var, role_fact

from gymlab.lab import remotes

TIMEOUT = "timeout 300"


@pytest.fixture
def fact(host) -> dict:
    """What the jupyterlab role recorded it set up here (its local fact)."""
    found = role_fact(host, "jupyterlab")
    if not found or not found["servers"]:
        pytest.skip("the jupyterlab role set up no server on this host")
    return found


@pytest.fixture
def servers(fact) -> list[dict]:
    """Each server: its user (name), port, profile and the env it runs from (env)."""
    return fact["servers"]


def profiles(host) -> list[str]:
    """The profiles python_envs installed on the host (its fact)."""
    return sorted((role_fact(host, "python_envs") or {}).get("profiles", {}))


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
    """The Python of the env the first server runs from (every script here needs only stdlib)."""
    return f"{role_fact(host, 'jupyterlab')['servers'][0]['env']}/bin/python"


def local_host(host, name: str) -> str:
    """Where the server is reached from the host itself: loopback for a wildcard address."""
    ip = listen_ip(host, name)
    return "127.0.0.1" if ip in WILDCARD else (f"[{ip}]" if ":" in ip else ip)


def status_code(host, port: int, path: str, auth: str | None, name: str) -> tuple[int, str]:
    script = "/tmp/gymlab-http-get.py"
    host.check_output(f"cat > {script} <<'EOF'\n{HTTP_GET}EOF")
    out = host.check_output(
        f"{python(host)} {script} http://{local_host(host, name)}:{port}{path} {auth or ''}"
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


def test_the_fact_records_what_serves_and_no_token(host, fact, servers):
    """ansible_local.jupyterlab (what the provision summary and these checks read) matches the
    running servers: exactly the jupyterlab units, each on its configured port and address,
    from its env, with the token's source and never the token."""
    text = host.file(f"{remotes.FACTS_DIR}/jupyterlab.fact").content_string
    units = host.check_output(
        "systemctl list-units --state=running --plain --no-legend 'jupyterlab-*.service'"
    )
    running = sorted(line.split()[0].removeprefix("jupyterlab-").removesuffix(".service")
                     for line in units.splitlines())  # fmt: skip
    assert running == sorted(s["name"] for s in servers)
    for server in servers:
        config = json.loads(host.file(f"/etc/gymlab/jupyter/{server['name']}.json").content_string)
        assert config["ServerApp"]["port"] == server["port"]
        assert fact["listen"] == listen_ip(host, server["name"])
        assert listening_addresses(host, server["port"]), f"nothing serves {server}"
        unit = host.check_output(f"systemctl show -p ExecStart --value jupyterlab-{server['name']}")
        assert f"{server['env']}/bin/jupyter" in unit
        assert server["token"] == (
            "inventory" if "token" in inventory_entry(host, server) else "generated"
        )
        assert token(host, server["name"]) not in text


def inventory_entry(host, server: dict) -> dict:
    """The server's entry as the inventory wrote it ({} for a bare user name): whether it gives
    a token is the inventory's own decision."""
    for entry in host_var(host, "jupyterlab_users", []):
        if isinstance(entry, dict) and entry.get("name") == server["name"]:
            return entry
    return {}


LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1
WILDCARD = {"0.0.0.0": "00000000", "::": "0" * 32}


def listen_ip(host, name: str) -> str:
    """The address the role configured the server to listen on (its configuration file)."""
    return json.loads(host.file(f"/etc/gymlab/jupyter/{name}.json").content_string)["ServerApp"][
        "ip"
    ]


def hex_ipv4(address: str) -> str:
    """An IPv4 address as /proc/net/tcp writes it (little-endian hex)."""
    return "".join(f"{int(part):02X}" for part in reversed(address.split(".")))


def test_bound_to_localhost_only(host, servers):
    for server in servers:
        if listen_ip(host, server["name"]) != "127.0.0.1":
            pytest.skip("this host serves JupyterLab beyond loopback on purpose")
        addresses = listening_addresses(host, server["port"])
        assert addresses, "nothing listens on the port"
        assert addresses <= LOOPBACK, f"listening beyond loopback: {addresses}"


def controller_get(url: str, auth: str | None) -> int:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", f"token {auth}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_listens_on_the_configured_address_and_answers_there_with_its_token(host, fact, servers):
    """From the control machine, at the host's own address (for a container: its bridge
    address): 200 with the token, 403 without it."""
    for server in servers:
        ip = listen_ip(host, server["name"])
        if ip.startswith("127."):
            pytest.skip("JupyterLab listens on loopback only here")
        assert ip == fact["listen"]
        expected = WILDCARD.get(ip) or hex_ipv4(ip)
        assert listening_addresses(host, server["port"]) == {expected}
        where = remotes.host_address(host.backend.host, host.ansible.get_variables())
        where = where if ip in WILDCARD else ip
        url = f"http://{where}:{server['port']}/api/status"
        assert controller_get(url, token(host, server["name"])) == 200
        assert controller_get(url, None) == 403
        assert controller_get(url, "not-the-token") == 403


def test_api_status_needs_the_token(host, servers):
    for server in servers:
        name = server["name"]
        code, body = status_code(host, server["port"], "/api/status", token(host, name), name)
        assert code == 200
        assert "started" in json.loads(body)
        refused, _ = status_code(host, server["port"], "/api/status", None, name)
        assert refused == 403
        wrong, _ = status_code(host, server["port"], "/api/status", "not-the-token", name)
        assert wrong == 403


NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def test_news_prompt_and_update_check_follow_the_role(host, fact, servers):
    """JupyterLab's own settings API serves the role's defaults: news and update checks off
    unless jupyterlab_news turned them on; either way a decided value, so no consent prompt."""
    news = fact["news"]
    for server in servers:
        name = server["name"]
        version = host.check_output(f"{TIMEOUT} {server['env']}/bin/jupyter lab --version")
        if int(version.strip().splitlines()[-1].split(".")[0]) < 4:
            pytest.skip(f"JupyterLab {version.strip()} has no news feed (it came with 4.0)")
        path = f"/lab/api/settings/{NOTIFICATION}"
        code, body = status_code(host, server["port"], path, token(host, name), name)
        assert code == 200, body
        defaults = json.loads(body)["schema"]["properties"]
        assert defaults["fetchNews"]["default"] == ("true" if news else "false")
        assert defaults["checkForUpdates"]["default"] is news


def test_kernels_are_the_hosts_profiles(host, servers):
    kernels = [f"gymlab-{p}" for p in profiles(host)]
    for server in servers:
        name = server["name"]
        code, body = status_code(host, server["port"], "/api/kernelspecs", token(host, name), name)
        assert code == 200
        assert sorted(json.loads(body)["kernelspecs"]) == kernels


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
    serving = servers[0]["env"]
    host.check_output(f"cat > /tmp/gymlab-kernel-run.py <<'EOF'\n{KERNEL_RUN}EOF")
    for profile in profiles(host):
        if profile == "legacy-cuda9" and "libcudart.so.9.0" not in host.run("ldconfig -p").stdout:
            continue  # the TF 1.12 GPU build imports only with CUDA 9.0 from the cuda role
        out = host.check_output(
            f"{TIMEOUT} {serving}/bin/python /tmp/gymlab-kernel-run.py gymlab-{profile} "
            "'import tensorflow as tf; print(tf.__version__)'"
        )
        assert out.strip().startswith("ok"), out


def home(host, user: str) -> str:
    return host.check_output(f"getent passwd {user}").split(":")[5]


def test_runtime_access_file_is_the_users_alone(host, fact, servers):
    """Shared with each user (mode 0400) on runtime hosts that turn it on; absent elsewhere."""
    for server in servers:
        path = f"/etc/gymlab/jupyter/runtime/{server['name']}.json"
        access = host.file(path)
        if not fact["runtime_access"]:
            assert not access.exists, f"{path} exists on a host that shares no runtime"
            continue
        assert access.user == server["name"] and access.mode == 0o400
        with host.sudo():
            shared = json.loads(access.content_string)
        assert shared["remotes"] and len(shared["remotes"]) == len(shared["env_ids"])
        runtime = role_fact(host, "gym_runtime")
        assert runtime is not None, "runtime access is on, but no runtime runs here"
        assert shared["env_ids"] == [i["env_id"] for i in runtime["instances"]]
        with host.sudo():
            password = host.file(runtime["password_file"]).content_string.strip()
        assert shared["password"] == password


PNG = b"\x89PNG\r\n\x1a\n"


def test_starter_notebooks_execute_and_show_a_frame(host, fact, servers, display):
    """Each starter notebook runs top to bottom as its user, in the serving env, on the headless
    display; it shows a PNG frame; its runtime part plays the host's runtime or says it skips."""
    notebooks = fact["starter_notebooks"]
    if not notebooks:
        pytest.skip("no starter notebooks configured for this host")
    for server in servers:
        user = server["name"]
        user_home = home(host, user)
        out = f"/tmp/gymlab-starter-{user}"
        host.check_output(f"runuser -u {user} -- mkdir -p {out}")
        for notebook in notebooks:
            source = host.file(f"{user_home}/{notebook}")
            assert source.exists and source.user == user
            command = (
                f"cd {user_home} && DISPLAY=:{display} HOME={user_home} timeout 600 "
                f"{server['env']}/bin/jupyter nbconvert --to notebook --execute "
                f"--ExecutePreprocessor.timeout=300 --output-dir {out} {notebook}"
            )
            done = host.run(f"runuser -u {user} -- bash -c {shlex.quote(command)}")
            assert done.rc == 0, done.stderr[-3000:]
            executed = json.loads(host.file(f"{out}/{notebook}").content_string)
            outputs = [o for c in executed["cells"] for o in c.get("outputs", [])]
            assert not [o for o in outputs if o["output_type"] == "error"]
            pngs = [
                base64.b64decode(o["data"]["image/png"])
                for o in outputs
                if "image/png" in o.get("data", {})
            ]
            assert pngs and all(p.startswith(PNG) for p in pngs), "no PNG frame in the outputs"
            text = "".join(
                "".join(o.get("text", "")) for o in outputs if o["output_type"] == "stream"
            )
            # The gymlab client imports in the profile's kernel (the notebook prints its version).
            assert re.search(r"^gymlab \S+$", text, re.MULTILINE), text
            if fact["runtime_access"]:
                assert len(pngs) >= 2, "the runtime part showed no frame"
            else:
                assert "Skipping part 2" in text
