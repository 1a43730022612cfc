"""GPU stack checks (nvidia_driver, cuda, cudnn roles).

What is checked comes from what the roles recorded they did (their local facts: the toolkits,
the default, how cuDNN was installed), so the checks mean something on every profile and with
every variable left to its default; the runfile and tarball artifacts' own descriptions (patch
lists, compilers, which have no defaults) come from the inventory. Hosts outside gpu_hosts skip
them all. Checks that need
an NVIDIA device skip, saying so, where lspci shows none, and must pass where it shows one.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import role_fact as local_fact

PROBES = Path(__file__).parent / "gpu"
WORK = "/var/tmp/gymlab-gpu-check"
PREFIX = "/usr/local"
# Oldest driver each toolkit release supports (NVIDIA's toolkit/driver compatibility table).
MIN_DRIVER = {
    "9.0": "384.81",
    "9.1": "390.46",
    "9.2": "396.26",
    "10.0": "410.48",
    "10.1": "418.39",
    "10.2": "440.33",
    "11.8": "520.61.05",
    "12.0": "525.60.13",
}
N = 1000
HOST_SUM = sum(i * i for i in range(N))


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def cudart_soname(release: str) -> str:
    """libcudart's soname: per minor release up to CUDA 10, per major release from 11."""
    major = int(release.split(".")[0])
    return f"libcudart.so.{major}.0" if major >= 11 else f"libcudart.so.{release}"


@pytest.fixture(scope="module")
def gpu_vars(host) -> dict:
    variables = host.ansible.get_variables()
    if "gpu_hosts" not in variables.get("group_names", []):
        pytest.skip("host is not in gpu_hosts: the GPU roles do not run there")
    return variables


@pytest.fixture(scope="module")
def cuda_fact(host, gpu_vars) -> dict:
    fact = local_fact(host, "cuda")
    if fact is None:  # site.yml applies the role only where cuda_toolkits lists a toolkit
        pytest.skip("the cuda role did not run here: no host toolkit (cuda_toolkits is empty)")
    return fact


@pytest.fixture(scope="module")
def toolkits(cuda_fact) -> list[dict]:
    """Each toolkit the cuda role installed: {version, method}."""
    if not cuda_fact["toolkits"]:
        pytest.skip("the cuda role installed no host toolkit here")
    return [{"version": v, "method": cuda_fact["methods"][v]} for v in cuda_fact["toolkits"]]


@pytest.fixture(scope="module")
def default_version(cuda_fact, toolkits) -> str:
    return cuda_fact["default"]


@pytest.fixture(scope="module")
def work(host, gpu_vars) -> str:
    """The probe sources copied into the host."""
    host.ansible("copy", f"src={PROBES}/ dest={WORK}/", check=False, become=True)
    return WORK


def login(host, command: str):
    """Run in a login shell, the way users get the toolkit's environment."""
    return host.run(f"bash -lc {command!r}")


def gpu_present(host) -> bool:
    out = host.run("lspci -n -d 10de:").stdout
    return any(re.match(r"^\S+ 03[0-9a-f]{2}: 10de:", line) for line in out.splitlines())


@pytest.fixture(scope="module")
def device(host, gpu_vars) -> None:
    if not gpu_present(host):
        pytest.skip("no NVIDIA GPU on this host (lspci shows no vendor 10de display device)")


# --- checks that run wherever the roles ran -----------------------------------------------


def test_each_toolkit_nvcc_reports_its_release(host, toolkits):
    for tk in toolkits:
        out = host.check_output(f"{PREFIX}/cuda-{tk['version']}/bin/nvcc --version")
        assert f"release {tk['version']}," in out, out


def test_cuda_link_points_at_the_default(host, default_version):
    assert host.file(f"{PREFIX}/cuda").is_symlink
    assert host.file(f"{PREFIX}/cuda").linked_to == f"{PREFIX}/cuda-{default_version}"


def test_the_cuda_fact_names_the_toolkits_and_the_default(host, gpu_vars, cuda_fact, toolkits):
    """Every recorded toolkit is a directory of the prefix; the default is one of them; where
    the inventory names the versions it asked for, exactly those were installed."""
    asked = [tk.get("version", "") for tk in gpu_vars.get("cuda_toolkits", [])]
    if asked and all(asked):
        assert cuda_fact["toolkits"] == asked
    assert cuda_fact["default"] in cuda_fact["toolkits"]
    for tk in toolkits:
        assert host.file(f"{cuda_fact['prefix']}/cuda-{tk['version']}").is_directory
    linked = host.file(f"{cuda_fact['prefix']}/cuda").linked_to
    assert linked == f"{cuda_fact['prefix']}/cuda-{cuda_fact['default']}"


def test_login_shell_gets_the_default_toolkit(host, default_version):
    out = login(
        host,
        "command -v nvcc; nvcc --version; echo CUDA_HOME=$CUDA_HOME; "
        "echo LD_LIBRARY_PATH=$LD_LIBRARY_PATH",
    )
    assert out.rc == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"{PREFIX}/cuda/bin/nvcc"
    assert f"release {default_version}," in out.stdout
    assert f"CUDA_HOME={PREFIX}/cuda\n" in out.stdout
    assert re.search(rf"^LD_LIBRARY_PATH=(.*:)?{PREFIX}/cuda/lib64(:|$)", out.stdout, re.M)


def test_program_compiled_by_plain_nvcc_runs(host, toolkits, work):
    build = login(host, f"cd {work} && nvcc -o cuda_check cuda_check.cu")
    assert build.rc == 0, build.stdout + build.stderr
    out = host.check_output(f"{work}/cuda_check")
    assert f"host-sum {HOST_SUM}" in out


def test_ld_so_finds_libcudart(host, toolkits, gpu_vars):
    cache = host.check_output("ldconfig -p")
    for tk in toolkits:
        soname = cudart_soname(tk["version"])
        entries = [line for line in cache.splitlines() if line.strip().startswith(soname + " ")]
        assert entries, f"{soname} is not in the ld.so cache"
        if tk["method"] == "runfile":
            assert any(f"{PREFIX}/cuda-{tk['version']}/lib64/" in e for e in entries), entries
        load = host.run(f"python3 -c 'import ctypes; ctypes.CDLL(\"{soname}\")'")
        assert load.rc == 0, load.stderr


def test_runfile_toolkits_are_complete_and_wired_to_their_gcc(host, toolkits, gpu_vars):
    runfile = [t for t in toolkits if t["method"] == "runfile"]
    if not runfile:
        pytest.skip("no toolkit installed from a runfile on this host")

    for tk in runfile:
        entry = gpu_vars["cuda_runfiles"][tk["version"]]
        path = f"{PREFIX}/cuda-{tk['version']}"
        record = json.loads(host.file(f"{path}/.gymlab-install.json").content_string)
        assert [p["file"] for p in record["patches"]] == [p["file"] for p in entry["patches"]]
        assert not host.file(f"{path}.partial").exists
        if entry.get("host_compiler"):
            for tool in ("gcc", "g++"):
                major = host.check_output(f"{path}/bin/{tool} -dumpversion").split(".")[0]
                assert major == entry["host_compiler"]


# --- cuDNN ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cudnn(host, gpu_vars) -> dict:
    """How the cudnn role installed cuDNN here (its fact)."""
    fact = local_fact(host, "cudnn")
    assert fact is not None, "a GPU host without /etc/ansible/facts.d/cudnn.fact"
    if fact["method"] == "none":
        pytest.skip("cudnn_method is none on this host")
    if not fact["installed"]:
        pytest.skip("cuDNN package skipped by the role: it downloads from NVIDIA at install time")
    return fact


def _cudnn_major(cudnn: dict) -> str:
    """The major version in the installed tarball's name (cudnn-9.0-linux-x64-v7.6.5.32.tgz)."""
    match = re.search(r"-v(\d+)\.", cudnn["tarball"])
    assert match, cudnn["tarball"]
    return match.group(1)


def test_cudnn_header_and_library_agree(host, cudnn, work):
    build = login(host, f"cd {work} && nvcc -o cudnn_check cudnn_check.cu -lcudnn")
    assert build.rc == 0, build.stdout + build.stderr
    out = host.run(f"{work}/cudnn_check")
    assert out.rc == 0, out.stdout
    if cudnn["method"] == "tarball":
        assert out.stdout.startswith(f"header {_cudnn_major(cudnn)}.")


def test_the_cudnn_fact_says_how_it_was_installed(host, cudnn):
    if cudnn["method"] == "tarball":
        assert host.file(f"{cudnn['toolkit_path']}/include/cudnn.h").exists
    else:
        assert cudnn["toolkit_path"] is None and cudnn["tarball"] is None


def test_cudnn_tarball_readable_links_preserved_and_found(host, cudnn):
    if cudnn["method"] != "tarball":
        pytest.skip("cuDNN not from the tarball on this host")
    path = cudnn["toolkit_path"]
    major = _cudnn_major(cudnn)
    as_nobody = (
        "python3 -c 'import os, sys; os.setgroups([]); os.setgid(65534); os.setuid(65534); "
        f'open(sys.argv[1], "rb").read()\' {path}/include/cudnn.h'
    )
    assert host.run(as_nobody).rc == 0, "cudnn.h is not readable by other users"
    assert host.file(f"{path}/lib64/libcudnn.so").is_symlink
    assert host.file(f"{path}/lib64/libcudnn.so.{major}").is_symlink
    out = host.check_output(
        f"python3 -c 'import ctypes; print(ctypes.CDLL(\"libcudnn.so.{major}\").cudnnGetVersion())'"
    )
    assert out.strip().startswith(major)


# --- driver -----------------------------------------------------------------------------


def test_no_driver_without_a_device(host, gpu_vars):
    if gpu_present(host) or not local_fact(host, "nvidia_driver")["require_device"]:
        pytest.skip("an NVIDIA GPU is present (or installing without one was asked for)")
    installed = host.run(
        "dpkg-query -W -f='${Package} ${Status}\\n' 'nvidia-*dkms*' 'nvidia-headless*'"
    )
    assert "install ok installed" not in installed.stdout
    assert not host.file("/etc/modprobe.d/gymlab-blacklist-nouveau.conf").exists


def test_the_driver_fact_matches_the_device_and_packages(host, gpu_vars):
    fact = local_fact(host, "nvidia_driver")
    assert fact["gpu_present"] is gpu_present(host)
    assert fact["installed"] is (fact["gpu_present"] or not fact["require_device"])
    installed = host.run("dpkg-query -W -f='${Status}\\n' 'nvidia-*dkms*' 'nvidia-headless*'")
    assert fact["installed"] is ("install ok installed" in installed.stdout)


def test_driver_held_and_nouveau_blacklisted(host, device):
    held = host.check_output("dpkg --get-selections | awk '$2 == \"hold\" {print $1}'")
    assert any(name.startswith(("nvidia", "libnvidia", "libcuda")) for name in held.split())
    blacklist = host.file("/etc/modprobe.d/gymlab-blacklist-nouveau.conf")
    assert "blacklist nouveau" in blacklist.content_string


def test_nvidia_smi_lists_a_gpu(host, device):
    out = host.check_output("nvidia-smi -L")
    assert re.search(r"^GPU 0: ", out, re.M), out


def test_kernel_runs_on_the_gpu(host, device, work):
    build = login(host, f"cd {work} && nvcc -o cuda_check cuda_check.cu")
    assert build.rc == 0, build.stdout + build.stderr
    out = host.run(f"{work}/cuda_check --device")
    assert out.rc == 0, out.stdout
    assert f"device-sum {HOST_SUM}" in out.stdout


def test_driver_supports_every_toolkit(host, device, toolkits):
    driver = host.check_output("nvidia-smi --query-gpu=driver_version --format=csv,noheader")
    driver = driver.splitlines()[0].strip()
    for tk in toolkits:
        minimum = MIN_DRIVER.get(tk["version"])
        if minimum is None:
            pytest.fail(f"no known minimum driver for CUDA {tk['version']}; add it to MIN_DRIVER")
        assert _version_tuple(driver) >= _version_tuple(minimum), (driver, tk["version"])
