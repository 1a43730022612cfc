"""Helpers for the runtime end-to-end tests: start `gymlab runtime serve` as a real subprocess."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

READY_TIMEOUT = 40.0
PASSWORD = "pa55word"


def free_port() -> int:
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc)."""
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                children += [int(x) for x in fh.read().split()]
    return children


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def auth_headers(password: str, observer: bool = False) -> dict[str, str]:
    """Upgrade headers a v0 client sends, built by hand (no gymlab code)."""
    token = base64.b64encode(f"{password}:".encode()).decode()
    return {"Authorization": f"Basic {token}", "openai-observer": "true" if observer else "false"}


def v0(method: str, message_id: int, body: dict[str, Any] | None = None, **headers: Any) -> str:
    """A hand-built v0 message."""
    hdrs = {"message_id": message_id, "sent_at": time.time(), **headers}
    return json.dumps({"method": method, "headers": hdrs, "body": body or {}})


@dataclass
class RuntimeProcess:
    """A running `gymlab runtime serve` subprocess."""

    proc: subprocess.Popen[str]
    vnc_port: int
    rewarder_port: int
    password: str
    display: int | None = None
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.rewarder_port}/"

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def xvnc_pids(self) -> list[int]:
        return [
            pid
            for pid in child_pids(self.proc.pid)
            if Path(f"/proc/{pid}/comm").read_text().strip() == "Xvnc"
        ]

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait (bounded); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"runtime ignored SIGTERM for {timeout}s:\n{self.log}") from None


def _pump(stream: Any, lines: list[str], ready: threading.Event, holder: dict[str, int]) -> None:
    for line in stream:
        lines.append(line.rstrip())
        match = re.search(r"runtime ready: .* on display :(\d+)", line)
        if match:
            holder["display"] = int(match.group(1))
            ready.set()
    ready.set()  # EOF: the process ended


def start_runtime(
    workdir: Path,
    env_id: str = "CartPole-v1",
    mode: str = "lockstep",
    fps: float = 60.0,
    password: str = PASSWORD,
    extra: list[str] | None = None,
) -> RuntimeProcess:
    """Start a runtime on free ports and wait until it logs that it is ready."""
    pw_file = workdir / "password"
    pw_file.write_text(password + "\n")
    pw_file.chmod(0o600)
    vnc_port, rewarder_port = free_port(), free_port()
    cmd = [
        sys.executable,
        "-m",
        "gymlab.cli",
        "runtime",
        "serve",
        "--env-id",
        env_id,
        "--vnc-port",
        str(vnc_port),
        "--rewarder-port",
        str(rewarder_port),
        "--password-file",
        str(pw_file),
        "--mode",
        mode,
        "--fps",
        str(fps),
        *(extra or []),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=workdir
    )
    rt = RuntimeProcess(proc, vnc_port, rewarder_port, password)
    ready, holder = threading.Event(), {}
    threading.Thread(target=_pump, args=(proc.stderr, rt.lines, ready, holder), daemon=True).start()
    if not ready.wait(READY_TIMEOUT) or "display" not in holder:
        rt.terminate()
        raise AssertionError(f"runtime did not become ready:\n{rt.log}")
    rt.display = holder["display"]
    return rt


@contextlib.contextmanager
def running_runtime(workdir: Path, **kwargs: Any) -> Iterator[RuntimeProcess]:
    """Context manager around :func:`start_runtime` that always stops the tree."""
    rt = start_runtime(workdir, **kwargs)
    try:
        yield rt
    finally:
        xvnc = rt.xvnc_pids()
        rt.terminate()
        for pid in xvnc:  # never leave an Xvnc behind, even when a test failed
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


def vncdo(
    rt: RuntimeProcess, *args: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run the vncdotool CLI (a VNC peer nobody here wrote) against the runtime."""
    exe = Path(sys.executable).with_name("vncdo")
    return subprocess.run(
        [str(exe), "-s", f"127.0.0.1::{rt.vnc_port}", "-p", rt.password, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
