"""Protocol constants, error codes and configuration defaults.

Nothing in this module does I/O; it is safe to import from every layer.
"""

from __future__ import annotations

import ssl
from enum import IntEnum
from typing import Any, Final, TypedDict

from pywebtransport._version import __version__
from pywebtransport.h3.capsules import MAX_CLOSE_REASON_BYTES, CapsuleType
from pywebtransport.h3.connection import UniStreamType
from pywebtransport.h3.errors import ErrorCode as H3ErrorCode
from pywebtransport.h3.frames import FrameType
from pywebtransport.h3.settings import Setting

__all__ = [
    "DEFAULT_LOG_FORMAT",
    "DEFAULT_LOG_LEVEL",
    "DEFAULT_USER_AGENT",
    "DEFAULT_WEBTRANSPORT_PATH",
    "ORIGIN_HEADER",
    "RECOMMENDED_BUFFER_SIZES",
    "SECURE_SCHEMES",
    "SEC_WEBTRANSPORT_HTTP3_DRAFT13",
    "USER_AGENT_HEADER",
    "WEBTRANSPORT_HEADER",
    "WEBTRANSPORT_MIME_TYPE",
    "WEBTRANSPORT_SCHEMES",
    "ClientConfigDefaults",
    "Defaults",
    "ErrorCodes",
    "ServerConfigDefaults",
    "WebTransportConstants",
]


DEFAULT_USER_AGENT: Final[str] = f"pywebtransport/{__version__}"

DEFAULT_LOG_FORMAT: Final[str] = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
DEFAULT_LOG_LEVEL: Final[str] = "INFO"
DEFAULT_WEBTRANSPORT_PATH: Final[str] = "/"
ORIGIN_HEADER: Final[str] = "origin"
USER_AGENT_HEADER: Final[str] = "user-agent"
WEBTRANSPORT_HEADER: Final[str] = "webtransport"
SEC_WEBTRANSPORT_HTTP3_DRAFT13: Final[str] = "webtransport"
WEBTRANSPORT_MIME_TYPE: Final[str] = "application/webtransport"
WEBTRANSPORT_SCHEMES: Final[tuple[str, ...]] = ("https", "wss")
SECURE_SCHEMES: Final[tuple[str, ...]] = ("https", "wss")

KIB: Final = 1024
MIB: Final = 1024 * 1024


class WebTransportConstants:
    """Wire-level numbers of HTTP/3 and WebTransport over HTTP/3 (taken from `pywebtransport.h3`)."""

    DEFAULT_PORT: Final = 4433
    DEFAULT_SECURE_PORT: Final = 443
    DEFAULT_ALPN_PROTOCOLS: Final[tuple[str, ...]] = ("h3", "h3-29")
    DEFAULT_VERSION: Final = "h3"
    WEBTRANSPORT_PROTOCOL: Final = "webtransport"

    # HTTP/3 SETTINGS identifiers (RFC 9114, RFC 9220, RFC 9297, draft-ietf-webtrans-http3).
    SETTINGS_QPACK_MAX_TABLE_CAPACITY: Final = int(Setting.QPACK_MAX_TABLE_CAPACITY)
    SETTINGS_MAX_FIELD_SECTION_SIZE: Final = int(Setting.MAX_FIELD_SECTION_SIZE)
    SETTINGS_QPACK_BLOCKED_STREAMS: Final = int(Setting.QPACK_BLOCKED_STREAMS)
    SETTINGS_ENABLE_CONNECT_PROTOCOL: Final = int(Setting.ENABLE_CONNECT_PROTOCOL)
    SETTINGS_H3_DATAGRAM: Final = int(Setting.H3_DATAGRAM)
    SETTINGS_ENABLE_WEBTRANSPORT: Final = int(Setting.ENABLE_WEBTRANSPORT_DRAFT02)
    SETTINGS_WEBTRANSPORT_MAX_SESSIONS: Final = int(Setting.WEBTRANSPORT_MAX_SESSIONS_DRAFT07)

    # Stream and frame types that open WebTransport streams.
    WEBTRANSPORT_BIDI_STREAM_TYPE: Final = int(FrameType.WEBTRANSPORT_STREAM)
    WEBTRANSPORT_UNI_STREAM_TYPE: Final = int(UniStreamType.WEBTRANSPORT)

    # Capsule types carried on the CONNECT stream.
    CLOSE_WEBTRANSPORT_SESSION_TYPE: Final = int(CapsuleType.CLOSE_WEBTRANSPORT_SESSION)
    DRAIN_WEBTRANSPORT_SESSION_TYPE: Final = int(CapsuleType.DRAIN_WEBTRANSPORT_SESSION)

    MAX_DATAGRAM_SIZE: Final = 65535
    MAX_STREAM_ID: Final = 2**62 - 1
    MAX_CLOSE_REASON_LENGTH: Final = MAX_CLOSE_REASON_BYTES
    DEFAULT_CHUNK_SIZE: Final = 8192


_H3 = H3ErrorCode


class ErrorCodes(IntEnum):
    """Error codes: QUIC transport, HTTP/3, QPACK, WebTransport (from `pywebtransport.h3`) and library ones."""

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

    # HTTP/3 errors (RFC 9114 section 8.1), QPACK (RFC 9204) and WebTransport: the core's codes.
    H3_NO_ERROR = _H3.H3_NO_ERROR.value
    H3_GENERAL_PROTOCOL_ERROR = _H3.H3_GENERAL_PROTOCOL_ERROR.value
    H3_INTERNAL_ERROR = _H3.H3_INTERNAL_ERROR.value
    H3_STREAM_CREATION_ERROR = _H3.H3_STREAM_CREATION_ERROR.value
    H3_CLOSED_CRITICAL_STREAM = _H3.H3_CLOSED_CRITICAL_STREAM.value
    H3_FRAME_UNEXPECTED = _H3.H3_FRAME_UNEXPECTED.value
    H3_FRAME_ERROR = _H3.H3_FRAME_ERROR.value
    H3_EXCESSIVE_LOAD = _H3.H3_EXCESSIVE_LOAD.value
    H3_ID_ERROR = _H3.H3_ID_ERROR.value
    H3_SETTINGS_ERROR = _H3.H3_SETTINGS_ERROR.value
    H3_MISSING_SETTINGS = _H3.H3_MISSING_SETTINGS.value
    H3_REQUEST_REJECTED = _H3.H3_REQUEST_REJECTED.value
    H3_REQUEST_CANCELLED = _H3.H3_REQUEST_CANCELLED.value
    H3_REQUEST_INCOMPLETE = _H3.H3_REQUEST_INCOMPLETE.value
    H3_MESSAGE_ERROR = _H3.H3_MESSAGE_ERROR.value
    H3_CONNECT_ERROR = _H3.H3_CONNECT_ERROR.value
    H3_VERSION_FALLBACK = _H3.H3_VERSION_FALLBACK.value
    QPACK_DECOMPRESSION_FAILED = _H3.QPACK_DECOMPRESSION_FAILED.value
    QPACK_ENCODER_STREAM_ERROR = _H3.QPACK_ENCODER_STREAM_ERROR.value
    QPACK_DECODER_STREAM_ERROR = _H3.QPACK_DECODER_STREAM_ERROR.value
    WT_SESSION_GONE = _H3.WT_SESSION_GONE.value
    WT_BUFFERED_STREAM_REJECTED = _H3.WT_BUFFERED_STREAM_REJECTED.value

    # Library-level application codes.
    APP_CONNECTION_TIMEOUT = 0x1000
    APP_AUTHENTICATION_FAILED = 0x1001
    APP_PERMISSION_DENIED = 0x1002
    APP_RESOURCE_EXHAUSTED = 0x1003
    APP_INVALID_REQUEST = 0x1004
    APP_SERVICE_UNAVAILABLE = 0x1005


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


RECOMMENDED_BUFFER_SIZES: Final[dict[str, int]] = {
    "small": 8 * KIB,
    "medium": 64 * KIB,
    "large": 256 * KIB,
    "xlarge": 1 * MIB,
}


class ClientConfigDefaults(TypedDict, total=False):
    """Keyword arguments of `ClientConfig.create` (the 0.1.x defaults dictionary's shape)."""

    connect_timeout: float
    read_timeout: float
    write_timeout: float
    close_timeout: float
    max_streams: int
    stream_buffer_size: int
    max_stream_buffer_size: int
    alpn_protocols: list[str]
    http_version: str
    user_agent: str
    max_datagram_size: int
    max_retries: int
    retry_delay: float
    retry_backoff: float
    max_retry_delay: float
    debug: bool
    log_level: str


class ServerConfigDefaults(TypedDict, total=False):
    """Keyword arguments of `ServerConfig.create` (the 0.1.x defaults dictionary's shape)."""

    bind_host: str
    bind_port: int
    max_connections: int
    max_streams_per_connection: int
    connection_timeout: float
    read_timeout: float
    write_timeout: float
    alpn_protocols: list[str]
    http_version: str
    backlog: int
    max_datagram_size: int
    debug: bool
    log_level: str
