"""Start, watch and stop TigerVNC's ``Xvnc`` for one runtime."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from gymlab.procfs import pdeathsig_preexec

log = logging.getLogger("gymlab.runtime")

#: The fixed DES key VNC uses to obfuscate stored passwords (from the VNC sources).
_VNC_FIXED_KEY = bytes([23, 82, 107, 6, 35, 78, 88, 7])


class XvncError(RuntimeError):
    """Xvnc could not be started or died."""


def _reverse_bits(byte: int) -> int:
    return int(f"{byte:08b}"[::-1], 2)


def vnc_password_file_bytes(password: str) -> bytes:
    """The 8-byte ``vncpasswd -f`` format: DES-ECB of the password under VNC's fixed key.

    VNC's DES takes key bits in reversed order within each byte, hence the
    bit reversal before standard DES. Only the first 8 characters count.
    """
    from Crypto.Cipher import DES

    key = bytes(_reverse_bits(b) for b in _VNC_FIXED_KEY)
    plain = password.encode("latin-1", errors="replace")[:8].ljust(8, b"\0")
    return bytes(DES.new(key, DES.MODE_ECB).encrypt(plain))


_FAMILY_LOCAL = 256
_COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"


def xauthority_bytes(cookie: bytes, hostname: str | None = None) -> bytes:
    """One Xauthority entry granting ``cookie`` for local connections to any display.

    The empty display number matches every display, which is needed because
    Xvnc picks the number itself (-displayfd) after the file is written.
    """
    fields = [
        (hostname or socket.gethostname()).encode(),
        b"",  # display number: any
        _COOKIE_NAME,
        cookie,
    ]
    out = struct.pack(">H", _FAMILY_LOCAL)
    for value in fields:
        out += struct.pack(">H", len(value)) + value
    return out


@dataclass(frozen=True)
class XvncOptions:
    """How to run Xvnc."""

    width: int
    height: int
    vnc_port: int
    password_file: Path
    bind: str = "127.0.0.1"
    display: int | None = None  # None: Xvnc picks a free one (-displayfd)
    executable: str = "Xvnc"
    xauthority: Path | None = None  # X clients need this cookie file (no open display)
    # Xvnc sends each client at most this many updates a second (its default, 60, makes a
    # lockstep pixel fetch wait up to ~16 ms for the next slot). Well above any tick rate.
    max_updates_per_second: int = 1000
    # Whether Xvnc draws the X pointer into the framebuffer. Browser runtimes turn it off:
    # agents then see the page's pixels only, exactly what a screenshot of the display holds.
    cursor: bool = True


def xvnc_command(options: XvncOptions, displayfd: int | None) -> list[str]:
    """The Xvnc argument list for ``options`` (``displayfd`` when no display is fixed)."""
    cmd = [options.executable]
    if options.display is not None:
        cmd.append(f":{options.display}")
    else:
        cmd += ["-displayfd", str(displayfd)]
    cmd += [
        "-rfbport",
        str(options.vnc_port),
        "-rfbauth",
        str(options.password_file),
        "-SecurityTypes",
        "VncAuth",
        "-geometry",
        f"{options.width}x{options.height}",
        "-depth",
        "24",
        "-nolisten",
        "tcp",
        "-AlwaysShared",
        "-desktop",
        "gymlab",
        "-FrameRate",
        str(options.max_updates_per_second),
    ]
    if options.xauthority is not None:
        cmd += ["-auth", str(options.xauthority)]
    if not options.cursor:
        cmd.append("-nocursor")
    if options.bind in ("127.0.0.1", "localhost"):
        cmd.append("-localhost")
    elif options.bind not in ("0.0.0.0", "", "*"):
        cmd += ["-interface", options.bind]
    return cmd


class XvncProcess:
    """A running Xvnc. Use :meth:`start`; :meth:`stop` terminates it."""

    def __init__(self, options: XvncOptions) -> None:
        self.options = options
        self.proc: asyncio.subprocess.Process | None = None
        self.display: int | None = options.display

    @property
    def display_name(self) -> str:
        """``:N``."""
        return f":{self.display}"

    async def start(self, timeout: float = 15.0) -> None:
        """Start Xvnc and return once it accepts X clients (bounded by ``timeout``)."""
        exe = shutil.which(self.options.executable)
        if exe is None:
            raise XvncError(f"{self.options.executable} not found (install TigerVNC's Xvnc)")
        read_fd, write_fd = os.pipe() if self.options.display is None else (-1, -1)
        cmd = xvnc_command(self.options, write_fd if write_fd >= 0 else None)
        log.info("starting %s", " ".join(cmd))
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *cmd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,) if write_fd >= 0 else (),
                # Its own session: a terminal's Ctrl-C (SIGINT to the foreground process
                # group) reaches only the runtime, which then stops Xvnc itself.
                start_new_session=True,
                # Xvnc dies with the runtime whatever kills it (even SIGKILL), so it never
                # keeps the VNC port. asyncio forks from the event loop's thread, which runs
                # until the runtime is done: the kernel signals when that *thread* ends.
                preexec_fn=pdeathsig_preexec(signal.SIGKILL),
            )
        finally:
            if write_fd >= 0:
                os.close(write_fd)
        self._stderr_task = asyncio.create_task(self._log_stderr())
        try:
            await asyncio.wait_for(self._wait_ready(read_fd), timeout)
        except asyncio.TimeoutError:
            await self.stop()
            raise XvncError(f"Xvnc did not accept X clients within {timeout:.0f}s") from None
        except XvncError:
            await self.stop()
            raise
        finally:
            if read_fd >= 0:
                os.close(read_fd)

    async def _wait_ready(self, read_fd: int) -> None:
        assert self.proc is not None
        if read_fd >= 0:
            # Xvnc writes "N\n" to the displayfd once it accepts connections.
            data = await _read_line(read_fd)
            if not data.strip().isdigit():
                await self._raise_exited()
            self.display = int(data.strip())
            return
        socket_path = Path(f"/tmp/.X11-unix/X{self.options.display}")
        while not socket_path.exists():
            if self.proc.returncode is not None:
                await self._raise_exited()
            await asyncio.sleep(0.05)

    async def _raise_exited(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self.proc.wait(), 2.0)
        tail = " | ".join(getattr(self, "_stderr_tail", [])[-3:])
        raise XvncError(f"Xvnc exited with code {self.proc.returncode}: {tail}")

    async def _log_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        self._stderr_tail: list[str] = []
        while line := await self.proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            if text:
                self._stderr_tail = [*self._stderr_tail[-19:], text]
                log.debug("Xvnc: %s", text)

    async def wait(self) -> int:
        """Wait for Xvnc to exit; returns its exit code."""
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("Xvnc ignored SIGTERM for %.0fs, killing it", timeout)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _read_line(fd: int) -> str:
    """Read from a pipe up to a newline or EOF without blocking the event loop."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    data = b""
    while not data.endswith(b"\n"):
        readable: asyncio.Future[None] = loop.create_future()

        def wake(fut: asyncio.Future[None] = readable) -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await readable
        finally:
            loop.remove_reader(fd)
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace")
