"""Local runtimes: start, watch and stop ``gymlab runtime serve`` processes on loopback.

The one supervisor of local runtimes, shared by ``gymlab bench``, the examples
and the end-to-end tests: free ports, readiness (the ``runtime ready`` log
line), cleanup (SIGTERM, a bounded wait, SIGKILL, and never an Xvnc left
behind) and memory readings (from :mod:`gymlab.procfs`). It lives beside the runtime,
not in it: a training machine starts local runtimes as processes and imports nothing
of the server side.

Only the standard library is imported here, so importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from gymlab import deployment
from gymlab.client.remotes import parse_remote
from gymlab.deployment import DEFAULT_FPS, DEFAULT_MODE
from gymlab.procfs import (
    child_pids,
    free_port,
    pdeathsig_preexec,
    pid_alive,
    process_name,
    rss_bytes,
)
from gymlab.rewarder.protocol import Mode

#: The ``gymlab`` command a local runtime is started with (``runtime serve ...`` follows).
GYMLAB_COMMAND: tuple[str, ...] = (sys.executable, "-m", "gymlab.cli")

#: The runtime logs this once VNC and the rewarder accept connections.
READY_PATTERN = re.compile(r"runtime ready: .* on display :(\d+)")

#: How many log lines a readiness failure quotes.
TAIL_LINES = 8

#: Seconds a runtime that failed to start gets after SIGTERM before SIGKILL.
STARTUP_STOP_TIMEOUT = 5.0

_PORT_IN_USE = "is already in use"


class LocalRuntimeError(RuntimeError):
    """A local runtime did not become ready (it exited or timed out); says why."""


# ----- local runtimes ---------------------------------------------------------------------


@dataclass
class LocalRuntime:
    """A ``gymlab runtime serve`` subprocess on loopback, started by :func:`start_local_runtime`.

    ``lines`` is its log (stderr), collected by a background thread;
    ``display`` is its X display number once it is ready.
    """

    proc: subprocess.Popen[str]
    env_id: str
    mode: Mode
    vnc_port: int
    rewarder_port: int
    password: str
    display: int | None = None
    lines: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event, repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False)
    _known_xvnc: set[int] = field(default_factory=set, repr=False)

    @property
    def remote(self) -> str:
        """Its entry in a remotes string: ``127.0.0.1:VNC+REWARDER``."""
        return f"127.0.0.1:{self.vnc_port}+{self.rewarder_port}"

    @property
    def url(self) -> str:
        """The rewarder's websocket URL."""
        return f"ws://127.0.0.1:{self.rewarder_port}/"

    @property
    def log(self) -> str:
        """The log so far, one string."""
        return "\n".join(self.lines)

    def pids(self) -> list[int]:
        """The runtime process and its children (Xvnc)."""
        return [self.proc.pid, *child_pids(self.proc.pid)]

    def xvnc_pids(self) -> list[int]:
        """The runtime's Xvnc children (remembered, so :meth:`stop` can reap orphans)."""
        found = [pid for pid in child_pids(self.proc.pid) if process_name(pid) == "Xvnc"]
        self._known_xvnc.update(found)
        return found

    def rss(self) -> int:
        """Resident memory of the runtime process plus its Xvnc, in bytes."""
        return sum(rss_bytes(pid) for pid in self.pids())

    def terminate(self) -> None:
        """Send SIGTERM (the runtime stops Xvnc and exits); does not wait, see :meth:`stop`."""
        self._sigterm()

    def _sigterm(self) -> None:
        self.xvnc_pids()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the runtime process only (a crash); its Xvnc dies of PR_SET_PDEATHSIG."""
        self.xvnc_pids()
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        self.proc.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL; returns the exit code.

        Afterwards no Xvnc of this runtime is left (one that outlived it is
        killed) and :attr:`lines` holds the whole log.
        """
        self._sigterm()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        deadline = time.monotonic() + 5.0
        for pid in self._known_xvnc:
            # Check the name too: the pid may have been reused since.
            if pid_alive(pid) and process_name(pid) == "Xvnc":
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        if self._reader is not None:
            self._reader.join(5.0)  # EOF comes with the exit: the log is complete
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code

    def tail(self, n: int = TAIL_LINES) -> str:
        """The last ``n`` log lines."""
        return "\n".join(self.lines[-n:])


def _read_log(rt: LocalRuntime) -> None:
    """Collect the runtime's stderr into ``rt.lines``; set ``rt._ready`` when ready or at EOF."""
    assert rt.proc.stderr is not None
    with contextlib.suppress(ValueError, OSError):  # the stream was closed by stop()
        for line in rt.proc.stderr:
            rt.lines.append(line.rstrip("\n"))
            match = READY_PATTERN.search(line)
            if match and rt.display is None:
                rt.display = int(match.group(1))
                rt._ready.set()
    rt._ready.set()


def _spawn(
    env_id: str,
    mode: Mode,
    fps: float,
    password: str,
    vnc_port: int,
    rewarder_port: int,
    workdir: str | os.PathLike[str] | None,
    extra_args: Sequence[str],
    command: Sequence[str],
) -> LocalRuntime:
    cmd = [
        *command,
        "runtime",
        "serve",
        f"--env-id={env_id}",
        f"--vnc-port={vnc_port}",
        f"--rewarder-port={rewarder_port}",
        "--password-file=/dev/stdin",  # the password never touches the disk
        f"--mode={mode.value}",
        f"--fps={fps}",
        *extra_args,
    ]
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=workdir,
        # Its own session: a terminal's Ctrl-C reaches this supervisor, which stops it.
        start_new_session=True,
        # Die with us, even of SIGKILL; only from the main thread, since the kernel
        # signals when the forking *thread* ends (a worker thread would end too soon).
        preexec_fn=(
            pdeathsig_preexec(signal.SIGTERM)
            if threading.current_thread() is threading.main_thread()
            else None
        ),
    )
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(password + "\n")  # far below a pipe's buffer: never blocks
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.close()
    rt = LocalRuntime(proc, env_id, mode, vnc_port, rewarder_port, password)
    rt._reader = threading.Thread(
        target=_read_log, args=(rt,), name=f"runtime-log-{vnc_port}", daemon=True
    )
    rt._reader.start()
    return rt


def _await_ready(rt: LocalRuntime, deadline: float, timeout: float) -> None:
    """Return once ``rt`` is ready; else stop it and raise :class:`LocalRuntimeError`."""
    if rt._ready.wait(max(0.0, deadline - time.monotonic())) and rt.display is not None:
        rt.xvnc_pids()  # remember Xvnc now, while it is still the runtime's child
        return
    if rt._ready.is_set():  # EOF on its log: it is exiting, give it a moment to be reaped
        with contextlib.suppress(subprocess.TimeoutExpired):
            rt.proc.wait(5.0)
    code = rt.proc.poll()
    rt.stop(STARTUP_STOP_TIMEOUT)
    if code is None:
        why = f"did not become ready within {timeout:g} s"
    else:
        why = f"exited with code {code} before it was ready"
    raise LocalRuntimeError(f"runtime {rt.env_id} on {rt.remote} {why}; its log ends:\n{rt.tail()}")


def _port_clash(exc: LocalRuntimeError) -> bool:
    return _PORT_IN_USE in str(exc)


def _start_all(
    n: int,
    env_id: str,
    mode: Mode | str,
    fps: float,
    password: str,
    vnc_port: int | None,
    rewarder_port: int | None,
    workdir: str | os.PathLike[str] | None,
    extra_args: Sequence[str],
    ready_timeout: float,
    command: Sequence[str],
) -> list[LocalRuntime]:
    """Start ``n`` runtimes at once (spawned from this thread) and wait for all of them.

    Ports picked here may be taken by someone else before the runtime binds
    them; such a runtime is restarted on fresh ports (twice at most).
    """
    mode = Mode(mode)
    taken: set[int] = set()

    def fresh() -> int:
        for _attempt in range(100):
            port = free_port()
            if port not in taken:
                taken.add(port)
                return port
        raise LocalRuntimeError("no free TCP port found on 127.0.0.1")

    def spawn() -> LocalRuntime:
        vnc = vnc_port if vnc_port is not None else fresh()
        rewarder = rewarder_port if rewarder_port is not None else fresh()
        return _spawn(env_id, mode, fps, password, vnc, rewarder, workdir, extra_args, command)

    chosen = vnc_port is None and rewarder_port is None
    spawned: list[LocalRuntime] = []  # everything started, so that a failure stops it all
    try:
        for _runtime in range(n):
            spawned.append(spawn())
        deadline = time.monotonic() + ready_timeout
        ready: list[LocalRuntime] = []
        for rt in spawned[:n]:
            for attempt in range(3):
                try:
                    _await_ready(rt, deadline, ready_timeout)
                    break
                except LocalRuntimeError as exc:
                    if not (chosen and _port_clash(exc)) or attempt == 2:
                        raise
                    rt = spawn()
                    spawned.append(rt)
            ready.append(rt)
    except BaseException:
        stop_all(spawned)
        raise
    return ready


def start_local_runtime(
    env_id: str = "CartPole-v1",
    *,
    mode: Mode | str = DEFAULT_MODE,
    fps: float = DEFAULT_FPS,
    password: str | None = None,
    vnc_port: int | None = None,
    rewarder_port: int | None = None,
    workdir: str | os.PathLike[str] | None = None,
    extra_args: Sequence[str] = (),
    ready_timeout: float = 60.0,
    command: Sequence[str] = GYMLAB_COMMAND,
) -> LocalRuntime:
    """Start ``gymlab runtime serve`` on loopback and return once it is ready.

    Args:
        env_id: the Gymnasium environment.
        mode: ``Mode.LOCKSTEP`` / ``Mode.REALTIME`` (or their strings).
        fps: the real-time frame rate.
        password: VNC and rewarder password; default 8 random hex characters
            (VNC uses only the first 8).
        vnc_port, rewarder_port: fixed ports; by default free ones (retried on a clash).
        workdir: the runtime's working directory (default: this process's).
        extra_args: more ``gymlab runtime serve`` arguments, e.g. ``["--display", "7"]``.
        ready_timeout: seconds to wait for the ``runtime ready`` log line.
        command: what runs ``gymlab`` (tests put a fake here).

    Raises:
        LocalRuntimeError: the runtime exited or timed out before it was ready
            (the message quotes its last log lines); nothing is left running.
    """
    (rt,) = _start_all(
        1,
        env_id,
        mode,
        fps,
        password or secrets.token_hex(4),
        vnc_port,
        rewarder_port,
        workdir,
        extra_args,
        ready_timeout,
        command,
    )
    return rt


def stop_all(runtimes: Sequence[LocalRuntime], timeout: float = 20.0) -> list[int]:
    """Stop ``runtimes`` in parallel (SIGTERM to all first); returns their exit codes."""
    for rt in runtimes:
        rt._sigterm()  # all first, so that they stop in parallel
    # they are all stopping already: waiting for them one by one costs no more time, and
    # needs no thread pool (none can start while the interpreter exits)
    return [rt.stop(timeout) for rt in runtimes]


def start_local_runtimes(
    n: int,
    env_id: str = "CartPole-v1",
    *,
    mode: Mode | str = DEFAULT_MODE,
    fps: float = DEFAULT_FPS,
    password: str | None = None,
    ready_timeout: float = 60.0,
) -> list[LocalRuntime]:
    """Start ``n`` runtimes sharing one password, in parallel; the caller stops them
    (:func:`stop_all`). Raises :class:`LocalRuntimeError` when one does not start, after
    stopping the others.
    """
    return _start_all(
        n,
        env_id,
        mode,
        fps,
        password or secrets.token_hex(4),
        None,
        None,
        None,
        (),
        ready_timeout,
        GYMLAB_COMMAND,
    )


@contextlib.contextmanager
def local_runtimes(
    n: int, env_id: str = "CartPole-v1", **options: Any
) -> Iterator[list[LocalRuntime]]:
    """:func:`start_local_runtimes` (same ``options``: ``mode``, ``fps``, ``password``,
    ``ready_timeout``) as a context manager: the runtimes are always stopped, in parallel.

    Raises :class:`LocalRuntimeError` (after stopping the others) when one does not start.
    """
    runtimes = start_local_runtimes(n, env_id, **options)
    try:
        yield runtimes
    finally:
        stop_all(runtimes)


def remotes_string(runtimes: Sequence[LocalRuntime], *, with_password: bool = True) -> str:
    """``vnc://127.0.0.1:V+R,...?password=P`` for :func:`gymlab.make` / ``RemoteVectorEnv``.

    The password is the first runtime's (:func:`local_runtimes` gives them all the same one).
    """
    if not runtimes:
        raise ValueError("no runtimes")
    password = runtimes[0].password if with_password else None
    return deployment.remotes_string([parse_remote(rt.remote) for rt in runtimes], password)
