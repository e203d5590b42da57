"""Field-section rules for requests, responses and trailers."""

from __future__ import annotations

import pytest

from pywebtransport.h3.errors import MessageError
from pywebtransport.h3.messages import (
    REQUEST_PSEUDO_HEADERS,
    header_value,
    parse_status,
    validate_fields,
    validate_request,
)

CONNECT = [(b":method", b"CONNECT"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/"),
           (b":protocol", b"webtransport-h3")]


def test_extended_connect() -> None:
    assert validate_request(CONNECT) == (b"CONNECT", b"webtransport-h3")
    assert validate_request([(b":method", b"CONNECT"), (b":authority", b"a:443")]) == (b"CONNECT", None)
    assert header_value(CONNECT, b":path") == b"/" and header_value(CONNECT, b"nope") is None


def test_status() -> None:
    assert parse_status([(b":status", b"204"), (b"x", b"y")]) == 204
    with pytest.raises(MessageError):
        parse_status([(b"x", b"y")])


@pytest.mark.parametrize(
    "fields",
    [
        [(b"", b"x")],
        [(b"Upper", b"x")],
        [(b"a", b"b"), (b":path", b"/")],
        [(b":path", b"/"), (b":path", b"/")],
        [(b":bogus", b"/")],
        [(b"transfer-encoding", b"chunked")],
        [(b"te", b"gzip")],
    ],
)
def test_invalid_fields(fields: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(MessageError):
        validate_fields(fields, REQUEST_PSEUDO_HEADERS)


def test_te_trailers_allowed() -> None:
    validate_fields([(b"te", b"trailers")], REQUEST_PSEUDO_HEADERS)
