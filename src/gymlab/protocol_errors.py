"""The errors of gymlab's sans-I/O protocols (the rewarder's v0 and the RFB client), one vocabulary.

Both protocol objects say whose fault a problem is the same way: :class:`LocalProtocolError`
when this side asked for something the protocol does not allow now (a bug in the caller),
:class:`RemoteProtocolError` when the peer sent something that is not valid in this state.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of the protocols' errors."""


class LocalProtocolError(ProtocolError):
    """Our own side tried to send something the protocol does not allow now (a bug here)."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something that is not a valid message in this state.

    ``parent_message_id`` is the offending message's id when the protocol has ids and it
    could be read, so an error reply can point at it; ``fatal`` means the connection must
    be closed.
    """

    def __init__(
        self, message: str, parent_message_id: int | None = None, *, fatal: bool = False
    ) -> None:
        super().__init__(message)
        self.parent_message_id = parent_message_id
        self.fatal = fatal
