"""Rewarder authentication: the Basic credentials and the failed-attempt limiter."""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from collections import OrderedDict, deque
from dataclasses import dataclass


def basic_authorization(password: str) -> str:
    """The ``Authorization`` header value: the password travels in the user field."""
    token = base64.b64encode(f"{password}:".encode()).decode("ascii")
    return f"Basic {token}"


def check_basic_authorization(header: str | None, password: str) -> bool:
    """Constant-time check of an ``Authorization`` header against ``password``.

    Accepts ``base64("<password>:")`` and, for lenient clients, ``base64("<password>")``.
    """
    if not header:
        return False
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, _, _ = decoded.partition(b":")
    return hmac.compare_digest(user, password.encode())


@dataclass
class _Address:
    failures: deque[float]
    held_until: float = 0.0


class FailedAttemptLimiter:
    """Slows password guessing per address without ever locking the owner out for long.

    The first ``free_failures`` failures within ``window`` seconds cost nothing; after
    that, each failure holds the address for ``hold`` seconds, during which its attempts
    are refused unchecked (and do not extend the hold). So a guesser on one address gets
    at most ``free_failures + window / hold`` guesses per window (35 a minute with the
    defaults), while the right password, typed after a few typos from the same address
    (every client of a loopback runtime is 127.0.0.1), waits at most ``hold`` seconds.
    At most ``max_peers`` addresses are tracked; the least recently seen goes first.
    """

    def __init__(
        self,
        free_failures: int = 5,
        window: float = 60.0,
        hold: float = 2.0,
        max_peers: int = 1024,
    ) -> None:
        self.free_failures = free_failures
        self.window = window
        self.hold = hold
        self.max_peers = max_peers
        self._peers: OrderedDict[str, _Address] = OrderedDict()

    def retry_after(self, peer: str, now: float) -> float:
        """Seconds until ``peer`` may try again; 0 when it may try now."""
        entry = self._peers.get(peer)
        return 0.0 if entry is None else max(0.0, entry.held_until - now)

    def record_failure(self, peer: str, now: float) -> float:
        """Count one failed attempt; returns the hold it puts on ``peer`` (0 if none)."""
        entry = self._peers.get(peer)
        if entry is None:
            entry = self._peers[peer] = _Address(deque(maxlen=self.free_failures + 1))
        self._peers.move_to_end(peer)
        while entry.failures and entry.failures[0] <= now - self.window:
            entry.failures.popleft()
        entry.failures.append(now)
        while len(self._peers) > self.max_peers:
            self._peers.popitem(last=False)
        if len(entry.failures) <= self.free_failures:
            return 0.0
        entry.held_until = now + self.hold
        return self.hold

    def refusal(self, peer: str, now: float) -> str | None:
        """The one-line reason to refuse ``peer`` now, or None when it may try."""
        wait = self.retry_after(peer, now)
        if wait <= 0:
            return None
        return f"too many failed attempts from {peer}; retry in {math.ceil(wait)} s"

    def __len__(self) -> int:
        return len(self._peers)
