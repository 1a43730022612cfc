"""Download a profile's locked PyPI artifacts on the control machine, for hosts without an index.

    python -m gymlab.envs.wheelhouse --env NAME --out DIR

fills ``DIR/NAME`` with exactly the artifacts ``requirements.lock`` pins, for the profile's
Python and manylinux tag, each checked against its sha256 by pip (``--require-hashes``). A
stamp with the lock's own sha256 makes a second run a no-op. Labs use the same directory
layout as an artifact store; molecule mounts it into its hosts (python_envs_wheelhouse).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from gymlab.envs import pypi
from gymlab.envs.profiles import ENVS_DIR, get

STAMP = ".gymlab-lock-sha256"
REPO = ENVS_DIR.parent
# a fixed epoch makes the gymlab wheel byte-stable for the same source
REPRODUCIBLE_EPOCH = "315532800"


def fetch(name: str, out: Path, envs_dir: Path = ENVS_DIR) -> bool:
    """Fill ``out/name``; True when something was downloaded."""
    profile = get(name, envs_dir)
    lock = profile.requirements_lock
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    target = out / name
    stamp = target / STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return False
    target.mkdir(parents=True, exist_ok=True)
    minor = pypi.manylinux_platform(profile.glibc()).rsplit("_", 1)[1]
    tags = [f"manylinux_2_{m}_x86_64" for m in range(int(minor), 16, -1)] + [
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
    ]
    version = profile.python_version()
    argv = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",  # the lock is complete; also lets pip fetch the era's sdists
        "--require-hashes",
        "--index-url",
        pypi.index_url(),
        "--python-version",
        version,
        "--implementation",
        "cp",
        *(a for t in tags for a in ("--platform", t)),
        "--dest",
        str(target),
        "-r",
        str(lock),
    ]
    subprocess.run(argv, check=True)
    stamp.write_text(digest + "\n")
    return True


def build_client(out: Path) -> bool:
    """This repository's gymlab wheel in ``out/gymlab``; True when it changed.

    Its dependencies are in the profile's lock; the wheel itself is built from the checkout,
    byte-stable for the same source (fixed timestamps), so hosts reinstall only on change.
    """
    target = out / "gymlab"
    target.mkdir(parents=True, exist_ok=True)
    before = {w.name: w.read_bytes() for w in target.glob("*.whl")}
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "-w",
                tmp,
                str(REPO),
            ],
            check=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": REPRODUCIBLE_EPOCH},
        )
        built = {w.name: w.read_bytes() for w in Path(tmp).glob("*.whl")}
    if built == before:
        return False
    for old in target.glob("*.whl"):
        old.unlink()
    for name, data in built.items():
        (target / name).write_bytes(data)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gymlab.envs.wheelhouse")
    parser.add_argument("--env", required=True, action="append")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--client", action="store_true", help="also build the gymlab wheel")
    args = parser.parse_args(argv)
    changed = [name for name in args.env if fetch(name, args.out)]
    if args.client and build_client(args.out):
        changed.append("gymlab")
    # last line for Ansible's changed_when
    print("changed" if changed else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
