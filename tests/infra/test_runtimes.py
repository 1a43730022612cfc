"""The runtimes the gym_runtime role deployed answer as a remote agent expects.

Run from the control machine, over the network, with gymlab's own client and with vncdotool
(a VNC client nobody here wrote). What runs is read from the role's fact, never from the
inventory (which may leave everything to the role's defaults). Hosts outside ``runtime_hosts``
skip.
"""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import browser
import numpy as np
import pytest
from conftest import host_var, role_fact
from PIL import Image

from gymlab.client.remotes import Remote, parse_remote
from gymlab.client.vector import RemoteVectorEnv
from gymlab.client.vnc import VNCAuthenticationError, VNCConnection
from gymlab.lab import remotes as lab_remotes
from gymlab.rewarder.client import RewarderClient, RewarderRefused

RESTART_DEADLINE_S = 45.0
CONF_DIR = "/etc/gymlab/runtime"  # the role's configuration directory (its vars/main.yml)


@pytest.fixture(scope="module")
def fact(host) -> dict:
    """What the gym_runtime role recorded it deployed here (its local fact)."""
    if "runtime_hosts" not in host_var(host, "group_names", []):
        pytest.skip("not in runtime_hosts: the gym_runtime role did not run here")
    fact = role_fact(host, "gym_runtime")
    assert fact is not None, f"a runtime host without {lab_remotes.FACT_FILE}"
    return fact


@pytest.fixture(scope="module")
def runtimes(host, fact) -> list[Remote]:
    address = lab_remotes.host_address(host.backend.host, host.ansible.get_variables())
    return [rt.remote for rt in lab_remotes.runtimes_of(host.backend.host, address, fact)]


def test_the_fact_records_every_runtime_that_runs(host, fact):
    """One fact entry per runtime unit's settings file, serving the same env, each with its own
    ports (the role's layout)."""
    entries = fact["instances"]
    asked = host_var(host, "gym_runtime_instances", None)  # where the inventory spells it out
    if asked is not None:
        assert [e["env_id"] for e in entries] == [a["env_id"] for a in asked]
    with host.sudo():
        listing = host.check_output(f"ls {CONF_DIR}").split()
    env_files = sorted(int(name.removesuffix(".env")) for name in listing if name.endswith(".env"))
    assert env_files == [e["index"] for e in entries]
    for entry in entries:
        with host.sudo():
            settings = host.file(f"{CONF_DIR}/{entry['index']}.env").content_string
        assert f"GYMLAB_ENV_ID={entry['env_id']}\n" in settings
        assert f"GYMLAB_VNC_PORT={entry['vnc_port']}\n" in settings
    ports = [p for e in entries for p in (e["vnc_port"], e["rewarder_port"])]
    assert entries and len(set(ports)) == len(ports)
    assert [e["index"] for e in entries] == list(range(len(entries)))


def test_the_fact_is_the_deployment_contract(host, fact):
    """The contract's own keys: the loopback remotes are the instances' ports, each runtime's
    settings carry its fps, and the defaults are a mode and a positive fps."""
    entries = fact["instances"]
    local = [parse_remote(entry) for entry in fact["local_remotes"]]
    assert [(r.vnc_port, r.rewarder_port) for r in local] == [
        (e["vnc_port"], e["rewarder_port"]) for e in entries
    ]
    assert fact["defaults"]["mode"] in ("lockstep", "realtime") and fact["defaults"]["fps"] > 0
    assert fact["secrets_path"].endswith("/runtime-password")
    for entry in entries:
        with host.sudo():
            settings = host.file(f"{CONF_DIR}/{entry['index']}.env").content_string
        assert f"GYMLAB_FPS={entry['fps']:g}\n" in settings


def cpu_quota_ns(text: str) -> int | None:
    """systemd's CPUQuotaPerSecUSec (e.g. 1s, 500ms, 1.500000s) as ns per s; None: no quota."""
    units = {"us": 1e3, "ms": 1e6, "s": 1e9}
    for unit in ("us", "ms", "s"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return round(float(text[: -len(unit)]) * units[unit])
    return None


@pytest.fixture(scope="module")
def password(host, fact, runtimes) -> str:
    return host.file(fact["password_file"]).content_string.strip()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_units_active(host, runtimes):
    for index in range(len(runtimes)):
        unit = host.service(f"gym-runtime@{index}")
        assert unit.is_running and unit.is_enabled


def test_password_file_is_root_and_runtime_only(host, fact, runtimes):
    secret = host.file(fact["password_file"])
    assert secret.user == "root"
    assert secret.mode == 0o640


async def _vnc_frame(remote: Remote, password: str) -> np.ndarray:
    async with await VNCConnection.connect(remote.host, remote.vnc_port, password) as vnc:
        return await vnc.update(incremental=False)


def test_vnc_handshake_with_the_password_and_refusal_without(runtimes, password):
    for remote in runtimes:
        frame = run(_vnc_frame(remote, password))
        assert frame.ndim == 3 and frame.shape[2] == 3
        with pytest.raises(VNCAuthenticationError):
            run(_vnc_frame(remote, "wrong-" + password))


def test_vncdo_capture_shows_the_environment(runtimes, password, tmp_path):
    vncdo = Path(sys.executable).parent / "vncdo"
    for remote in runtimes:
        shot = tmp_path / f"{remote.vnc_port}.png"
        subprocess.run(
            [str(vncdo), "-s", f"{remote.host}::{remote.vnc_port}", "-p", password,
             "capture", str(shot)],
            check=True, timeout=60,
        )  # fmt: skip
        pixels = np.asarray(Image.open(io.BytesIO(shot.read_bytes())).convert("RGB"))
        colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
        assert colours > 2, f"{remote.name}: the capture is blank ({colours} colours)"


async def _ping(remote: Remote, password: str) -> float:
    client = await RewarderClient.connect(remote.host, remote.rewarder_port, password)
    try:
        return await client.ping()
    finally:
        await client.close()


def test_rewarder_answers_ping_and_refuses_a_wrong_password(runtimes, password):
    for remote in runtimes:
        assert run(_ping(remote, password)) < 1.0
        with pytest.raises(RewarderRefused):
            run(_ping(remote, password + "x"))


def test_killed_runtime_is_restarted_and_a_connected_client_recovers(host, runtimes, password):
    """SIGKILL runtime 0 under a connected RemoteVectorEnv: systemd restarts it, the client
    reports the remote's error (never raising), then reconnects and plays on."""
    unit = "gym-runtime@0.service"
    remote = runtimes[0]
    env = RemoteVectorEnv(f"vnc://{remote.name}", password, mode="lockstep")
    try:
        env.reset(seed=0)
        env.step(env.action_space.sample())
        before = host.check_output(f"systemctl show -p MainPID --value {unit}")
        # kill(1), not systemctl kill: its option is --kill-who before systemd 252 (Ubuntu 22.04),
        # --kill-whom since
        host.check_output(f"kill -KILL {before}")
        saw_error = recovered = False
        deadline = time.monotonic() + RESTART_DEADLINE_S
        while time.monotonic() < deadline and not recovered:
            obs, _, _, _, infos = env.step(env.action_space.sample())
            failed = "error" in infos and bool(infos["error"][0])
            saw_error |= failed
            recovered = (
                saw_error and not failed and len(np.unique(obs[0].reshape(-1, 3), axis=0)) > 2
            )
            time.sleep(0.2)
        after = host.check_output(f"systemctl show -p MainPID --value {unit}")
    finally:
        env.close()
    assert saw_error, "the client never reported the dead remote"
    assert recovered, f"the client did not recover within {RESTART_DEADLINE_S:.0f}s"
    assert after not in ("0", before)
    assert int(host.check_output(f"systemctl show -p NRestarts --value {unit}")) >= 1


#: noVNC says it is connected (1.0, on Ubuntu 22.04: "Connected (unencrypted) to gymlab" in
#: #noVNC_status; later ones "Connected to gymlab" in #status) before the first framebuffer
#: update has arrived: wait until its canvas also holds CartPole's white background.
NOVNC_SHOWS_A_FRAME = """(() => {
  const status = document.getElementById('status') || document.getElementById('noVNC_status');
  if (!status || !/^Connected (\\(\\w+\\) )?to gymlab$/.test(status.textContent)) return false;
  const canvas = document.querySelector('canvas');
  if (!canvas || !canvas.width || !canvas.height) return false;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] > 240 && data[i + 1] > 240 && data[i + 2] > 240) return true;
  }
  return false;
})()"""


def test_novnc_page_shows_the_environment_in_a_real_browser(host, fact, runtimes, password):
    """Headless Chromium opens the noVNC viewer of runtime 0; its screenshot shows the cart."""
    if not fact["novnc"]:
        pytest.skip("gym_runtime_novnc is off for this host")
    if browser.chromium() is None:
        pytest.skip("chromium is not installed on the control machine (./lab installs it)")
    port = fact["instances"][0]["novnc_port"]
    png = browser.screenshot(
        f"http://{runtimes[0].host}:{port}/vnc_lite.html?password={password}&scale=true",
        ready_js=NOVNC_SHOWS_A_FRAME,
    )
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    pole = np.all(np.abs(pixels - (202, 152, 101)) <= 20, axis=-1)
    cart = np.all(pixels < 30, axis=-1)
    assert pole.sum() > 200, "no pole in the noVNC screenshot"
    assert cart.sum() > 500, "no cart in the noVNC screenshot"


def test_runtime_containers_are_locked_down(host, fact, runtimes):
    """Container mode: non-root, no capabilities, no privilege gain, read-only root, limits."""
    if fact["mode"] != "container":
        pytest.skip("runtimes run natively on this host")
    for index in range(len(runtimes)):
        name = f"gym-runtime-{index}"
        config = json.loads(host.check_output(f"docker inspect {name}"))[0]
        assert config["Config"]["User"].split(":")[0] not in ("", "0", "root")
        assert config["HostConfig"]["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in config["HostConfig"]["SecurityOpt"]
        assert config["HostConfig"]["ReadonlyRootfs"] is True
        assert config["HostConfig"]["Memory"] > 0
        # the container gets the unit's CPU quota (gym_runtime_cpu_quota: 100% is --cpus 1)
        quota = host.check_output(
            f"systemctl show -p CPUQuotaPerSecUSec --value gym-runtime@{index}.service"
        )
        assert config["HostConfig"]["NanoCpus"] == cpu_quota_ns(quota.strip()), quota
        mounts = {m["Destination"]: m for m in config["Mounts"]}
        assert not any(m["RW"] for m in mounts.values()), "a host path is writable inside"
        assert f"{CONF_DIR}/keymaps" in mounts
        status = host.check_output(f"cat /proc/{config['State']['Pid']}/status")
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        cap_eff = next(line for line in status.splitlines() if line.startswith("CapEff:"))
        assert uid != 0, "the runtime runs as root on the host"
        assert cap_eff.split()[1] == "0000000000000000"
        remap = host.file("/etc/docker/daemon.json").content_string
        if '"userns-remap"' in remap:
            assert uid >= 65536, f"uid {uid} is not in a subordinate (remapped) range"


def test_wheelhouse_on_the_host_hashes_every_wheel_it_holds(host, fact, runtimes):
    """requirements.txt pins each wheel of the host's wheelhouse by its sha256, and nothing else
    is there: pip --require-hashes installs exactly this set."""
    folder = fact["wheelhouse"]
    lines = host.file(f"{folder}/requirements.txt").content_string.splitlines()
    wheels = host.check_output(f"cd {folder} && sha256sum *.whl").splitlines()
    assert len(lines) == len(wheels) > 0
    hashes = {line.split("--hash=sha256:")[1] for line in lines}
    for wheel in wheels:
        sha, name = wheel.split()
        assert sha in hashes, f"{name} is not in requirements.txt with its hash"


def test_extra_packages_are_installed_for_the_runtimes(host, fact, runtimes):
    """Every extra package the role resolved for this host (gym_runtime_extra_packages, and the
    browser extra's where a runtime serves a web task) is in the wheelhouse's hashed
    requirements and importable by the runtimes' Python (the venv, or the running container's
    image)."""
    extras = fact["extra_packages"]
    if not extras:
        pytest.skip("the role resolved no extra packages for this host")
    requirements = host.file(f"{fact['wheelhouse']}/requirements.txt").content_string
    python = _runtime_python(fact, runtimes)
    for pin in extras:
        name, version = pin.split("==")
        assert f"{name.lower()}=={version} --hash=sha256:" in requirements, pin
        installed = host.check_output(
            f"{python} -c 'import importlib.metadata as m; print(m.version(\"{name}\"))'"
        )
        assert installed.strip() == version, f"{pin}: the runtimes have {installed}"


def _runtime_python(fact, runtimes) -> str:
    """The runtimes' Python: the venv's, or the one in the image of a running container."""
    if fact["mode"] == "container":
        # the last runtime: runtime 0 is the one test_killed_runtime... restarts
        return f"docker exec gym-runtime-{len(runtimes) - 1} /opt/gymlab/bin/python"
    return "/opt/gymlab/runtime/venv/bin/python"


def test_runtimes_get_gymlab_without_the_lab_tooling(host, fact, runtimes):
    """The runtime's gymlab has no gymlab.lab or gymlab.envs (control-machine tooling)."""
    python = _runtime_python(fact, runtimes)
    assert host.run(f"{python} -c 'import gymlab.runtime.core, gymlab.client.vector'").rc == 0
    for package in ("gymlab.lab", "gymlab.envs"):
        found = host.run(f"{python} -c 'import {package}'")
        assert found.rc != 0 and f"No module named '{package}'" in found.stderr, package


def _unit_args(host, index: int) -> list[str]:
    pid = host.check_output(f"systemctl show -p MainPID --value gym-runtime@{index}.service")
    return host.file(f"/proc/{pid}/cmdline").content.decode().split("\0")


def test_each_runtime_gets_its_imports_env_kwargs_and_key_map(host, fact, runtimes):
    """The unit passes the instance's settings as one argument each (JSON with spaces intact);
    a key map is a JSON file the runtime user (or the container) can read."""
    for index, entry in enumerate(fact["instances"]):
        args = _unit_args(host, index)

        def value(flag: str, args=args) -> str:
            return args[args.index(flag) + 1]

        assert value("--env-id") == entry["env_id"]
        assert value("--import") == ",".join(entry["imports"])
        kwargs = value("--env-kwargs")
        assert (json.loads(kwargs) if kwargs else {}) == entry["env_kwargs"]
        keymap = value("--keymap")
        if entry["keymap"] is not None:
            assert keymap == entry["keymap_file"] == f"{CONF_DIR}/keymaps/{index}.json"
            written = host.file(keymap)
            assert written.mode == 0o644 and written.user == "root"
            assert json.loads(written.content_string) == entry["keymap"]
        else:
            assert keymap == ""
            assert not host.file(f"{CONF_DIR}/keymaps/{index}.json").exists


def _descendants(host, root: int) -> list[int]:
    """Every process below ``root`` in the host's process tree."""
    children: dict[int, list[int]] = {}
    for line in host.check_output("ps -e -o pid=,ppid=").splitlines():
        pid, ppid = (int(word) for word in line.split())
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def test_web_task_runtimes_run_chromium_unprivileged(host, fact, runtimes):
    """A runtime serving a miniwob/... task runs the distribution's Chromium under the runtime's
    own user, never root. Natively Chromium keeps its sandbox: no --no-sandbox among its
    arguments, and its renderers live in user namespaces of their own; in a container (whose
    seccomp profile refuses user namespaces) it runs --no-sandbox, as the role documents."""
    web = [e["index"] for e in fact["instances"] if e["env_id"].startswith("miniwob/")]
    if not web:
        pytest.skip("no runtime of this host serves a web task")
    native = fact["mode"] == "native"
    for index in web:
        if native:
            for package in ("chromium", "chromium-driver"):
                assert host.package(package).is_installed, package
            root = int(host.check_output(f"systemctl show -p MainPID --value gym-runtime@{index}"))
            expected_uid = host.user(fact["user"]).uid
        else:
            name = f"gym-runtime-{index}"
            host.check_output(f"docker exec {name} test -x /usr/bin/chromium")
            host.check_output(f"docker exec {name} test -x /usr/bin/chromedriver")
            root = int(host.check_output(f"docker inspect --format '{{{{.State.Pid}}}}' {name}"))
            expected_uid = None
        chromium = []
        for pid in _descendants(host, root):
            # a process may end between the listing and here. Chromium's children rewrite
            # their command line into one string of space-separated words: split both ways.
            args = " ".join(host.run(f"cat /proc/{pid}/cmdline").stdout.split("\0")).split()
            if args and args[0].endswith("/chromium"):
                status = host.run(f"cat /proc/{pid}/status").stdout
                uids = next(line for line in status.splitlines() if line.startswith("Uid:"))
                userns = host.run(f"readlink /proc/{pid}/ns/user").stdout.strip()
                chromium.append((pid, args, int(uids.split()[2]), userns))
        assert chromium, f"gym-runtime@{index}: no Chromium process below pid {root}"
        for pid, args, uid, _ in chromium:
            assert uid != 0, f"gym-runtime@{index}: Chromium pid {pid} runs as root"
            if expected_uid is not None:
                assert uid == expected_uid, f"Chromium pid {pid} runs as uid {uid}"
            assert ("--no-sandbox" in args) is not native, (pid, args)
        if native:
            browser_ns = next(ns for _, args, _, ns in chromium if not _type(args))
            sandboxed = [pid for pid, args, _, ns in chromium if _type(args) and ns != browser_ns]
            assert sandboxed, (
                f"gym-runtime@{index}: no Chromium child in a user namespace of its own "
                "(the sandbox is not on)"
            )


def _type(args: list[str]) -> str:
    """A Chromium process's --type (renderer, zygote, gpu-process, ...); '' for the browser."""
    return next((a.split("=", 1)[1] for a in args if a.startswith("--type=")), "")
