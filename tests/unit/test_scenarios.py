"""`invoke test`'s scenario list comes from molecule/*/molecule.yml (gymlab.lab.scenarios)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gymlab.lab import scenarios
from gymlab.lab.errors import LabError


def scenario(root: Path, name: str, *images: str) -> None:
    (root / name).mkdir(parents=True)
    platforms = [{"name": f"h{i}", "image": image} for i, image in enumerate(images)]
    (root / name / "molecule.yml").write_text(yaml.safe_dump({"platforms": platforms}))


def test_scenarios_and_their_base_images_from_molecule_yml(tmp_path):
    scenario(tmp_path, "lab", "gymlab/base:debian12", "gymlab/base:debian12")
    scenario(tmp_path, "default", "gymlab/base:ubuntu1804")
    scenario(tmp_path, "mixed", "gymlab/base:ubuntu1804", "gymlab/base:debian12", "busybox")
    (tmp_path / "shared-tasks").mkdir()  # no molecule.yml: not a scenario
    found = scenarios.scenarios(tmp_path)
    assert list(found) == ["default", "lab", "mixed"]  # default first, then by name
    assert found == {
        "default": ("ubuntu1804",),
        "lab": ("debian12",),
        "mixed": ("debian12", "ubuntu1804"),
    }
    assert scenarios.select(["lab"], tmp_path) == {"lab": ("debian12",)}
    with pytest.raises(LabError, match="unknown scenario nope; expected default, lab, mixed"):
        scenarios.select(["lab", "nope"], tmp_path)


def test_the_repository_scenarios_boot_known_images():
    from gymlab.lab.images import RECIPES

    found = scenarios.scenarios()
    assert "default" in found and "lab" in found
    assert all(images and set(images) <= set(RECIPES) for images in found.values())
