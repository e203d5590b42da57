"""Protocol constants, error codes and configuration defaults.

Nothing in this module does I/O; it is safe to import from every layer.
"""

from __future__ import annotations

import ssl
from enum import IntEnum
from typing import Any, Final

from pywebtransport._version import __version__

__all__ = ["DEFAULT_USER_AGENT", "Defaults", "ErrorCodes", "WebTransportConstants"]


DEFAULT_USER_AGENT: Final[str] = f"pywebtransport/{__version__}"

KIB: Final = 1024
MIB: Final = 1024 * 1024


class WebTransportConstants:
    """Wire-level numbers of HTTP/3 and WebTransport over HTTP/3."""

    DEFAULT_PORT: Final = 4433
    DEFAULT_SECURE_PORT: Final = 443
    DEFAULT_ALPN_PROTOCOLS: Final[tuple[str, ...]] = ("h3", "h3-29")
    DEFAULT_VERSION: Final = "h3"
    WEBTRANSPORT_PROTOCOL: Final = "webtransport"

    # HTTP/3 SETTINGS identifiers (RFC 9114, RFC 9220, RFC 9297, draft-ietf-webtrans-http3).
    SETTINGS_QPACK_MAX_TABLE_CAPACITY: Final = 0x1
    SETTINGS_MAX_FIELD_SECTION_SIZE: Final = 0x6
    SETTINGS_QPACK_BLOCKED_STREAMS: Final = 0x7
    SETTINGS_ENABLE_CONNECT_PROTOCOL: Final = 0x8
    SETTINGS_H3_DATAGRAM: Final = 0x33
    SETTINGS_ENABLE_WEBTRANSPORT: Final = 0x2B603742
    SETTINGS_WEBTRANSPORT_MAX_SESSIONS: Final = 0xC671706A

    # Stream and frame types that open WebTransport streams.
    WEBTRANSPORT_BIDI_STREAM_TYPE: Final = 0x41
    WEBTRANSPORT_UNI_STREAM_TYPE: Final = 0x54

    # Capsule types carried on the CONNECT stream.
    CLOSE_WEBTRANSPORT_SESSION_TYPE: Final = 0x2843
    DRAIN_WEBTRANSPORT_SESSION_TYPE: Final = 0x78AE

    MAX_DATAGRAM_SIZE: Final = 65535
    MAX_STREAM_ID: Final = 2**62 - 1
    MAX_CLOSE_REASON_LENGTH: Final = 1024
    DEFAULT_CHUNK_SIZE: Final = 8192


class ErrorCodes(IntEnum):
    """Error codes: QUIC transport, HTTP/3, QPACK, WebTransport and library-defined ones."""

    # QUIC transport errors (RFC 9000 section 20.1).
    NO_ERROR = 0x0
    INTERNAL_ERROR = 0x1
    CONNECTION_REFUSED = 0x2
    FLOW_CONTROL_ERROR = 0x3
    STREAM_LIMIT_ERROR = 0x4
    STREAM_STATE_ERROR = 0x5
    FINAL_SIZE_ERROR = 0x6
    FRAME_ENCODING_ERROR = 0x7
    TRANSPORT_PARAMETER_ERROR = 0x8
    CONNECTION_ID_LIMIT_ERROR = 0x9
    PROTOCOL_VIOLATION = 0xA
    INVALID_TOKEN = 0xB
    APPLICATION_ERROR = 0xC
    CRYPTO_BUFFER_EXCEEDED = 0xD
    KEY_UPDATE_ERROR = 0xE
    AEAD_LIMIT_REACHED = 0xF
    NO_VIABLE_PATH = 0x10

    # HTTP/3 errors (RFC 9114 section 8.1).
    H3_NO_ERROR = 0x100
    H3_GENERAL_PROTOCOL_ERROR = 0x101
    H3_INTERNAL_ERROR = 0x102
    H3_STREAM_CREATION_ERROR = 0x103
    H3_CLOSED_CRITICAL_STREAM = 0x104
    H3_FRAME_UNEXPECTED = 0x105
    H3_FRAME_ERROR = 0x106
    H3_EXCESSIVE_LOAD = 0x107
    H3_ID_ERROR = 0x108
    H3_SETTINGS_ERROR = 0x109
    H3_MISSING_SETTINGS = 0x10A
    H3_REQUEST_REJECTED = 0x10B
    H3_REQUEST_CANCELLED = 0x10C
    H3_REQUEST_INCOMPLETE = 0x10D
    H3_MESSAGE_ERROR = 0x10E
    H3_CONNECT_ERROR = 0x10F
    H3_VERSION_FALLBACK = 0x110

    # QPACK errors (RFC 9204 section 6).
    QPACK_DECOMPRESSION_FAILED = 0x200
    QPACK_ENCODER_STREAM_ERROR = 0x201
    QPACK_DECODER_STREAM_ERROR = 0x202

    # Library-level application codes.
    APP_CONNECTION_TIMEOUT = 0x1000
    APP_AUTHENTICATION_FAILED = 0x1001
    APP_PERMISSION_DENIED = 0x1002
    APP_RESOURCE_EXHAUSTED = 0x1003
    APP_INVALID_REQUEST = 0x1004
    APP_SERVICE_UNAVAILABLE = 0x1005

    # WebTransport over HTTP/3 (draft-ietf-webtrans-http3).
    WT_SESSION_GONE = 0x170D7B68
    WT_BUFFERED_STREAM_REJECTED = 0x3994BD84


class Defaults:
    """Default values shared by `ClientConfig` and `ServerConfig`.

    The dictionaries returned here are fresh copies, so callers may mutate them.
    """

    CONNECT_TIMEOUT: Final = 30.0
    READ_TIMEOUT: Final = 60.0
    WRITE_TIMEOUT: Final = 30.0
    CLOSE_TIMEOUT: Final = 5.0
    STREAM_CREATION_TIMEOUT: Final = 10.0
    SERVER_CONNECTION_TIMEOUT: Final = 300.0

    MAX_STREAMS: Final = 100
    MAX_INCOMING_STREAMS: Final = 100
    STREAM_BUFFER_SIZE: Final = 64 * KIB
    MAX_STREAM_BUFFER_SIZE: Final = 1 * MIB
    MAX_DATAGRAM_SIZE: Final = 65535

    INITIAL_MAX_DATA: Final = 1 * MIB
    INITIAL_MAX_STREAM_DATA: Final = 256 * KIB
    INITIAL_MAX_STREAMS_BIDI: Final = 100
    INITIAL_MAX_STREAMS_UNI: Final = 3

    MAX_RETRIES: Final = 3
    RETRY_DELAY: Final = 1.0
    RETRY_BACKOFF: Final = 2.0
    MAX_RETRY_DELAY: Final = 30.0

    CONGESTION_CONTROL_ALGORITHM: Final = "cubic"
    CONGESTION_CONTROL_ALGORITHMS: Final[frozenset[str]] = frozenset({"cubic", "reno", "bbr"})
    CONNECTION_IDLE_TIMEOUT: Final = 60.0
    CONNECTION_KEEPALIVE_TIMEOUT: Final = 30.0
    FLOW_CONTROL_WINDOW_SIZE: Final = 1 * MIB
    MAX_PENDING_EVENTS_PER_SESSION: Final = 16
    MAX_TOTAL_PENDING_EVENTS: Final = 1000
    PENDING_EVENT_TTL: Final = 5.0
    STREAM_FLOW_CONTROL_INCREMENT: Final = 10

    CLIENT_MAX_CONNECTIONS: Final = 100
    SERVER_BIND_HOST: Final = "localhost"
    SERVER_BIND_PORT: Final = WebTransportConstants.DEFAULT_PORT
    SERVER_MAX_CONNECTIONS: Final = 1000
    SERVER_MAX_SESSIONS: Final = 10000
    SERVER_BACKLOG: Final = 128

    LOG_LEVEL: Final = "INFO"

    @staticmethod
    def get_client_config() -> dict[str, Any]:
        """Return the default keyword arguments of `ClientConfig`."""
        return {
            "connect_timeout": Defaults.CONNECT_TIMEOUT,
            "read_timeout": Defaults.READ_TIMEOUT,
            "write_timeout": Defaults.WRITE_TIMEOUT,
            "close_timeout": Defaults.CLOSE_TIMEOUT,
            "stream_creation_timeout": Defaults.STREAM_CREATION_TIMEOUT,
            "max_streams": Defaults.MAX_STREAMS,
            "stream_buffer_size": Defaults.STREAM_BUFFER_SIZE,
            "max_stream_buffer_size": Defaults.MAX_STREAM_BUFFER_SIZE,
            "verify_mode": ssl.CERT_REQUIRED,
            "check_hostname": True,
            "alpn_protocols": list(WebTransportConstants.DEFAULT_ALPN_PROTOCOLS),
            "http_version": "3",
            "user_agent": DEFAULT_USER_AGENT,
            "max_datagram_size": Defaults.MAX_DATAGRAM_SIZE,
            "max_retries": Defaults.MAX_RETRIES,
            "retry_delay": Defaults.RETRY_DELAY,
            "retry_backoff": Defaults.RETRY_BACKOFF,
            "max_retry_delay": Defaults.MAX_RETRY_DELAY,
            "debug": False,
            "log_level": Defaults.LOG_LEVEL,
        }

    @staticmethod
    def get_server_config() -> dict[str, Any]:
        """Return the default keyword arguments of `ServerConfig`."""
        return {
            "bind_host": Defaults.SERVER_BIND_HOST,
            "bind_port": Defaults.SERVER_BIND_PORT,
            "max_connections": Defaults.SERVER_MAX_CONNECTIONS,
            "max_streams_per_connection": Defaults.MAX_STREAMS,
            "connection_timeout": Defaults.SERVER_CONNECTION_TIMEOUT,
            "read_timeout": Defaults.READ_TIMEOUT,
            "write_timeout": Defaults.WRITE_TIMEOUT,
            "verify_mode": ssl.CERT_NONE,
            "alpn_protocols": list(WebTransportConstants.DEFAULT_ALPN_PROTOCOLS),
            "http_version": "3",
            "backlog": Defaults.SERVER_BACKLOG,
            "max_datagram_size": Defaults.MAX_DATAGRAM_SIZE,
            "debug": False,
            "log_level": Defaults.LOG_LEVEL,
        }
