"""The README's releases x layers table, each role's meta/main.yml and the molecule scenarios say
the same thing: a role claims exactly the releases on which a named scenario (or the README's
tour) converges it, and every scenario named in a cell boots that release's base image."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from gymlab.lab import images, scenarios

REPO = Path(__file__).resolve().parents[2]
# The column headings of the table, as the README writes them, and their base images.
RELEASES = {
    "Debian 12": "debian12",
    "Debian 13": "debian13",
    "Ubuntu 18.04": "ubuntu1804",
    "Ubuntu 22.04": "ubuntu2204",
    "Ubuntu 24.04": "ubuntu2404",
}
ROW = re.compile(r"^\| [^|]*\(`(?P<role>[a-z_]+)`\) \|(?P<cells>.*)\|$")


def table() -> tuple[list[str], dict[str, list[list[str]]]]:
    """(column headings, {role: [scenario names per column]}) of the README's platform table."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| layer (role) |"))
    headings = [c.strip() for c in lines[start].strip("|").split("|")][1:]
    rows: dict[str, list[list[str]]] = {}
    for line in lines[start + 2 :]:
        match = ROW.match(line)
        if not match:
            break
        cells = [c.strip() for c in match["cells"].split("|")]
        rows[match["role"]] = [re.findall(r"`([a-z0-9-]+)`", cell) for cell in cells]
    return headings, rows


def suite_of(image: str) -> str:
    return images.RECIPES[image].suite


def tour_image() -> str:
    hosts = yaml.safe_load((REPO / "inventories/local/hosts.yml").read_text())
    sandbox = hosts["all"]["children"]["sandbox_hosts"]["hosts"]["sandbox"]
    return sandbox["gymlab_sandbox_image"]


def test_the_table_names_every_release_and_every_role():
    headings, rows = table()
    assert headings == list(RELEASES)
    assert sorted(rows) == sorted(p.name for p in (REPO / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", sorted(table()[1]))
def test_meta_claims_exactly_the_releases_the_table_proves(role):
    headings, rows = table()
    proven = {
        (images.RECIPES[RELEASES[h]].distro, suite_of(RELEASES[h]))
        for h, names in zip(headings, rows[role], strict=True)
        if names
    }
    meta = yaml.safe_load((REPO / "roles" / role / "meta/main.yml").read_text())
    claimed = {
        (platform["name"].lower(), version)
        for platform in meta["galaxy_info"]["platforms"]
        for version in platform["versions"]
    }
    assert claimed == proven


@pytest.mark.parametrize("role", sorted(table()[1]))
def test_each_named_scenario_boots_its_columns_release(role):
    headings, rows = table()
    known = scenarios.scenarios()
    for heading, names in zip(headings, rows[role], strict=True):
        for name in names:
            booted = (tour_image(),) if name == "tour" else known.get(name)
            assert booted is not None, f"{role}: {heading} names {name}, which is no scenario"
            assert RELEASES[heading] in booted, f"{role}: {name} boots no {heading} host"
