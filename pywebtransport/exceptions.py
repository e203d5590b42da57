"""The exception tree of PyWebTransport.

Every exception raised on purpose by the library derives from `WebTransportError`:

* WebTransportError
    * AuthenticationError
    * CertificateError
        * CertificateVerificationError - the server's certificate was rejected (also a ClientError)
    * ClientError
        * SessionRejectedError - the server answered the CONNECT request with a non-2xx status
    * ConfigurationError
    * ConnectionError - *not* the builtin `ConnectionError`
    * DatagramError
    * FlowControlError
    * HandshakeError
    * MiddlewareRejected - raised by server middleware to refuse a session with an HTTP status
    * ProtocolError
    * ServerError
    * SessionError
        * SessionClosedError - the session was closed, carrying the close code and reason
    * StreamError
        * StreamResetError - the peer reset the stream or asked us to stop sending
    * TimeoutError - *not* the builtin `TimeoutError`

`ConnectionError` and `TimeoutError` deliberately shadow the builtins of the same name, so
``except ConnectionError`` after ``from pywebtransport.exceptions import ConnectionError``
catches only the library's errors.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any, ClassVar

from pywebtransport.constants import ErrorCodes
from pywebtransport.types import SessionState, StreamState

__all__ = [
    "AuthenticationError",
    "CertificateError",
    "CertificateVerificationError",
    "ClientError",
    "ConfigurationError",
    "ConnectionError",
    "DatagramError",
    "FlowControlError",
    "HandshakeError",
    "MiddlewareRejected",
    "ProtocolError",
    "ServerError",
    "SessionClosedError",
    "SessionError",
    "SessionRejectedError",
    "StreamError",
    "StreamResetError",
    "TimeoutError",
    "WebTransportError",
    "certificate_not_found",
    "connection_timeout",
    "datagram_too_large",
    "get_error_category",
    "invalid_config",
    "is_fatal_error",
    "is_retriable_error",
    "protocol_violation",
    "session_not_ready",
    "stream_closed",
]


class WebTransportError(Exception):
    """Base class of all library errors.

    Args:
        message: Human-readable description.
        error_code: Numeric code (usually an `ErrorCodes` member); subclasses supply a default.
        details: Extra structured information, included in `to_dict()`.
    """

    default_error_code: ClassVar[int | None] = None
    # Names of the subclass-specific attributes that `to_dict()` reports.
    _fields: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        message: str,
        *,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code if error_code is not None else self.default_error_code
        self.details: dict[str, Any] = dict(details) if details else {}

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        extra = "".join(f", {name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({self.message!r}, error_code={self.error_code!r}{extra})"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly description of the error."""
        result: dict[str, Any] = {
            "type": type(self).__name__,
            "message": self.message,
            "error_code": None if self.error_code is None else int(self.error_code),
            "details": dict(self.details),
        }
        for name in self._fields:
            value = getattr(self, name)
            if isinstance(value, SessionState | StreamState):
                value = value.value
            result[name] = value
        return result


class AuthenticationError(WebTransportError):
    """Authentication of a peer or a request failed."""

    default_error_code = ErrorCodes.APP_AUTHENTICATION_FAILED
    _fields: ClassVar[tuple[str, ...]] = ("auth_method",)

    def __init__(
        self,
        message: str,
        *,
        auth_method: str | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.auth_method = auth_method


class CertificateError(WebTransportError):
    """A certificate or private key is missing, unreadable or unacceptable."""

    default_error_code = ErrorCodes.INTERNAL_ERROR
    _fields: ClassVar[tuple[str, ...]] = ("certificate_path", "certificate_error")

    def __init__(
        self,
        message: str,
        *,
        certificate_path: str | None = None,
        certificate_error: str | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.certificate_path = certificate_path
        self.certificate_error = certificate_error


class ClientError(WebTransportError):
    """A client operation failed; `target_url` is the URL being connected to."""

    default_error_code = ErrorCodes.INTERNAL_ERROR
    _fields: ClassVar[tuple[str, ...]] = ("target_url",)

    def __init__(
        self,
        message: str,
        *,
        target_url: str | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.target_url = target_url


class SessionRejectedError(ClientError):
    """The server answered the session request with a non-2xx HTTP status.

    `status` is the HTTP status code (for example 403, 404 or 429) and `headers` the
    response headers the server sent with it.
    """

    default_error_code = ErrorCodes.H3_REQUEST_REJECTED
    _fields: ClassVar[tuple[str, ...]] = ("target_url", "status", "headers")

    def __init__(
        self,
        message: str,
        *,
        status: int,
        headers: Mapping[str, str] | None = None,
        target_url: str | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, target_url=target_url, error_code=error_code, details=details)
        self.status = status
        self.headers: dict[str, str] = dict(headers) if headers else {}


class CertificateVerificationError(CertificateError, ClientError):
    """The server's certificate failed verification while connecting.

    `expected_host` is the name (or IP address) the certificate had to be valid for and
    `certificate_error` says what was wrong with it. It is a `CertificateError` and, like
    every other connect failure, a `ClientError` carrying `target_url`.
    """

    _fields: ClassVar[tuple[str, ...]] = (
        "target_url",
        "expected_host",
        "certificate_path",
        "certificate_error",
    )

    def __init__(
        self,
        message: str,
        *,
        expected_host: str | None = None,
        target_url: str | None = None,
        certificate_error: str | None = None,
        certificate_path: str | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        WebTransportError.__init__(self, message, error_code=error_code, details=details)
        self.expected_host = expected_host
        self.target_url = target_url
        self.certificate_error = certificate_error
        self.certificate_path = certificate_path


class ConfigurationError(WebTransportError):
    """A configuration value or an argument is invalid; `config_key` names it."""

    default_error_code = ErrorCodes.APP_INVALID_REQUEST
    _fields: ClassVar[tuple[str, ...]] = ("config_key", "config_value")

    def __init__(
        self,
        message: str,
        *,
        config_key: str | None = None,
        config_value: Any = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.config_key = config_key
        self.config_value = config_value

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-friendly description; the offending value is given as its repr."""
        result = super().to_dict()
        if self.config_value is not None:
            result["config_value"] = repr(self.config_value)
        return result


class ConnectionError(WebTransportError):  # noqa: A001 - shadows the builtin on purpose
    """A QUIC connection could not be established or was lost.

    This is not a subclass of the builtin `ConnectionError`.
    """

    default_error_code = ErrorCodes.CONNECTION_REFUSED
    _fields: ClassVar[tuple[str, ...]] = ("remote_address",)

    def __init__(
        self,
        message: str,
        *,
        remote_address: tuple[str, int] | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.remote_address = remote_address


class DatagramError(WebTransportError):
    """A datagram could not be sent or received (for example, it is too large)."""

    default_error_code = ErrorCodes.INTERNAL_ERROR
    _fields: ClassVar[tuple[str, ...]] = ("datagram_size", "max_size")

    def __init__(
        self,
        message: str,
        *,
        datagram_size: int | None = None,
        max_size: int | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.datagram_size = datagram_size
        self.max_size = max_size


class FlowControlError(WebTransportError):
    """A flow-control limit was exceeded."""

    default_error_code = ErrorCodes.FLOW_CONTROL_ERROR
    _fields: ClassVar[tuple[str, ...]] = ("stream_id", "limit_exceeded", "current_value")

    def __init__(
        self,
        message: str,
        *,
        stream_id: int | None = None,
        limit_exceeded: int | None = None,
        current_value: int | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.stream_id = stream_id
        self.limit_exceeded = limit_exceeded
        self.current_value = current_value


class HandshakeError(WebTransportError):
    """The TLS, QUIC or WebTransport handshake failed; `handshake_stage` says where."""

    default_error_code = ErrorCodes.INTERNAL_ERROR
    _fields: ClassVar[tuple[str, ...]] = ("handshake_stage",)

    def __init__(
        self,
        message: str,
        *,
        handshake_stage: str | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.handshake_stage = handshake_stage


class MiddlewareRejected(WebTransportError):
    """Raised by server middleware to refuse a session request.

    The server answers the CONNECT request with `status` and `headers`.

    Args:
        status: HTTP status code to answer with (4xx or 5xx).
        headers: Extra response headers, for example ``{"retry-after": "30"}``.
        message: Optional description; defaults to one derived from the status.
    """

    default_error_code = ErrorCodes.APP_PERMISSION_DENIED
    _fields: ClassVar[tuple[str, ...]] = ("status", "headers")

    def __init__(
        self,
        status: int = 403,
        headers: Mapping[str, str] | None = None,
        *,
        message: str | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        if not 400 <= status <= 599:
            raise ValueError(f"MiddlewareRejected status must be 4xx or 5xx, got {status}")
        super().__init__(
            message or f"Session request rejected with status {status}",
            error_code=error_code,
            details=details,
        )
        self.status = status
        self.headers: dict[str, str] = dict(headers) if headers else {}


class ProtocolError(WebTransportError):
    """The peer violated the HTTP/3 or WebTransport protocol."""

    default_error_code = ErrorCodes.PROTOCOL_VIOLATION
    _fields: ClassVar[tuple[str, ...]] = ("frame_type",)

    def __init__(
        self,
        message: str,
        *,
        frame_type: int | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.frame_type = frame_type


class ServerError(WebTransportError):
    """A server operation failed; `bind_address` is the address involved."""

    default_error_code = ErrorCodes.INTERNAL_ERROR
    _fields: ClassVar[tuple[str, ...]] = ("bind_address",)

    def __init__(
        self,
        message: str,
        *,
        bind_address: tuple[str, int] | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.bind_address = bind_address


class SessionError(WebTransportError):
    """A session operation failed, or the session is not in a usable state."""

    default_error_code = ErrorCodes.INTERNAL_ERROR
    _fields: ClassVar[tuple[str, ...]] = ("session_id", "session_state")

    def __init__(
        self,
        message: str,
        *,
        session_id: str | None = None,
        session_state: SessionState | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.session_id = session_id
        self.session_state = session_state


class SessionClosedError(SessionError):
    """The session is closed.

    `code` and `reason` are the application close code and reason (from the peer's
    CLOSE_WEBTRANSPORT_SESSION capsule when `remote` is true, or our own close otherwise).
    """

    _fields: ClassVar[tuple[str, ...]] = ("session_id", "session_state", "code", "reason", "remote")

    def __init__(
        self,
        message: str = "Session is closed",
        *,
        code: int = 0,
        reason: str = "",
        remote: bool = False,
        session_id: str | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message,
            session_id=session_id,
            session_state=SessionState.CLOSED,
            error_code=error_code,
            details=details,
        )
        self.code = code
        self.reason = reason
        self.remote = remote


class StreamError(WebTransportError):
    """A stream operation failed, or the stream is not in a usable state."""

    default_error_code = ErrorCodes.STREAM_STATE_ERROR
    _fields: ClassVar[tuple[str, ...]] = ("stream_id", "stream_state")

    def __init__(
        self,
        message: str,
        *,
        stream_id: int | None = None,
        stream_state: StreamState | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.stream_id = stream_id
        self.stream_state = stream_state


class StreamResetError(StreamError):
    """A stream was reset (RESET_STREAM) or asked to stop sending (STOP_SENDING).

    `reset_code` is the WebTransport application error code. `remote` is true when the
    peer initiated it, false when the local side aborted the stream.
    """

    _fields: ClassVar[tuple[str, ...]] = ("stream_id", "stream_state", "reset_code", "remote")

    def __init__(
        self,
        message: str | None = None,
        *,
        reset_code: int = 0,
        remote: bool = True,
        stream_id: int | None = None,
        stream_state: StreamState | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        if message is None:
            who = "peer" if remote else "local endpoint"
            message = f"Stream {stream_id} was reset by the {who} with code {reset_code}"
        super().__init__(
            message,
            stream_id=stream_id,
            stream_state=stream_state,
            error_code=error_code,
            details=details,
        )
        self.reset_code = reset_code
        self.remote = remote


class TimeoutError(WebTransportError):  # noqa: A001 - shadows the builtin on purpose
    """An operation did not complete in time.

    This is not a subclass of the builtin `TimeoutError` (nor of `asyncio.TimeoutError`).
    """

    default_error_code = ErrorCodes.APP_CONNECTION_TIMEOUT
    _fields: ClassVar[tuple[str, ...]] = ("timeout_duration", "operation")

    def __init__(
        self,
        message: str,
        *,
        timeout_duration: float | None = None,
        operation: str | None = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.timeout_duration = timeout_duration
        self.operation = operation


def certificate_not_found(path: str) -> CertificateError:
    """Build the error for a certificate or key file that does not exist."""
    return CertificateError(
        f"Certificate file not found: {path}",
        certificate_path=path,
        certificate_error="file_not_found",
    )


def connection_timeout(timeout_duration: float, operation: str = "connect") -> TimeoutError:
    """Build the error for an operation that timed out."""
    return TimeoutError(
        f"Operation '{operation}' timed out after {timeout_duration:g}s",
        timeout_duration=timeout_duration,
        operation=operation,
    )


def datagram_too_large(size: int, max_size: int) -> DatagramError:
    """Build the error for a datagram larger than the connection allows."""
    return DatagramError(
        f"Datagram of {size} bytes exceeds the maximum of {max_size} bytes",
        datagram_size=size,
        max_size=max_size,
    )


def invalid_config(key: str, value: Any, reason: str) -> ConfigurationError:
    """Build the error for an invalid configuration value."""
    return ConfigurationError(
        f"Invalid value for '{key}': {reason} (got {value!r})",
        config_key=key,
        config_value=value,
    )


def protocol_violation(message: str, *, frame_type: int | None = None) -> ProtocolError:
    """Build the error for a protocol violation by the peer."""
    return ProtocolError(message, frame_type=frame_type)


def session_not_ready(session_id: str, current_state: SessionState) -> SessionError:
    """Build the error for using a session that is not connected."""
    return SessionError(
        f"Session {session_id} is not ready (state: {current_state.value})",
        session_id=session_id,
        session_state=current_state,
    )


def stream_closed(stream_id: int, reason: str = "") -> StreamError:
    """Build the error for using a stream that is already closed."""
    suffix = f": {reason}" if reason else ""
    return StreamError(
        f"Stream {stream_id} is closed{suffix}",
        stream_id=stream_id,
        stream_state=StreamState.CLOSED,
        error_code=ErrorCodes.STREAM_STATE_ERROR,
    )


_FATAL_TYPES: tuple[type[WebTransportError], ...] = (
    AuthenticationError,
    CertificateError,
    ConfigurationError,
    HandshakeError,
    ProtocolError,
)
_FATAL_CODES = frozenset(
    {
        ErrorCodes.PROTOCOL_VIOLATION,
        ErrorCodes.FRAME_ENCODING_ERROR,
        ErrorCodes.TRANSPORT_PARAMETER_ERROR,
        ErrorCodes.CRYPTO_BUFFER_EXCEEDED,
        ErrorCodes.H3_GENERAL_PROTOCOL_ERROR,
        ErrorCodes.H3_MISSING_SETTINGS,
        ErrorCodes.H3_SETTINGS_ERROR,
        ErrorCodes.H3_VERSION_FALLBACK,
        ErrorCodes.APP_AUTHENTICATION_FAILED,
        ErrorCodes.APP_PERMISSION_DENIED,
    }
)
_RETRIABLE_CODES = frozenset(
    {
        ErrorCodes.CONNECTION_REFUSED,
        ErrorCodes.FLOW_CONTROL_ERROR,
        ErrorCodes.STREAM_LIMIT_ERROR,
        ErrorCodes.H3_EXCESSIVE_LOAD,
        ErrorCodes.H3_REQUEST_REJECTED,
        ErrorCodes.APP_CONNECTION_TIMEOUT,
        ErrorCodes.APP_RESOURCE_EXHAUSTED,
        ErrorCodes.APP_SERVICE_UNAVAILABLE,
    }
)
# HTTP statuses after which trying the same request again later can succeed.
_RETRIABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def is_fatal_error(error: BaseException) -> bool:
    """Tell whether retrying the failed operation cannot help.

    Misconfiguration, bad certificates, failed authentication and protocol violations are
    fatal. Exceptions from outside the library are treated as fatal too.
    """
    if not isinstance(error, WebTransportError):
        return True
    if isinstance(error, SessionRejectedError):
        return error.status not in _RETRIABLE_STATUSES
    if isinstance(error, _FATAL_TYPES):
        return True
    return error.error_code in _FATAL_CODES


def is_retriable_error(error: BaseException) -> bool:
    """Tell whether the failed operation may succeed if attempted again.

    Timeouts, refused or lost connections, exhausted limits and 408/425/429/5xx session
    rejections are retriable. The builtin `TimeoutError` and `ConnectionError` count as well.
    """
    if isinstance(error, SessionRejectedError):
        return error.status in _RETRIABLE_STATUSES
    if isinstance(error, TimeoutError | ConnectionError):
        return not is_fatal_error(error)
    if isinstance(error, WebTransportError):
        return error.error_code in _RETRIABLE_CODES and not is_fatal_error(error)
    return isinstance(error, builtins.TimeoutError | builtins.ConnectionError)


_CATEGORIES: tuple[tuple[type[WebTransportError], str], ...] = (
    (AuthenticationError, "authentication"),
    (CertificateError, "certificate"),
    (SessionRejectedError, "session_rejected"),
    (ClientError, "client"),
    (ConfigurationError, "configuration"),
    (ConnectionError, "connection"),
    (DatagramError, "datagram"),
    (FlowControlError, "flow_control"),
    (HandshakeError, "handshake"),
    (MiddlewareRejected, "middleware"),
    (ProtocolError, "protocol"),
    (ServerError, "server"),
    (SessionError, "session"),
    (StreamError, "stream"),
    (TimeoutError, "timeout"),
)


def get_error_category(error: BaseException) -> str:
    """Return a short category name for an error, such as ``"connection"`` or ``"timeout"``.

    Errors from outside the library give ``"timeout"`` or ``"connection"`` for the builtin
    exceptions of those names and ``"unknown"`` otherwise.
    """
    for cls, category in _CATEGORIES:
        if isinstance(error, cls):
            return category
    if isinstance(error, WebTransportError):
        return "webtransport"
    if isinstance(error, builtins.TimeoutError):
        return "timeout"
    if isinstance(error, builtins.ConnectionError):
        return "connection"
    return "unknown"


# -- messaging (serializers, structured messages, RPC, pub/sub) -------------------------------
# Kept together at the end so that the messaging layer's errors stay in one place.

__all__ += [
    "InvalidParamsError",
    "MethodNotFoundError",
    "PubSubError",
    "RpcError",
    "RpcTimeoutError",
    "SerializationError",
]


class SerializationError(WebTransportError):
    """An object could not be serialized, or bytes could not be turned back into one.

    Also raised for malformed or oversized structured-message frames; the stream stays
    aligned on frame boundaries, so the next message can still be read.
    """

    default_error_code = ErrorCodes.INTERNAL_ERROR


class RpcError(WebTransportError):
    """A JSON-RPC 2.0 error: `code` (the JSON-RPC error code), `message` and optional `data`.

    Raising an `RpcError` from a registered method sends exactly that code, message and data
    to the caller, where it is raised again as the matching subclass.
    """

    rpc_code: ClassVar[int] = -32000
    _fields: ClassVar[tuple[str, ...]] = ("code", "data")

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        data: Any = None,
        error_code: int | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, error_code=error_code, details=details)
        self.code = self.rpc_code if code is None else code
        self.data = data


class MethodNotFoundError(RpcError):
    """The peer has no method registered under the called name (JSON-RPC -32601)."""

    rpc_code: ClassVar[int] = -32601


class InvalidParamsError(RpcError):
    """The parameters do not fit the method's signature (JSON-RPC -32602)."""

    rpc_code: ClassVar[int] = -32602


class RpcTimeoutError(RpcError):
    """No response arrived within the call's timeout; the call was cancelled at the peer."""

    rpc_code: ClassVar[int] = -32001

    def __init__(self, message: str, *, timeout_duration: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.timeout_duration = timeout_duration


class PubSubError(WebTransportError):
    """A publish/subscribe operation failed (refused subscription, closed channel, bad topic)."""

    default_error_code = ErrorCodes.INTERNAL_ERROR
