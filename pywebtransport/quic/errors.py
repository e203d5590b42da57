"""Exceptions raised by the QUIC layer."""

from __future__ import annotations

import functools
from dataclasses import dataclass


_TLS_ALERTS = {
    10: "unexpected_message",
    40: "handshake_failure",
    42: "bad_certificate",
    43: "unsupported_certificate",
    44: "certificate_revoked",
    45: "certificate_expired",
    46: "certificate_unknown",
    47: "illegal_parameter",
    48: "unknown_ca",
    49: "access_denied",
    80: "internal_error",
    116: "certificate_required",
    120: "no_application_protocol",
}


@dataclass(frozen=True, slots=True)
class CloseReason:
    """Why a connection ended.

    ``initiator`` is ``"local"`` (we closed), ``"peer"`` (peer sent an
    application CONNECTION_CLOSE), ``"transport"`` (protocol error, idle
    timeout, handshake failure, unreachable...).  ``error_code`` is the wire
    error code; ``status`` is msquic's status name for transport closes.
    """

    initiator: str
    error_code: int = 0
    status: str = ""

    def describe(self) -> str:
        return _describe(self)


# A closing connection fails each of its streams with the same reason: word it once.
@functools.lru_cache(maxsize=64)
def _describe(reason: CloseReason) -> str:
    if reason.initiator == "transport":
        alert = ""
        if 0x100 <= reason.error_code <= 0x1FF:  # CRYPTO_ERROR: a TLS alert
            code = reason.error_code - 0x100
            alert = f", TLS alert {code} {_TLS_ALERTS.get(code, '')}".rstrip()
        return f"closed by transport ({reason.status}, error 0x{reason.error_code:x}{alert})"
    return f"closed by {reason.initiator} (error 0x{reason.error_code:x})"


class QuicError(Exception):
    """Base class of QUIC layer errors."""


class ConfigError(QuicError, ValueError):
    """The QUIC configuration is invalid (bad file, bad value)."""


class ConnectError(QuicError):
    """Connecting failed before the handshake completed."""

    def __init__(self, message: str, reason: CloseReason | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class CertificateVerifyError(ConnectError):
    """The peer's certificate was rejected by verification."""


class ConnectionClosed(QuicError):
    """The connection is closed; ``reason`` says why."""

    def __init__(self, reason: CloseReason) -> None:
        super().__init__(reason.describe())
        self.reason = reason


class StreamReset(QuicError):
    """The peer reset its sending side of the stream (RESET_STREAM)."""

    def __init__(self, stream_id: int, error_code: int) -> None:
        super().__init__(f"stream {stream_id} reset by peer with code 0x{error_code:x}")
        self.stream_id = stream_id
        self.error_code = error_code


class StreamStopped(QuicError):
    """The peer asked us to stop sending (STOP_SENDING)."""

    def __init__(self, stream_id: int, error_code: int) -> None:
        super().__init__(f"stream {stream_id} stopped by peer with code 0x{error_code:x}")
        self.stream_id = stream_id
        self.error_code = error_code


class WriteTimeout(QuicError):
    """A write waited for the peer's flow control longer than the stream's ``write_timeout``."""


class StreamClosedError(QuicError):
    """An operation on a stream side that is already finished or aborted."""


class DatagramError(QuicError):
    """A datagram could not be sent."""


class DatagramTooLarge(DatagramError, ValueError):
    """A datagram exceeds what the path currently allows."""

    def __init__(self, size: int, max_size: int) -> None:
        super().__init__(f"datagram of {size} bytes exceeds the maximum of {max_size} bytes")
        self.size = size
        self.max_size = max_size
