"""LocalRemotes without Xvnc: counts, the by-hand command line, the registry, close()."""

from __future__ import annotations

import gc
import shlex
import subprocess

import pytest

from gymlab.cli import build_parser
from gymlab.client import local_remotes
from gymlab.client.local_remotes import MAX_LOCAL_REMOTES, LocalRemotes, check_count
from gymlab.procfs import pid_alive
from gymlab.rewarder.protocol import Mode
from gymlab.supervisor import LocalRuntime


def fake_runtime(vnc_port: int = 5901, rewarder_port: int = 15901) -> LocalRuntime:
    """A LocalRuntime around a process that exits at once (close() must still work)."""
    proc = subprocess.Popen(["true"], stderr=subprocess.PIPE, text=True)
    return LocalRuntime(proc, "CartPole-v1", Mode.REALTIME, vnc_port, rewarder_port, "s3cret")


@pytest.mark.parametrize("n", [0, -1, True, False, 1.5, 2.0, "2", None, MAX_LOCAL_REMOTES + 1])
def test_bad_counts_say_what_is_expected_in_one_line(n: object) -> None:
    with pytest.raises(ValueError, match=rf"^remotes={n!r}: .*integer in 1\.\.32") as info:
        LocalRemotes.start(n, "CartPole-v1")  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


def test_good_counts_pass() -> None:
    assert [check_count(n) for n in (1, 2, MAX_LOCAL_REMOTES)] == [1, 2, MAX_LOCAL_REMOTES]


def test_the_by_hand_command_is_a_valid_runtime_serve_line_without_the_password() -> None:
    with LocalRemotes([fake_runtime()], fps=30.0) as local:
        line = local.command(local.runtimes[0])
        assert "s3cret" not in line and "s3cret" not in repr(local)
        argv = shlex.split(line)
        assert argv[:3] == ["gymlab", "runtime", "serve"]
        args = build_parser().parse_args(argv[1:])
        assert (args.env_id, args.mode, args.fps) == ("CartPole-v1", "realtime", 30.0)
        assert (args.vnc_port, args.rewarder_port) == (5901, 15901)
        assert local.remotes == "vnc://127.0.0.1:5901+15901?password=s3cret"
    assert local.closed and local.runtimes == []


def test_an_unreferenced_local_remotes_stays_registered_until_closed() -> None:
    remotes = LocalRemotes([fake_runtime()]).remotes  # the object itself is dropped at once
    gc.collect()
    (kept,) = [lr for lr in local_remotes._running if lr.remotes == remotes]
    proc = kept.runtimes[0].proc
    local_remotes._stop_all_at_exit()  # what interpreter exit runs
    assert kept.closed and kept not in local_remotes._running
    assert proc.returncode is not None and not pid_alive(proc.pid)
    kept.close()  # idempotent
