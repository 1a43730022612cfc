"""The control-machine tooling behind the invoke tasks: its errors are one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from gymlab.lab import ansible, docker, images
from gymlab.lab.errors import LabError

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    inv = tmp_path / "inventory"
    inv.mkdir()
    (inv / "hosts.yml").write_text(
        textwrap.dedent(
            """\
            all:
              vars: {ansible_python_interpreter: "{{ ansible_playbook_python }}"}
              hosts:
                alpha: {ansible_connection: local, colour: blue}
                beta: {ansible_connection: local}
            """
        )
    )
    return inv


@pytest.fixture(autouse=True)
def venv_on_path(monkeypatch):
    # ansible-inventory / ansible-playbook come from the same venv as the tests.
    monkeypatch.setenv("PATH", f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}")


def test_inventory_host_returns_its_variables(inventory):
    host = ansible.inventory_host("alpha", inventory)
    assert host.name == "alpha"
    assert host.vars["colour"] == "blue"


def test_unknown_host_names_the_known_ones(inventory):
    with pytest.raises(LabError, match=r"unknown host 'gamma' in .*; known hosts: alpha, beta"):
        ansible.inventory_host("gamma", inventory)


def test_missing_host_and_missing_inventory(inventory, tmp_path):
    with pytest.raises(LabError, match="no host given"):
        ansible.inventory_host("", inventory)
    with pytest.raises(LabError, match="no such inventory"):
        ansible.inventory_host("alpha", tmp_path / "nope")


def test_failed_playbook_ends_in_one_line_naming_task_and_message(inventory, tmp_path):
    book = tmp_path / "fail.yml"
    book.write_text(
        textwrap.dedent(
            """\
            - hosts: alpha
              gather_facts: false
              tasks:
                - name: Harmless first step
                  ansible.builtin.debug: {msg: fine}
                - name: Check the widget count
                  ansible.builtin.assert:
                    that: [widgets | int > 3]
                    fail_msg: "widgets={{ widgets }} but more than 3 are needed"
                  vars: {widgets: 2}
            """
        )
    )
    with pytest.raises(LabError) as caught:
        ansible.playbook(book, inventory=inventory)
    message = str(caught.value)
    assert "\n" not in message
    assert "on alpha at task 'Check the widget count'" in message
    assert "widgets=2 but more than 3 are needed" in message


def test_successful_playbook_returns(inventory, tmp_path):
    book = tmp_path / "ok.yml"
    book.write_text("- hosts: all\n  gather_facts: false\n  tasks: [{ansible.builtin.ping: {}}]\n")
    ansible.playbook(book, inventory=inventory, limit="beta")


def test_unknown_image_names_the_recipes():
    with pytest.raises(LabError, match=r"unknown image centos7; expected one of debian12"):
        images.resolve(["centos7"])
    assert [r.name for r in images.resolve(None)] == list(images.RECIPES)


def test_recipe_digest_follows_the_recipe():
    base = images.RECIPES["debian12"]
    changed = images.Recipe(base.name, base.distro, base.suite, base.components, ("systemd",))
    assert base.digest == images.RECIPES["debian12"].digest
    assert changed.digest != base.digest


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("sources.list.d/main.sources", "Types: deb\nURIs: http://mirror.example.test/debian\n"),
        ("sources.list", "deb [arch=amd64] http://mirror.example.test/debian bookworm main\n"),
    ],
)
def test_host_debian_mirror_reads_both_source_formats(tmp_path, name, text):
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / name).write_text(text)
    assert images.host_debian_mirror(tmp_path) == "http://mirror.example.test/debian"


def test_host_debian_mirror_ignores_other_archives(tmp_path):
    (tmp_path / "sources.list").write_text("deb http://mirror.example.test/ubuntu jammy main\n")
    assert images.host_debian_mirror(tmp_path) is None


def test_missing_daemon_and_dockerd_is_one_clear_line(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # neither docker nor dockerd can be found
    assert not docker.daemon_answers()
    with pytest.raises(LabError, match="dockerd is not installed"):
        docker.ensure_daemon()


def test_invoke_task_prints_one_line_not_a_traceback(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}
    done = subprocess.run(
        [str(VENV_BIN / "invoke"), "-r", str(REPO), "daemon"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "gymlab: no Docker daemon answers and dockerd is not installed; "
        "run `apt-get install docker.io` (or `./lab`, which installs it) and retry"
    ]


def _fake_debootstrap(root: Path, scripts: tuple[str, ...]) -> Path:
    (root / "scripts").mkdir(parents=True)
    (root / "functions").write_text("# functions\n")
    for name in scripts:
        (root / "scripts" / name).write_text(f"# {name}\n")
    return root


def test_a_suite_debootstrap_knows_needs_no_private_script_dir(tmp_path):
    system = _fake_debootstrap(tmp_path / "system", ("jammy", "gutsy", "debian-common"))
    assert images.debootstrap_dir(images.RECIPES["ubuntu2204"], tmp_path, system) is None


def test_a_new_ubuntu_suite_bootstraps_with_the_gutsy_script(tmp_path):
    system = _fake_debootstrap(tmp_path / "system", ("jammy", "gutsy", "sid", "debian-common"))
    private = images.debootstrap_dir(images.RECIPES["ubuntu2404"], tmp_path / "work", system)
    assert private is not None
    assert (private / "scripts" / "noble").read_text() == "# gutsy\n"
    # the rest of debootstrap stays the system's: its functions and the shared scripts
    assert (private / "functions").resolve() == (system / "functions").resolve()
    assert (private / "scripts" / "debian-common").read_text() == "# debian-common\n"


def test_a_suite_without_its_family_script_names_both(tmp_path):
    system = _fake_debootstrap(tmp_path / "system", ("jammy",))
    with pytest.raises(LabError, match="no script for noble nor for its family gutsy"):
        images.debootstrap_dir(images.RECIPES["ubuntu2404"], tmp_path / "work", system)
