"""``invoke lock``: lock a profile's two parts, or check that its locks match its spec.

Which parts a profile has is profile.yml's ``parts`` (``[pypi]`` by default):

- PyPI part (requirements.in -> requirements-pyX.Y.lock, one per Python of the profile: see
  ``Profile.pythons``): locked wherever the package index answers.
- conda part (environment.yml -> conda-lock.yml): locked only against a conda channel given
  with ``--channel`` (a lab's mirror, or the test suite's fixture channel). A profile without
  a conda part takes Python from the hosts' distribution (environment.yml only names it).

``--part conda`` / ``--part pypi`` lock one part only (the other lock is kept as it is).
``--check`` fails on a stale lock, a missing PyPI lock (of any of the profile's Pythons) and a
lock of a part or a Python the profile does not have; a conda part nobody could lock yet (no
channel here) is reported, not failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gymlab.envs import conda, pypi
from gymlab.envs.profiles import ENVS_DIR, Profile, all_profiles, get
from gymlab.lab.errors import one_line_exit

NO_CHANNEL = (
    "conda part not locked: it needs a conda channel, none is reachable here; in a lab run "
    "`invoke lock --env {name} --channel <conda channel URL>`"
)


def lock(
    profile: Profile,
    channels: list[str],
    index: str | None = None,
    only: str | None = None,
) -> list[str]:
    """Regenerate the profile's locks (``only``: one part); one line per lock."""
    done = []
    parts = [p for p in profile.parts() if only in (None, p)]
    if only and not parts:
        return [f"{profile.name}: no {only} part (profile.yml parts: {list(profile.parts())})"]
    if "pypi" in parts:
        for python in profile.pythons():
            done.append(f"{profile.name}: wrote {pypi.write_lock(profile, python, index).name}")
        for python, path in profile.unlisted_locks().items():
            path.unlink()
            done.append(
                f"{profile.name}: removed {path.name} (Python {python} is not one of the "
                f"profile's: {', '.join(profile.pythons())})"
            )
    if "conda" not in parts:
        if channels:
            done.append(f"{profile.name}: no conda part to lock (profile.yml parts: [pypi])")
    elif channels:
        conda.lock(profile, channels)
        done.append(f"{profile.name}: wrote {profile.conda_lock.name} ({', '.join(channels)})")
    elif profile.conda_lock.exists():
        done.append(f"{profile.name}: kept {profile.conda_lock.name} (no --channel to re-solve)")
    else:
        done.append(f"{profile.name}: " + NO_CHANNEL.format(name=profile.name))
    return done


def unlocked(profile: Profile) -> list[str]:
    """Parts nobody could lock here: a conda part without a channel to solve against."""
    if "conda" in profile.parts() and not profile.conda_lock.exists():
        return [f"{profile.name}: " + NO_CHANNEL.format(name=profile.name)]
    return []


def stale(profile: Profile) -> list[str]:
    """Locks of the profile that no longer match its spec, or that it should not have."""
    problems = profile.stray_locks()
    parts = profile.parts()
    if "pypi" in parts and not profile.requirements_in.is_file():
        problems.append(
            f"{profile.name}: profile.yml parts has pypi but there is no requirements.in"
        )
    elif "pypi" in parts:
        for python in profile.pythons():
            lock = profile.requirements_lock_for(python)
            if not lock.is_file():
                problems.append(
                    f"{profile.name}: {lock.name} is missing ({profile.pythons_source()} lists "
                    f"{python}); run `invoke lock --env {profile.name}`"
                )
            elif not pypi.is_current(profile, python):
                problems.append(
                    f"{profile.name}: {lock.name} does not match requirements.in/environment.yml/"
                    f"virtual-packages.yml/profile.yml; run `invoke lock --env {profile.name}`"
                )
    if "conda" in parts and profile.conda_lock.exists() and not conda.is_current(profile):
        problems.append(
            f"{profile.name}: conda-lock.yml does not match environment.yml/virtual-packages.yml;"
            f" run `invoke lock --env {profile.name} --channel URL`"
        )
    return problems


@one_line_exit
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gymlab.envs.locking")
    parser.add_argument("--envs-dir", type=Path, default=ENVS_DIR)
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--channel", action="append", default=[])
    parser.add_argument("--part", choices=["conda", "pypi"], help="lock this part only")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    profiles = (
        [get(n, args.envs_dir) for n in args.env] if args.env else all_profiles(args.envs_dir)
    )
    if args.check:
        problems = [p for prof in profiles for p in stale(prof)]
        for line in problems:
            print(f"stale: {line}")
        for line in (u for prof in profiles for u in unlocked(prof)):
            print(f"not locked: {line}")
        if not problems:
            print(f"locks current: {', '.join(p.name for p in profiles)}")
        return 1 if problems else 0
    for prof in profiles:
        for line in lock(prof, args.channel, only=args.part):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
