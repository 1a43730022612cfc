"""Rewarder authentication: the Basic credentials and the failed-attempt limiter."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections import OrderedDict, deque


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


class FailedAttemptLimiter:
    """Per-peer count of failed attempts in a sliding window, with bounded memory.

    A peer with ``max_failures`` failures within ``window`` seconds is
    blocked until the oldest of them ages out. At most ``max_peers`` peers
    are tracked; the least recently seen is forgotten first.
    """

    def __init__(self, max_failures: int = 5, window: float = 60.0, max_peers: int = 1024) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_peers = max_peers
        self._peers: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, peer: str, now: float) -> deque[float] | None:
        times = self._peers.get(peer)
        if times is None:
            return None
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._peers[peer]
            return None
        return times

    def is_blocked(self, peer: str, now: float) -> bool:
        """True when ``peer`` must be turned away without checking credentials."""
        times = self._recent(peer, now)
        return times is not None and len(times) >= self.max_failures

    def record_failure(self, peer: str, now: float) -> int:
        """Count one failure; returns the peer's failures within the window."""
        times = self._recent(peer, now)
        if times is None:
            times = self._peers[peer] = deque(maxlen=self.max_failures)
        self._peers.move_to_end(peer)
        times.append(now)
        while len(self._peers) > self.max_peers:
            self._peers.popitem(last=False)
        return len(times)

    def __len__(self) -> int:
        return len(self._peers)
