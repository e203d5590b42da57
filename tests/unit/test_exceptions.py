"""Tests for pywebtransport.exceptions."""

from __future__ import annotations

import builtins
import json

import pytest

from pywebtransport import exceptions as exc
from pywebtransport.constants import ErrorCodes
from pywebtransport.types import SessionState, StreamState

SUBCLASS_KWARGS: dict[type[exc.WebTransportError], dict[str, object]] = {
    exc.AuthenticationError: {"auth_method": "token"},
    exc.CertificateError: {"certificate_path": "/x.crt", "certificate_error": "expired"},
    exc.CertificateVerificationError: {
        "expected_host": "example.com",
        "target_url": "https://example.com/",
        "certificate_error": "not valid for 'example.com'",
        "certificate_path": "/ca.pem",
    },
    exc.ClientError: {"target_url": "https://example.com/"},
    exc.ConfigurationError: {"config_key": "max_streams", "config_value": -1},
    exc.ConnectionError: {"remote_address": ("127.0.0.1", 4433)},
    exc.DatagramError: {"datagram_size": 70000, "max_size": 65535},
    exc.FlowControlError: {"stream_id": 4, "limit_exceeded": 10, "current_value": 11},
    exc.HandshakeError: {"handshake_stage": "tls"},
    exc.ProtocolError: {"frame_type": 0x41},
    exc.ServerError: {"bind_address": ("0.0.0.0", 4433)},
    exc.SessionError: {"session_id": "abc", "session_state": SessionState.CLOSED},
    exc.StreamError: {"stream_id": 8, "stream_state": StreamState.OPEN},
    exc.TimeoutError: {"timeout_duration": 1.5, "operation": "connect"},
}


def test_base_error_fields_and_dict() -> None:
    error = exc.WebTransportError("boom", error_code=0x10, details={"a": 1})
    assert str(error) == "boom"
    assert error.message == "boom"
    assert error.error_code == 0x10
    assert error.details == {"a": 1}
    assert error.to_dict() == {"type": "WebTransportError", "message": "boom", "error_code": 16, "details": {"a": 1}}


def test_base_error_defaults() -> None:
    error = exc.WebTransportError("x")
    assert error.error_code is None
    assert error.details == {}
    assert error.to_dict()["error_code"] is None


@pytest.mark.parametrize("cls", list(SUBCLASS_KWARGS))
def test_subclass_kwargs_are_attributes_and_serialised(cls: type[exc.WebTransportError]) -> None:
    kwargs = SUBCLASS_KWARGS[cls]
    error = cls("message", **kwargs)  # type: ignore[arg-type]
    assert isinstance(error, exc.WebTransportError)
    data = error.to_dict()
    assert data["type"] == cls.__name__
    assert data["message"] == "message"
    for name, value in kwargs.items():
        assert getattr(error, name) == value
        assert name in data
    json.dumps(data)  # everything in to_dict must be JSON-serialisable


@pytest.mark.parametrize("cls", list(SUBCLASS_KWARGS))
def test_subclass_accepts_explicit_error_code(cls: type[exc.WebTransportError]) -> None:
    error = cls("m", error_code=ErrorCodes.H3_INTERNAL_ERROR, details={"k": "v"})
    assert error.error_code == ErrorCodes.H3_INTERNAL_ERROR
    assert error.details == {"k": "v"}


def test_shadowing_exceptions_are_not_builtin_subclasses() -> None:
    assert not issubclass(exc.ConnectionError, builtins.ConnectionError)
    assert not issubclass(exc.TimeoutError, builtins.TimeoutError)
    with pytest.raises(exc.WebTransportError):
        raise exc.TimeoutError("late")


def test_session_rejected_error_carries_status() -> None:
    error = exc.SessionRejectedError(
        "forbidden", status=403, headers={"x": "y"}, target_url="https://h/"
    )
    assert isinstance(error, exc.ClientError)
    assert error.status == 403
    assert error.headers == {"x": "y"}
    assert error.to_dict()["status"] == 403
    assert error.to_dict()["target_url"] == "https://h/"


def test_stream_reset_error() -> None:
    error = exc.StreamResetError(reset_code=42, stream_id=4)
    assert isinstance(error, exc.StreamError)
    assert error.reset_code == 42
    assert error.remote is True
    assert "42" in str(error) and "peer" in str(error)
    local = exc.StreamResetError(reset_code=1, remote=False, stream_id=4)
    assert "local" in str(local)
    assert local.to_dict()["reset_code"] == 1


def test_session_closed_error() -> None:
    error = exc.SessionClosedError(code=7, reason="bye", remote=True, session_id="s")
    assert isinstance(error, exc.SessionError)
    assert error.session_state is SessionState.CLOSED
    data = error.to_dict()
    assert (data["code"], data["reason"], data["remote"], data["session_state"]) == (7, "bye", True, "closed")


def test_middleware_rejected() -> None:
    rejected = exc.MiddlewareRejected(429, {"retry-after": "5"})
    assert rejected.status == 429
    assert rejected.headers == {"retry-after": "5"}
    assert "429" in str(rejected)
    assert exc.MiddlewareRejected().status == 403
    keyword = exc.MiddlewareRejected(status=401, headers=None, message="no token")
    assert str(keyword) == "no token"
    with pytest.raises(ValueError):
        exc.MiddlewareRejected(200)


def test_repr_includes_fields() -> None:
    text = repr(exc.DatagramError("big", datagram_size=5, max_size=4))
    assert "DatagramError" in text and "datagram_size=5" in text


def test_helpers() -> None:
    cert = exc.certificate_not_found("/missing.pem")
    assert isinstance(cert, exc.CertificateError) and cert.certificate_path == "/missing.pem"
    timeout = exc.connection_timeout(2.5, "handshake")
    assert isinstance(timeout, exc.TimeoutError)
    assert (timeout.timeout_duration, timeout.operation) == (2.5, "handshake")
    big = exc.datagram_too_large(70000, 65535)
    assert (big.datagram_size, big.max_size) == (70000, 65535)
    config = exc.invalid_config("max_streams", 0, "must be positive")
    assert config.config_key == "max_streams" and "max_streams" in str(config)
    protocol = exc.protocol_violation("bad frame", frame_type=0x41)
    assert protocol.frame_type == 0x41 and protocol.error_code == ErrorCodes.PROTOCOL_VIOLATION
    session = exc.session_not_ready("abc", SessionState.CONNECTING)
    assert session.session_state is SessionState.CONNECTING and "connecting" in str(session)
    stream = exc.stream_closed(4, "reset")
    assert stream.stream_id == 4 and stream.stream_state is StreamState.CLOSED and "reset" in str(stream)


@pytest.mark.parametrize(
    ("error", "fatal", "retriable"),
    [
        (exc.ConfigurationError("x"), True, False),
        (exc.CertificateError("x"), True, False),
        (exc.AuthenticationError("x"), True, False),
        (exc.ProtocolError("x"), True, False),
        (exc.TimeoutError("x"), False, True),
        (exc.ConnectionError("x"), False, True),
        (exc.ConnectionError("x", error_code=ErrorCodes.PROTOCOL_VIOLATION), True, False),
        (exc.SessionRejectedError("x", status=503), False, True),
        (exc.SessionRejectedError("x", status=429), False, True),
        (exc.SessionRejectedError("x", status=404), True, False),
        (exc.StreamError("x"), False, False),
        (builtins.TimeoutError(), True, True),
        (ValueError(), True, False),
    ],
)
def test_fatal_and_retriable(error: BaseException, fatal: bool, retriable: bool) -> None:
    assert exc.is_fatal_error(error) is fatal
    assert exc.is_retriable_error(error) is retriable


@pytest.mark.parametrize(
    ("error", "category"),
    [
        (exc.ConnectionError("x"), "connection"),
        (exc.TimeoutError("x"), "timeout"),
        (exc.SessionClosedError(), "session"),
        (exc.StreamResetError(), "stream"),
        (exc.SessionRejectedError("x", status=403), "session_rejected"),
        (exc.ClientError("x"), "client"),
        (exc.FlowControlError("x"), "flow_control"),
        (exc.MiddlewareRejected(), "middleware"),
        (exc.WebTransportError("x"), "webtransport"),
        (builtins.ConnectionError(), "connection"),
        (KeyError(), "unknown"),
    ],
)
def test_error_category(error: BaseException, category: str) -> None:
    assert exc.get_error_category(error) == category


def test_all_exports_exist() -> None:
    for name in exc.__all__:
        assert hasattr(exc, name)


def test_certificate_verification_error_is_a_certificate_and_a_client_error() -> None:
    error = exc.CertificateVerificationError("bad name", expected_host="h", target_url="https://h/")
    assert isinstance(error, exc.CertificateError) and isinstance(error, exc.ClientError)
    assert exc.get_error_category(error) == "certificate"
    assert exc.is_fatal_error(error) and not exc.is_retriable_error(error)
