"""Local remotes: ``gymlab.make(env_id, remotes=N)`` starts N runtimes on this machine.

Universe's most-used line was ``env.configure(remotes=1)``: start a local remote for me.
:class:`LocalRemotes` does that through the one local supervisor
(:mod:`gymlab.supervisor`): runtime subprocesses with their own Xvnc on loopback, started
in parallel, told to the user as the command that would run the same thing by hand, and
stopped by :meth:`LocalRemotes.close`, by the vector env's ``close()``, or at interpreter exit,
whichever comes first, so nothing is left running.

The runtimes do not depend on the object staying referenced: a module-level registry holds
every :class:`LocalRemotes` until it is closed, so
``gymlab.make(env_id, remotes=LocalRemotes.start(2, env_id).remotes)`` keeps working, and the
``atexit`` hook still finds (and stops) one that nobody refers to any more.
"""

from __future__ import annotations

import atexit
import logging
import shlex
import sys
import threading
from collections.abc import Sequence

from gymlab.deployment import DEFAULT_FPS, DEFAULT_MODE
from gymlab.rewarder.protocol import Mode
from gymlab.supervisor import LocalRuntime, remotes_string, start_local_runtimes, stop_all

log = logging.getLogger("gymlab.client")

#: More local runtimes than this on one machine is almost surely a typo.
MAX_LOCAL_REMOTES = 32

# Every LocalRemotes still running (strong references: an unreferenced one keeps running
# until close() or exit, never until some garbage collection), so that exit stops them all.
_running: set[LocalRemotes] = set()
_lock = threading.Lock()


def check_count(n: object) -> int:
    """``n`` as a number of local remotes; ValueError naming it otherwise."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_LOCAL_REMOTES:
        raise ValueError(
            f"remotes={n!r}: a number of local remotes must be an integer in "
            f"1..{MAX_LOCAL_REMOTES} (or give a remotes string, vnc://host:5900+15900,...)"
        )
    return n


class LocalRemotes:
    """N local runtimes serving one environment; :attr:`remotes` is their remotes string."""

    def __init__(self, runtimes: Sequence[LocalRuntime], fps: float = 60.0) -> None:
        self.runtimes = list(runtimes)
        self.fps = fps
        self.remotes = remotes_string(self.runtimes)
        with _lock:
            _running.add(self)

    @classmethod
    def start(
        cls,
        n: int,
        env_id: str,
        *,
        mode: Mode | str | None = None,
        fps: float | None = None,
        ready_timeout: float = 60.0,
    ) -> LocalRemotes:
        """Start ``n`` runtimes of ``env_id`` in parallel (``DEFAULT_MODE`` unless ``mode`` says).

        Raises ValueError for a bad ``n`` and :class:`gymlab.supervisor.LocalRuntimeError`
        (quoting the runtime's last log lines) when one does not start; then none is left.
        """
        check_count(n)
        rate = fps or DEFAULT_FPS
        runtimes = start_local_runtimes(
            n, env_id, mode=Mode(mode or DEFAULT_MODE), fps=rate, ready_timeout=ready_timeout
        )
        local = cls(runtimes, rate)
        for rt in runtimes:
            hint = f"run the same thing by hand as: {local.command(rt)}"
            print(f"gymlab: started local remote {rt.remote}; {hint}", file=sys.stderr)
        return local

    def command(self, rt: LocalRuntime) -> str:
        """The ``gymlab runtime serve`` line that runs ``rt`` by hand (password not shown)."""
        args = [
            "gymlab", "runtime", "serve", "--env-id", rt.env_id, "--mode", rt.mode.value,
            "--fps", f"{self.fps:g}",
            "--vnc-port", str(rt.vnc_port), "--rewarder-port", str(rt.rewarder_port),
            "--password-file", "PASSWORD_FILE",
        ]  # fmt: skip
        return shlex.join(args)

    @property
    def closed(self) -> bool:
        """True once every runtime has been stopped."""
        return not self.runtimes

    def close(self) -> None:
        """Stop every runtime (and its Xvnc); safe to call more than once."""
        with _lock:
            runtimes, self.runtimes = self.runtimes, []
            _running.discard(self)
        if runtimes:
            stop_all(runtimes)

    def __enter__(self) -> LocalRemotes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # no password: that is in .remotes only
        where = ",".join(rt.remote for rt in self.runtimes) or "closed"
        return f"LocalRemotes({where})"


@atexit.register
def _stop_all_at_exit() -> None:
    for local in list(_running):
        local.close()
