"""One exception type for every failure the user can act on."""

from __future__ import annotations


class LabError(Exception):
    """A failure with a one-line explanation of what went wrong and what to do.

    The invoke tasks print ``str(error)`` as a single line and exit non-zero, instead of a
    traceback: these are expected failures (no daemon, unknown host, bad variable).
    """
