"""The molecule scenarios of the repository, read from ``molecule/*/molecule.yml``.

A folder with a ``molecule.yml`` is a scenario; the local base images its platforms boot
(``gymlab/base:<name>``, :mod:`gymlab.lab.images`) are what ``invoke test`` builds first.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from gymlab.lab.errors import LabError
from gymlab.lab.images import IMAGE_REPO

MOLECULE_DIR = Path(__file__).resolve().parents[3] / "molecule"
BASE_IMAGE_PREFIX = f"{IMAGE_REPO}:"
FIRST = "default"  # the quickest whole-stack scenario runs first: a broken role shows early
# Scenarios whose hosts are all today's releases: converged under the newest ansible-core
# (ansible-latest.lock), as a lab without Ubuntu 18.04 would run them. The others keep the
# project venv's ansible-core 2.16, which Ubuntu 18.04's Python 3.6 needs.
NEWEST_ANSIBLE = frozenset({"modern"})


def scenarios(root: Path = MOLECULE_DIR) -> dict[str, tuple[str, ...]]:
    """{scenario: base image names its platforms boot}, ``default`` first, then by name."""
    found = {}
    for path in sorted(root.glob("*/molecule.yml"), key=lambda p: (p.parent.name != FIRST, p)):
        platforms = (yaml.safe_load(path.read_text()) or {}).get("platforms") or []
        images = sorted(
            {
                p["image"].removeprefix(BASE_IMAGE_PREFIX)
                for p in platforms
                if str(p.get("image", "")).startswith(BASE_IMAGE_PREFIX)
            }
        )
        found[path.parent.name] = tuple(images)
    return found


def select(names: list[str] | None, root: Path = MOLECULE_DIR) -> dict[str, tuple[str, ...]]:
    """The named scenarios (all when none), or LabError naming the unknown ones."""
    known = scenarios(root)
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise LabError(f"unknown scenario {', '.join(unknown)}; expected {', '.join(known)}")
    return {n: known[n] for n in names} if names else known
