"""PyWebTransport: async-native WebTransport over HTTP/3 on msquic."""

from ._version import __version__
from .client import WebTransportClient
from .config import ClientConfig, ServerConfig
from .datagram import WebTransportDatagramDuplexStream
from .datagram_extras import DatagramReliabilityLayer
from .events import Event, EventEmitter
from .exceptions import (
    AuthenticationError,
    CertificateError,
    ClientError,
    ConfigurationError,
    ConnectionError,
    DatagramError,
    FlowControlError,
    HandshakeError,
    ProtocolError,
    ServerError,
    SessionError,
    StreamError,
    TimeoutError,
    WebTransportError,
)
from .server import ServerApp, WebTransportServer
from .server.dev import create_development_server
from .session import WebTransportSession
from .stream import WebTransportReceiveStream, WebTransportSendStream, WebTransportStream
from .types import (
    Address,
    ConnectionState,
    EventType,
    Headers,
    SessionState,
    StreamDirection,
    StreamState,
    URL,
)

__all__ = [
    "Address",
    "AuthenticationError",
    "CertificateError",
    "ClientConfig",
    "ClientError",
    "ConfigurationError",
    "ConnectionError",
    "ConnectionState",
    "DatagramError",
    "DatagramReliabilityLayer",
    "Event",
    "EventEmitter",
    "EventType",
    "FlowControlError",
    "HandshakeError",
    "Headers",
    "ProtocolError",
    "ServerApp",
    "ServerConfig",
    "ServerError",
    "SessionError",
    "SessionState",
    "StreamDirection",
    "StreamError",
    "StreamState",
    "TimeoutError",
    "URL",
    "WebTransportClient",
    "WebTransportDatagramDuplexStream",
    "WebTransportError",
    "WebTransportReceiveStream",
    "WebTransportSendStream",
    "WebTransportServer",
    "WebTransportSession",
    "WebTransportStream",
    "__version__",
    "create_development_server",
]
