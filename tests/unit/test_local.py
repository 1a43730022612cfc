"""gymlab.supervisor without Xvnc: /proc readings, readiness, cleanup, remotes strings.

Fake ``gymlab`` commands (small Python scripts) stand in for the runtime.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gymlab import supervisor as local
from gymlab.client.remotes import parse_remotes
from gymlab.procfs import free_port, pid_alive, port_holder, process_name, process_start_time
from gymlab.rewarder.protocol import Mode
from gymlab.runtime.core import (
    PortInUse,
    RuntimeConfig,
    check_ports,
    remove_stale_workdirs,
)
from gymlab.supervisor import LocalRuntime, LocalRuntimeError, remotes_string, start_local_runtime

MY_NAME = process_name(os.getpid())


def fake(body: str) -> list[str]:
    """A fake ``gymlab`` command: ``body`` runs with the runtime's arguments in sys.argv."""
    return [sys.executable, "-c", textwrap.dedent(body)]


#: Logs ready like the runtime (after echoing the password it got on stdin), then serves.
READY = fake(
    """
    import sys, time
    password = open("/dev/stdin").read().strip()
    print(f"password {password}", file=sys.stderr)
    print("x INFO gymlab.runtime: runtime ready: Fake-v0 (lockstep, 60 fps) on display :42,"
          " VNC 127.0.0.1:1, rewarder 127.0.0.1:2", file=sys.stderr, flush=True)
    time.sleep(60)
    """
)


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_port_holder_names_the_listening_process(listener: int) -> None:
    assert port_holder(listener) == (os.getpid(), MY_NAME)


def test_port_holder_finds_an_ipv6_listener() -> None:
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        sock.listen()
        assert port_holder(sock.getsockname()[1]) == (os.getpid(), MY_NAME)


def test_port_holder_is_none_for_a_free_port() -> None:
    assert port_holder(free_port()) is None


def test_check_ports_names_port_and_holder(listener: int) -> None:
    other = free_port()
    config = RuntimeConfig("CartPole-v1", "pw", vnc_port=listener, rewarder_port=other)
    with pytest.raises(PortInUse) as caught:
        check_ports(config)
    assert str(caught.value) == (
        f"VNC port {listener} on 127.0.0.1 is already in use (by pid {os.getpid()}, {MY_NAME})"
    )
    config = RuntimeConfig("CartPole-v1", "pw", vnc_port=other, rewarder_port=listener)
    with pytest.raises(PortInUse, match=rf"^rewarder port {listener} on 127\.0\.0\.1 is"):
        check_ports(config)
    check_ports(RuntimeConfig("CartPole-v1", "pw", vnc_port=other, rewarder_port=free_port()))


def test_runtime_config_normalises_mode_strings() -> None:
    config = RuntimeConfig("CartPole-v1", "pw", mode="realtime")
    assert config.mode is Mode.REALTIME and config.mode == "realtime"
    assert RuntimeConfig("CartPole-v1", "pw").mode is Mode.LOCKSTEP  # DEFAULT_MODE
    with pytest.raises(ValueError, match="unknown mode 'sideways'"):
        RuntimeConfig("CartPole-v1", "pw", mode="sideways").validate()


def fake_runtime(vnc: int, rewarder: int, password: str = "pw") -> LocalRuntime:
    return LocalRuntime(None, "E-v0", Mode.LOCKSTEP, vnc, rewarder, password)  # type: ignore[arg-type]


def test_remotes_string() -> None:
    runtimes = [fake_runtime(5900, 15900, "a b&c"), fake_runtime(5901, 15901, "a b&c")]
    spec = remotes_string(runtimes)
    assert spec == "vnc://127.0.0.1:5900+15900,127.0.0.1:5901+15901?password=a%20b%26c"
    parsed = parse_remotes(spec)  # the client reads back what we wrote
    assert parsed.password == "a b&c"
    assert remotes_string(runtimes, with_password=False) == spec.split("?")[0]
    with pytest.raises(ValueError):
        remotes_string([])


def test_ready_runtime_gets_password_on_stdin_and_stops() -> None:
    rt = start_local_runtime("Fake-v0", password="s3cret", command=READY, ready_timeout=20)
    try:
        assert rt.display == 42
        assert "password s3cret" in rt.log
        assert "--password-file=/dev/stdin" in rt.proc.args
        assert os.getpgid(rt.proc.pid) == rt.proc.pid  # its own process group
        assert rt.rss() > 0 and rt.pids()[0] == rt.proc.pid
        assert rt.url == f"ws://127.0.0.1:{rt.rewarder_port}/"
    finally:
        code = rt.stop(timeout=10)
    assert code == -signal.SIGTERM  # the fake does not handle SIGTERM
    assert not pid_alive(rt.proc.pid)


def test_generated_password_is_8_hex_characters() -> None:
    rt = start_local_runtime("Fake-v0", command=READY, ready_timeout=20)
    rt.stop()
    assert len(rt.password) == 8 and int(rt.password, 16) >= 0


def test_runtime_that_exits_fails_with_its_last_log_lines() -> None:
    exits = fake(
        """
        import sys
        for i in range(20):
            print(f"line {i}", file=sys.stderr)
        print("gymlab runtime: error: unknown environment id 'Nope-v0'", file=sys.stderr)
        sys.exit(2)
        """
    )
    with pytest.raises(LocalRuntimeError) as caught:
        start_local_runtime("Nope-v0", command=exits, ready_timeout=20)
    message = str(caught.value)
    assert "runtime Nope-v0 on 127.0.0.1:" in message
    assert "exited with code 2 before it was ready" in message
    assert message.endswith("line 19\ngymlab runtime: error: unknown environment id 'Nope-v0'")
    assert "line 12" not in message  # only the tail


def test_runtime_that_hangs_times_out_and_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "STARTUP_STOP_TIMEOUT", 0.5)
    pid_file = tmp_path / "pid"
    hangs = fake(
        f"""
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # even ignoring SIGTERM it must go
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        print("starting, slowly", file=sys.stderr, flush=True)
        time.sleep(60)
        """
    )
    start = time.monotonic()
    with pytest.raises(LocalRuntimeError, match=r"did not become ready within 1 s") as caught:
        start_local_runtime(command=hangs, ready_timeout=1.0)
    assert "starting, slowly" in str(caught.value)
    assert time.monotonic() - start < 10
    assert not pid_alive(int(pid_file.read_text()))


def test_port_clash_on_chosen_ports_is_retried_on_fresh_ones(tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    clashes = fake(
        f"""
        import sys
        open({str(attempts)!r}, "a").write(sys.argv[4] + "\\n")  # --vnc-port=N
        print("gymlab runtime: error: VNC port 1 on 127.0.0.1 is already in use",
              file=sys.stderr)
        sys.exit(2)
        """
    )
    with pytest.raises(LocalRuntimeError, match="already in use"):
        start_local_runtime(command=clashes, ready_timeout=20)
    tried = attempts.read_text().split()
    assert len(tried) == 3 and len(set(tried)) == 3  # fresh ports each time
    attempts.unlink()
    with pytest.raises(LocalRuntimeError, match="already in use"):
        start_local_runtime(command=clashes, vnc_port=free_port(), rewarder_port=free_port())
    assert len(attempts.read_text().split()) == 1  # fixed ports: no retry


def test_local_runtimes_share_a_password_and_always_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "GYMLAB_COMMAND", tuple(READY))
    with pytest.raises(KeyError), local.local_runtimes(3, "Fake-v0") as runtimes:
        assert len({rt.password for rt in runtimes}) == 1
        ports = [p for rt in runtimes for p in (rt.vnc_port, rt.rewarder_port)]
        assert len(set(ports)) == 6
        assert all(f"password {rt.password}" in rt.log for rt in runtimes)
        raise KeyError("the body failed")
    assert all(rt.proc.poll() is not None for rt in runtimes)


def test_pdeathsig_kills_the_child_when_its_parent_is_killed() -> None:
    # A middle process starts a grandchild with pdeathsig_preexec and is then SIGKILLed.
    middle = subprocess.Popen(
        fake(
            """
            import signal, subprocess, sys, time
            from gymlab.procfs import pdeathsig_preexec
            child = subprocess.Popen(["sleep", "60"], preexec_fn=pdeathsig_preexec(signal.SIGKILL))
            print(child.pid, flush=True)
            time.sleep(60)
            """
        ),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert middle.stdout is not None
        grandchild = int(middle.stdout.readline())
        assert pid_alive(grandchild)
        middle.kill()
        middle.wait(10)
        deadline = time.monotonic() + 5
        while pid_alive(grandchild) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not pid_alive(grandchild), "the child outlived its killed parent"
    finally:
        middle.kill()
        middle.wait(10)


def make_dir(path: Path, mode: int = 0o700) -> Path:
    path.mkdir()
    path.chmod(mode)
    return path


def test_remove_stale_workdirs_only_removes_dead_owners_dirs(tmp_path: Path) -> None:
    me, start = os.getpid(), process_start_time(os.getpid())
    dead = make_dir(tmp_path / f"gymlab-runtime-{_gone_pid()}.1-abc")
    reused = make_dir(tmp_path / f"gymlab-runtime-{me}.{start + 1}-abc")  # pid reused since
    alive = make_dir(tmp_path / f"gymlab-runtime-{me}.{start}-abc")
    shared = make_dir(tmp_path / f"gymlab-runtime-{_gone_pid()}.1-open", 0o755)
    other_name = make_dir(tmp_path / "gymlab-runtime-abcdefgh")  # old style: no owner in name
    outside = make_dir(tmp_path / "outside")
    (outside / "keep").write_text("x")
    (dead / "link").symlink_to(outside)  # inside a removed dir: must not be followed
    link = tmp_path / f"gymlab-runtime-{_gone_pid()}.1-link"
    link.symlink_to(outside)  # the entry itself a symlink: left alone
    removed = remove_stale_workdirs(tmp_path)
    assert sorted(removed) == sorted([dead, reused])
    assert not dead.exists() and not reused.exists()
    assert alive.exists() and shared.exists() and other_name.exists() and link.is_symlink()
    assert (outside / "keep").read_text() == "x"


def _gone_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid
