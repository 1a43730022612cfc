"""The container_runtime role's result works: a real dockerd, remapped for real, merged config.

Runs only on hosts in the groups playbooks/containers.yml targets; skips elsewhere. Containers
run a tiny image built here from the distribution's busybox-static package (no registry is
needed). The last checks converge the host again from the control machine (check mode, and a
deliberately broken daemon.json) and compare dockerd's PID before and after.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import host_var, role_fact

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "containers.yml"
ROLE_GROUPS = {"container_hosts", "gpu_hosts", "runtime_hosts"}
DOCKER_GROUPS = {"container_hosts", "gpu_hosts"}  # runtime_hosts only unless native
IMAGE = "gymlab-test/busybox:latest"
LOCAL_FACT = "/etc/ansible/facts.d/container_runtime.fact"
# Written by molecule/containers/converge.yml right before each converge.
DOCKERD_BEFORE_CONVERGE = "/var/tmp/gymlab-dockerd-before-converge"

# Builds IMAGE from the distribution's busybox-static .deb (downloaded, not installed) plus the
# host's glibc, which host programs the NVIDIA toolkit mounts in (nvidia-smi) need.
BUILD_IMAGE = f"""
set -eu
docker image inspect {IMAGE} >/dev/null 2>&1 && exit 0
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT; cd "$work"
apt-get download busybox-static >/dev/null 2>&1 || {{
    apt-get update -qq && apt-get download busybox-static >/dev/null; }}
dpkg-deb -x busybox-static_*.deb pkg
mkdir -p root/bin root/lib64 root/lib/x86_64-linux-gnu root/tmp root/proc root/sys root/dev
# /bin/busybox before the /usr merge of the package (Debian 13, Ubuntu 24.04: /usr/bin/busybox)
cp "$(ls pkg/bin/busybox pkg/usr/bin/busybox 2>/dev/null | head -n 1)" root/bin/busybox
for applet in $(root/bin/busybox --list); do
    [ -e "root/bin/$applet" ] || ln -s busybox "root/bin/$applet"
done
cp -L /lib64/ld-linux-x86-64.so.2 root/lib64/
for lib in libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1; do
    cp -L "/lib/x86_64-linux-gnu/$lib" root/lib/x86_64-linux-gnu/
done
tar -C root -c . | docker import -c 'CMD ["/bin/sh"]' - {IMAGE} >/dev/null
"""


def sh(script: str) -> str:
    return "sh -c " + shlex.quote(script)


@pytest.fixture(scope="module", autouse=True)
def role_applies(host):
    """Where playbooks/containers.yml applies the role (the rule of its first play)."""
    groups = set(host_var(host, "group_names", []))
    if not groups & ROLE_GROUPS:
        pytest.skip(f"container_runtime is not applied here (not in {sorted(ROLE_GROUPS)})")
    native = (role_fact(host, "gym_runtime") or {}).get("mode") == "native"
    if not groups & DOCKER_GROUPS and native:
        pytest.skip("container_runtime is not applied here (runtimes run natively, no Docker)")


@pytest.fixture(scope="module")
def fact(host, role_applies) -> dict:
    """What the role recorded it set up here (ansible_local.container_runtime)."""
    found = role_fact(host, "container_runtime")
    assert found is not None, f"the role applies here, but {LOCAL_FACT} is missing"
    return found


@pytest.fixture(scope="module")
def remap(fact) -> dict:
    """The remap user ('' when remapping is off) and subordinate range the role set up."""
    return {
        "user": fact["userns_remap"],
        "start": int(fact["subid_start"]),
        "count": int(fact["subid_count"]),
    }


@pytest.fixture(scope="module")
def toolkit_expected(host, fact) -> bool:
    """Whether the NVIDIA toolkit belongs here: container_runtime_nvidia (from the fact) and
    the device the host has; the role must have decided the same."""
    device = host.file("/dev/nvidiactl").exists
    assert fact["nvidia_device"] is device
    expected = fact["nvidia"] == "always" or (fact["nvidia"] == "auto" and device)
    assert fact["nvidia_toolkit"] is expected
    return expected


@pytest.fixture(scope="module")
def daemon_json(host) -> dict:
    return json.loads(host.file("/etc/docker/daemon.json").content_string)


@pytest.fixture(scope="module")
def docker_info(host) -> dict:
    return json.loads(host.check_output("docker info --format '{{json .}}'"))


@pytest.fixture(scope="module")
def image(host) -> str:
    result = host.run(sh(BUILD_IMAGE))
    assert result.rc == 0, f"building {IMAGE} failed: {result.stderr}"
    return IMAGE


def dockerd_state(host) -> dict:
    out = host.check_output(
        "systemctl show docker.service --property=MainPID,ActiveEnterTimestampMonotonic"
    )
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_docker_is_enabled_and_running(host):
    docker = host.service("docker")
    assert docker.is_enabled
    assert docker.is_running


def test_engine_packages_are_held(host, fact):
    if not fact["held"]:
        pytest.skip("container_runtime_hold_packages is false here")
    assert fact["engine_packages"]
    for package in fact["engine_packages"]:
        assert host.check_output(f"dpkg --get-selections {package}").split() == [package, "hold"]


def test_daemon_json_has_the_role_keys(fact, daemon_json, remap, toolkit_expected):
    if remap["user"]:
        assert daemon_json["userns-remap"] == remap["user"]
    else:
        assert "userns-remap" not in daemon_json
    log_driver = fact["log_driver"]
    if log_driver:
        assert daemon_json["log-driver"] == log_driver
        assert all(isinstance(v, str) for v in daemon_json["log-opts"].values())
    if toolkit_expected:
        assert daemon_json["runtimes"]["nvidia"]["path"] == "/usr/bin/nvidia-container-runtime"


def _contains(outer: dict, inner: dict) -> bool:
    return all(
        _contains(outer.get(k, {}), v) if isinstance(v, dict) else outer.get(k) == v
        for k, v in inner.items()
    )


def test_keys_the_user_wrote_before_survive(host, daemon_json):
    foreign = host_var(host, "molecule_foreign_daemon_keys", None)
    if not foreign:
        pytest.skip("no user-written daemon.json keys were planted on this host (molecule only)")
    assert _contains(daemon_json, foreign), f"lost some of {foreign}: {daemon_json}"


def test_docker_runs_with_the_merged_config(host, docker_info, remap, toolkit_expected):
    assert not docker_info.get("ServerErrors")
    if remap["user"]:
        assert "name=userns" in docker_info["SecurityOptions"]
        assert docker_info["DockerRootDir"].endswith(f"/{remap['start']}.{remap['start']}")
    if toolkit_expected:
        assert "nvidia" in docker_info["Runtimes"]
    foreign = host_var(host, "molecule_foreign_daemon_keys", {}) or {}
    for name in foreign.get("runtimes", {}):
        assert name in docker_info["Runtimes"]


def test_subordinate_ranges_one_line_for_the_remap_user_others_kept(host, remap):
    foreign = host_var(host, "molecule_foreign_subid", None)
    for path in ("/etc/subuid", "/etc/subgid"):
        lines = host.file(path).content_string.splitlines()
        mine = [line for line in lines if line.startswith(remap["user"] + ":")]
        assert mine == [f"{remap['user']}:{remap['start']}:{remap['count']}"], path
        if foreign:
            assert foreign in lines, path


def test_container_root_is_the_subordinate_range(host, image, remap):
    for mapping in ("uid_map", "gid_map"):
        out = host.check_output(f"docker run --rm {image} cat /proc/self/{mapping}")
        assert [int(f) for f in out.split()] == [0, remap["start"], remap["count"]], mapping


def test_file_written_by_container_root_belongs_to_the_subordinate_uid(host, image, remap):
    directory = "/var/tmp/gymlab-userns-bind"
    host.check_output(f"rm -rf {directory} && mkdir -m 1777 {directory}")
    host.check_output(f"docker run --rm -v {directory}:/data {image} touch /data/made-by-root")
    made = host.file(f"{directory}/made-by-root")
    assert (made.uid, made.gid) == (remap["start"], remap["start"])
    assert made.uid != 0


def test_local_fact_tells_later_roles_how_to_run_gpu_containers(fact, toolkit_expected):
    remap_user = fact["userns_remap"]
    if toolkit_expected:
        assert "--gpus=all" in fact["gpu_docker_args"]
        assert ("--userns=host" in fact["gpu_docker_args"]) is bool(remap_user)
    else:
        assert fact["gpu_docker_args"] == []


def test_gpu_container_args_run_unremapped_through_the_nvidia_runtime(
    host, image, fact, toolkit_expected
):
    """The decision: GPU containers leave the remap (--userns=host) and use the nvidia runtime."""
    if not toolkit_expected:
        pytest.skip("the NVIDIA container toolkit is not installed on this host")
    # --gpus needs the real toolkit's hook and a GPU; the rest of the args must still hold.
    args = [a for a in fact["gpu_docker_args"] if not a.startswith("--gpus")]
    out = host.check_output(
        f"docker run --rm --runtime=nvidia {' '.join(args)} {image} cat /proc/self/uid_map"
    )
    assert [int(f) for f in out.split()] == [0, 0, 4294967295]  # the host's own ids


def test_dev_char_links_kept_by_udev_rule(host, fact, toolkit_expected):
    if not toolkit_expected:
        pytest.skip("the NVIDIA container toolkit is not installed on this host")
    if not fact["dev_char_links"]:
        pytest.skip("container_runtime_nvidia_dev_char_links is false here")
    rule = host.file("/etc/udev/rules.d/71-gymlab-nvidia-dev-char.rules").content_string
    match = re.search(r'RUN\+="(\S+) system create-dev-char-symlinks --create-all"', rule)
    assert match, rule
    assert host.run(f"{match.group(1)} --version").rc == 0
    if not host.file("/dev/nvidiactl").exists:
        return  # no devices to link on this host; the rule and the tool are in place
    for dev in host.check_output("ls /dev/nvidia*").split():
        node = host.file(dev)
        if node.is_character_device:
            majmin = host.check_output(f"stat -c '%t %T' {dev}").split()
            link = "/dev/char/{}:{}".format(*(int(x, 16) for x in majmin))
            assert host.file(link).linked_to == dev, link


def test_gpu_container_sees_the_gpu(host, image, fact):
    if not host.file("/dev/nvidiactl").exists:
        pytest.skip("no NVIDIA device (/dev/nvidiactl) on this host: nothing to run nvidia-smi on")
    out = host.check_output(
        f"docker run --rm {' '.join(fact['gpu_docker_args'])} {image} nvidia-smi -L"
    )
    assert re.search(r"^GPU 0: ", out, re.M), out


# --- converging again from the control machine --------------------------------------------------


def run_playbook(host, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    inventory = getattr(host.backend, "ansible_inventory", None)
    if host.backend.NAME != "ansible" or not inventory:
        pytest.skip("re-converging needs the ansible connection and its inventory")
    name = host.backend.host
    cmd = [
        str(Path(sys.executable).parent / "ansible-playbook"),
        "-i",
        inventory,
        str(PLAYBOOK),
        "--limit",
        name,
        *args,
    ]
    # Plain, one-line results: messages are matched below.
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
    }
    proc = subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    recap = re.search(
        rf"^{re.escape(name)}\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)",
        proc.stdout,
        re.M,
    )
    assert recap, f"no recap for {name}:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    counts = dict(
        zip(("ok", "changed", "unreachable", "failed"), map(int, recap.groups()), strict=True)
    )
    return proc, counts


def test_last_converge_did_not_restart_docker(host):
    before = host.file(DOCKERD_BEFORE_CONVERGE)
    if not before.exists:
        pytest.skip(f"{DOCKERD_BEFORE_CONVERGE} not written (only molecule's converge writes it)")
    recorded = dict(
        line.split("=", 1) for line in before.content_string.splitlines() if "=" in line
    )
    assert recorded.get("MainPID", "0") != "0", "dockerd was not running before the last converge"
    assert dockerd_state(host) == recorded


def test_check_mode_on_the_converged_host_reports_no_change(host):
    state = dockerd_state(host)
    proc, counts = run_playbook(host, "--check", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert counts["changed"] == 0 and counts["failed"] == 0, proc.stdout[-3000:]
    assert dockerd_state(host) == state


def test_broken_daemon_json_fails_the_run_and_stays_untouched(host):
    path = "/var/tmp/gymlab-broken-daemon-json/daemon.json"
    broken = '{"debug": true,\n "log-level": }\n'
    host.check_output(
        f"rm -rf {Path(path).parent} && mkdir {Path(path).parent} && "
        f"printf %s {shlex.quote(broken)} > {path}"
    )
    real = host.file("/etc/docker/daemon.json").sha256sum
    state = dockerd_state(host)
    proc, counts = run_playbook(
        host, "-e", json.dumps({"container_runtime_daemon_json_path": path})
    )
    assert proc.returncode != 0
    assert counts["failed"] == 1
    # failed tasks may be shown on stderr (display_failed_stderr)
    assert f"{path} is not valid JSON" in proc.stdout + proc.stderr
    assert host.file(path).sha256sum == hashlib.sha256(broken.encode()).hexdigest()
    assert host.file("/etc/docker/daemon.json").sha256sum == real
    assert dockerd_state(host) == state
