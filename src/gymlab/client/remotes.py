"""Parse Universe-style remotes strings: ``vnc://host:5900+15900,host2:5901+15901?password=X``.

Each comma-separated entry is ``host:VNC_PORT+REWARDER_PORT``; ``+REWARDER_PORT`` may be left
out, and then defaults to ``VNC_PORT + 10000`` (the 5900+N / 15900+N convention of the
runtime). IPv6 hosts go in brackets (``[::1]:5900+15900``). The password comes from the
``password`` query parameter or a keyword argument; it never appears in a ``repr``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

#: Shown in every parse error so that the fix is obvious.
EXPECTED_FORM = "vnc://HOST:VNC_PORT+REWARDER_PORT[,HOST:VNC_PORT+REWARDER_PORT...][?password=X]"
#: Rewarder port = VNC port + this when an entry has no ``+PORT``.
DEFAULT_REWARDER_OFFSET = 10000

_ENTRY = re.compile(
    r"""^(?:\[(?P<ip6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))
        :(?P<vnc>[0-9]+)(?:\+(?P<rewarder>[0-9]+))?$""",
    re.VERBOSE,
)


#: VNC encodings for a remote on this machine, and for one across a network.
LOOPBACK_ENCODINGS = ("raw", "copyrect")
NETWORK_ENCODINGS = ("zrle", "copyrect", "raw")


@dataclass(frozen=True)
class Remote:
    """One remote: the VNC server and the rewarder of one runtime."""

    host: str
    vnc_port: int
    rewarder_port: int

    @property
    def name(self) -> str:
        """``host:vnc+rewarder`` as written in a remotes string (used in messages)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.vnc_port}+{self.rewarder_port}"

    @property
    def on_loopback(self) -> bool:
        """True for a remote on this machine's loopback (127.0.0.0/8, ::1, localhost)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def encodings(self) -> tuple[str, ...]:
        """The VNC encodings to ask this remote for, most preferred first.

        Over loopback bytes cost nothing and Raw is the cheapest to encode and decode (bench
        section e); across a network ZRLE's compression pays for its CPU.
        """
        return LOOPBACK_ENCODINGS if self.on_loopback else NETWORK_ENCODINGS


@dataclass(frozen=True)
class RemotesSpec:
    """The parsed remotes and the shared password (kept out of ``repr``)."""

    remotes: tuple[Remote, ...]
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return "vnc://" + ",".join(r.name for r in self.remotes)

    def for_worker(self, worker: int, num_workers: int, envs_per_worker: int = 1) -> RemotesSpec:
        """Worker ``worker``'s share when ``num_workers`` workers each run ``envs_per_worker``.

        The split is by position in the string: worker ``w`` (0-based) gets remotes
        ``w * envs_per_worker`` up to ``(w + 1) * envs_per_worker - 1``, so its vector index
        ``j`` is remote ``w * envs_per_worker + j`` and no remote is given twice (each runtime
        takes one controlling client). Remotes past ``num_workers * envs_per_worker`` are left
        unused. Raises :class:`ValueError` naming both counts when the lab has too few.
        """
        for name, value in (("num_workers", num_workers), ("envs_per_worker", envs_per_worker)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(worker, bool) or not isinstance(worker, int) or not 0 <= worker < num_workers:
            raise ValueError(f"worker must be in 0..{num_workers - 1}, got {worker!r}")
        needed = num_workers * envs_per_worker
        if needed > len(self.remotes):
            raise ValueError(
                f"{num_workers} workers x {envs_per_worker} envs need {needed} remotes, "
                f"the remotes string has {len(self.remotes)}"
            )
        start = worker * envs_per_worker
        return RemotesSpec(self.remotes[start : start + envs_per_worker], self.password)


def _port(text: str | None, what: str, entry: str) -> int:
    if text is None:
        raise ValueError(f"remote {entry!r}: missing {what}; expected {EXPECTED_FORM}")
    port = int(text)
    if not 0 < port < 65536:
        raise ValueError(
            f"remote {entry!r}: {what} {port} is out of range 1..65535; expected {EXPECTED_FORM}"
        )
    return port


def parse_remote(entry: str) -> Remote:
    """Parse one ``host:VNC_PORT+REWARDER_PORT`` entry (no scheme, no query)."""
    text = entry.strip()
    match = _ENTRY.match(text)
    if match is None:
        raise ValueError(f"bad remote {entry!r}; expected {EXPECTED_FORM}")
    host = match.group("ip6") or match.group("host")
    vnc = _port(match.group("vnc"), "VNC port", entry)
    rewarder_text = match.group("rewarder")
    if rewarder_text is None:
        rewarder_text = str(vnc + DEFAULT_REWARDER_OFFSET)
    return Remote(host, vnc, _port(rewarder_text, "rewarder port", entry))


def _split_query(spec: str) -> tuple[str, str | None]:
    body, sep, query = spec.partition("?")
    if not sep:
        return body, None
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ValueError(f"bad query {query!r} in remotes; expected ?password=X") from None
    unknown = sorted(set(params) - {"password"})
    if unknown:
        raise ValueError(f"unknown remotes option(s) {unknown}; only ?password=X is understood")
    values = params.get("password", [])
    if len(values) > 1:
        raise ValueError("the remotes query gives the password more than once")
    return body, (values[0] if values else None)


def parse_remotes(spec: str | Iterable[str], password: str | None = None) -> RemotesSpec:
    """Parse a remotes string (or a list of ``host:port+port`` entries / such strings).

    ``password`` given here and in the query must agree. Raises :class:`ValueError` naming
    the offending part and the expected form.
    """
    parts = [spec] if isinstance(spec, str) else list(spec)
    if not parts:
        raise ValueError(f"no remotes given; expected {EXPECTED_FORM}")
    remotes: list[Remote] = []
    found = password
    for part in parts:
        if not isinstance(part, str):
            raise ValueError(f"remotes must be strings, got {part!r}; expected {EXPECTED_FORM}")
        text = part.strip()
        if "://" in text:
            scheme, _, text = text.partition("://")
            if scheme != "vnc":
                raise ValueError(f"unknown scheme {scheme + '://'!r}; expected {EXPECTED_FORM}")
        text, query_password = _split_query(text)
        if query_password is not None:
            if found is not None and query_password != found:
                raise ValueError("two different passwords given (query and argument)")
            found = query_password
        entries = text.split(",")
        if not text.strip() or any(not e.strip() for e in entries):
            raise ValueError(f"empty remote entry in {part!r}; expected {EXPECTED_FORM}")
        remotes += [parse_remote(e) for e in entries]
    return RemotesSpec(tuple(remotes), found)


def format_remotes(remotes: Iterable[Remote]) -> str:
    """The remotes string for ``remotes`` (without a password)."""
    return str(RemotesSpec(tuple(remotes)))


__all__ = [
    "DEFAULT_REWARDER_OFFSET",
    "EXPECTED_FORM",
    "Remote",
    "RemotesSpec",
    "format_remotes",
    "parse_remote",
    "parse_remotes",
]
