"""The runtime process: Xvnc + a backend + the rewarder, in one process tree.

The backend that serves the env id (:func:`gymlab.runtime.backend.backend_for`: a web
task's browser, else a Gymnasium env) is prepared first; its frame size sizes Xvnc's
display; the rewarder server drives it. The rewarder, X drawing and X input run on one
asyncio loop, which keeps the ordering simple (a reply is only queued after its frame is
in Xvnc's framebuffer, and pushes leave in the order they were made); the env's own work
runs on the backend's worker thread, so a slow env cannot stall pings and handshakes.

Process lifetime: Xvnc runs in its own session and dies with the runtime
(PR_SET_PDEATHSIG, see :mod:`gymlab.runtime.xvnc`); SIGTERM and SIGINT stop
everything cleanly; the work directory (password and X cookie files) is
removed on exit, and one left by a killed runtime is removed by the next
runtime that starts. Ports in use are reported before anything starts.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any

from gymlab.procfs import pid_alive, port_holder, process_start_time
from gymlab.rewarder.protocol import Mode
from gymlab.rewarder.server import RewarderServer

# The backends register themselves on import (browser first: it claims web task ids).
from gymlab.runtime import browser as _browser  # noqa: F401
from gymlab.runtime import env_backend as _env_backend  # noqa: F401
from gymlab.runtime.backend import Backend, Display, backend_for
from gymlab.runtime.config import ConfigError, RuntimeConfig, with_password_file
from gymlab.runtime.xvnc import (
    XvncError,
    XvncOptions,
    XvncProcess,
    vnc_password_file_bytes,
    xauthority_bytes,
)

log = logging.getLogger("gymlab.runtime")

__all__ = [
    "ConfigError",
    "Mode",
    "PortInUse",
    "Runtime",
    "RuntimeConfig",
    "check_ports",
    "remove_stale_workdirs",
    "run_runtime",
    "with_password_file",
]

#: Work directories are ``<tmp>/gymlab-runtime-<pid>.<start time>-<random>``: the owner's
#: pid and start time are in the name from the moment it exists, so a later runtime can
#: tell a dead owner's directory from a live one's without reading anything inside.
WORKDIR_PREFIX = "gymlab-runtime-"
_WORKDIR_NAME = re.compile(rf"{re.escape(WORKDIR_PREFIX)}(\d+)\.(\d+)-[A-Za-z0-9_]+")


class PortInUse(ConfigError):
    """A port the runtime would listen on is taken (the message names it and its holder)."""


def _listen_addresses(bind: str, *, xvnc: bool) -> list[str]:
    """The addresses a server bound to ``bind`` listens on (Xvnc's or the rewarder's)."""
    if bind in ("127.0.0.1", "localhost"):
        # Xvnc -localhost listens on both loopbacks; asyncio resolves "localhost" to both.
        return ["127.0.0.1", "::1"] if xvnc or bind == "localhost" else ["127.0.0.1"]
    if bind in ("0.0.0.0", "", "*"):
        return ["0.0.0.0", "::"] if xvnc or bind != "0.0.0.0" else ["0.0.0.0"]
    return [bind]


def _check_port(what: str, port: int, address: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return  # no IPv6 here at all: the server cannot listen there either
    with sock:
        # As the servers do: connections in TIME_WAIT do not block them, only holders do.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                return  # no such address here (e.g. no IPv6): the server skips it too
            if exc.errno != errno.EADDRINUSE:
                raise ConfigError(
                    f"cannot listen on {what} port {port} on {address}: {exc.strerror}"
                ) from None
            holder = port_holder(port)
            by = f" (by pid {holder[0]}, {holder[1]})" if holder else ""
            raise PortInUse(f"{what} port {port} on {address} is already in use{by}") from None


def check_ports(config: RuntimeConfig) -> None:
    """Raise :class:`PortInUse` when the VNC or rewarder port is taken on ``config.bind``.

    Run before anything starts, so that a clash is one clear line naming the
    port and, when /proc shows it, the process holding it, rather than an
    "Address already in use" from deep inside Xvnc or the rewarder.
    """
    for address in _listen_addresses(config.bind, xvnc=True):
        _check_port("VNC", config.vnc_port, address)
    for address in _listen_addresses(config.bind, xvnc=False):
        _check_port("rewarder", config.rewarder_port, address)


def remove_stale_workdirs(parent: str | os.PathLike[str] | None = None) -> list[Path]:
    """Remove work directories whose runtime is gone (a killed one cannot remove its own).

    Only directories this user made as runtimes: real directories (never a
    symlink), owned by this uid, mode 0700, named ``gymlab-runtime-PID.START-*``
    where no live process has that pid and start time. Returns what was removed.
    """
    base = Path(parent if parent is not None else tempfile.gettempdir())
    removed: list[Path] = []
    try:
        entries = list(os.scandir(base))
    except OSError:
        return removed
    for entry in entries:
        match = _WORKDIR_NAME.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not (
            stat.S_ISDIR(info.st_mode)
            and info.st_uid == os.getuid()
            and stat.S_IMODE(info.st_mode) == 0o700
        ):
            continue
        pid, start = int(match.group(1)), int(match.group(2))
        if pid_alive(pid) and process_start_time(pid) == start:
            continue  # its runtime is still running
        # On Linux rmtree works on directory fds and never follows symlinks inside.
        shutil.rmtree(entry.path, ignore_errors=True)
        removed.append(Path(entry.path))
    return removed


def make_workdir() -> Path:
    """A fresh 0700 work directory named after this process (see :data:`WORKDIR_PREFIX`)."""
    for stale in remove_stale_workdirs():
        log.info("removed %s, left behind by a runtime that is gone", stale)
    pid = os.getpid()
    return Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{pid}.{process_start_time(pid)}-"))


class Runtime:
    """One runtime: ``await Runtime(config).run()`` until :meth:`stop` (or Xvnc dies).

    ``run`` returns the process exit code: 0 after a requested stop, 1 when
    Xvnc or the X connection died. It raises :class:`ConfigError` (before
    starting anything) for a bad config or a port in use.
    """

    #: After Xvnc died, how long to wait for a stop request that explains it: a signal
    #: sent to a whole process group or cgroup (systemd's KillMode=control-group) reaches
    #: Xvnc too, and its death may be noticed before our own signal handler runs.
    STOP_GRACE = 0.25

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.ready = asyncio.Event()
        self.display: int | None = None
        self.rewarder_port: int | None = None
        self.backend: Backend | None = None
        self.workdir: Path | None = None
        self._stop = asyncio.Event()
        self._stop_requested = False
        self._failure: str | None = None

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason  # logged once run() has seen whether Xvnc died
        self._stop.set()

    def _on_display_event(self, backend: Backend, fd: int) -> None:
        try:
            backend.poll_events()
        except Exception as exc:  # the X connection broke: Xvnc is gone or dying
            # python-xlib may have closed the socket already: use the fd we registered.
            asyncio.get_running_loop().remove_reader(fd)
            self._fail(f"lost the X connection ({type(exc).__name__})")

    def stop(self) -> None:
        """Ask ``run`` to shut down gracefully (exit code 0)."""
        self._stop_requested = True
        self._stop.set()

    async def run(self) -> int:
        """Start everything, serve until stopped, clean up; returns an exit code."""
        config = self.config
        config.validate()
        check_ports(config)
        mode = Mode(config.mode)
        backend = self.backend = backend_for(config.env_id).prepare(config)
        workdir: Path | None = None
        xvnc: XvncProcess | None = None
        server: RewarderServer | None = None
        tasks: list[asyncio.Task[Any]] = []
        event_fd: int | None = None
        try:
            workdir = self.workdir = make_workdir()
            xauth = _write_secret(workdir / "Xauthority", xauthority_bytes(secrets.token_bytes(16)))
            passwd = _write_secret(workdir / "vncpasswd", vnc_password_file_bytes(config.password))
            if len(config.password) > 8:
                log.warning("VNC uses only the first 8 characters of the password")
            width, height = backend.frame_size
            xvnc = XvncProcess(
                XvncOptions(
                    width=width,
                    height=height,
                    vnc_port=config.vnc_port,
                    password_file=passwd,
                    bind=config.bind,
                    display=config.display,
                    executable=config.xvnc_executable,
                    xauthority=xauth,
                    cursor=backend.shows_cursor,
                )
            )
            await xvnc.start()
            self.display = xvnc.display
            await backend.attach(Display(xvnc.display_name, xauth, workdir))
            server = RewarderServer(
                backend,
                password=config.password,
                bind=config.bind,
                port=config.rewarder_port,
                mode=mode,
            )
            try:
                await server.start()
            except OSError as exc:  # taken since check_ports ran: still one clear line
                log.error(
                    "cannot listen on rewarder port %d on %s: %s",
                    config.rewarder_port,
                    config.bind,
                    exc.strerror or exc,
                )
                return 1
            self.rewarder_port = server.port
            loop = asyncio.get_running_loop()
            event_fd = backend.event_fd()
            if event_fd is not None:
                loop.add_reader(event_fd, self._on_display_event, backend, event_fd)
            log.info(
                "runtime ready: %s (%s, %g fps) on display :%s, VNC %s:%d, rewarder %s:%d",
                backend.env_id,
                mode.value,
                config.fps,
                xvnc.display,
                config.bind,
                config.vnc_port,
                config.bind,
                server.port,
            )
            self.ready.set()
            xvnc_exit = asyncio.create_task(xvnc.wait())
            stop = asyncio.create_task(self._stop.wait())
            tasks = [xvnc_exit, stop]
            if mode is Mode.REALTIME:
                tasks.append(asyncio.create_task(backend.run_clock(server.tick)))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task not in (stop, xvnc_exit) and task.exception() is not None:
                    self._fail(f"runtime failed: {task.exception()!r}")
            if not self._stop_requested and (xvnc_exit in done or self._failure is not None):
                # A dead Xvnc is the usual cause of X errors: give it a moment to show,
                # and give a stop request sent along with Xvnc's death time to arrive.
                await asyncio.wait([xvnc_exit], timeout=1.0)
                deadline = loop.time() + self.STOP_GRACE
                while not self._stop_requested and loop.time() < deadline:
                    await asyncio.sleep(0.01)
            if self._stop_requested:
                log.info("stopping")
                return 0
            if xvnc_exit.done():
                log.error("Xvnc exited unexpectedly (code %s); stopping", xvnc_exit.result())
            else:
                log.error("%s; stopping", self._failure)
            return 1
        except XvncError as exc:
            log.error("%s", exc)
            return 1
        finally:
            for task in tasks:
                task.cancel()
            if event_fd is not None:
                asyncio.get_running_loop().remove_reader(event_fd)
            if server is not None:
                await server.close("runtime stopping")
            backend.close()  # its env thread, its window and env (or browser)
            if xvnc is not None:
                await xvnc.stop()
            if workdir is not None:
                shutil.rmtree(workdir, ignore_errors=True)


def _write_secret(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new file only this user can read."""
    path.touch(mode=0o600)
    path.write_bytes(data)
    return path


def run_runtime(config: RuntimeConfig) -> int:
    """Run a runtime in this process until SIGTERM/SIGINT; returns the exit code.

    Both signals stop it cleanly (exit 0). Raises :class:`ConfigError` for a
    bad config or a port in use, before anything starts.
    """

    async def main() -> int:
        runtime = Runtime(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stop)
        return await runtime.run()

    return asyncio.run(main())
