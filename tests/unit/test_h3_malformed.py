"""Issue 8 finding 7: malformed messages and frames are refused, never accepted.

RFC 9114 §4.1.2 / §4.2 / §4.3.1 / §4.5 / §7.1, RFC 9220 and
draft-ietf-webtrans-http3 §3.1.  A malformed request is a stream error
H3_MESSAGE_ERROR; a frame whose payload does not match its type is a
connection error H3_FRAME_ERROR.
"""

from __future__ import annotations

import pytest
from h3_pair import make_pair

from pywebtransport.h3 import H3Connection
from pywebtransport.h3.errors import ErrorCode, FrameError, H3UsageError, MessageError
from pywebtransport.h3.events import (
    HeadersReceived,
    SessionAborted,
    StreamResetRequested,
    StreamStopRequested,
    WebTransportSessionEstablished,
    WebTransportSessionRequested,
)
from pywebtransport.h3.frames import FrameType, encode_frame
from pywebtransport.h3.messages import parse_status, validate_request
from pywebtransport.h3.qpack import encode_field_section
from pywebtransport.h3.session_state import SessionState
from pywebtransport.h3.settings import encode_settings

CLIENT_SETTINGS = {0x06: 16384, 0x33: 1, 0x2B603742: 1}


def wt_request(**override: bytes | None) -> list[tuple[bytes, bytes]]:
    fields: dict[bytes, bytes | None] = {
        b":method": b"CONNECT",
        b":scheme": b"https",
        b":authority": b"localhost",
        b":path": b"/wt",
        b":protocol": b"webtransport",
    }
    fields.update({(b":" + k.encode()): v for k, v in override.items()})
    return [(k, v) for k, v in fields.items() if v is not None]


GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a"), (b":path", b"/")]

MALFORMED_REQUESTS = [
    pytest.param(GET + [(b"x-a", b"a\rb")], id="CR in value"),
    pytest.param(GET + [(b"x-a", b"a\nb")], id="LF in value"),
    pytest.param(GET + [(b"x-a", b"a\x00b")], id="NUL in value"),
    pytest.param(wt_request(path=b"/wt\r\nx-injected: 1"), id="CRLF in :path"),
    pytest.param(GET + [(b"x a", b"1")], id="space in name"),
    pytest.param(GET + [(b"x:a", b"1")], id="colon inside name"),
    pytest.param(GET + [("x-é".encode(), b"1")], id="non-ASCII name"),
    pytest.param(GET + [(b"X-A", b"1")], id="uppercase name"),
    pytest.param(GET + [(b"x-\x7f", b"1")], id="DEL in name"),
    pytest.param(GET[:3] + [(b":path", b"")], id="empty :path"),
    pytest.param(GET[:3] + [(b":path", b"index.html")], id=":path without slash"),
    pytest.param(GET[:3] + [(b":path", b"*")], id="asterisk outside OPTIONS"),
    pytest.param(GET[:2] + [(b":authority", b""), (b":path", b"/")], id="empty :authority"),
    pytest.param([GET[0], GET[1], GET[3]], id="no :authority and no Host"),
    pytest.param(wt_request(path=b""), id="CONNECT :protocol, empty :path"),
    pytest.param(wt_request(path=b"wt"), id="CONNECT :protocol, :path without slash"),
    pytest.param(wt_request(scheme=b"http"), id="WebTransport over :scheme http"),
    pytest.param(wt_request(protocol=b""), id="empty :protocol"),
    pytest.param([(b":method", b"CONNECT"), (b":authority", b"")], id="plain CONNECT, empty :authority"),
    pytest.param([(b":method", b""), *GET[1:]], id="empty :method"),
]


@pytest.mark.parametrize("headers", MALFORMED_REQUESTS)
def test_validate_request_refuses(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(MessageError):
        validate_request(headers)


def server() -> H3Connection:
    conn = H3Connection(False)
    conn.receive_stream_data(2, b"\x00" + encode_frame(FrameType.SETTINGS, encode_settings(CLIENT_SETTINGS)))
    return conn


@pytest.mark.parametrize("headers", MALFORMED_REQUESTS)
def test_malformed_request_is_a_stream_error(headers: list[tuple[bytes, bytes]]) -> None:
    conn = server()
    events = conn.receive_stream_data(0, encode_frame(FrameType.HEADERS, encode_field_section(headers)))
    assert events == [
        StreamStopRequested(0, ErrorCode.H3_MESSAGE_ERROR),
        StreamResetRequested(0, ErrorCode.H3_MESSAGE_ERROR),
    ]
    assert conn.session_state(0) is None
    # The connection goes on: a good request on the next stream is served.
    events = conn.receive_stream_data(4, encode_frame(FrameType.HEADERS, encode_field_section(wt_request())))
    assert [type(e) for e in events] == [WebTransportSessionRequested]


@pytest.mark.parametrize(
    "headers",
    [
        GET,
        GET[:3] + [(b":path", b"/a?b=c%20d")],
        [(b":method", b"OPTIONS"), GET[1], GET[2], (b":path", b"*")],
        [GET[0], GET[1], GET[3], (b"host", b"a")],
        [(b":method", b"CONNECT"), (b":authority", b"a:443")],
        wt_request(),
        wt_request(protocol=b"webtransport-h3"),
        wt_request(scheme=b"http", protocol=b"connect-udp"),
        GET + [(b"x-a", b"tab\tand space and \x80\xff obs-text")],
        GET + [(b"!#$%&'*+-.^_`|~09az", b"")],
    ],
)
def test_well_formed_requests_pass(headers: list[tuple[bytes, bytes]]) -> None:
    validate_request(headers)


def test_local_headers_with_crlf_are_refused() -> None:
    pair = make_pair()
    with pytest.raises(H3UsageError):
        pair.client.connect_session(0, authority="a", path="/", headers=[(b"x-a", b"1\r\nx-b: 2")])
    with pytest.raises(H3UsageError):
        pair.client.connect_session(0, authority="a", path="/wt\n")


# ------------------------------------------------------------- responses


@pytest.mark.parametrize("status", [b"101", b"099", b"600", b"000"])
def test_parse_status_refuses(status: bytes) -> None:
    with pytest.raises(MessageError):
        parse_status([(b":status", status)])


def test_101_response_fails_the_session() -> None:
    pair = make_pair()
    pair.to_server(0, pair.client.connect_session(0, authority="a", path="/"))
    response = encode_frame(FrameType.HEADERS, encode_field_section([(b":status", b"101")]))
    events = pair.to_client(0, response)
    assert SessionAborted(0, ErrorCode.H3_MESSAGE_ERROR) in events
    assert StreamResetRequested(0, ErrorCode.H3_MESSAGE_ERROR) in events
    assert pair.client.session_state(0) is not SessionState.OPEN
    # A 200 that follows is not taken as the session's acceptance.
    events = pair.to_client(0, pair.server.accept_session(0))
    assert not any(isinstance(e, WebTransportSessionEstablished) for e in events)


def test_interim_1xx_other_than_101_still_ignored() -> None:
    pair = make_pair()
    pair.to_server(0, pair.client.connect_session(0, authority="a", path="/"))
    interim = encode_frame(FrameType.HEADERS, encode_field_section([(b":status", b"103")]))
    assert pair.to_client(0, interim) == []
    events = pair.to_client(0, pair.server.accept_session(0))
    assert any(isinstance(e, WebTransportSessionEstablished) for e in events)


def test_response_with_crlf_value_fails_the_session() -> None:
    pair = make_pair()
    pair.to_server(0, pair.client.connect_session(0, authority="a", path="/"))
    response = encode_frame(FrameType.HEADERS, encode_field_section([(b":status", b"200"), (b"x", b"a\r\nb")]))
    events = pair.to_client(0, response)
    assert SessionAborted(0, ErrorCode.H3_MESSAGE_ERROR) in events
    assert not any(isinstance(e, (WebTransportSessionEstablished, HeadersReceived)) for e in events)


# ------------------------------------------------------- control frames


@pytest.mark.parametrize(
    ("is_client", "frames"),
    [
        (True, encode_frame(FrameType.GOAWAY, b"\x04\x00")),
        (False, encode_frame(FrameType.GOAWAY, b"\x00junk")),
        (False, encode_frame(FrameType.MAX_PUSH_ID, b"\x05\x00")),
        (False, encode_frame(FrameType.MAX_PUSH_ID, b"\x05") + encode_frame(FrameType.CANCEL_PUSH, b"\x02\xff")),
        (False, encode_frame(FrameType.MAX_PUSH_ID, b"\x40")),  # truncated 2-byte varint
    ],
)
def test_trailing_bytes_in_id_frames_are_frame_errors(is_client: bool, frames: bytes) -> None:
    conn = H3Connection(is_client)
    control = 3 if is_client else 2
    with pytest.raises(FrameError) as info:
        conn.receive_stream_data(control, b"\x00" + encode_frame(FrameType.SETTINGS, b"") + frames)
    assert info.value.code == ErrorCode.H3_FRAME_ERROR


def test_decode_id_payload() -> None:
    from pywebtransport.h3.frames import decode_id_payload

    assert decode_id_payload(FrameType.GOAWAY, b"\x40\x10") == 16
    for payload in (b"", b"\x40", b"\x00\x00"):
        with pytest.raises(FrameError):
            decode_id_payload(FrameType.GOAWAY, payload)
