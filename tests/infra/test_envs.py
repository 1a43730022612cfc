"""Environment profiles installed by python_envs work: the framework imports, TensorFlow knows
the CUDA it was built for, Gym renders on the headless display, episodes are recorded to
video, JupyterLab runs, and the installed packages are exactly the lock's.

Expected values come from the profile's own files in envs/ (the lock, virtual-packages.yml),
not from constants in this file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import role_fact

ENVS = Path(__file__).resolve().parents[2] / "envs"
TIMEOUT = "timeout 300"

SUMMARY = (
    "print(json.dumps({'shape': list(f.shape), "
    "'colours': len(np.unique(f.reshape(-1, 3), axis=0))}))"
)
RENDER = {
    # gym 0.12: rgb_array still draws through pyglet/GLX, so it needs the X display
    "gym": (
        "import gym, json, numpy as np; e = gym.make('CartPole-v0'); e.reset(); "
        "f = e.render(mode='rgb_array'); e.close(); " + SUMMARY
    ),
    "gymnasium": (
        "import gymnasium as gym, json, numpy as np; "
        "e = gym.make('CartPole-v1', render_mode='rgb_array'); "
        "e.reset(seed=0); f = e.render(); e.close(); " + SUMMARY
    ),
}
RECORD = {
    "gym": (
        "import gym, gym.wrappers, sys; "
        "e = gym.wrappers.Monitor(gym.make('CartPole-v0'), sys.argv[1], force=True, "
        "video_callable=lambda i: True); e.reset(); done = False\n"
        "while not done: _, _, done, _ = e.step(e.action_space.sample())\n"
        "e.close()"
    ),
    "gymnasium": (
        "import gymnasium as gym, sys; "
        "e = gym.wrappers.RecordVideo(gym.make('CartPole-v1', render_mode='rgb_array'), "
        "sys.argv[1], episode_trigger=lambda i: True, disable_logger=True); "
        "e.reset(seed=0); done = False\n"
        "while not done:\n"
        "    _, _, term, trunc, _ = e.step(e.action_space.sample()); done = term or trunc\n"
        "e.close()"
    ),
}
# TF 2 reports its build itself. TF 1.12 has no get_build_info() and its GPU build cannot be
# imported without CUDA 9.0's libraries (the cuda role's), so without them it is asked the way
# the dynamic linker asks it: its build_info flag, and the CUDA runtime its library links.
TF2_BUILD = (
    "import json, tensorflow as tf; info = tf.sysconfig.get_build_info(); "
    "print(json.dumps({'cuda': info.get('cuda_version'), "
    "'cuda_build': tf.test.is_built_with_cuda()}))"
)
TF1_SITE = "import site; print(site.getsitepackages()[0])"


def tf1_build(host, env: str) -> dict:
    site = host.check_output(f"{env}/bin/python -c '{TF1_SITE}'").strip()
    flags = host.file(f"{site}/tensorflow/python/platform/build_info.py").content_string
    linked = host.check_output(f"ldd {site}/tensorflow/python/_pywrap_tensorflow_internal.so")
    cudart = re.search(r"libcudart\.so\.(\d+\.\d+)", linked)
    return {
        "cuda": cudart.group(1) if cudart else None,
        "cuda_build": "is_cuda_build = True" in flags,
    }


def fact(host) -> dict:
    """What python_envs recorded it installed here ({} where the role did not run)."""
    return role_fact(host, "python_envs") or {"profiles": {}}


def profiles(host) -> list[str]:
    return sorted(fact(host)["profiles"])


@pytest.fixture(
    params=sorted(p.name for p in ENVS.iterdir() if any(p.glob("requirements-py*.lock")))
)
def profile(request) -> str:
    return request.param


@pytest.fixture
def env(host, profile) -> str:
    if profile not in profiles(host):
        pytest.skip(f"profile {profile} is not installed on this host")
    return fact(host)["profiles"][profile]


def locked_pins(host, profile: str) -> dict[str, str]:
    """The pins of the lock python_envs installed: the one of the Python its fact records."""
    python = fact(host)["pythons"][profile]
    text = (ENVS / profile / f"requirements-py{python}.lock").read_text()
    return {
        re.sub(r"[-_.]+", "-", m.group(1)).lower(): m.group(2)
        for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+)", text, re.M)
    }


def run_json(host, command: str) -> dict:
    out = host.check_output(command)
    return json.loads(out.strip().splitlines()[-1])


def framework(host, profile: str) -> str:
    return "gym" if "gym" in locked_pins(host, profile) else "gymnasium"


def test_installed_packages_are_exactly_the_lock(host, env, profile):
    freeze = host.check_output(
        f"{env}/bin/python -m pip list --format=json --disable-pip-version-check"
    )
    have = {re.sub(r"[-_.]+", "-", p["name"]).lower(): p["version"] for p in json.loads(freeze)}
    have.pop("gymlab", None)  # the client, installed from this repository's wheel
    for venv_tool in ("setuptools", "wheel", "pip", "pkg-resources"):
        if venv_tool not in locked_pins(host, profile):
            have.pop(venv_tool, None)  # came with the venv, not from the lock
    assert have == locked_pins(host, profile)


def test_tensorflow_reports_the_cuda_it_was_built_for(host, env, profile):
    major = int(
        locked_pins(host, profile).get(
            "tensorflow-gpu", locked_pins(host, profile).get("tensorflow", "0")
        )[0]
    )
    if major == 1:
        built = tf1_build(host, env)
    else:
        built = run_json(host, f'{TIMEOUT} {env}/bin/python -c "{TF2_BUILD}"')
    wanted = yaml.safe_load((ENVS / profile / "virtual-packages.yml").read_text())
    cuda = str(wanted["subdirs"]["linux-64"]["packages"]["__cuda"])
    assert built["cuda_build"] is True
    assert built["cuda"].split(".")[0] == cuda.split(".")[0]
    if major == 1:
        assert built["cuda"] == cuda, "TF 1.12 GPU is built for exactly the CUDA the hosts have"


def test_tensorflow_imports(host, env, profile):
    if "tensorflow-gpu" in locked_pins(host, profile):
        libs = host.run("ldconfig -p").stdout
        if "libcudart.so.9.0" not in libs:
            pytest.skip("the TF 1.12 GPU build imports only with CUDA 9.0 (cuda role) on the host")
    out = host.check_output(
        f"{TIMEOUT} {env}/bin/python -c 'import tensorflow as tf; print(tf.__version__)'"
    )
    version = out.strip().splitlines()[-1]
    assert version == locked_pins(host, profile).get(
        "tensorflow", locked_pins(host, profile).get("tensorflow-gpu")
    )


def test_gym_renders_an_rgb_array_frame_on_the_display(host, env, profile, display):
    frame = run_json(
        host,
        f'DISPLAY=:{display} {TIMEOUT} {env}/bin/python -c "{RENDER[framework(host, profile)]}"',
    )
    assert frame["shape"] == [400, 600, 3]
    assert frame["colours"] > 1, "the frame is one flat colour"


def test_an_episode_is_recorded_to_a_video_with_frames(host, env, profile, display):
    videos = f"/tmp/gymlab-videos-{profile}"
    host.run(f"rm -rf {videos}")
    script = f"/tmp/gymlab-record-{profile}.py"
    host.check_output(f"cat > {script} <<'EOF'\n{RECORD[framework(host, profile)]}\nEOF")
    host.check_output(f"DISPLAY=:{display} {TIMEOUT} {env}/bin/python {script} {videos}")
    found = host.check_output(f"find {videos} -name '*.mp4'").split()
    assert found, "no video written"
    frames = host.check_output(
        f"ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames "
        f"-of csv=p=0 {found[0]}"
    )
    assert int(frames.strip()) > 0


def test_jupyter_lab_runs(host, env, profile):
    version = (
        host.check_output(f"{TIMEOUT} {env}/bin/jupyter lab --version").strip().splitlines()[-1]
    )
    assert version == locked_pins(host, profile)["jupyterlab"]


def test_the_fact_records_the_installed_profile(host, env, profile):
    """ansible_local.python_envs names the profile at the path its Python runs from, under the
    root, with its kernel beside every other recorded profile's."""
    recorded = fact(host)
    assert env == f"{recorded['root']}/{profile}"
    specs = json.loads(host.check_output(f"{env}/bin/jupyter kernelspec list --json"))
    kernels = sorted(k for k in specs["kernelspecs"] if k.startswith("gymlab-"))
    assert kernels == [f"gymlab-{p}" for p in profiles(host)]
    assert host.check_output(f"{env}/bin/python -c 'import sys; print(sys.prefix)'") == env


def test_the_env_is_the_hosts_python3_with_that_pythons_lock(host, env, profile):
    """A [pypi] profile is a venv of the distribution's python3, installed from the lock of its
    version (the fact records which; the lock copied into the env is that one)."""
    version = "-c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'"
    python3 = host.check_output(f"python3 {version}")
    assert host.check_output(f"{env}/bin/python {version}") == python3
    assert fact(host)["pythons"][profile] == python3
    lock = (ENVS / profile / f"requirements-py{python3}.lock").read_text()
    assert host.file(f"{env}/gymlab-requirements.lock").content_string == lock


def test_kernel_is_registered_for_the_profile(host, env, profile):
    specs = json.loads(host.check_output(f"{env}/bin/jupyter kernelspec list --json"))[
        "kernelspecs"
    ]
    spec = specs[f"gymlab-{profile}"]["spec"]
    assert spec["argv"][0] == f"{env}/bin/python"


def test_a_tampered_lock_stopped_the_role_and_changed_nothing(host, env, profile):
    outcome_file = host.file("/var/lib/gymlab-tamper-outcome.json")
    if not outcome_file.exists:
        pytest.skip("the tamper side effect runs only in the molecule envs scenarios")
    outcome = json.loads(outcome_file.content_string)
    assert outcome["refused"] is True
    assert "hash" in outcome["message"].lower()
    link = host.file(env)
    assert link.is_symlink
    stamp = host.file(f"{env}/.gymlab-lock-sha256").content_string.strip()
    assert link.linked_to.endswith(f".{profile}-{stamp[:12]}")
    siblings = host.check_output(f"ls -a {Path(env).parent}").split()
    assert [s for s in siblings if s.startswith(f".{profile}-")] == [Path(link.linked_to).name]


def test_wheelhouse_copy_matches_the_control_machine(host):
    """python_envs_copy_wheelhouse: each copied folder has the listing the role compares on the
    next run (the control machine's files of that folder), and every listed file is on the host
    at its size. (The control machine's folder itself may have changed since: the tamper side
    effect re-fetches there.)"""
    recorded = fact(host)
    if not recorded.get("wheelhouse_copy"):
        pytest.skip("this host installs from the control machine's wheelhouse or an index")
    copy, controller = recorded["wheelhouse_copy"], Path(recorded["wheelhouse_source"])
    # each profile's folder of the lock this host installs (its Python's), not the others
    pythons = recorded["pythons"]
    assert pythons
    assert {f"{name}/py{python}" for name, python in pythons.items()} <= set(
        recorded["wheelhouse_folders"]
    )
    for folder in recorded["wheelhouse_folders"]:
        listing = json.loads(host.file(f"{copy}/{folder}.listing").content_string)
        assert listing, f"{folder}: an empty copy"
        for path, size in listing.items():
            relative = Path(path).relative_to(controller / folder)  # raises if elsewhere
            assert host.file(f"{copy}/{folder}/{relative}").size == size
