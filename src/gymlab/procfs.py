"""Small ``/proc`` readings and process plumbing, shared by the runtime and its supervisors.

Children, liveness, start times, CPU and resident memory, who holds a TCP port, and a
``preexec_fn`` that makes a child die with its parent. Standard library only, so the
client side (local remotes, the bench) and the runtime side (port checks, stale work
directories, Xvnc) both use it without importing each other.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1


# ----- /proc readings ---------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (the kernel picks it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc; empty once it is gone)."""
    children: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                children += [int(x) for x in text.split()]
    return children


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name (which may hold spaces): field 3 onwards."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def process_start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot); with the pid, names one process for good."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None  # field 22 of stat(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far, 0.0 if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def process_name(pid: int) -> str | None:
    """``/proc/PID/comm`` (the executable's name, at most 15 characters), None if gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS), 0 if it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def _socket_inodes(port: int) -> list[int]:
    """Inodes of the TCP sockets bound to local ``port``, listeners first (/proc/net/tcp{,6})."""
    listening: list[int] = []
    other: list[int] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            # cols: sl local_address rem_address st ... uid timeout inode
            if len(cols) < 10 or int(cols[1].rsplit(":", 1)[1], 16) != port:
                continue
            if cols[3] == "06":  # TIME_WAIT: nobody holds it, and it never blocks our bind
                continue
            inode = int(cols[9])
            if inode:
                (listening if cols[3] == "0A" else other).append(inode)
    return listening + other


def port_holder(port: int) -> tuple[int, str] | None:
    """``(pid, name)`` of a process holding TCP ``port``, or None when it cannot be seen.

    Matches the socket inodes of /proc/net/tcp{,6} against every readable
    /proc/*/fd link; other users' processes are not readable, so their sockets
    go unattributed.
    """
    inodes = _socket_inodes(port)
    if not inodes:
        return None
    wanted = {f"socket:[{inode}]": rank for rank, inode in enumerate(inodes)}
    best: tuple[int, int] | None = None  # (rank, pid): prefer the holder of a listener
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry.name}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                rank = wanted.get(os.readlink(f"/proc/{entry.name}/fd/{fd}"))
            except OSError:
                continue
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, int(entry.name))
    if best is None:
        return None
    return best[1], process_name(best[1]) or "?"


# ----- dying with the parent --------------------------------------------------------------


def pdeathsig_preexec(sig: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get ``sig`` when its parent thread ends.

    Works with :class:`subprocess.Popen` and ``asyncio.create_subprocess_exec``
    (which passes ``preexec_fn`` on to Popen, from the event loop's thread).
    The kernel sends the signal when the *thread* that forked the child exits,
    so only use it from a thread that lives as long as the child should.
    libc is loaded here, before the fork, so the child only makes one call.
    """
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl: nobody will signal us
            os.kill(os.getpid(), sig)

    return preexec
