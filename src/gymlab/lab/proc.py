"""Subprocess helpers that turn failures into :class:`LabError` with the command's last words."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from gymlab.lab.errors import LabError


def run(
    argv: Sequence[str],
    *,
    what: str,
    hint: str = "",
    input: bytes | None = None,
    timeout: float | None = None,
    capture: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run ``argv``; return its stdout, or raise LabError naming ``what`` failed and why."""
    try:
        done = subprocess.run(
            list(argv),
            input=input,
            capture_output=capture,
            timeout=timeout,
            env=env,
            cwd=cwd,
            check=False,
        )
    except FileNotFoundError as exc:
        raise LabError(f"{what}: {argv[0]} is not installed{'; ' + hint if hint else ''}") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{what}: timed out after {timeout:.0f}s ({shlex.join(argv)})") from exc
    if done.returncode != 0:
        tail = (
            (done.stderr or b"").decode(errors="replace").strip().splitlines()[-1:]
            if capture
            else []
        )
        detail = f": {tail[0]}" if tail else ""
        raise LabError(
            f"{what} failed (exit {done.returncode}){detail}{'; ' + hint if hint else ''}"
        )
    return (done.stdout or b"").decode(errors="replace") if capture else ""
