"""Enumerations and type aliases used across the public API."""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager as AsyncContextManager
from enum import StrEnum
from re import Pattern
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    # The session module imports this one, so the import only exists for the type checker.
    from pywebtransport.events import Event
    from pywebtransport.session import WebTransportSession  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "Address",
    "AsyncContextManager",
    "AsyncGenerator",
    "AsyncIterator",
    "BidirectionalStreamProtocol",
    "Buffer",
    "BufferSize",
    "CertificateData",
    "ClientConfigProtocol",
    "ConnectionId",
    "ConnectionInfoProtocol",
    "ConnectionLostHandler",
    "ConnectionState",
    "ConnectionStats",
    "Data",
    "DatagramHandler",
    "ErrorCode",
    "ErrorHandler",
    "EventData",
    "EventEmitterProtocol",
    "EventHandler",
    "EventType",
    "FlowControlWindow",
    "Headers",
    "MiddlewareProtocol",
    "Priority",
    "PrivateKeyData",
    "ReadableStreamProtocol",
    "ReasonPhrase",
    "RouteHandler",
    "RoutePattern",
    "Routes",
    "ServerConfigProtocol",
    "SessionHandler",
    "SessionId",
    "SessionInfoProtocol",
    "SessionState",
    "SessionStats",
    "SSLContext",
    "StreamDirection",
    "StreamHandler",
    "StreamId",
    "StreamInfoProtocol",
    "StreamState",
    "StreamStats",
    "Timeout",
    "TimeoutDict",
    "Timestamp",
    "URL",
    "URLParts",
    "WebTransportProtocol",
    "Weight",
    "WritableStreamProtocol",
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

# Further aliases of the 0.1.x ``types`` module.
Buffer: TypeAlias = bytes | bytearray | memoryview
BufferSize: TypeAlias = int
CertificateData: TypeAlias = str | bytes
PrivateKeyData: TypeAlias = str | bytes
ConnectionId: TypeAlias = str
ErrorCode: TypeAlias = int
ReasonPhrase: TypeAlias = str
Priority: TypeAlias = int
Weight: TypeAlias = int
Timestamp: TypeAlias = float
FlowControlWindow: TypeAlias = int
EventData: TypeAlias = Any
TimeoutDict: TypeAlias = dict[str, float]
ConnectionStats: TypeAlias = dict[str, Any]
SessionStats: TypeAlias = dict[str, Any]
StreamStats: TypeAlias = dict[str, Any]
SSLContext: TypeAlias = ssl.SSLContext
RoutePattern: TypeAlias = "str | Pattern[str]"
RouteHandler: TypeAlias = SessionHandler
Routes: TypeAlias = dict[str, SessionHandler]
EventHandler: TypeAlias = "Callable[[Event], Awaitable[None] | None]"
DatagramHandler: TypeAlias = Callable[[bytes], Awaitable[None]]
ErrorHandler: TypeAlias = Callable[[Exception], Awaitable[None]]
StreamHandler: TypeAlias = Callable[[Any], Awaitable[None]]
ConnectionLostHandler: TypeAlias = Callable[[Any, Exception | None], Awaitable[None]]



@runtime_checkable
class ReadableStreamProtocol(Protocol):
    """Something that can be read like a receive stream."""

    async def read(self, size: int = ...) -> bytes:
        """Read up to `size` bytes (``b""`` at the end)."""
        ...


@runtime_checkable
class WritableStreamProtocol(Protocol):
    """Something that can be written like a send stream."""

    async def write(self, data: bytes | str, end_stream: bool = ...) -> None:
        """Write `data`, finishing the stream when `end_stream`."""
        ...

    async def close(self) -> None:
        """Finish the stream."""
        ...


@runtime_checkable
class BidirectionalStreamProtocol(ReadableStreamProtocol, WritableStreamProtocol, Protocol):
    """Both readable and writable."""


@runtime_checkable
class EventEmitterProtocol(Protocol):
    """Registers handlers for named events."""

    def on(self, event_type: Any, handler: Any) -> None:
        """Call `handler` for every `event_type` event."""
        ...

    def off(self, event_type: Any, handler: Any = ...) -> None:
        """Remove `handler` (or every handler) of `event_type`."""
        ...


@runtime_checkable
class MiddlewareProtocol(Protocol):
    """A session-request check (0.1.x: returns False to reject)."""

    async def __call__(self, session: Any) -> Any: ...


@runtime_checkable
class WebTransportProtocol(Protocol):
    """An object that carries WebTransport sessions (a connection)."""

    @property
    def is_closed(self) -> bool:
        """Whether it is closed."""
        ...


@runtime_checkable
class ClientConfigProtocol(Protocol):
    """The client configuration fields the library reads."""

    connect_timeout: float
    max_streams: int


@runtime_checkable
class ServerConfigProtocol(Protocol):
    """The server configuration fields the library reads."""

    bind_host: str
    bind_port: int


@runtime_checkable
class ConnectionInfoProtocol(Protocol):
    """A connection's description."""

    @property
    def remote_address(self) -> Address | None:
        """The peer's address, when known."""
        ...


@runtime_checkable
class SessionInfoProtocol(Protocol):
    """A session record (see `pywebtransport.protocol.WebTransportSessionInfo`)."""

    session_id: str
    path: str


@runtime_checkable
class StreamInfoProtocol(Protocol):
    """A stream record (see `pywebtransport.protocol.StreamInfo`)."""

    stream_id: int
