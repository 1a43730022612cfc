"""The repository as the gymlab.lab collection: `ansible-galaxy collection build` from the root
gives a small tarball that, once installed into a collections path of its own, serves every role,
playbook and plugin by FQCN to a run that starts outside the repository (no ansible.cfg, roles
path or plugin path of the repository)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CONSUMER = REPO / "tests" / "fixtures" / "collection-consumer" / "converge.yml"
ROLES = sorted(p.parent.parent.name for p in REPO.glob("roles/*/tasks/main.yml"))
# plugins/<dir> -> the plugin type ansible-doc knows it by (action plugins are documented by the
# module of the same name)
DOC_TYPES = {"modules": "module", "callback": "callback", "lookup": "lookup", "filter": "filter"}
PLUGINS = sorted(
    (DOC_TYPES[p.parent.name], p.stem)
    for p in REPO.glob("plugins/*/*.py")
    if p.parent.name in DOC_TYPES and not p.name.startswith("_")
)
MAX_TARBALL = 1024 * 1024


def galaxy() -> dict:
    return yaml.safe_load((REPO / "galaxy.yml").read_text())


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    """Build the tarball and install it; return (tarball, collections path, env, cwd)."""
    root = tmp_path_factory.mktemp("collection")
    build, collections, cwd = root / "build", root / "collections", root / "consumer"
    for path in (build, collections, cwd, root / "no-roles"):
        path.mkdir()
    (root / "ansible.cfg").write_text("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_CONFIG=str(root / "ansible.cfg"),  # not the repository's ansible.cfg
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_ROLES_PATH=str(root / "no-roles"),
        ANSIBLE_NOCOLOR="1",
    )
    run([VENV_BIN / "ansible-galaxy", "collection", "build", "--output-path", build], env, REPO)
    (tarball,) = build.glob("gymlab-lab-*.tar.gz")
    run(
        [VENV_BIN / "ansible-galaxy", "collection", "install", "-p", collections, tarball], env, cwd
    )
    return tarball, collections, env, cwd


def run(argv, env, cwd, check=True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(a) for a in argv], env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")  # fmt: skip
    return result


def test_galaxy_version_is_the_python_package_version():
    # [project] is the first table of pyproject.toml (no tomllib on Python 3.10)
    project = (REPO / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', project, re.M)[1]
    license_ = re.search(r'^license = "([^"]+)"', project, re.M)[1]
    meta = galaxy()
    assert (meta["namespace"], meta["name"]) == ("gymlab", "lab")
    assert meta["version"] == version
    assert meta["license"] == [license_]


def test_tarball_is_small_and_holds_the_collection_only(install):
    tarball = install[0]
    assert tarball.stat().st_size < MAX_TARBALL
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    wanted = {"MANIFEST.json", "FILES.json", "meta/runtime.yml", "playbooks/site.yml", "envs",
              "plugins/callback/gymlab_failure.py", "src/gymlab/envs/install.py"}  # fmt: skip
    wanted |= {f"roles/{role}/tasks/main.yml" for role in ROLES}
    assert wanted <= names
    top = {name.split("/")[0] for name in names}
    assert not top & {".venv", ".git", "tests", "molecule", "collections", "reports", "tasks.py"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_runtime_requires_the_installed_ansible_core():
    from ansible.module_utils.compat.version import LooseVersion
    from ansible.release import __version__

    spec = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"]
    assert spec.startswith(">=")
    assert LooseVersion(__version__) >= LooseVersion(spec[2:])


def test_collection_list_finds_the_install_outside_the_repository(install):
    _, collections, env, cwd = install
    listed = run([VENV_BIN / "ansible-galaxy", "collection", "list", "gymlab.lab",
                  "--format", "json"], env, cwd)  # fmt: skip
    found = {path: cols for path, cols in json.loads(listed.stdout).items() if "gymlab.lab" in cols}
    assert list(found) == [str(collections / "ansible_collections")]
    assert (
        found[str(collections / "ansible_collections")]["gymlab.lab"]["version"]
        == galaxy()["version"]
    )


def test_every_role_is_served_from_the_install(install):
    _, collections, env, cwd = install
    listed = json.loads(run([VENV_BIN / "ansible-doc", "-t", "role", "-l", "gymlab.lab", "--json"],
                            env, cwd).stdout)  # fmt: skip
    assert sorted(name.removeprefix("gymlab.lab.") for name in listed) == ROLES
    doc = run([VENV_BIN / "ansible-doc", "-t", "role", "gymlab.lab.gym_runtime"], env, cwd).stdout
    assert str(collections / "ansible_collections" / "gymlab" / "lab") in doc


@pytest.mark.parametrize(("kind", "name"), PLUGINS, ids=[f"{k}:{n}" for k, n in PLUGINS])
def test_every_plugin_is_served_from_the_install(install, kind, name):
    _, _, env, cwd = install
    doc = json.loads(
        run([VENV_BIN / "ansible-doc", "-t", kind, f"gymlab.lab.{name}", "--json"], env, cwd).stdout
    )
    assert f"gymlab.lab.{name}" in doc


def test_consumer_playbooks_pass_the_syntax_check(install):
    _, _, env, cwd = install
    site = cwd / "site.yml"
    site.write_text(
        "---\n- name: The whole lab\n  ansible.builtin.import_playbook: gymlab.lab.site\n"
        "- name: Every role by FQCN\n  hosts: all\n  roles:\n"
        + "".join(f"    - gymlab.lab.{role}\n" for role in ROLES)
    )
    for playbook in (CONSUMER, site):
        run([VENV_BIN / "ansible-playbook", "-i", "localhost,", "--syntax-check", playbook],
            env, cwd)  # fmt: skip


def test_the_syntax_check_refuses_a_role_the_collection_lacks(install):
    _, _, env, cwd = install
    bad = cwd / "bad.yml"
    bad.write_text("---\n- name: A role that is not there\n  hosts: all\n"
                   "  roles:\n    - gymlab.lab.no_such_role\n")  # fmt: skip
    result = run([VENV_BIN / "ansible-playbook", "-i", "localhost,", "--syntax-check", bad],
                 env, cwd, check=False)  # fmt: skip
    assert result.returncode != 0
    assert "gymlab.lab.no_such_role" in result.stdout + result.stderr
