"""Install the conda part of a profile from its ``conda-lock.yml`` with py-rattler, and check it.

Used where no micromamba is at hand (py-rattler is a wheel from PyPI: nothing else to
download). rattler checks every downloaded archive against the lock's sha256 before linking;
the install goes into a staging prefix that replaces the target only when everything linked,
so a bad artifact leaves the target as it was.

    python -m gymlab.envs.install LOCK PREFIX [--verify-only] [--cache DIR]

Needs only py-rattler and the standard library, so hosts can run this file on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path

import rattler

PLATFORM = "linux-64"


class LockMismatch(Exception):
    """The prefix does not hold what the lock says."""


def locked_records(lock: Path, platform: str = PLATFORM) -> list[rattler.RepoDataRecord]:
    env = rattler.LockFile.from_path(lock).default_environment()
    if env is None:
        raise LockMismatch(f"{lock}: no default environment")
    matching = [p for p in env.platforms() if p.name == platform]
    records = env.conda_repodata_records_for_platform(matching[0]) if matching else None
    if not records:
        raise LockMismatch(f"{lock}: no conda packages for {platform}")
    return records


def _identity(name: str, version: object, build: object, sha256: bytes | None) -> tuple:
    return (name, str(version), str(build), sha256.hex() if sha256 else "")


def verify(lock: Path, prefix: Path) -> list[str]:
    """Differences between the lock and the packages installed in ``prefix`` (empty: match)."""
    wanted = {
        r.name.normalized: _identity(r.name.normalized, r.version, r.build, r.sha256)
        for r in locked_records(lock)
    }
    have = {}
    for meta in sorted((prefix / "conda-meta").glob("*.json")):
        record = rattler.PrefixRecord.from_path(meta)
        have[record.name.normalized] = _identity(
            record.name.normalized, record.version, record.build, record.sha256
        )
    problems = [f"missing {wanted[n]}" for n in sorted(wanted.keys() - have.keys())]
    problems += [f"not in the lock: {have[n]}" for n in sorted(have.keys() - wanted.keys())]
    problems += [
        f"{n}: installed {have[n][1:]} but locked {wanted[n][1:]}"
        for n in sorted(wanted.keys() & have.keys())
        if have[n] != wanted[n]
    ]
    return problems


def _remove(path: Path, timeout_s: float = 10.0) -> None:
    """Remove a staging prefix; rattler may still be finishing sibling links when it fails."""
    deadline = time.monotonic() + timeout_s
    while True:
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists() or time.monotonic() > deadline:
            return
        time.sleep(0.2)


def install(lock: Path, prefix: Path, cache: Path | None = None) -> None:
    """Install the lock into ``prefix``, replacing it only when the whole install succeeded."""
    records = locked_records(lock)
    staging = prefix.with_name(prefix.name + ".staging")
    _remove(staging)
    try:
        asyncio.run(
            rattler.install(
                records,
                target_prefix=staging,
                cache_dir=cache,
                show_progress=False,
                # the prefix moves from staging to its place: paths must name the final one
                alternative_target_prefix=prefix,
            )
        )
        problems = verify(lock, staging)
        if problems:
            raise LockMismatch("; ".join(problems))
    except BaseException:
        _remove(staging)
        raise
    if prefix.exists():
        shutil.rmtree(prefix)
    staging.rename(prefix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gymlab.envs.install")
    parser.add_argument("lock", type=Path)
    parser.add_argument("prefix", type=Path)
    parser.add_argument("--verify-only", action="store_true")
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args(argv)
    try:
        if not args.verify_only:
            install(args.lock, args.prefix, args.cache)
        problems = verify(args.lock, args.prefix)
    except Exception as exc:
        print(json.dumps({"ok": False, "error": str(exc)}))
        return 1
    print(json.dumps({"ok": not problems, "problems": problems}))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
