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

from gymlab.lab import collection

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
    # the collection phase of ./lab test hands over the tarball it checks with sanity and Galaxy's
    # importer; otherwise build one
    given = os.environ.get("GYMLAB_COLLECTION_TARBALL")
    if given:
        tarball = Path(given)
    else:
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
    license_ = re.search(r'^license = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)[1]
    meta = galaxy()
    assert (meta["namespace"], meta["name"]) == ("gymlab", "lab")
    assert meta["version"] == collection.project_version()
    assert meta["license"] == [license_]
    assert (REPO / "LICENSE").read_text().startswith("MIT License")


def test_sync_version_writes_pyproject_version_into_galaxy_yml(tmp_path, monkeypatch):
    stale = tmp_path / "galaxy.yml"
    text = (REPO / "galaxy.yml").read_text()
    stale.write_text(re.sub(r"^version: .*$", "version: 9.9.9", text, count=1, flags=re.M))
    monkeypatch.setattr(collection, "GALAXY_YML", stale)
    assert collection.sync_version() == collection.project_version()
    assert stale.read_text() == text.replace(
        f"version: {galaxy()['version']}", f"version: {collection.project_version()}", 1
    )


def test_galaxy_metadata_is_complete_for_galaxy():
    meta = galaxy()
    for key in ("repository", "documentation", "homepage", "issues"):
        assert re.fullmatch(r"https://[a-z0-9.-]+/\S+", meta[key] or ""), key
    assert 1 <= len(meta["tags"]) <= 20
    assert all(re.fullmatch(r"[a-z0-9_]{1,64}", tag) for tag in meta["tags"])


def test_sanity_ignore_files_agree_and_give_reasons():
    files = sorted((REPO / "tests" / "sanity").glob("ignore-2.*.txt"))
    assert [f.name for f in files] == ["ignore-2.16.txt", "ignore-2.19.txt"]
    assert len({f.read_text() for f in files}) == 1
    for line in files[0].read_text().splitlines():
        path, rest = line.split(" ", 1)
        assert (REPO / path).is_file(), line
        assert " # " in rest and rest.split(" # ", 1)[1].strip(), f"no reason: {line}"


def test_get_pip_standin_version_is_found_in_ansible_test():
    version = collection.pip_version(collection.ansible_test_root(VENV_BIN))
    assert re.fullmatch(r"\d+(\.\d+)+", version)


def test_tarball_is_small_and_holds_the_collection_only(install):
    tarball = install[0]
    assert tarball.stat().st_size < MAX_TARBALL
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
        links = [m.name for m in tar.getmembers() if m.issym() or m.islnk()]
    assert links == []  # a link would leave its plugin out of ansible-doc and validate-modules
    wanted = {"MANIFEST.json", "FILES.json", "meta/runtime.yml", "playbooks/site.yml", "envs",
              "plugins/callback/gymlab_failure.py", "src/gymlab/envs/install.py", "LICENSE",
              "plugins/modules/container_runtime_daemon_json.py", "tests/sanity/ignore-2.16.txt",
              "changelogs/changelog.yaml"}  # fmt: skip
    wanted |= {f"roles/{role}/tasks/main.yml" for role in ROLES}
    assert wanted <= names
    top = {name.split("/")[0] for name in names}
    assert not top & {".venv", ".git", "molecule", "collections", "reports", "tasks.py"}
    assert {n.split("/")[1] for n in names if n.startswith("tests/")} == {"sanity"}
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


README_BLOCK = re.compile(
    r"<!-- tests/unit/test_collection.py runs every command of this block, in this order -->\n"
    r"```sh\n(.*?)```\n.*?```yaml\n(.*?)```",
    re.S,
)


def test_the_readme_commands_build_install_and_check_a_consumer(tmp_path):
    """The README's "Use the roles in your own repository", command by command, in a lab
    repository of its own (a clone's build: the repository is the source)."""
    commands, playbook = README_BLOCK.search((REPO / "README.md").read_text()).groups()
    lab = tmp_path / "my-lab"
    lab.mkdir()
    (lab / "ansible.cfg").write_text("[defaults]\ncollections_path = ./collections\n")
    (lab / "site.yml").write_text("---\n" + playbook)
    (lab / "inventory.yml").write_text("runtime_hosts:\n  hosts:\n    rt01:\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env |= {"ANSIBLE_CONFIG": str(lab / "ansible.cfg"), "PATH": f"{VENV_BIN}:{env['PATH']}"}
    lines = [line for line in commands.splitlines() if line.strip()]
    assert [line.split()[0] for line in lines] == [
        "ansible-galaxy", "ansible-galaxy", "ansible-doc", "ansible-playbook"]  # fmt: skip
    # the build runs in the clone, with its output where the lab's next commands look
    build = f"{lines[0]} {REPO}".replace("dist", str(lab / "dist"))
    run(["bash", "-c", build], env, lab)
    outputs = [run(["bash", "-c", line], env, lab).stdout for line in lines[1:]]
    assert (
        lab / "collections" / "ansible_collections" / "gymlab" / "lab" / "MANIFEST.json"
    ).is_file()
    assert all(f"gymlab.lab.{role}" in outputs[1] for role in ROLES)
