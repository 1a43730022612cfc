"""Helpers for the runtime end-to-end tests: `gymlab runtime serve` as a real subprocess.

Starting, readiness and cleanup are :mod:`gymlab.supervisor`'s; this adds
the test-side names (``start_runtime``, ``running_runtime``, ...) and the
hand-built v0 messages, which use no gymlab code.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gymlab.procfs import child_pids, free_port, pid_alive
from gymlab.supervisor import LocalRuntime, LocalRuntimeError, start_local_runtime

__all__ = [
    "PASSWORD",
    "READY_TIMEOUT",
    "RuntimeProcess",
    "auth_headers",
    "child_pids",
    "free_port",
    "pid_alive",
    "running_runtime",
    "start_runtime",
    "v0",
    "vncdo",
]

READY_TIMEOUT = 40.0
PASSWORD = "pa55word"


def auth_headers(password: str, observer: bool = False) -> dict[str, str]:
    """Upgrade headers a v0 client sends, built by hand (no gymlab code)."""
    token = base64.b64encode(f"{password}:".encode()).decode()
    return {"Authorization": f"Basic {token}", "openai-observer": "true" if observer else "false"}


def v0(method: str, message_id: int, body: dict[str, Any] | None = None, **headers: Any) -> str:
    """A hand-built v0 message."""
    hdrs = {"message_id": message_id, "sent_at": time.time(), **headers}
    return json.dumps({"method": method, "headers": hdrs, "body": body or {}})


class RuntimeProcess(LocalRuntime):
    """A :class:`LocalRuntime` whose ``terminate`` waits and fails the test on a hang."""

    @classmethod
    def of(cls, rt: LocalRuntime) -> RuntimeProcess:
        """The same runtime (process, log, reader) as a :class:`RuntimeProcess`."""
        return cls(**{f.name: getattr(rt, f.name) for f in dataclasses.fields(rt)})

    def terminate(self, timeout: float = 20.0) -> int:  # type: ignore[override]
        """SIGTERM and wait (bounded); returns the exit code, raises if SIGTERM was ignored."""
        running = self.proc.poll() is None
        code = self.stop(timeout)
        if running and code == -signal.SIGKILL:
            raise AssertionError(f"runtime ignored SIGTERM for {timeout}s:\n{self.log}")
        return code


def start_runtime(
    workdir: Path,
    env_id: str = "CartPole-v1",
    mode: str = "lockstep",
    fps: float = 60.0,
    password: str = PASSWORD,
    extra: list[str] | None = None,
) -> RuntimeProcess:
    """Start a runtime (cwd ``workdir``) on free ports and wait until it logs that it is ready.

    The runtime reads its password from stdin; ``workdir/password`` holds it too,
    for tests that hand a password file to other tools.
    """
    pw_file = workdir / "password"
    pw_file.write_text(password + "\n")
    pw_file.chmod(0o600)
    try:
        rt = start_local_runtime(
            env_id,
            mode=mode,
            fps=fps,
            password=password,
            workdir=workdir,
            extra_args=extra or (),
            ready_timeout=READY_TIMEOUT,
        )
    except LocalRuntimeError as exc:
        raise AssertionError(str(exc)) from None
    return RuntimeProcess.of(rt)


@contextlib.contextmanager
def running_runtime(workdir: Path, **kwargs: Any) -> Iterator[RuntimeProcess]:
    """Context manager around :func:`start_runtime` that always stops the tree."""
    rt = start_runtime(workdir, **kwargs)
    try:
        yield rt
    finally:
        rt.terminate()  # stops Xvnc too, even when a test failed


def vncdo(rt: LocalRuntime, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run the vncdotool CLI (a VNC peer nobody here wrote) against the runtime."""
    exe = Path(sys.executable).with_name("vncdo")
    return subprocess.run(
        [str(exe), "-s", f"127.0.0.1::{rt.vnc_port}", "-p", rt.password, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
