"""Build the wheelhouse a host installs gymlab from, on the control machine.

Hosts get gymlab, its runtime dependencies and the lab's extra env packages as wheels copied
from here, so they need no route to a package index. One ``pip download`` resolves
``gymlab[runtime]`` (the wheel built from this checkout), the ``--extra`` requirements (each
pinned ``name==version``) and the ``--artifact`` files (the lab's own env packages: wheels, or
sdists built into wheels here) together, for the host's Python version and glibc, with pip's
own configured index, constrained by the runtime lock of the host's Python
(``runtime-envs/py<X.Y>.lock``, gymlab.lab.runtime_locks: gymlab's runtime dependencies and the
env families, hashed); every downloaded file of a package that lock pins must match one of its
hashes. A Python without a runtime lock, or a lock that is missing or stale, is refused before
anything is fetched. The folder then holds exactly that resolution's wheels plus
``requirements.txt`` (``name==version --hash=sha256:...`` for every wheel), for
``pip install --no-index --find-links DIR --require-hashes -r DIR/requirements.txt``.

    python -m gymlab.lab.wheelhouse --out DIR --python 3.11 --glibc 2.36 \\
        [--extra ale-py==0.12.1 ...] [--artifact dist/gym_foo-0.1.tar.gz ...]

prints ``changed`` or ``unchanged`` last, for Ansible's ``changed_when``. A folder built from
the same inputs (gymlab's sources, the pins, the runtime lock, the artifacts, the host's Python,
glibc and machine) that still holds what that build left is not built again: no ``pip`` runs,
nothing is fetched (the inputs are recorded in ``DIR.inputs`` beside the folder, which hosts
never get).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from gymlab.lab import runtime_locks

REPO = Path(__file__).resolve().parents[3]
REQUIREMENTS = "requirements.txt"
# Wheels are zip files stamped with build times; a fixed epoch makes the gymlab wheel byte-stable,
# so re-running the role does not see a "new" wheel when the source did not change.
REPRODUCIBLE_EPOCH = "315532800"
PINNED = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
    r"(?:\[[A-Za-z0-9._-]+(?:,[A-Za-z0-9._-]+)*\])?"
    r"==(?P<version>[A-Za-z0-9][A-Za-z0-9.+!_-]*)"
)
SDIST_SUFFIXES = (".tar.gz", ".zip")


def canonical(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned(requirement: str) -> str:
    """``requirement`` when it pins one version (``name==version``), else ValueError."""
    text = requirement.strip()
    if not PINNED.fullmatch(text):
        raise ValueError(
            f"extra package {requirement!r} is not pinned: expected name==version "
            "(e.g. ale-py==0.12.1)"
        )
    return text


def read_lock(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """A hashed lock (pip-compile / uv format): canonical name -> (version, sha256 set)."""
    entries: dict[str, tuple[str, frozenset[str]]] = {}
    logical: list[str] = []
    for raw in [*path.read_text().splitlines(), ""]:
        line = raw.split("#", 1)[0].rstrip()
        if line.endswith("\\"):
            logical.append(line[:-1])
            continue
        logical.append(line)
        words = " ".join(logical).split()
        logical = []
        if not words:
            continue
        match = PINNED.fullmatch(words[0].split(";", 1)[0])
        if not match:
            raise ValueError(f"{path}: {words[0]!r} is not pinned: expected name==version")
        hashes = frozenset(
            w.removeprefix("--hash=sha256:") for w in words[1:] if w.startswith("--hash=sha256:")
        )
        if not hashes:
            raise ValueError(f"{path}: {words[0]} has no --hash=sha256: expected a hashed lock")
        entries[canonical(match["name"])] = (match["version"], hashes)
    return entries


def wheel_pin(wheel: Path) -> tuple[str, str]:
    """(name, version) from a wheel's file name."""
    name, version = wheel.name.split("-")[:2]
    return name, version


def platforms(glibc: str, machine: str = "x86_64") -> list[str]:
    """manylinux tags a host with this glibc accepts, newest first: PEP 600 names down to 2_17,
    then the legacy aliases (2014 = 2_17, 2010 = 2_12, 1 = 2_5) that older releases use."""
    major, minor = (int(p) for p in glibc.split(".")[:2])
    if major != 2 or minor < 17:
        raise ValueError(f"glibc {glibc}: manylinux wheels need glibc 2.17 or newer")
    tags = [f"manylinux_2_{m}_{machine}" for m in range(minor, 16, -1)]
    return [*tags, *(f"manylinux{alias}_{machine}" for alias in ("2014", "2010", "1"))]


def digest(directory: Path) -> str:
    """A hash of the wheel names and contents in ``directory``, and of its requirements file."""
    h = hashlib.sha256()
    files = sorted(directory.glob("*.whl"))
    if (directory / REQUIREMENTS).is_file():
        files.append(directory / REQUIREMENTS)
    for path in files:
        h.update(path.name.encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _pip() -> list[str]:
    return [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]


def build_wheel(source: Path, out: Path) -> Path:
    """Build ``source`` (a project directory or an sdist) into one wheel in ``out``, byte-stable
    for the same source."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SOURCE_DATE_EPOCH": REPRODUCIBLE_EPOCH}
        subprocess.run([*_pip(), "wheel", "--no-deps", "-w", tmp, str(source)], check=True, env=env)
        (wheel,) = Path(tmp).glob("*.whl")
        target = out / wheel.name
        target.write_bytes(wheel.read_bytes())
    return target


#: Packages of the control machine's tooling: they need Ansible and invoke, which hosts lack.
CONTROLLER_PACKAGES = ("lab", "envs")


def _host_files(project: Path) -> list[Path]:
    """The files of ``project`` (relative paths) that the hosts' gymlab wheel is built from."""

    def left_out(rel: Path) -> bool:
        parts = rel.parts
        return any(p in ("__pycache__", "build") or p.endswith(".egg-info") for p in parts) or (
            len(parts) > 2 and parts[1] == "gymlab" and parts[2] in CONTROLLER_PACKAGES
        )

    sources = (p.relative_to(project) for p in (project / "src").rglob("*") if p.is_file())
    kept = sorted(rel for rel in sources if not left_out(rel))
    return [Path("pyproject.toml"), Path("README.md"), *kept]


def host_wheel_key(project: Path) -> str:
    """A hash of what :func:`build_host_wheel` builds from: the same key, the same wheel."""
    h = hashlib.sha256()
    for rel in _host_files(project):
        h.update(f"{rel}\0".encode())
        h.update(hashlib.sha256((project / rel).read_bytes()).digest())
    return h.hexdigest()


def build_host_wheel(project: Path, out: Path) -> Path:
    """gymlab's wheel as hosts get it: ``project`` without :data:`CONTROLLER_PACKAGES`."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp, "gymlab")
        for rel in _host_files(project):
            (staged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(project / rel, staged / rel)
        return build_wheel(staged, out)


def _inputs_file(out: Path) -> Path:
    return out.with_name(out.name + ".inputs")


def built_from(out: Path, inputs: str, content: str) -> bool:
    """True when ``out`` was built from ``inputs`` and still holds what that build left
    (``content``: its :func:`digest` now)."""
    recorded = _inputs_file(out)
    return recorded.is_file() and recorded.read_text().split() == [inputs, content]


def record_inputs(out: Path, inputs: str) -> str:
    """Remember, beside ``out``, that its content was built from ``inputs``; returns the
    content's :func:`digest`."""
    content = digest(out)
    _inputs_file(out).write_text(f"{inputs} {content}\n")
    return content


def artifact_wheel(artifact: Path, out: Path) -> Path:
    """The wheel of one lab artifact: a wheel as is, an sdist built into a wheel in ``out``."""
    if not artifact.is_file():
        raise ValueError(
            f"artifact {artifact}: no such file; expected a wheel (.whl) or an sdist "
            "(.tar.gz, .zip) of an env package"
        )
    if artifact.name.endswith(".whl"):
        return artifact.resolve()
    if artifact.name.endswith(SDIST_SUFFIXES):
        return build_wheel(artifact.resolve(), out)
    raise ValueError(
        f"artifact {artifact}: expected a wheel (.whl) or an sdist (.tar.gz, .zip) "
        "of an env package"
    )


def check_extras(
    extras: Sequence[str], lock: dict[str, tuple[str, frozenset[str]]], lock_name: str
) -> None:
    """Every extra of a package the lock pins is the locked version (pip would only say that
    the resolution is impossible)."""
    for extra in extras:
        match = PINNED.fullmatch(extra)
        assert match, extra  # pinned() checked it
        name = canonical(match["name"])
        if name in lock and lock[name][0] != match["version"]:
            raise ValueError(
                f"extra package {extra} is not the {name}=={lock[name][0]} that {lock_name} pins"
            )


def verify(
    wheels: Sequence[Path], lock: dict[str, tuple[str, frozenset[str]]], lock_name: str
) -> None:
    """Every wheel of a package the lock pins is that version with one of its hashes."""
    for wheel in wheels:
        name, version = wheel_pin(wheel)
        if canonical(name) not in lock:
            continue
        locked, hashes = lock[canonical(name)]
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if version != locked or sha not in hashes:
            raise ValueError(
                f"{wheel.name} (sha256 {sha}) is not the {canonical(name)}=={locked} "
                f"that {lock_name} pins: expected one of its hashes"
            )


def requirements_text(wheels: Sequence[Path]) -> str:
    """``name==version --hash=sha256:...`` per wheel, for pip's --require-hashes."""
    lines = []
    for wheel in sorted(wheels, key=lambda w: canonical(wheel_pin(w)[0])):
        name, version = wheel_pin(wheel)
        sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{canonical(name)}=={version} --hash=sha256:{sha}")
    return "".join(f"{line}\n" for line in lines)


def _sync(new: Path, out: Path) -> None:
    """Make ``out`` hold exactly ``new``'s wheels (unchanged files are not rewritten)."""
    wanted = {w.name: w for w in new.glob("*.whl")}
    for old in out.glob("*.whl"):
        if old.name not in wanted:
            old.unlink()
    for name, wheel in wanted.items():
        target = out / name
        data = wheel.read_bytes()
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
    text = requirements_text(sorted(out.glob("*.whl")))
    target = out / REQUIREMENTS
    if not target.exists() or target.read_text() != text:
        target.write_text(text)


def build(
    out: Path,
    python: str,
    glibc: str,
    machine: str = "x86_64",
    project: Path = REPO,
    extras: Sequence[str] = (),
    artifacts: Sequence[Path] = (),
) -> bool:
    """Fill ``out`` with gymlab's wheel, the extras, the artifacts and their dependencies, under
    the runtime lock of ``python``; True when the content changed."""
    extras = [pinned(e) for e in extras]
    lock_file = runtime_locks.lock_path(python, project)
    unusable = runtime_locks.problem(python, project)
    if unusable:
        raise ValueError(unusable)
    lock_name = str(lock_file.relative_to(project))
    lock = read_lock(lock_file)
    check_extras(extras, lock, lock_name)
    inputs = _build_inputs(project, python, glibc, machine, extras, artifacts, lock_file)
    before = digest(out)
    if built_from(out, inputs, before):
        return False
    platform_args = [arg for tag in platforms(glibc, machine) for arg in ("--platform", tag)]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        local, new = Path(tmp, "local"), Path(tmp, "new")
        local.mkdir()
        gymlab = build_host_wheel(project, local)
        own = [artifact_wheel(a, local) for a in artifacts]
        # the pins without their hashes: pip would demand hashes of the local wheels too
        constraints = Path(tmp, "constraints.txt")
        constraints.write_text("".join(f"{n}=={v}\n" for n, (v, _) in sorted(lock.items())))
        subprocess.run(
            [*_pip(), "download", "--only-binary=:all:", "--python-version", python,
             "--implementation", "cp", *platform_args,
             "-c", str(constraints),
             "-d", str(new), f"{gymlab}[runtime]", *map(str, own), *extras],
            check=True,
        )  # fmt: skip
        own_names = {canonical(wheel_pin(w)[0]) for w in [gymlab, *own]}
        fetched = [w for w in new.glob("*.whl") if canonical(wheel_pin(w)[0]) not in own_names]
        verify(fetched, lock, lock_name)
        _sync(new, out)
    return record_inputs(out, inputs) != before


def _build_inputs(
    project: Path,
    python: str,
    glibc: str,
    machine: str,
    extras: Sequence[str],
    artifacts: Sequence[Path],
    lock: Path,
) -> str:
    """A hash of everything :func:`build` resolves from (the index's answers pinned by the
    lock)."""
    h = hashlib.sha256(f"{python} {glibc} {machine} {sorted(extras)}".encode())
    h.update(host_wheel_key(project).encode())
    for path in [lock, *artifacts]:
        h.update(f"{path.name}\0".encode())
        # a missing file is reported by the build itself, in its own words
        h.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"missing")
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="wheelhouse directory")
    parser.add_argument("--python", required=True, help="host Python version, e.g. 3.11")
    parser.add_argument("--glibc", required=True, help="host glibc version, e.g. 2.36")
    parser.add_argument("--machine", default="x86_64", help="host machine (uname -m)")
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="NAME==VERSION",
        help="an extra package from the index, pinned (repeatable)",
    )
    parser.add_argument(
        "--artifact",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="a wheel or sdist of the lab's own env package (repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        changed = build(
            args.out,
            args.python,
            args.glibc,
            args.machine,
            extras=args.extra,
            artifacts=args.artifact,
        )
    except (subprocess.CalledProcessError, ValueError, OSError) as exc:
        print(f"gymlab wheelhouse: {exc}", file=sys.stderr)
        return 1
    print("changed" if changed else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
