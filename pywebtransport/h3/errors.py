"""HTTP/3, QPACK and WebTransport error codes, wire exceptions and code mapping.

Every wire exception is an :class:`H3Error` carrying the code the connection
must be closed with.  :class:`H3StreamError` subclasses affect a single stream
only; :class:`~pywebtransport.h3.connection.H3Connection` handles those itself
(it asks the adapter to reset/stop the stream) and never lets them escape.
API misuse by the caller raises :class:`H3UsageError`, which is not a wire error.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "ClosedCriticalStreamError",
    "DatagramError",
    "ErrorCode",
    "ExcessiveLoadError",
    "FieldSectionTooLargeError",
    "FrameError",
    "FrameUnexpectedError",
    "GeneralProtocolError",
    "H3Error",
    "H3StreamError",
    "H3UsageError",
    "IdError",
    "MessageError",
    "MissingSettingsError",
    "QpackDecoderStreamError",
    "QpackDecompressionError",
    "QpackEncoderStreamError",
    "RequestIncompleteError",
    "SessionStateError",
    "SettingsError",
    "StreamCreationError",
    "WebTransportFlowControlError",
    "WT_APP_ERROR_FIRST",
    "WT_APP_ERROR_LAST",
    "http3_code_to_webtransport",
    "is_session_gone_code",
    "webtransport_code_to_http3",
]


class ErrorCode(IntEnum):
    """Application error codes used on HTTP/3 connections and streams."""

    # RFC 9297 (HTTP Datagrams)
    H3_DATAGRAM_ERROR = 0x33
    # RFC 9114 §8.1
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
    # RFC 9204 §6
    QPACK_DECOMPRESSION_FAILED = 0x200
    QPACK_ENCODER_STREAM_ERROR = 0x201
    QPACK_DECODER_STREAM_ERROR = 0x202
    # draft-ietf-webtrans-http3
    WT_BUFFERED_STREAM_REJECTED = 0x3994BD84
    WT_SESSION_GONE = 0x170D7B68
    WT_FLOW_CONTROL_ERROR = 0x045D4487
    WT_ALPN_ERROR = 0x0817B3DD
    WT_REQUIREMENTS_NOT_MET = 0x212C0D48


class H3Error(Exception):
    """A protocol violation; ``code`` is the error code to close with."""

    code: int

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code:#x}, message={self.message!r})"


class _CodedError(H3Error):
    """An :class:`H3Error` whose code is fixed by the subclass."""

    default_code: int = ErrorCode.H3_GENERAL_PROTOCOL_ERROR

    def __init__(self, message: str = "") -> None:
        super().__init__(self.default_code, message)


class GeneralProtocolError(_CodedError):
    default_code = ErrorCode.H3_GENERAL_PROTOCOL_ERROR


class StreamCreationError(_CodedError):
    default_code = ErrorCode.H3_STREAM_CREATION_ERROR


class ClosedCriticalStreamError(_CodedError):
    default_code = ErrorCode.H3_CLOSED_CRITICAL_STREAM


class FrameUnexpectedError(_CodedError):
    default_code = ErrorCode.H3_FRAME_UNEXPECTED


class FrameError(_CodedError):
    default_code = ErrorCode.H3_FRAME_ERROR


class ExcessiveLoadError(_CodedError):
    default_code = ErrorCode.H3_EXCESSIVE_LOAD


class IdError(_CodedError):
    default_code = ErrorCode.H3_ID_ERROR


class SettingsError(_CodedError):
    default_code = ErrorCode.H3_SETTINGS_ERROR


class MissingSettingsError(_CodedError):
    default_code = ErrorCode.H3_MISSING_SETTINGS


class DatagramError(_CodedError):
    default_code = ErrorCode.H3_DATAGRAM_ERROR


class QpackDecompressionError(_CodedError):
    default_code = ErrorCode.QPACK_DECOMPRESSION_FAILED


class QpackEncoderStreamError(_CodedError):
    default_code = ErrorCode.QPACK_ENCODER_STREAM_ERROR


class QpackDecoderStreamError(_CodedError):
    default_code = ErrorCode.QPACK_DECODER_STREAM_ERROR


class WebTransportFlowControlError(_CodedError):
    default_code = ErrorCode.WT_FLOW_CONTROL_ERROR


class SessionStateError(_CodedError):
    """An input the WebTransport session state table does not allow."""

    default_code = ErrorCode.H3_GENERAL_PROTOCOL_ERROR


class H3StreamError(_CodedError):
    """An error confined to one stream: reset/stop it, keep the connection."""


class MessageError(H3StreamError):
    default_code = ErrorCode.H3_MESSAGE_ERROR


class FieldSectionTooLargeError(H3StreamError):
    default_code = ErrorCode.H3_EXCESSIVE_LOAD


class RequestIncompleteError(H3StreamError):
    default_code = ErrorCode.H3_REQUEST_INCOMPLETE


class H3UsageError(ValueError):
    """The caller used the API incorrectly (not a peer's fault)."""


# Application error code space of draft-ietf-webtrans-http3 §4.4 (32-bit codes).
WT_APP_ERROR_FIRST = 0x52E4A40FA8DB
WT_APP_ERROR_LAST = 0x52E5AC983162
_MAX_APP_CODE = 0xFFFFFFFF


def webtransport_code_to_http3(code: int) -> int:
    """Map a WebTransport application error code to its HTTP/3 code."""
    if not 0 <= code <= _MAX_APP_CODE:
        raise H3UsageError(f"WebTransport error code out of range: {code}")
    return WT_APP_ERROR_FIRST + code + code // 0x1E


def http3_code_to_webtransport(code: int) -> int | None:
    """Map an HTTP/3 stream error code back to a WebTransport application code.

    Codes in the mapped range give the application code; GREASE codepoints in
    that range give ``None``.  Codes below 0x100 are returned unchanged because
    some peers (wtransport) put raw application codes on the wire.  Anything
    else (e.g. ``H3_CONNECT_ERROR``, which Chromium uses for "session gone",
    or ``WT_SESSION_GONE``) carries no application code: ``None``.
    """
    if WT_APP_ERROR_FIRST <= code <= WT_APP_ERROR_LAST:
        if (code - 0x21) % 0x1F == 0:
            return None
        shifted = code - WT_APP_ERROR_FIRST
        return shifted - shifted // 0x1F
    if 0 <= code < 0x100:
        return code
    return None


def is_session_gone_code(code: int) -> bool:
    """True for the codes peers use to reset streams of a finished session."""
    return code in (ErrorCode.WT_SESSION_GONE, ErrorCode.H3_CONNECT_ERROR)
