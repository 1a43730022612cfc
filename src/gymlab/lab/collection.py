"""The repository as Galaxy and ansible-test see it: the gymlab.lab tarball built from the
checkout, installed into a collections path of its own, and the commands of the `collection`
phase of `./lab test` that check that install (ansible-test sanity under both Ansibles, Galaxy's
importer, CHANGELOG.md against changelogs/, the consumer playbooks).

The collection's version is pyproject.toml's ``[project].version``: :func:`build` writes it into
galaxy.yml before ``ansible-galaxy collection build`` reads it there.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from gymlab.lab import proc
from gymlab.lab.ansible import REPO
from gymlab.lab.errors import LabError

GALAXY_YML = REPO / "galaxy.yml"
TOOLS_LOCK = REPO / "collection-tools.lock"
# TEST FIXTURE: ansible-test's get-pip script, replaced by one that needs no download
GET_PIP_STANDIN = REPO / "tests" / "fixtures" / "get_pip_standin.py"
ANSIBLE_TEST_CACHE = Path.home() / ".ansible" / "test" / "cache"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# Galaxy's importer without a container runtime: its ansible-test step needs Docker (sanity
# runs in this phase instead); ansible-lint and the metadata, docs and changelog checks still run.
IMPORTER_CONFIG = "[galaxy-importer]\nRUN_ANSIBLE_TEST = False\nLOG_LEVEL_MAIN = INFO\n"
VERSION_LINE = re.compile(r"^version: .*$", re.M)


def project_version() -> str:
    """pyproject.toml's ``[project].version`` (the first ``version =`` line: [project] is the
    file's first table; no tomllib on Python 3.10)."""
    found = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    if not found:
        raise LabError("pyproject.toml has no [project] version line")
    return found[1]


def galaxy_version() -> str:
    found = VERSION_LINE.search(GALAXY_YML.read_text())
    if not found:
        raise LabError("galaxy.yml has no top-level version line")
    return found[0].split(":", 1)[1].strip()


def sync_version() -> str:
    """Write pyproject.toml's version into galaxy.yml when it differs; the version."""
    version = project_version()
    if galaxy_version() != version:
        text = VERSION_LINE.sub(f"version: {version}", GALAXY_YML.read_text(), count=1)
        GALAXY_YML.write_text(text)
        print(f"galaxy.yml: version {version} (from pyproject.toml)", flush=True)
    return version


def build(out: Path, bin_dir: Path | None = None) -> Path:
    """``ansible-galaxy collection build`` of the checkout into ``out``; the tarball."""
    galaxy = str((bin_dir or Path(sys.executable).parent) / "ansible-galaxy")
    version = sync_version()
    out.mkdir(parents=True, exist_ok=True)
    proc.run([galaxy, "collection", "build", "--force", "--output-path", str(out), str(REPO)],
             what="building the gymlab.lab tarball", timeout=300)  # fmt: skip
    tarball = out / f"gymlab-lab-{version}.tar.gz"
    if not tarball.is_file():
        raise LabError(f"ansible-galaxy collection build left no {tarball.name} in {out}")
    return tarball


def install(tarball: Path, collections: Path, bin_dir: Path | None = None) -> Path:
    """Install ``tarball`` into the collections path ``collections``; the collection's root
    (``.../ansible_collections/gymlab/lab``, where ansible-test must run)."""
    galaxy = str((bin_dir or Path(sys.executable).parent) / "ansible-galaxy")
    collections.mkdir(parents=True, exist_ok=True)
    # from outside the repository: its collections/ link would count as installed already
    proc.run([galaxy, "collection", "install", "--force", "-p", str(collections), str(tarball)],
             what=f"installing {tarball.name}", timeout=300, cwd=collections)  # fmt: skip
    return collections / "ansible_collections" / "gymlab" / "lab"


def pip_version(ansible_test_root: Path) -> str:
    """The pip version whose get-pip script the ansible-test at ``ansible_test_root`` (its
    package directory) bootstraps sanity venvs with."""
    source = (ansible_test_root / "_internal" / "python_requirements.py").read_text()
    found = re.search(r"default_packages = dict\(\s*pip='([^']+)'", source)
    if not found:
        raise LabError(f"no pip version found in {ansible_test_root}; ansible-test changed")
    return found[1]


def install_get_pip_standin(ansible_test_root: Path) -> Path:
    """Put the TEST FIXTURE get-pip stand-in where ansible-test looks for its cached script."""
    version = pip_version(ansible_test_root)
    target = ANSIBLE_TEST_CACHE / f"get_pip_{version.replace('.', '_')}.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(GET_PIP_STANDIN, target)
    return target


def ansible_test_root(bin_dir: Path) -> Path:
    """The ansible_test package of the venv whose bin directory is ``bin_dir``."""
    found = sorted(bin_dir.parent.glob("lib/python*/site-packages/ansible_test"))
    if not found:
        raise LabError(f"no ansible-test in {bin_dir.parent}")
    return found[0]


def sanity_command(root: Path, bin_dir: Path) -> str:
    """Every sanity test ansible-test runs without Docker, on the installed collection."""
    return (f"cd {root} && {bin_dir / 'ansible-test'} sanity --local --python {PYTHON} "
            "--color no")  # fmt: skip


def importer_command(tarball: Path, tools_python: Path, work: Path) -> str:
    """galaxy-importer on the tarball, as Galaxy imports it (no Docker)."""
    config = work / "galaxy-importer.cfg"
    config.write_text(IMPORTER_CONFIG)
    # the venv's ansible-doc and ansible-lint, found on PATH by the importer
    return (f"cd {work} && PATH={tools_python.parent}:$PATH GALAXY_IMPORTER_CONFIG={config} "
            f"{tools_python} -m galaxy_importer.main {tarball}")  # fmt: skip


def changelog_command(tools_python: Path, work: Path) -> str:
    """antsibull-changelog renders CHANGELOG.md from changelogs/ in a copy; it must equal the
    committed one (the fragments are the source, CHANGELOG.md is their rendering)."""
    copy = work / "changelog"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir(parents=True)
    shutil.copytree(REPO / "changelogs", copy / "changelogs")
    for name in ("galaxy.yml", "CHANGELOG.md"):
        shutil.copyfile(REPO / name, copy / name)
    antsibull = tools_python.parent / "antsibull-changelog"
    return (f"cd {copy} && {antsibull} generate && diff -u {REPO / 'CHANGELOG.md'} CHANGELOG.md "
            "&& echo 'CHANGELOG.md is the rendering of changelogs/'")  # fmt: skip
