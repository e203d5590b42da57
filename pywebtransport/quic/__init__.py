"""asyncio QUIC layer over msquic (through the C shim in ``pywebtransport._native``).

This is the seam the HTTP/3 layer builds on; :class:`QuicTransport` in
:mod:`.protocol` states exactly what that layer may use.
"""

from .config import QuicConfiguration
from .connection import ConnectionStats, QuicConnection, QuicListener, connect, serve
from .errors import (
    CertificateVerifyError,
    CloseReason,
    ConfigError,
    ConnectError,
    ConnectionClosed,
    DatagramError,
    DatagramTooLarge,
    QuicError,
    StreamClosedError,
    WriteTimeout,
    StreamReset,
    StreamStopped,
)
from .stream import QuicStream
from .tls import PeerCertificate

__all__ = [
    "CertificateVerifyError",
    "CloseReason",
    "ConfigError",
    "ConnectError",
    "ConnectionClosed",
    "ConnectionStats",
    "DatagramError",
    "DatagramTooLarge",
    "PeerCertificate",
    "QuicConfiguration",
    "QuicConnection",
    "QuicError",
    "QuicListener",
    "QuicStream",
    "StreamClosedError",
    "WriteTimeout",
    "StreamReset",
    "StreamStopped",
    "connect",
    "serve",
]
