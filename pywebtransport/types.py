"""Enumerations and type aliases used across the public API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    # The session module imports this one, so the import only exists for the type checker.
    from pywebtransport.session import WebTransportSession  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "URL",
    "Address",
    "ConnectionState",
    "Data",
    "EventType",
    "Headers",
    "SessionHandler",
    "SessionId",
    "SessionState",
    "StreamDirection",
    "StreamId",
    "StreamState",
    "Timeout",
    "URLParts",
]


class ConnectionState(StrEnum):
    """Lifecycle of a QUIC connection."""

    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"
    DRAINING = "draining"


class SessionState(StrEnum):
    """Lifecycle of a WebTransport session."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSING = "closing"
    DRAINING = "draining"
    CLOSED = "closed"


class StreamState(StrEnum):
    """Lifecycle of a WebTransport stream, as seen from the local endpoint."""

    IDLE = "idle"
    OPEN = "open"
    HALF_CLOSED_LOCAL = "half_closed_local"
    HALF_CLOSED_REMOTE = "half_closed_remote"
    CLOSED = "closed"
    RESET_SENT = "reset_sent"
    RESET_RECEIVED = "reset_received"


class StreamDirection(StrEnum):
    """Which ways data flows on a stream, from the local endpoint's point of view."""

    BIDIRECTIONAL = "bidirectional"
    SEND_ONLY = "send_only"
    RECEIVE_ONLY = "receive_only"


class EventType(StrEnum):
    """Names of the events emitted by clients, servers, connections, sessions and streams.

    Members compare equal to their string values, so handlers may be registered with either.
    """

    CONNECTION_ESTABLISHED = "connection_established"
    CONNECTION_LOST = "connection_lost"
    CONNECTION_FAILED = "connection_failed"
    CONNECTION_CLOSED = "connection_closed"

    SESSION_REQUEST = "session_request"
    SESSION_READY = "session_ready"
    SESSION_CLOSED = "session_closed"
    SESSION_DRAINING = "session_draining"
    SESSION_MAX_DATA_UPDATED = "session_max_data_updated"
    SESSION_MAX_STREAMS_BIDI_UPDATED = "session_max_streams_bidi_updated"
    SESSION_MAX_STREAMS_UNI_UPDATED = "session_max_streams_uni_updated"

    STREAM_OPENED = "stream_opened"
    STREAM_CLOSED = "stream_closed"
    STREAM_DATA_RECEIVED = "stream_data_received"
    STREAM_ERROR = "stream_error"

    DATAGRAM_RECEIVED = "datagram_received"
    DATAGRAM_SENT = "datagram_sent"
    DATAGRAM_ERROR = "datagram_error"

    CAPSULE_RECEIVED = "capsule_received"
    SETTINGS_RECEIVED = "settings_received"
    PROTOCOL_ERROR = "protocol_error"
    TIMEOUT_ERROR = "timeout_error"


Headers: TypeAlias = dict[str, str]
SessionId: TypeAlias = str
StreamId: TypeAlias = int
Data: TypeAlias = bytes | str
Address: TypeAlias = tuple[str, int]
URL: TypeAlias = str
URLParts: TypeAlias = tuple[str, int, str]
Timeout: TypeAlias = float | None
SessionHandler: TypeAlias = Callable[["WebTransportSession"], Awaitable[None]]
