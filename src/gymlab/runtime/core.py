"""The runtime process: Xvnc + the env host + the rewarder, in one process tree.

Everything runs on one asyncio loop in one thread: env steps, X drawing
and X input are quick for the environments this serves, and a single
thread keeps the ordering simple (a reply is only queued after its frame is
in Xvnc's framebuffer, and pushes leave in the order they were made).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import shutil
import signal
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gymlab.rewarder.server import RewarderServer
from gymlab.runtime.host import ConfigError, EnvHost, check_env_id, make_env, render
from gymlab.runtime.keymaps import UnknownKeyMap, keymap_for
from gymlab.runtime.xvnc import (
    XvncError,
    XvncOptions,
    XvncProcess,
    vnc_password_file_bytes,
    xauthority_bytes,
)

if TYPE_CHECKING:
    from gymlab.runtime.xwindow import FrameWindow

log = logging.getLogger("gymlab.runtime")

Mode = Literal["realtime", "lockstep"]


@dataclass(frozen=True)
class RuntimeConfig:
    """Everything a runtime needs; ``vnc_port``/``rewarder_port`` 0 is not allowed for VNC."""

    env_id: str
    password: str
    vnc_port: int = 5900
    rewarder_port: int = 15900
    mode: Mode = "realtime"
    fps: float = 60.0
    bind: str = "127.0.0.1"
    display: int | None = None
    xvnc_executable: str = "Xvnc"

    def validate(self) -> None:
        """Raise :class:`ConfigError` for values that cannot work."""
        if self.mode not in ("realtime", "lockstep"):
            raise ConfigError(f"unknown mode {self.mode!r} (realtime or lockstep)")
        if not (math.isfinite(self.fps) and 0 < self.fps <= 1000):
            raise ConfigError(f"fps must be in (0, 1000], got {self.fps}")
        if not self.password:
            raise ConfigError("the password is empty")
        for name in ("vnc_port", "rewarder_port"):
            port = getattr(self, name)
            if not 0 < port < 65536:
                raise ConfigError(f"{name} must be in 1..65535, got {port}")
        if self.display is not None and not 0 <= self.display < 65536:
            raise ConfigError(f"display must be in 0..65535, got {self.display}")
        check_env_id(self.env_id)
        if self.mode == "realtime":
            try:
                keymap_for(self.env_id)
            except UnknownKeyMap:
                raise ConfigError(
                    f"no key map for {self.env_id}: real-time mode needs one (use lockstep)"
                ) from None


class Runtime:
    """One runtime: ``await Runtime(config).run()`` until :meth:`stop` (or Xvnc dies).

    ``run`` returns the process exit code: 0 after a requested stop, 1 when
    Xvnc or the X connection died.
    """

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self.ready = asyncio.Event()
        self.display: int | None = None
        self.rewarder_port: int | None = None
        self.host: EnvHost | None = None
        self._stop = asyncio.Event()
        self._failure: str | None = None

    def _fail(self, reason: str) -> None:
        if self._failure is None:
            self._failure = reason  # logged once run() has seen whether Xvnc died
        self._stop.set()

    def _on_x_readable(self, window: FrameWindow, fd: int) -> None:
        try:
            window.poll_events()
        except Exception as exc:  # the X connection broke: Xvnc is gone or dying
            # python-xlib may have closed the socket already: use the fd we registered.
            asyncio.get_running_loop().remove_reader(fd)
            self._fail(f"lost the X connection ({type(exc).__name__})")

    def stop(self) -> None:
        """Ask ``run`` to shut down gracefully."""
        self._stop.set()

    async def run(self) -> int:
        """Start everything, serve until stopped, clean up; returns an exit code."""
        config = self.config
        config.validate()
        workdir = Path(tempfile.mkdtemp(prefix="gymlab-runtime-"))
        xvnc: XvncProcess | None = None
        window: FrameWindow | None = None
        server: RewarderServer | None = None
        tasks: list[asyncio.Task[Any]] = []
        x_fd: int | None = None
        env = make_env(config.env_id)
        try:
            env.reset()
            first = render(env)
            height, width = first.shape[:2]
            passwd = workdir / "vncpasswd"
            passwd.touch(mode=0o600)
            passwd.write_bytes(vnc_password_file_bytes(config.password))
            xauth = workdir / "Xauthority"
            xauth.touch(mode=0o600)
            xauth.write_bytes(xauthority_bytes(secrets.token_bytes(16)))
            if len(config.password) > 8:
                log.warning("VNC uses only the first 8 characters of the password")
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
                )
            )
            await xvnc.start()
            self.display = xvnc.display
            from gymlab.runtime.xwindow import FrameWindow

            window = FrameWindow(xvnc.display_name, width, height, xauth)
            host = self.host = EnvHost(config, env, first, window)
            server = RewarderServer(
                host,
                password=config.password,
                host=config.bind,
                port=config.rewarder_port,
                lockstep=config.mode == "lockstep",
            )
            await server.start()
            host.server = server
            self.rewarder_port = server.port
            loop = asyncio.get_running_loop()
            x_fd = window.fileno()
            loop.add_reader(x_fd, self._on_x_readable, window, x_fd)
            log.info(
                "runtime ready: %s (%s, %g fps) on display :%s, VNC %s:%d, rewarder %s:%d",
                config.env_id,
                config.mode,
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
            if config.mode == "realtime":
                tasks.append(asyncio.create_task(host.run_realtime()))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task not in (stop, xvnc_exit) and task.exception() is not None:
                    self._fail(f"runtime failed: {task.exception()!r}")
            if xvnc_exit in done or self._failure is not None:
                # A dead Xvnc is the usual cause of X errors: give it a moment to show.
                await asyncio.wait([xvnc_exit], timeout=1.0)
                if xvnc_exit.done():
                    log.error("Xvnc exited unexpectedly (code %s); stopping", xvnc_exit.result())
                else:
                    log.error("%s; stopping", self._failure)
                return 1
            log.info("stopping")
            return 0
        except XvncError as exc:
            log.error("%s", exc)
            return 1
        finally:
            for task in tasks:
                task.cancel()
            if x_fd is not None:
                asyncio.get_running_loop().remove_reader(x_fd)
            if server is not None:
                await server.close("runtime stopping")
            if window is not None:
                window.close()
            if xvnc is not None:
                await xvnc.stop()
            env.close()
            if self.host is not None and self.host.env is not env:
                self.host.env.close()
            shutil.rmtree(workdir, ignore_errors=True)


def run_runtime(config: RuntimeConfig) -> int:
    """Run a runtime in this process until SIGTERM/SIGINT; returns the exit code."""

    async def main() -> int:
        runtime = Runtime(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runtime.stop)
        return await runtime.run()

    return asyncio.run(main())


def with_password_file(config: RuntimeConfig, path: str | os.PathLike[str]) -> RuntimeConfig:
    """``config`` with the password read from ``path`` (first line, whitespace stripped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read password file {path}: {exc.strerror}") from None
    password = text.splitlines()[0].strip() if text.strip() else ""
    if not password:
        raise ConfigError(f"password file {path} is empty")
    return replace(config, password=password)
