"""Events returned by :class:`~pywebtransport.h3.connection.H3Connection`.

Frozen value objects; don't subclass them.  Events whose names end in
``Requested`` are instructions to the adapter (reset or stop a stream).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

__all__ = [
    "DataReceived",
    "DatagramReceived",
    "GoawayReceived",
    "H3Event",
    "Headers",
    "HeadersReceived",
    "SessionAborted",
    "SessionCloseReceived",
    "SessionDrainReceived",
    "SessionFlowControlUpdated",
    "SettingsReceived",
    "StopSendingReceived",
    "StreamResetReceived",
    "StreamResetRequested",
    "StreamStopRequested",
    "WebTransportSessionEstablished",
    "WebTransportSessionRejected",
    "WebTransportSessionRequested",
    "WebTransportStreamDataReceived",
    "WebTransportStreamOpened",
]

Headers = tuple[tuple[bytes, bytes], ...]


class H3Event:
    """Base class of all H3 events."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SettingsReceived(H3Event):
    """The peer's SETTINGS arrived (validated)."""

    settings: Mapping[int, int]


@dataclass(frozen=True, slots=True)
class GoawayReceived(H3Event):
    """The peer sent GOAWAY: no new requests at or above ``last_id``."""

    last_id: int


@dataclass(frozen=True, slots=True)
class HeadersReceived(H3Event):
    """A non-WebTransport request/response header or trailer section."""

    stream_id: int
    headers: Headers
    stream_ended: bool


@dataclass(frozen=True, slots=True)
class DataReceived(H3Event):
    """Body bytes of a non-WebTransport request stream."""

    stream_id: int
    data: bytes
    stream_ended: bool


@dataclass(frozen=True, slots=True)
class WebTransportSessionRequested(H3Event):
    """(Server) An extended CONNECT for a WebTransport session arrived.

    Answer with ``accept_session`` or ``reject_session``.
    """

    session_id: int
    headers: Headers
    #: ``:protocol`` value: ``"webtransport"`` (draft-02..14) or ``"webtransport-h3"``.
    protocol: str
    #: Subprotocols offered in ``wt-available-protocols``.
    available_protocols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WebTransportSessionEstablished(H3Event):
    """(Client) The server answered the CONNECT with a 2xx."""

    session_id: int
    headers: Headers
    #: Subprotocol selected by the server (``wt-protocol``), if any.
    protocol: str | None


@dataclass(frozen=True, slots=True)
class WebTransportSessionRejected(H3Event):
    """(Client) The server answered the CONNECT with a non-2xx status."""

    session_id: int
    status: int
    headers: Headers


@dataclass(frozen=True, slots=True)
class WebTransportStreamOpened(H3Event):
    """The peer opened a stream for an established session."""

    session_id: int
    stream_id: int
    bidi: bool


@dataclass(frozen=True, slots=True)
class WebTransportStreamDataReceived(H3Event):
    """Payload bytes on a WebTransport stream (after its header)."""

    session_id: int
    stream_id: int
    data: bytes
    stream_ended: bool


@dataclass(frozen=True, slots=True)
class DatagramReceived(H3Event):
    """A datagram (QUIC DATAGRAM or DATAGRAM capsule) for a session."""

    session_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class SessionCloseReceived(H3Event):
    """The peer closed the session: CLOSE capsule, or FIN (code 0, reason "").

    The adapter should FIN the CONNECT stream and reset/stop the session's
    streams (``session_stream_ids``) with ``WT_SESSION_GONE``.
    """

    session_id: int
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class SessionAborted(H3Event):
    """The session ended abnormally: CONNECT stream reset/stopped or malformed.

    ``error_code`` is the HTTP/3 code seen or sent.  The adapter should reset
    the session's streams with ``WT_SESSION_GONE``.
    """

    session_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class SessionDrainReceived(H3Event):
    """The peer asked to wind the session down (DRAIN capsule)."""

    session_id: int


@dataclass(frozen=True, slots=True)
class SessionFlowControlUpdated(H3Event):
    """The peer raised a WebTransport session flow-control limit."""

    session_id: int
    max_data: int
    max_streams_bidi: int
    max_streams_uni: int


@dataclass(frozen=True, slots=True)
class StreamResetReceived(H3Event):
    """The peer reset its sending side of a stream we care about.

    For WebTransport streams ``session_id`` is set and ``app_error_code`` is
    the decoded application code (``None`` if the code carries none).
    """

    stream_id: int
    error_code: int
    session_id: int | None
    app_error_code: int | None


@dataclass(frozen=True, slots=True)
class StopSendingReceived(H3Event):
    """The peer sent STOP_SENDING for a stream we write to."""

    stream_id: int
    error_code: int
    session_id: int | None
    app_error_code: int | None


@dataclass(frozen=True, slots=True)
class StreamStopRequested(H3Event):
    """Adapter: send STOP_SENDING on ``stream_id`` with ``error_code``."""

    stream_id: int
    error_code: int


@dataclass(frozen=True, slots=True)
class StreamResetRequested(H3Event):
    """Adapter: reset the sending side of ``stream_id`` with ``error_code``."""

    stream_id: int
    error_code: int
