"""The ``gymlab`` console script.

Each subcommand lives in its own module and registers itself through an
``add_parser(subparsers)`` function, so this file only wires them together.
Modules are imported lazily: ``gymlab --help`` must work even when optional
runtime dependencies (python-xlib, Xvnc) are missing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand name -> module that provides add_parser(subparsers)
SUBCOMMANDS: dict[str, str] = {
    "runtime": "gymlab.runtime.cli",
    "bench": "gymlab.bench",
    "record": "gymlab.recording",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gymlab", description=__doc__.splitlines()[0])
    from gymlab import __version__

    parser.add_argument("--version", action="version", version=f"gymlab {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in SUBCOMMANDS.values():
        importlib.import_module(module_name).add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
