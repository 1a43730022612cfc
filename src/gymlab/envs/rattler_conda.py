"""A conda stand-in for conda-lock, solving with rattler (py-rattler from PyPI).

conda-lock 4 never solves by itself: it runs ``<conda> create --prefix P --dry-run --json
--override-channels --channel URL... SPEC...`` and reads the ``actions.FETCH`` records from
the JSON it prints. Where no conda, mamba or micromamba executable can be installed, this
module answers that one command and ``--version`` (``invoke lock`` passes it as ``--conda``);
any other command fails loudly rather than pretending. Virtual packages (``__cuda``,
``__glibc``) reach it the way they reach conda: as records of the channel conda-lock writes from
virtual-packages.yml, so the host running the lock is never inspected.

    python -m gymlab.envs.rattler_conda create --prefix P --dry-run --json -c URL SPEC...
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from importlib.metadata import version
from typing import NoReturn

import rattler


async def solve(channels: list[str], specs: list[str], subdir: str) -> list[dict]:
    records = await rattler.solve(
        sources=[rattler.Channel(url) for url in channels],
        specs=specs,
        platforms=[rattler.Platform(subdir), rattler.Platform("noarch")],
        # only the virtual packages conda-lock put in its channel, never this machine's
        virtual_packages=[],
    )
    # rattler's own serialisation is conda's repodata_record.json: what FETCH actions carry
    return [json.loads(r.to_json()) for r in records]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gymlab-rattler-conda")
    parser.add_argument("command", nargs="?")
    parser.add_argument("--version", action="store_true")
    parser.add_argument("--prefix", "-p")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--override-channels", action="store_true")
    parser.add_argument("--channel", "-c", action="append", default=[])
    parser.add_argument("specs", nargs="*")
    args, rest = parser.parse_known_args(argv)
    # argparse hands positionals after the first option group back as "unknown"
    specs = args.specs + [a for a in rest if not a.startswith("-")]
    unknown = [a for a in rest if a.startswith("-")]
    if args.version and args.command is None:
        # conda-lock logs the solver's version before solving
        print(f"gymlab-rattler-conda (py-rattler {version('py-rattler')})")
        return 0
    if args.command != "create" or not args.dry_run or unknown:
        print(
            f"gymlab-rattler-conda answers only `create --dry-run --json`; got {sys.argv[1:]}",
            file=sys.stderr,
        )
        return 2
    subdir = os.environ.get("CONDA_SUBDIR", "linux-64")
    try:
        fetch = asyncio.run(solve(args.channel, specs, subdir))
    except Exception as exc:  # the solver's message is what the user needs
        print(json.dumps({"success": False, "message": str(exc)}))
        return 1
    print(json.dumps({"success": True, "dry_run": True, "actions": {"FETCH": fetch, "LINK": []}}))
    return 0


def run() -> NoReturn:
    """:func:`main`, then exit without finalizing the interpreter (every entry point uses this).

    py-rattler's native worker threads can crash the interpreter while it finalizes
    ("PyGILState_Release: thread state ... must be current"), turning an answer already
    printed into a failure that conda-lock reports as "Could not lock the environment":
    flush, then leave at once.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
