"""Install the conda part of a profile from its ``conda-lock.yml`` with py-rattler, and check it.

Used where no micromamba is at hand (py-rattler is a wheel from PyPI: nothing else to
download). rattler checks every downloaded archive against the lock's sha256 before linking;
the install goes into a staging prefix that replaces the target only when everything linked,
so a bad artifact leaves the target as it was.

    python -m gymlab.envs.install LOCK PREFIX [--verify-only] [--cache DIR]
        [--mirror LOCKED_URL=URL]... [--archives DIR]

Archives come from the URLs the lock records, from a mirror of a locked channel (``--mirror``:
the locked channel URL, ``=``, the URL this host reaches it at), or from a directory the
control machine filled (``--archives``: hosts without a route to any channel). Whatever the
source, each archive's sha256 must be the lock's.

Before anything is downloaded, the packages' virtual dependencies (``__cuda``, ``__glibc``...)
are checked against this host, as conda checks them at solve time: a host whose driver cannot
run the locked CUDA is refused in one line naming both versions. ``CONDA_OVERRIDE_CUDA`` and
the other ``CONDA_OVERRIDE_*`` variables are honoured, as by conda. Hosts that install with
micromamba instead have that check made on the control machine against what the host's
micromamba reports (``--check-host-only --host-virtual __cuda=12.2 ...``).

Needs only py-rattler and the standard library, so hosts can run this file on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import rattler

PLATFORM = "linux-64"


class LockMismatch(Exception):
    """The prefix does not hold what the lock says."""


class HostMismatch(Exception):
    """This host cannot run what the lock holds (its virtual packages do not fit)."""


def host_virtual_packages() -> dict[str, rattler.Version]:
    """This host's virtual packages (``CONDA_OVERRIDE_*`` honoured), by name."""
    detected = rattler.VirtualPackage.detect(rattler.VirtualPackageOverrides.from_env())
    generic = [v.into_generic() for v in detected]
    return {g.name.normalized: g.version for g in generic}


def check_host(
    records: list[rattler.RepoDataRecord], have: dict[str, rattler.Version] | None = None
) -> None:
    """Refuse, in one line, a lock whose virtual dependencies this host does not meet."""
    have = host_virtual_packages() if have is None else have
    for record in records:
        for dep in record.depends:
            spec = rattler.MatchSpec(dep)
            name = spec.name.normalized
            if not name.startswith("__"):
                continue
            wanted = f"{name} {spec.version}" if spec.version else name
            if name not in have:
                raise HostMismatch(
                    f"{record.name.normalized} {record.version} needs {wanted}; this host has no "
                    f"{name}" + (" (no NVIDIA driver found)" if name == "__cuda" else "")
                )
            if spec.version and not rattler.VersionSpec(spec.version).matches(have[name]):
                raise HostMismatch(
                    f"{record.name.normalized} {record.version} needs {wanted}; this host has "
                    f"{name} {have[name]}"
                )


def _channel_mirrors(records: list[rattler.RepoDataRecord], mirrors: dict[str, str]) -> None:
    for record in records:
        for locked, url in mirrors.items():
            prefix = locked.rstrip("/") + "/"
            if record.url.startswith(prefix):
                record.url = url.rstrip("/") + "/" + record.url[len(prefix) :]
                break


def _local_archives(records: list[rattler.RepoDataRecord], archives: Path) -> None:
    # rattler checks the sha256 of what it downloads, not of file:// archives: checked here
    for record in records:
        path = archives.resolve() / record.file_name
        if not path.is_file():
            raise LockMismatch(f"{record.file_name} is not in {archives}")
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        wanted = record.sha256.hex() if record.sha256 else None
        if digest.hexdigest() != wanted:
            raise LockMismatch(
                f"hash mismatch: {path} has sha256 {digest.hexdigest()}, the lock says {wanted}"
            )
        record.url = path.as_uri()


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


def install(
    lock: Path,
    prefix: Path,
    cache: Path | None = None,
    mirrors: dict[str, str] | None = None,
    archives: Path | None = None,
) -> None:
    """Install the lock into ``prefix``, replacing it only when the whole install succeeded."""
    records = locked_records(lock)
    check_host(records)
    if archives is not None:
        _local_archives(records, archives)
    elif mirrors:
        _channel_mirrors(records, mirrors)
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


def _mirror(text: str) -> tuple[str, str]:
    locked, sep, url = text.partition("=")
    if not sep or "://" not in locked or "://" not in url:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected LOCKED_CHANNEL_URL=MIRROR_URL, e.g. "
            "http://conda.lab/conda-forge=http://10.0.0.5/conda-forge"
        )
    return locked, url


def _virtual(text: str) -> tuple[str, rattler.Version]:
    """``__cuda=12.2`` or micromamba's ``__cuda=12.2=0``."""
    name, sep, rest = text.partition("=")
    version = rest.split("=")[0]
    if not sep or not name.startswith("__") or not version:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a virtual package as __NAME=VERSION")
    return name, rattler.Version(version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gymlab.envs.install")
    parser.add_argument("lock", type=Path)
    parser.add_argument("prefix", type=Path)
    parser.add_argument("--verify-only", action="store_true")
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--mirror", type=_mirror, action="append", default=[])
    parser.add_argument("--archives", type=Path)
    parser.add_argument("--check-host-only", action="store_true", help="check, install nothing")
    parser.add_argument("--host-virtual", type=_virtual, action="append", default=None)
    args = parser.parse_args(argv)
    if args.check_host_only:
        try:
            have = dict(args.host_virtual) if args.host_virtual is not None else None
            check_host(locked_records(args.lock), have)
        except (HostMismatch, LockMismatch) as exc:
            print(json.dumps({"ok": False, "error": " ".join(str(exc).split())}))
            return 1
        print(json.dumps({"ok": True, "problems": []}))
        return 0
    try:
        if not args.verify_only:
            install(args.lock, args.prefix, args.cache, dict(args.mirror), args.archives)
        problems = verify(args.lock, args.prefix)
    except Exception as exc:
        print(json.dumps({"ok": False, "error": " ".join(str(exc).split())}))
        return 1
    print(json.dumps({"ok": not problems, "problems": problems}))
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
