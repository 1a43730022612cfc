"""One exception type for every failure the user can act on, and how a command reports it."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec

P = ParamSpec("P")


class LabError(Exception):
    """A failure with a one-line explanation of what went wrong and what to do.

    The invoke tasks print ``str(error)`` as a single line and exit non-zero, instead of a
    traceback: these are expected failures (no daemon, unknown host, bad variable).
    """


def error_line(exc: LabError) -> str:
    """The one line a command prints for ``exc``."""
    return f"gymlab: {exc}"


def one_line_exit(main: Callable[P, int]) -> Callable[P, int]:
    """A command's ``main``: a :class:`LabError` becomes :func:`error_line` on stderr, exit 1."""

    @functools.wraps(main)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except LabError as exc:
            print(error_line(exc), file=sys.stderr)
            return 1

    return wrapper
