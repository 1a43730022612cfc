"""End-to-end: the lifetime of a `gymlab runtime serve` process tree (real Xvnc, loopback).

Whatever ends the runtime, its Xvnc goes too and the ports come free; a
killed runtime's work directory is removed by the next one; SIGINT and SIGTERM
stop it cleanly; a port in use is one line naming the port and its holder.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from gymlab.procfs import free_port, pid_alive, process_name
from gymlab.supervisor import LocalRuntime, start_local_runtime

needs_xvnc = pytest.mark.skipif(
    shutil.which("Xvnc") is None, reason="TigerVNC Xvnc is not installed"
)
pytestmark = [pytest.mark.e2e]


def port_free(port: int) -> bool:
    """True when a listener could bind ``port`` on 127.0.0.1 (as Xvnc does: SO_REUSEADDR)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_for(predicate: Callable[[], bool], timeout: float) -> float | None:
    """Poll ``predicate`` every 5 ms; seconds it took, or None after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(0.005)
    return None


def workdirs_of(pid: int) -> list[Path]:
    """The runtime's work directories (named after its pid)."""
    return sorted(Path(tempfile.gettempdir()).glob(f"gymlab-runtime-{pid}.*"))


def free_display() -> int:
    start = 300 + os.getpid() % 100  # spread parallel runs apart
    for n in range(start, start + 200):
        if not (Path(f"/tmp/.X11-unix/X{n}").exists() or Path(f"/tmp/.X{n}-lock").exists()):
            return n
    raise AssertionError("no free X display number found")


def check_clean_stop(rt: LocalRuntime, xvnc: list[int], code: int) -> None:
    assert code == 0, rt.log
    assert "ERROR" not in rt.log and "Traceback" not in rt.log, rt.log
    assert "stopping" in rt.log
    assert wait_for(lambda: not any(map(pid_alive, xvnc)), 5) is not None, "Xvnc left behind"
    assert workdirs_of(rt.proc.pid) == [], "work directory left behind"
    assert not Path(f"/tmp/.X11-unix/X{rt.display}").exists()


@needs_xvnc
def test_kill_9_frees_the_vnc_port_and_a_restart_on_the_same_ports_is_ready() -> None:
    rt = start_local_runtime(ready_timeout=40)
    restarted: LocalRuntime | None = None
    try:
        (xvnc,) = rt.xvnc_pids()
        (old_workdir,) = workdirs_of(rt.proc.pid)
        rt.kill()
        freed = wait_for(lambda: port_free(rt.vnc_port), 5)
        assert freed is not None, f"VNC port {rt.vnc_port} still taken 5 s after kill -9"
        assert wait_for(lambda: not pid_alive(xvnc), 5) is not None, "Xvnc outlived kill -9"
        print(f"VNC port free {freed * 1000:.0f} ms after kill -9 of the runtime")
        assert old_workdir.exists()  # a killed runtime cannot remove it ...
        restarted = start_local_runtime(
            vnc_port=rt.vnc_port, rewarder_port=rt.rewarder_port, ready_timeout=40
        )
        assert not old_workdir.exists()  # ... the next one does
        assert "left behind by a runtime that is gone" in restarted.log
        assert restarted.stop() == 0, restarted.log
    finally:
        rt.stop()
        if restarted is not None:
            restarted.stop()


@needs_xvnc
def test_restart_on_a_killed_runtimes_display_reuses_it() -> None:
    """Xvnc itself removes the display lock a SIGKILLed Xvnc left, once that pid is gone."""
    display = free_display()
    extra = ["--display", str(display)]
    rt = start_local_runtime(extra_args=extra, ready_timeout=40)
    restarted: LocalRuntime | None = None
    try:
        (xvnc,) = rt.xvnc_pids()
        rt.kill()
        lock = Path(f"/tmp/.X{display}-lock")
        assert lock.read_text().strip() == str(xvnc)  # stale: SIGKILL leaves it
        # A zombie still "holds" the lock; whoever reaps orphans here (init) must do it.
        if wait_for(lambda: not Path(f"/proc/{xvnc}").exists(), 10) is None:
            pytest.skip("nobody reaped the killed Xvnc within 10 s (init does not reap)")
        restarted = start_local_runtime(
            vnc_port=rt.vnc_port, rewarder_port=rt.rewarder_port, extra_args=extra
        )
        assert restarted.display == display
        assert restarted.stop() == 0, restarted.log
        assert not lock.exists()
    finally:
        rt.stop()
        if restarted is not None:
            restarted.stop()


@needs_xvnc
def test_sigint_to_the_process_group_stops_cleanly() -> None:
    """A terminal's Ctrl-C: SIGINT to the runtime's whole process group."""
    rt = start_local_runtime(ready_timeout=40)
    try:
        xvnc = rt.xvnc_pids()
        assert os.getpgid(rt.proc.pid) == rt.proc.pid  # local runtimes lead their own group
        os.killpg(rt.proc.pid, signal.SIGINT)
        rt.proc.wait(20)
    finally:
        code = rt.stop()
    check_clean_stop(rt, xvnc, code)


@needs_xvnc
@pytest.mark.parametrize("mode", ["lockstep", "realtime"])
def test_sigterm_stops_cleanly(mode: str) -> None:
    rt = start_local_runtime(mode=mode, ready_timeout=40)
    try:
        xvnc = rt.xvnc_pids()
        rt.terminate()
        rt.proc.wait(20)
    finally:
        code = rt.stop()
    check_clean_stop(rt, xvnc, code)


def serve(tmp_path: Path, vnc_port: int, rewarder_port: int) -> subprocess.CompletedProcess[str]:
    pw = tmp_path / "pw"
    pw.write_text("pa55word\n")
    cmd = [sys.executable, "-m", "gymlab.cli", "runtime", "serve", "--env-id", "CartPole-v1"]
    cmd += ["--vnc-port", str(vnc_port), "--rewarder-port", str(rewarder_port)]
    cmd += ["--password-file", str(pw), "--mode", "lockstep"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("which", ["VNC", "rewarder"])
def test_port_held_by_another_listener_exits_2_naming_it(tmp_path: Path, which: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        other = free_port()
        ports = (held, other) if which == "VNC" else (other, held)
        done = serve(tmp_path, *ports)
    me = f"pid {os.getpid()}, {process_name(os.getpid())}"
    expected = (
        f"gymlab runtime: error: {which} port {held} on 127.0.0.1 is already in use (by {me})"
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [expected]  # one line: nothing was started


@needs_xvnc
def test_port_held_by_a_running_xvnc_names_it(tmp_path: Path) -> None:
    rt = start_local_runtime(ready_timeout=40)
    try:
        (xvnc,) = rt.xvnc_pids()
        done = serve(tmp_path, rt.vnc_port, free_port())
    finally:
        assert rt.stop() == 0  # the failed second runtime did not disturb the first
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"gymlab runtime: error: VNC port {rt.vnc_port} on 127.0.0.1 is already in use "
        f"(by pid {xvnc}, Xvnc)"
    ]
