"""Download a profile's locked PyPI artifacts on the control machine, for hosts without an index.

    python -m gymlab.envs.wheelhouse --env NAME --out DIR [--python X.Y]... [--envs-dir D]
        [--conda] [--tool LOCK]

fills ``DIR/NAME/pyX.Y`` with exactly the artifacts ``requirements-pyX.Y.lock`` pins, for that
Python and the profile's manylinux tag, each checked against its sha256 by pip
(``--require-hashes``): one folder per lock, so a host's copy holds its own Python's wheels
only. ``--python X.Y`` names a host's python3 and fetches the lock that host installs (the
same choice, and the same refusal, as ``python -m gymlab.envs.profiles --python``); without
it, every lock of the profile. A stamp in each folder with its lock's sha256 makes a second
run a no-op. Labs use the same directory layout as an artifact store; molecule mounts it into
its hosts (python_envs_wheelhouse).

``--conda`` also fills ``DIR/NAME/conda`` with the archives of the profile's conda-lock.yml,
downloaded from the locked URLs and checked against the lock's sha256, for hosts without a
route to the channel. ``--tool LOCK`` fills ``DIR/<name>`` with the hash-pinned wheel of a
host tool (python_envs' py-rattler, ``roles/python_envs/files/py-rattler.lock``).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from gymlab.envs import pypi
from gymlab.envs.profiles import ENVS_DIR, Profile, get
from gymlab.lab.errors import LabError
from gymlab.lab.wheelhouse import (
    build_host_wheel,
    built_from,
    host_wheel_key,
    platforms,
    record_inputs,
)
from gymlab.lab.wheelhouse import (
    digest as folder_digest,
)

STAMP = ".gymlab-lock-sha256"
REPO = ENVS_DIR.parent


def fetch(
    name: str,
    out: Path,
    envs_dir: Path = ENVS_DIR,
    host_pythons: Sequence[str] = (),
) -> bool:
    """Fill the profile's PyPI folders under ``out`` for hosts whose python3 is one of
    ``host_pythons`` (none: every lock); True when something was downloaded."""
    profile = get(name, envs_dir)
    if "pypi" not in profile.parts():
        return False
    if host_pythons:
        pythons = sorted({profile.lock_python(p) for p in host_pythons})
    else:
        pythons = list(profile.pythons())
    # every folder is filled before the answer (any() of a generator would stop at the first)
    fetched = [_fetch_lock(profile, python, out) for python in pythons]
    return any(fetched)


def _fetch_lock(profile: Profile, python: str, out: Path) -> bool:
    """Fill ``out``'s folder of the profile's lock for ``python``; True when it downloaded."""
    lock = profile.requirements_lock_for(python)
    try:
        digest = hashlib.sha256(lock.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise LabError(
            f"profile {profile.name}: {lock.name} is missing; run `invoke lock --env "
            f"{profile.name}`"
        ) from None
    target = out / profile.wheelhouse_folder(python)
    stamp = target / STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return False
    target.mkdir(parents=True, exist_ok=True)
    try:
        tags = platforms(profile.glibc())
    except ValueError as exc:
        raise LabError(f"profile {profile.name}: {exc}") from None
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
        python,
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


def fetch_conda(name: str, out: Path, envs_dir: Path = ENVS_DIR) -> bool:
    """Fill ``out/name/conda`` with the conda lock's archives; True when one was downloaded."""
    profile = get(name, envs_dir)
    if "conda" not in profile.parts():
        return False
    target = out / profile.conda_folder
    target.mkdir(parents=True, exist_ok=True)
    from gymlab.envs.install import locked_records  # py-rattler reads the lock, as on hosts

    changed = False
    for record in locked_records(profile.conda_lock):
        url, sha256 = record.url, record.sha256.hex() if record.sha256 else ""
        path = target / record.file_name
        if path.is_file() and hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
            continue
        partial = path.with_name(path.name + ".part")
        with urllib.request.urlopen(url, timeout=60) as response, partial.open("wb") as f:
            shutil.copyfileobj(response, f)
        got = hashlib.sha256(partial.read_bytes()).hexdigest()
        if got != sha256:
            partial.unlink()
            raise LabError(
                f"profile {name}: {url} has sha256 {got}, but conda-lock.yml says {sha256 or None}"
            )
        partial.replace(path)
        changed = True
    return changed


def fetch_tool(lock: Path, out: Path) -> bool:
    """Fill ``out/<tool>`` with the wheel ``lock`` pins (one package, hash-pinned, abi3)."""
    text = lock.read_text()
    pinned = re.search(r"^([A-Za-z0-9_.\-]+)==", text, re.M)
    if not pinned:
        raise LabError(f"{lock}: expected a NAME==VERSION line with --hash=sha256: entries")
    target = out / pinned.group(1)
    digest = hashlib.sha256(text.encode()).hexdigest()
    stamp = target / STAMP
    if stamp.is_file() and stamp.read_text().strip() == digest:
        return False
    target.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--require-hashes",
        "--only-binary", ":all:", "--index-url", pypi.index_url(),
        "--platform", "manylinux_2_17_x86_64", "--implementation", "cp",
        "--python-version", "3.10", "--dest", str(target), "-r", str(lock),
    ]  # fmt: skip
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
    inputs = host_wheel_key(REPO)
    if built_from(target, inputs, folder_digest(target)):
        return False
    before = {w.name: w.read_bytes() for w in target.glob("*.whl")}
    with tempfile.TemporaryDirectory() as tmp:
        wheel = build_host_wheel(REPO, Path(tmp))
        built = {wheel.name: wheel.read_bytes()}
    if built != before:
        for old in target.glob("*.whl"):
            old.unlink()
        for name, data in built.items():
            (target / name).write_bytes(data)
    record_inputs(target, inputs)
    return built != before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gymlab.envs.wheelhouse")
    parser.add_argument("--env", required=True, action="append")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--python",
        action="append",
        default=[],
        metavar="X.Y",
        help="a host's python3 version: fetch the lock it installs (default: every lock)",
    )
    parser.add_argument("--envs-dir", type=Path, default=ENVS_DIR)
    parser.add_argument("--client", action="store_true", help="also build the gymlab wheel")
    parser.add_argument("--conda", action="store_true", help="also the conda locks' archives")
    parser.add_argument("--tool", type=Path, action="append", default=[], help="a tool's lock")
    args = parser.parse_args(argv)
    try:
        changed = [n for n in args.env if fetch(n, args.out, args.envs_dir, args.python)]
        if args.conda:
            changed += [n for n in args.env if fetch_conda(n, args.out, args.envs_dir)]
        changed += [str(t) for t in args.tool if fetch_tool(t, args.out)]
    except LabError as exc:
        print(f"gymlab: {exc}", file=sys.stderr)
        return 1
    if args.client and build_client(args.out):
        changed.append("gymlab")
    # last line for Ansible's changed_when
    print("changed" if changed else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
